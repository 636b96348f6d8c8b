"""One thread with its own event loop and asyncpg pool: the PostgreSQL store's only way to the server.

The Store's reads are synchronous (a handler asks for an older week and gets it at once), its
writes are awaited. asyncpg is async-only, and its connections belong to the loop that made them;
so every query runs on this thread's loop: the synchronous callers block on the result (as the
file store blocks on reading a shard), the async ones await it without blocking theirs. It also
lets one Store serve several event loops in turn (the tests make one per test), and a thread
other than the loop (a document built from a snapshot) read the same way.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any, Awaitable, Callable, TypeVar
from urllib.parse import urlsplit, urlunsplit

import asyncpg

T = TypeVar("T")


def redact_dsn(dsn: str) -> str:
    """The DSN as it may be shown: the password replaced by ***."""
    try:
        parts = urlsplit(dsn)
    except ValueError:
        return "postgresql://***"
    if parts.password is None:
        return dsn
    host = parts.hostname or ""
    if parts.port:
        host += f":{parts.port}"
    user = f"{parts.username}:***@" if parts.username else "***@"
    return urlunsplit((parts.scheme, user + host, parts.path, parts.query, parts.fragment))


def dsn_password(dsn: str) -> str | None:
    try:
        return urlsplit(dsn).password
    except ValueError:
        return None


class StoreUnavailable(RuntimeError):
    """The server could not be reached: said with the DSN less its password."""


class PgBridge:
    def __init__(self, dsn: str, max_size: int = 8):
        self.dsn = dsn
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="pg-bridge", daemon=True)
        self._thread.start()
        self.pool: asyncpg.Pool | None = None
        try:
            self.pool = self.call(self._connect(max_size))
        except BaseException:
            self._stop_loop()
            raise

    async def _connect(self, max_size: int) -> asyncpg.Pool:
        try:
            pool = await asyncpg.create_pool(self.dsn, min_size=0, max_size=max_size, command_timeout=300)
            await pool.fetchval("SELECT 1")  # min_size 0 connects lazily: reach the server now
            return pool
        except (OSError, asyncpg.PostgresError, asyncio.TimeoutError) as e:
            detail = str(e)
            secret = dsn_password(self.dsn)
            if secret:
                detail = detail.replace(secret, "***")
            raise StoreUnavailable(f"无法连接 PostgreSQL({redact_dsn(self.dsn)}):{detail or type(e).__name__}") from None

    def call(self, coro: Awaitable[T]) -> T:
        """Run a coroutine on the bridge's loop and wait for its result (synchronous callers)."""
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    async def acall(self, coro: Awaitable[T]) -> T:
        """The same for a coroutine of another loop, which goes on meanwhile."""
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, self._loop))

    def run(self, fn: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
        """fn(connection) on a pooled connection, synchronously."""
        return self.call(self._with(fn))

    async def arun(self, fn: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
        return await self.acall(self._with(fn))

    async def _with(self, fn: Callable[[asyncpg.Connection], Awaitable[Any]]) -> Any:
        async with self.pool.acquire() as conn:
            return await fn(conn)

    async def aclose(self, conn: asyncpg.Connection | None) -> None:
        """Close a connection of this loop's kept apart from the pool (a listener, a lock holder);
        failing to, it is gone already."""
        if conn is not None:
            try:
                await self.acall(conn.close(timeout=5))
            except (OSError, asyncpg.PostgresError, asyncio.TimeoutError):
                pass

    def close(self) -> None:
        if self.pool is not None:
            try:
                self.call(self.pool.close())
            finally:
                self.pool = None
                self._stop_loop()

    def _stop_loop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        if not self._thread.is_alive():
            self._loop.close()
