"""What handlers and jobs receive instead of globals."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import cached_property
from typing import Any, Callable

from .clock import Clock
from .config import Config, Person
from .events import Event
from .store import Store
from .transport import Transport


@dataclass
class Bot:
    """The running bot's parts. `config` is replaced on hot reload; read it each time."""
    config: Config
    store: Store
    transport: Transport
    clock: Clock
    tasks: set[asyncio.Task] = field(default_factory=set)
    extras: dict[str, Any] = field(default_factory=dict)

    def spawn(self, coro, name: str | None = None) -> asyncio.Task:
        # Keep a reference so the task is not garbage-collected mid-flight (aiogram does the same).
        task = asyncio.create_task(coro, name=name)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    async def idle(self, timeout: float = 10.0) -> None:
        """Wait until dispatch tasks and outbound sends are done (tests, shutdown)."""
        async def _wait():
            while True:
                pending = [t for t in self.tasks if not t.done()]
                if pending:
                    await asyncio.gather(*pending, return_exceptions=True)
                    continue
                await self.transport.flush()
                if not [t for t in self.tasks if not t.done()]:
                    return
        await asyncio.wait_for(_wait(), timeout)


@dataclass
class Context:
    bot: Bot
    event: Event
    person: Person
    # Where the sender's answer goes when it is not an app message: the AI bot's reply stream.
    answer: Callable[[str], None] | None = None
    chat_grid: str | None = None  # the grid whose group the message was said in, if known

    @property
    def config(self) -> Config:
        return self.bot.config

    @property
    def store(self) -> Store:
        return self.bot.store

    @property
    def transport(self) -> Transport:
        return self.bot.transport

    @property
    def clock(self) -> Clock:
        return self.bot.clock

    @cached_property
    def sent_at(self) -> datetime:
        """When the person sent it (CreateTime), in the bot's timezone."""
        return self.clock.from_timestamp(self.event.create_time)

    @property
    def sent_on(self) -> date:
        return self.sent_at.date()

    @property
    def grid_id(self) -> str | None:
        """The grid this message is about: the sender's own, else the group's it was said in."""
        return self.person.grid or self.chat_grid

    def reply(self, text: str) -> None:
        if self.answer is not None:
            self.answer(text)
        else:
            self.transport.send_text(self.person.userid, text)
