"""A small HTTP/1.1 keep-alive client for WeCom's JSON calls (message/send and the like).

Every reply to a message is one such POST. Through aiohttp's ClientSession each one cost about
three times the CPU of this client (measured on the benchmark machine: ~250 µs against ~90 µs a
call), which made the reply the largest single part of handling a message. This client does only
what those calls need: one request at a time per connection, idle connections reused for at most
IDLE_SECONDS (aiohttp's keep-alive default), Content-Length, chunked or read-to-close bodies, TLS
with the default context, a total timeout, caps on head and body size. Like aiohttp it never
resends a POST by itself: a failure is an error the caller's retry policy handles. Uploads,
downloads, redirects and the rare GETs stay with aiohttp.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from dataclasses import dataclass

import aiohttp
from yarl import URL

IDLE_SECONDS = 15.0
MAX_CONNECTIONS = 100  # per host, as aiohttp's connector
MAX_HEAD = 64 * 1024
MAX_BODY = 8 * 1024 * 1024


class HttpError(aiohttp.ClientConnectionError):
    """The request failed at the HTTP level (connection, framing, size); callers treat it as
    they treat aiohttp's connection errors: transient."""


class NotSent(HttpError):
    """The request never left: no connection could be made (refused, unreachable, timed out
    while connecting). Unlike a timeout after sending, the server cannot have acted on it."""


@dataclass
class Response:
    status: int
    headers: dict[str, str]  # lower-case names
    body: bytes


class _Connection(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.waiter: asyncio.Future | None = None
        self.lost = False
        self.idle_since = 0.0
        self.reusable = False
        self._reset()

    def _reset(self) -> None:
        self._head: tuple[int, dict[str, str], bool] | None = None
        self._length: int | None = None  # None: chunked or to close
        self._chunked = False
        self._body = bytearray()

    # --- asyncio callbacks ---------------------------------------------------------------
    def connection_made(self, transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        if self.waiter is None or self.waiter.done():
            self.close()  # bytes nobody asked for: the connection is out of step, never reuse it
            return
        self.buf += data
        try:
            self._parse()
        except HttpError as e:
            if not self.waiter.done():
                self.waiter.set_exception(e)
            self.close()

    def connection_lost(self, exc) -> None:
        self.lost = True
        w = self.waiter
        if w is None or w.done():
            return
        if self._head is not None and self._length is None and not self._chunked:
            self._body += self.buf  # a body that ends with the connection
            self._finish(reusable=False)
        else:
            w.set_exception(HttpError(f"connection closed before the response ended ({exc or 'EOF'})"))

    # --- one exchange ----------------------------------------------------------------------
    def send(self, data: bytes) -> asyncio.Future:
        self.waiter = asyncio.get_running_loop().create_future()
        self.reusable = False
        self._reset()
        self.transport.write(data)
        return self.waiter

    def close(self) -> None:
        self.reusable = False
        self.lost = True
        if self.transport is not None:
            self.transport.close()

    def _parse(self) -> None:
        while self._head is None:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                if len(self.buf) > MAX_HEAD:
                    raise HttpError("response head too large")
                return
            lines = bytes(self.buf[:end]).decode("latin-1").split("\r\n")
            del self.buf[:end + 4]
            version, _, rest = lines[0].partition(" ")
            try:
                status = int(rest[:3])
            except ValueError:
                raise HttpError("not an HTTP response") from None
            if not version.startswith("HTTP/1."):
                raise HttpError("not an HTTP/1.x response")
            headers: dict[str, str] = {}
            for line in lines[1:]:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            if 100 <= status < 200:
                continue  # an interim answer (100 Continue): the real one follows
            conn = headers.get("connection", "").lower()
            keep = (version == "HTTP/1.1" and "close" not in conn) or "keep-alive" in conn
            self._head = (status, headers, keep)
            if "chunked" in headers.get("transfer-encoding", "").lower():
                self._chunked = True
            elif status in (204, 304):
                self._length = 0
            elif "content-length" in headers:
                try:
                    self._length = int(headers["content-length"])
                except ValueError:
                    raise HttpError("bad Content-Length") from None
                if self._length > MAX_BODY:
                    raise HttpError("response body too large")
        if self._chunked:
            self._parse_chunks()
        elif self._length is not None:
            if len(self.buf) >= self._length:
                self._body += self.buf[:self._length]
                del self.buf[:self._length]
                self._finish(reusable=self._head[2])
        else:
            self._body += self.buf
            self.buf.clear()
            if len(self._body) > MAX_BODY:
                raise HttpError("response body too large")

    def _parse_chunks(self) -> None:
        while True:
            line_end = self.buf.find(b"\r\n")
            if line_end < 0:
                if len(self.buf) > MAX_HEAD:
                    raise HttpError("bad chunk")
                return
            size_text = bytes(self.buf[:line_end]).split(b";", 1)[0].strip()
            try:
                size = int(size_text, 16)
            except ValueError:
                raise HttpError("bad chunk size") from None
            if size == 0:
                # Trailers (if any) end with an empty line.
                end = self.buf.find(b"\r\n\r\n", line_end)
                if end < 0:
                    if self.buf[line_end:line_end + 4] == b"\r\n\r\n":
                        end = line_end
                    else:
                        return
                del self.buf[:end + 4]
                self._finish(reusable=self._head[2])
                return
            if len(self._body) + size > MAX_BODY:
                raise HttpError("response body too large")
            if len(self.buf) < line_end + 2 + size + 2:
                return
            start = line_end + 2
            self._body += self.buf[start:start + size]
            del self.buf[:start + size + 2]

    def _finish(self, reusable: bool) -> None:
        status, headers, _ = self._head
        self.reusable = reusable and not self.buf and not self.lost
        if not self.waiter.done():
            self.waiter.set_result(Response(status, headers, bytes(self._body)))


class KeepAliveClient:
    def __init__(self, ssl_context: ssl.SSLContext | None = None) -> None:
        self._idle: dict[tuple[str, str, int], list[_Connection]] = {}
        self._slots: dict[tuple[str, str, int], asyncio.Semaphore] = {}
        self._ssl = ssl_context
        self._open: set[_Connection] = set()

    async def request(self, method: str, url: URL, body: bytes, content_type: str, timeout: float,
                      headers: dict[str, str] | None = None) -> Response:
        if url.scheme not in ("http", "https") or not url.raw_host:
            raise HttpError(f"unsupported URL scheme {url.scheme!r}")
        key = (url.scheme, url.raw_host, url.port or (443 if url.scheme == "https" else 80))
        slots = self._slots.get(key)
        if slots is None:
            slots = self._slots[key] = asyncio.Semaphore(MAX_CONNECTIONS)
        host = url.raw_host or ""
        if ":" in host:
            host = f"[{host}]"
        if not url.is_default_port():
            host = f"{host}:{key[2]}"
        head = (f"{method} {url.raw_path_qs or '/'} HTTP/1.1\r\nHost: {host}\r\n"
                f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n"
                f"Accept: application/json\r\nUser-Agent: gridbot\r\n"
                + "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
                + "\r\n").encode("latin-1")
        async with slots:
            conn = None
            sent = False
            try:
                async with asyncio.timeout(timeout):
                    conn = self._take(key) or await self._connect(key)
                    waiter = conn.send(head + body)
                    sent = True
                    response = await waiter
            except BaseException as e:
                if conn is not None:
                    self._drop(conn)
                if isinstance(e, TimeoutError):
                    if not sent:
                        raise NotSent(f"could not connect within {timeout:g} s") from None
                    raise asyncio.TimeoutError(f"no answer within {timeout:g} s") from None
                if isinstance(e, OSError):  # refused, reset, TLS
                    raise (NotSent if not sent else HttpError)(f"{type(e).__name__}: {e}") from None
                raise
            if conn.reusable:
                conn.waiter = None
                conn.idle_since = time.monotonic()
                self._idle.setdefault(key, []).append(conn)
            else:
                self._drop(conn)
            return response

    def _drop(self, conn: _Connection) -> None:
        conn.close()
        self._open.discard(conn)

    def _take(self, key) -> _Connection | None:
        idle = self._idle.get(key)
        now = time.monotonic()
        while idle:
            conn = idle.pop()
            if not conn.lost and now - conn.idle_since < IDLE_SECONDS:
                return conn
            self._drop(conn)
        return None

    async def _connect(self, key) -> _Connection:
        scheme, host, port = key
        ctx = None
        if scheme == "https":
            if self._ssl is None:
                self._ssl = ssl.create_default_context()
            ctx = self._ssl
        loop = asyncio.get_running_loop()
        _, conn = await loop.create_connection(_Connection, host, port, ssl=ctx,
                                               server_hostname=host if ctx else None)
        self._open.add(conn)
        return conn

    async def close(self) -> None:
        for conn in list(self._open):
            conn.close()
        self._open.clear()
        self._idle.clear()
