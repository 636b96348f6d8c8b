"""Routing events to handlers: one Router per handler module, combined at the root.

A filter may return a dict; its items are passed to the handler as keyword arguments, so a
command is parsed once, in its filter (as aiogram does).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Awaitable, Callable

from bot.events import Event

Filter = Callable[[Event, Any], Any]
Handler = Callable[..., Awaitable[None]]


@dataclass
class Route:
    kinds: tuple[type[Event], ...]
    filter: Filter | None
    handler: Handler


class Router:
    def __init__(self, name: str):
        self.name = name
        self.routes: list[Route] = []
        self.children: list[Router] = []

    def on(self, *kinds: type[Event], filter: Filter | None = None) -> Callable[[Handler], Handler]:
        def register(fn: Handler) -> Handler:
            self.routes.append(Route(kinds, filter, fn))
            return fn
        return register

    def include(self, *routers: "Router") -> "Router":
        self.children.extend(routers)
        return self

    async def dispatch(self, event: Event, ctx: Any) -> bool:
        """Run the first matching handler; returns False when nothing matched."""
        for route in self.routes:
            if not isinstance(event, route.kinds):
                continue
            extra: Any = True
            if route.filter is not None:
                extra = route.filter(event, ctx)
                if not extra:
                    continue
            await route.handler(event, ctx, **(extra if isinstance(extra, dict) else {}))
            return True
        for child in self.children:
            if await child.dispatch(event, ctx):
                return True
        return False


def command(pattern: str) -> Filter:
    """A filter for a typed command: the whole text (trimmed) must match; named groups are
    passed to the handler as keyword arguments."""
    rx = re.compile(pattern)

    def flt(event, ctx):
        m = rx.match(event.content.strip())
        return m.groupdict() if m and m.groupdict() else bool(m)
    return flt
