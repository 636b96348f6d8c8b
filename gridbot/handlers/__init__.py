"""Handlers, one module (and one Router) per kind of message, combined here in priority order."""

from __future__ import annotations

import importlib

from ..dispatch import Router

# Order matters: commands before problems before free-text reports, which take any text.
MODULES = ("commands", "leave", "problems", "checkins", "misc", "reports")


def root_router() -> Router:
    root = Router("root")
    for name in MODULES:
        try:
            mod = importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as e:
            if e.name != f"{__name__}.{name}":
                raise
            continue
        root.include(mod.router)
    return root
