"""How the core finds its features: the `gridbot.features` entry-point group.

Each feature (handlers, schedules, the development emulator) names one `Feature` in pyproject:
its router, its jobs, its command-line commands and its lifecycle hooks. The core reads them
with importlib.metadata (as pytest finds its plugins) and so never imports a feature itself.
"""

from __future__ import annotations

import argparse
import functools
from dataclasses import dataclass, field
from datetime import datetime
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Awaitable, Callable, Mapping

from aiohttp import web

from bot.router import Router

if TYPE_CHECKING:
    from bot.context import Bot
    from bot.runtime import BotRuntime

GROUP = "gridbot.features"

JobFn = Callable[["Bot", datetime], Awaitable[str | None]]
# A hook runs while the app is built: it may add routes and cleanup contexts.
Hook = Callable[[web.Application, "BotRuntime"], None]


@dataclass(frozen=True)
class Command:
    """A `gridbot <name>` subcommand. `run` gets the parsed arguments; the --config option
    every command takes is already there."""
    name: str
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


@dataclass(frozen=True)
class Feature:
    name: str
    router: Router | None = None
    jobs: Mapping[str, JobFn] = field(default_factory=dict)
    commands: tuple[Command, ...] = ()
    hooks: tuple[Hook, ...] = ()


@functools.cache
def load_features() -> tuple[Feature, ...]:
    """Every installed feature, by entry-point name (their order is the routers' order)."""
    found = []
    for ep in sorted(entry_points(group=GROUP), key=lambda e: e.name):
        feature = ep.load()
        if not isinstance(feature, Feature):
            raise TypeError(f"entry point {ep.name} = {ep.value} is not a bot.features.Feature")
        found.append(feature)
    return tuple(found)


def root_router() -> Router:
    return Router("root").include(*(f.router for f in load_features() if f.router is not None))


@functools.cache
def all_jobs() -> dict[str, JobFn]:
    """Job functions by the name [[schedules]] gives them (one dict: tests may swap an entry)."""
    jobs: dict[str, JobFn] = {}
    for f in load_features():
        jobs.update(f.jobs)
    return jobs
