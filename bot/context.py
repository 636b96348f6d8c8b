"""What handlers and jobs receive instead of globals."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import cached_property
from typing import TYPE_CHECKING, Awaitable, Callable, TypeVar

from bot.clock import Clock
from bot.config import Config, Person
from bot.events import Event, ImageMessage
from bot.store import Store
from bot.transport import Transport

T = TypeVar("T")

if TYPE_CHECKING:
    from apscheduler.schedulers.asyncio import AsyncIOScheduler

    from bot.photos.duplicates import PhotoIndex
    from bot.photos.files import Photo, PhotoSource


@dataclass
class Bot:
    """The running bot's parts. `config` is replaced on hot reload; read it each time."""
    config: Config
    store: Store
    transport: Transport
    clock: Clock
    # Where an image message's photo comes from (app media or the AI bot's encrypted URL).
    photo_source: "PhotoSource | None" = None
    tasks: set[asyncio.Task] = field(default_factory=set)
    scheduler: "AsyncIOScheduler | None" = None
    # The check-in photo index (built lazily from the duplicate window) and named locks around
    # read-modify-write sections ("photos": search then add; "problems": one problem at a time).
    photo_index: "PhotoIndex | None" = None
    locks: defaultdict[str, asyncio.Lock] = field(default_factory=lambda: defaultdict(asyncio.Lock))
    # Set once outbound calls can go out: at start, or in emulator mode when the emulator knows
    # its own address (the API lives in this very server).
    api_ready: asyncio.Event = field(default_factory=asyncio.Event)
    error_notices: dict[str, float] = field(default_factory=dict)  # failure kind → last admin notice
    # (grid, sender) → waits briefly for others' messages of that grid still being handled (the inbox's)
    settle: Callable[[str | None, str], Awaitable[None]] | None = None

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

    async def photo(self) -> "Photo":
        """The photo of this image message, fetched the way its channel delivers it. Raises
        PhotoExpired / PhotoUnavailable / PhotoError (bot.photos.files)."""
        if not isinstance(self.event, ImageMessage) or self.bot.photo_source is None:
            raise TypeError("no photo in this event")
        return await self.bot.photo_source.fetch(self.event)

    async def settle_grid(self) -> None:
        """Wait briefly (2 s at most) until the messages other people of this grid sent before
        this one are handled: a leader's "整改 #P1" can overtake the "问题:…" that makes #P1."""
        if self.bot.settle is not None:
            await self.bot.settle(self.grid_id, self.event.sender)

    async def settled(self, find: Callable[[], T]) -> T:
        """`find()`; when it finds nothing, `find()` again once settle_grid() is over."""
        found = find()
        if found is None:
            await self.settle_grid()
            found = find()
        return found

    def reply(self, text: str) -> None:
        if self.answer is not None:
            self.answer(text)
        else:
            self.transport.send_text(self.person.userid, text)
