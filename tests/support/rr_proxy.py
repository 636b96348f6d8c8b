"""A simple round-robin load balancer for the multi-worker tests: each request goes to the next
worker in turn. A worker that refuses the connection is skipped for that request, as a load
balancer's health check would (nginx's proxy_next_upstream error); a request cut off half-way
(its worker killed while handling it) gets a 502, and WeCom sends that message again."""

from __future__ import annotations

import itertools

import aiohttp
from aiohttp import web


async def serve(app: web.Application) -> tuple[web.AppRunner, str]:
    """`app` listening on a free local port, in this loop: its runner and its address."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"


class RoundRobin:
    def __init__(self, backends: list[str]):
        self.backends = backends
        self._next = itertools.count()
        self.sent: dict[str, int] = {b: 0 for b in backends}  # requests each worker answered
        self.session: aiohttp.ClientSession | None = None
        self.runner: web.AppRunner | None = None
        self.url = ""

    async def start(self) -> str:
        self.session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))
        app = web.Application(client_max_size=8 * 2**20)
        app.router.add_route("*", "/{tail:.*}", self.forward)
        self.runner, self.url = await serve(app)
        return self.url

    async def forward(self, request: web.Request) -> web.Response:
        body = await request.read()
        start = next(self._next)
        for i in range(len(self.backends)):
            backend = self.backends[(start + i) % len(self.backends)]
            try:
                async with self.session.request(request.method, backend + request.path_qs, data=body,
                                                headers={"Content-Type": request.content_type}) as r:
                    data = await r.read()
                    self.sent[backend] += 1
                    # Which worker answered: the test knows where each message was acknowledged.
                    return web.Response(status=r.status, body=data, content_type=r.content_type,
                                        headers={"X-Worker": backend})
            except aiohttp.ClientConnectorError:
                continue  # down: the next one
            except (aiohttp.ClientError, TimeoutError):
                return web.Response(status=502, text="bad gateway")
        return web.Response(status=503, text="no worker")

    async def close(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
        if self.session is not None:
            await self.session.close()
