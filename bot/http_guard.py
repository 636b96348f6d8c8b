"""The listening socket, guarded: slow clients and connection floods never starve the bot.

- A connection must deliver a whole request (headers; the callbacks read their bodies under the
  same deadline, see bot.wecom.inbound.read_capped) within `read_timeout_seconds` of connecting or
  of its last answer, or it is closed: 300 clients sending a header byte now and then would
  otherwise hold 300 sockets for ever.
- At most `max_connections` are open at once, below the process's file limit, so descriptors
  remain for the journal's next segment, the checkpoint's files, the log and outbound calls. At
  the cap a newcomer pushes out the longest-idle connection (one not in the middle of a request),
  so a flood of idle sockets cannot lock WeCom's next callback out.
- At most MAX_REQUESTS requests are handled at once; beyond that the answer is 503 at once
  (WeCom retries), not a queue that grows without bound.
"""

from __future__ import annotations

import asyncio
import resource
from typing import Any

from aiohttp import web
from loguru import logger

# Descriptors kept for everything but inbound connections: journal, shards, checkpoint temp
# files, the data-dir lock, the log, outbound connections to WeCom, photos being written.
FD_RESERVE = 128
MAX_REQUESTS = 512
# aiohttp drains an unread body for this long after answering; a slow client's body is not
# worth waiting for.
LINGER_SECONDS = 1.0


def raise_file_limit() -> int:
    """Lift the soft limit on open files to the hard one (1,024 by default on many systems,
    often far more allowed); returns the limit in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 65536)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    return soft


def connection_cap(configured: int, file_limit: int) -> int:
    room = file_limit - FD_RESERVE if file_limit >= 2 * FD_RESERVE else file_limit // 2
    return max(8, min(configured, room) if configured else room)


class ConnectionGuard:
    def __init__(self, read_timeout: float, max_connections: int, max_requests: int = MAX_REQUESTS):
        self.read_timeout = read_timeout
        self.max_connections = max_connections
        self.max_requests = max_requests
        # Connections not in a request, longest idle first (a dict keeps insertion order, and a
        # connection is put back at the end whenever it finishes a request).
        self._idle: dict[Any, float] = {}
        self._busy: set[Any] = set()
        self._sweeper: asyncio.Task | None = None
        self.pushed_out = 0

    @property
    def open_connections(self) -> int:
        return len(self._idle) + len(self._busy)

    def install(self, server: web.Server) -> None:
        """Hooks into the aiohttp server's connection bookkeeping (its handlers report each
        connection made and lost to it)."""
        made, lost = server.connection_made, server.connection_lost
        loop = asyncio.get_running_loop()

        def connection_made(handler, transport) -> None:
            made(handler, transport)
            self._idle[handler] = loop.time()
            if self.open_connections > self.max_connections:
                victim = next(iter(self._idle))  # when every other one is busy: the newcomer
                self.pushed_out += 1
                self._close(victim)

        def connection_lost(handler, exc=None) -> None:
            self._idle.pop(handler, None)
            self._busy.discard(handler)
            lost(handler, exc)

        server.connection_made = connection_made  # type: ignore[method-assign]
        server.connection_lost = connection_lost  # type: ignore[method-assign]
        self._sweeper = asyncio.create_task(self._sweep(), name="http-guard")

    async def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            await asyncio.gather(self._sweeper, return_exceptions=True)

    def _close(self, handler) -> None:
        self._idle.pop(handler, None)
        transport = handler.transport
        if transport is not None:
            transport.close()

    async def _sweep(self) -> None:
        loop = asyncio.get_running_loop()
        reported = 0
        while True:
            await asyncio.sleep(min(1.0, self.read_timeout / 4))
            deadline = loop.time() - self.read_timeout
            slow = []
            for handler, since in self._idle.items():
                if since > deadline:
                    break
                slow.append(handler)
            for handler in slow:
                self._close(handler)
            if slow:
                logger.info("closed {} connection(s) that sent no whole request within {:g} s; {} open",
                            len(slow), self.read_timeout, self.open_connections)
            if self.pushed_out > reported:  # one line a second, not one per connection of a flood
                logger.warning("at the cap of {} connections: {} idle one(s) pushed out for newcomers",
                               self.max_connections, self.pushed_out - reported)
                reported = self.pushed_out

    @web.middleware
    async def middleware(self, request: web.Request, handler):
        proto = request.protocol
        if len(self._busy) >= self.max_requests:
            return web.Response(status=503, text="busy, try again")
        self._idle.pop(proto, None)
        self._busy.add(proto)
        try:
            return await handler(request)
        finally:
            self._busy.discard(proto)
            if proto.transport is not None:
                self._idle[proto] = asyncio.get_running_loop().time()


async def serve(app: web.Application, host: str, port: int, read_timeout: float,
                max_connections: int) -> tuple[web.AppRunner, ConnectionGuard]:
    """Start the app on host:port behind a ConnectionGuard; the caller cleans up the runner
    (and closes the guard)."""
    limit = raise_file_limit()
    guard = ConnectionGuard(read_timeout, connection_cap(max_connections, limit))
    app.middlewares.insert(0, guard.middleware)  # outermost: counts and refuses before any other
    # Per-request access lines cost more than they tell; errors are logged where they happen.
    runner = web.AppRunner(app, handle_signals=False, access_log=None, keepalive_timeout=read_timeout,
                           lingering_time=LINGER_SECONDS)
    await runner.setup()
    assert runner.server is not None
    guard.install(runner.server)
    site = web.TCPSite(runner, host, port, backlog=min(1024, guard.max_connections))
    await site.start()
    logger.info("listening on {}:{}; at most {} connections (open-file limit {}), requests cut off after {:g} s",
                host, port, guard.max_connections, limit, read_timeout)
    return runner, guard
