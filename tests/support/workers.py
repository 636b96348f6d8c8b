"""Several real `gridbot run` workers on one PostgreSQL database, for the multi-worker tests.

`python -m tests.support.workers run --config …` is such a worker with the inbox sweep's limits in
seconds instead of ten (bot.pg_inbox), so a worker killed with -9 is taken over quickly. Each has a
data folder of its own (logs, the local outbox), as on separate machines; they share the database
and one WeCom: `WecomRecorder`, a stand-in in the test's own loop that answers the API as WeCom
does and keeps every message sent, whichever worker sent it.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import time
import sys
from pathlib import Path

from aiohttp import web

from tests.support.factories import AGENT_ID, BASE_CONFIG, SECRET, STORE_SECTION, many_grids
from tests.support.fake_wecom import duplicate_check
from tests.support.rr_proxy import serve

REPO = Path(__file__).resolve().parents[2]
SWEEP_EVERY = 0.5
STALE_AFTER = 2.0


class WecomRecorder:
    """gettoken, message/send, webhook/send, agent/get and media/upload, answered as WeCom does;
    `sent` holds (touser, text) of every app message in the order received."""

    def __init__(self):
        self.sent: list[tuple[str, str]] = []
        self.pushes: list[str] = []
        self._tokens: set[str] = set()
        self._checked: dict[str, float] = {}  # message/send's duplicate check
        self.runner: web.AppRunner | None = None
        self.api_base = ""

    async def start(self) -> str:
        app = web.Application(client_max_size=64 * 2**20)
        app.router.add_route("*", "/cgi-bin/{path:.*}", self._api)
        self.runner, origin = await serve(app)
        self.api_base = f"{origin}/cgi-bin/"
        return self.api_base

    async def _api(self, request: web.Request) -> web.Response:
        path = request.match_info["path"]
        ok = {"errcode": 0, "errmsg": "ok"}
        if path == "gettoken":
            if request.query.get("corpsecret") != SECRET:
                return web.json_response({"errcode": 40001, "errmsg": "invalid credential"})
            token = secrets.token_urlsafe(16)
            self._tokens.add(token)
            return web.json_response({**ok, "access_token": token, "expires_in": 7200})
        if path == "webhook/send":
            body = await request.json()
            self.pushes.append(str(body.get(body.get("msgtype", "text"), {}).get("content", "")))
            return web.json_response(ok)
        if request.query.get("access_token") not in self._tokens:
            return web.json_response({"errcode": 40014, "errmsg": "invalid access_token"})
        if path == "message/send":
            body = await request.json()
            check, repeat = duplicate_check(self._checked, body)
            if repeat:  # WeCom drops it: a worker that took over a lane sent it again
                return web.json_response({**ok, "invaliduser": "", "msgid": "dup"})
            if check is not None:
                self._checked[check] = time.time()
            content = body.get(body.get("msgtype", "text"), {})
            self.sent.append((body.get("touser", ""), str(content.get("content", content))))
            return web.json_response({**ok, "invaliduser": "", "msgid": str(len(self.sent))})
        if path == "media/upload":
            await request.read()
            return web.json_response({**ok, "type": "file", "media_id": f"M{len(self.sent)}", "created_at": "0"})
        return web.json_response({**ok, "agentid": AGENT_ID, "name": "网格助手"})

    def replies(self, userid: str) -> list[str]:
        return [text for to, text in self.sent if userid in to.split("|")]

    async def close(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()


PER_GRID = 12
SENDERS = [f"c1g{g}p{i}" for g in range(2) for i in range(PER_GRID)]  # grid workers of two grids


def worker_config(folder: Path, api_base: str) -> Path:
    """The test config in live mode against `api_base`, on PostgreSQL (the DSN comes from the
    environment), with SENDERS, more grid workers to send from."""
    folder.mkdir(parents=True, exist_ok=True)
    text = (BASE_CONFIG
            .replace(STORE_SECTION, '[store]\nbackend = "postgres"\n')
            .replace('mode = "emulator"', f'mode = "live"\napi_base = "{api_base}"')
            .replace("https://qyapi.weixin.qq.com/cgi-bin/", api_base)
            .replace('[aibot]\nenabled = true', '[aibot]\nenabled = false'))
    text += ("\n[reports]\nrepeat_minutes = 0\n\n[transport]\napi_per_minute = 0\n\n" + many_grids(1, 2, people=PER_GRID))
    path = folder / "config.toml"
    path.write_text(text, encoding="utf-8")
    return path


def start_worker(config: Path, port: int) -> subprocess.Popen:
    log = open(config.parent / "worker.log", "w", encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen([sys.executable, "-m", "tests.support.workers", "run", "--config", str(config),
                             "--port", str(port)], stdout=log, stderr=subprocess.STDOUT, cwd=config.parent,
                            env=env, text=True)


if __name__ == "__main__":
    from bot import pg_inbox
    from bot.cli import main

    pg_inbox.SWEEP_EVERY, pg_inbox.STALE_AFTER = SWEEP_EVERY, STALE_AFTER
    sys.exit(main(sys.argv[1:]))
