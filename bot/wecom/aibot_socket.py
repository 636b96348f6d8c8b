"""The AI bot's long connection (长连接): one WebSocket from this server out to WeCom's gateway.

The bot subscribes with its Bot ID and Secret, pings every `heartbeat_seconds` (WeCom counts
only its JSON ping, not WebSocket-level pings) and, when the connection drops, connects again
after a doubling, jittered delay. The gateway answers every frame the bot sends with a frame that
echoes its req_id and carries no cmd; `request` waits for that answer and raises SocketError on
a non-zero errcode. Frames on one req_id (the stream frames of one reply) go out in order, at
most `frames_in_flight` awaiting their answers, and answers of one req_id are matched in order
(WeCom gives them nothing else to match by).
A second subscribe of the same bot kicks the first connection: the gateway says so with a
`disconnected_event`. A kicked connection stops for good and says so loudly: reconnecting would
kick the other process in turn, and the two would take turns forever.
Message and event callbacks go to `on_callback(cmd, req_id, body)`.
"""

from __future__ import annotations

import asyncio
import json
import random
import secrets
from collections import deque
from typing import Any, Callable

import aiohttp
from loguru import logger

from bot.config_platform import AibotSection
from bot.wecom.api import WecomError

SUBSCRIBE = "aibot_subscribe"
PING = "ping"
CALLBACKS = ("aibot_msg_callback", "aibot_event_callback")
BAD_CREDENTIALS = 853000
NOT_SUBSCRIBED = 846609
INVALID_REQ_ID = 846605
STREAM_EXPIRED = 846608
LOST = -1  # our own code: the connection went away before the gateway answered
MISSED_PINGS = 2  # unanswered pings in a row before the connection counts as dead
STABLE_SECONDS = 60.0  # a connection subscribed this long resets the backoff
CONNECT_SECONDS = 20.0
MAX_FRAME = 4 * 1024 * 1024

KICKED_ZH = ("智能机器人长连接已被另一处登录挤下线:同一个机器人(Bot ID)在别的进程或服务器上建立了长连接。"
             "本进程已停止接收智能机器人消息,不会自动重连(否则两处会互相挤占)。"
             "请停掉多余的那一个,再重启本进程。")
REFUSED_ZH = ("智能机器人长连接订阅被拒绝:Bot ID 或 Secret 不正确。请在管理后台 → 智能机器人 → API 凭证"
              "中核对 [aibot] bot_id 和 secret(或环境变量 GRIDBOT_AIBOT_BOT_ID、GRIDBOT_AIBOT_SECRET);"
              "改好后无需重启,下次重连时生效")


class SocketError(WecomError):
    """The gateway refused a frame (its errcode), or the connection went away first (LOST)."""

    def __init__(self, errcode: int, errmsg: str, cmd: str):
        super().__init__(errcode, errmsg, f"aibot:{cmd}")

    @property
    def transient(self) -> bool:
        return self.errcode == LOST or super().transient


OnCallback = Callable[[str, str, dict], None]


class _Lane:
    """The frames of one req_id: how many may await their answers at once, and who is using it."""

    def __init__(self, slots: asyncio.Semaphore):
        self.slots = slots
        self.users = 0


def new_req_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(8)}"


class AibotSocket:
    def __init__(self, settings: Callable[[], AibotSection], url: Callable[[], str], on_callback: OnCallback,
                 *, ready: asyncio.Event | None = None, rng: random.Random | None = None,
                 on_kicked: Callable[[], None] | None = None):
        self._settings = settings  # read at every connect: a reloaded secret takes effect then
        self._url = url
        self._on_callback = on_callback
        self._ready = ready  # set once the gateway's address is known (emulator mode)
        self._on_kicked = on_kicked
        self._rng = rng or random.Random()
        self._session: aiohttp.ClientSession | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._pending: dict[str, deque[asyncio.Future]] = {}
        self._lanes: dict[str, asyncio.Semaphore] = {}
        self._task: asyncio.Task | None = None
        # idle → connecting → subscribed; or refused (bad credentials, retried slowly), kicked
        # (another connection took over: final) or stopped (shutdown: final).
        self.state = "idle"
        self.subscribed = asyncio.Event()
        self.first_outcome = asyncio.Event()  # the first subscribe's result is known (self-check)
        self.problem = ""  # why the last attempt failed, in Chinese, for the self-check and logs
        self.connections = 0  # successful subscribes (reconnects show as > 1)
        self.received = 0  # callbacks handed on (tests wait on it)

    # --- lifecycle -------------------------------------------------------------------------
    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="aibot-socket")

    async def stop(self) -> None:
        if self.state != "kicked":
            self.state = "stopped"
        self.subscribed.clear()
        if self._task is not None:
            # The task closes its connection on the way out (one close handshake, not two
            # racing for the gateway's answer).
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self._drop_connection()
        if self._session is not None:
            await self._session.close()

    @property
    def final(self) -> bool:
        return self.state in ("kicked", "stopped")

    async def _run(self) -> None:
        if self._ready is not None:
            await self._ready.wait()
        attempt = 0
        loop = asyncio.get_running_loop()
        while not self.final:
            began = loop.time()
            try:
                await self._connect_and_serve()
            except asyncio.CancelledError:
                raise
            except (aiohttp.ClientError, OSError, asyncio.TimeoutError, SocketError, ValueError) as e:
                self._failed(e)
            finally:
                await self._drop_connection()
            if self.final:
                break
            stable = self.state == "subscribed" and loop.time() - began >= STABLE_SECONDS
            if stable:
                attempt = 0
            if self.state == "subscribed":
                logger.warning("智能机器人长连接断开,正在重连 / AI-bot connection lost; reconnecting")
                self.state = "connecting"
            delay = self.backoff(attempt)
            attempt += 1
            await asyncio.sleep(delay)

    def backoff(self, attempt: int) -> float:
        """1 s doubling up to reconnect_max_seconds, each delay drawn from its upper half, so
        many bots cut off together do not all come back in the same second. Refused credentials
        wait the longest: subscribing is rate-protected."""
        ceiling = self._settings().reconnect_max_seconds
        if self.state == "refused":
            return ceiling
        top = min(ceiling, 2.0 ** attempt)
        return self._rng.uniform(top / 2, top)

    def _failed(self, e: Exception) -> None:
        if isinstance(e, SocketError) and e.errcode == BAD_CREDENTIALS:
            first = self.state != "refused"
            self.state = "refused"
            self.problem = f"{REFUSED_ZH} (errcode {e.errcode})"
            (logger.error if first else logger.warning)("{}", self.problem)
        else:
            what = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
            self.problem = f"无法连接智能机器人长连接 {self._url()}:{what}"
            logger.warning("AI-bot connection failed: {}", what)
        self.first_outcome.set()

    async def _connect_and_serve(self) -> None:
        cfg = self._settings()
        if self.state != "refused":
            self.state = "connecting"
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None,
                                                                               sock_connect=CONNECT_SECONDS))
        ws = await asyncio.wait_for(
            self._session.ws_connect(self._url(), autoping=True, heartbeat=None, max_msg_size=MAX_FRAME,
                                     timeout=aiohttp.ClientWSTimeout(ws_receive=None, ws_close=2.0)),
            CONNECT_SECONDS)
        self._ws = ws
        reader = asyncio.create_task(self._read(ws), name="aibot-socket-read")
        try:
            await self.request(SUBSCRIBE, {"bot_id": cfg.bot_id, "secret": cfg.secret.get_secret_value()},
                               timeout=max(cfg.ack_timeout_seconds, 10.0))
            if self.final:  # stopped while subscribing
                return
            self.state = "subscribed"
            self.problem = ""
            self.connections += 1
            self.subscribed.set()
            self.first_outcome.set()
            logger.info("智能机器人长连接已连上 / AI-bot long connection subscribed ({})",
                        "重新连接 / reconnected" if self.connections > 1 else "首次 / first connection")
            heartbeat = asyncio.create_task(self._heartbeat(ws), name="aibot-socket-heartbeat")
            try:
                await reader
            finally:
                heartbeat.cancel()
                await asyncio.gather(heartbeat, return_exceptions=True)
        finally:
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)
        if self.state == "kicked":
            logger.error("{}", KICKED_ZH)
            if self._on_kicked is not None:
                self._on_kicked()

    async def _drop_connection(self) -> None:
        self.subscribed.clear()
        ws, self._ws = self._ws, None
        if ws is not None and not ws.closed:
            # A dead or kicked connection may never answer the close: ws_close bounds the wait.
            await ws.close()
        self._fail_pending()
        self._lanes.clear()

    def _fail_pending(self) -> None:
        pending, self._pending = self._pending, {}
        for futures in pending.values():
            for f in futures:
                if not f.done():
                    f.set_exception(SocketError(LOST, "connection closed", "pending"))

    # --- frames in ---------------------------------------------------------------------------
    async def _read(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        try:
            async for msg in ws:
                if msg.type != aiohttp.WSMsgType.TEXT:
                    continue
                try:
                    # strict=False: the gateway's strings sometimes hold raw control characters.
                    frame = json.loads(msg.data, strict=False)
                except ValueError:
                    logger.warning("AI-bot gateway sent a frame that is not JSON ({} chars)", len(msg.data))
                    continue
                if isinstance(frame, dict):
                    self._on_frame(frame)
                if self.state == "kicked":
                    return  # the connection is closed on the way out, and not made again
        finally:
            # Whatever was waiting for an answer on this connection will not get one.
            self._fail_pending()

    def _on_frame(self, frame: dict[str, Any]) -> None:
        headers = frame.get("headers") if isinstance(frame.get("headers"), dict) else {}
        req_id = str(headers.get("req_id", ""))
        cmd = frame.get("cmd")
        # Answers carry no cmd; a "pong" is taken as the answer to a ping too, as some clients
        # read the protocol so.
        if cmd is None or cmd == "pong":
            futures = self._pending.get(req_id)
            if not futures:
                logger.debug("AI-bot gateway answered an unknown req_id")
                return
            f = futures.popleft()
            if not futures:
                del self._pending[req_id]
            if not f.done():
                f.set_result(frame)
            return
        body = frame.get("body") if isinstance(frame.get("body"), dict) else {}
        if cmd == "aibot_event_callback" and (body.get("event") or {}).get("eventtype") == "disconnected_event":
            self.state = "kicked"
            self.problem = KICKED_ZH
            self.subscribed.clear()
            return
        if cmd in CALLBACKS:
            self.received += 1
            self._on_callback(cmd, req_id, body)
        else:
            logger.debug("AI-bot gateway sent cmd {}: ignored", cmd)

    # --- frames out --------------------------------------------------------------------------
    async def request(self, cmd: str, body: dict | None = None, *, req_id: str | None = None,
                      timeout: float | None = None) -> dict:
        """Send one frame and wait for the gateway's answer; SocketError if it refused or the
        connection went away. A req_id of our own is made unless one is given (a reply uses
        its callback's)."""
        ws = self._ws
        if ws is None or ws.closed:
            raise SocketError(LOST, "not connected", cmd)
        if cmd not in (SUBSCRIBE, PING) and not self.subscribed.is_set():
            raise SocketError(NOT_SUBSCRIBED, "not subscribed", cmd)
        cfg = self._settings()
        req_id = req_id or new_req_id(cmd)
        lane = self._lanes.get(req_id)
        if lane is None:
            lane = self._lanes[req_id] = _Lane(asyncio.Semaphore(cfg.frames_in_flight))
        lane.users += 1
        try:
            async with lane.slots:
                answer = await self._send_and_wait(ws, cmd, req_id, body, timeout or cfg.ack_timeout_seconds)
        finally:
            lane.users -= 1
            if not lane.users and self._lanes.get(req_id) is lane:
                del self._lanes[req_id]
        code = answer.get("errcode", 0)
        if code:
            raise SocketError(int(code) if isinstance(code, int) else -2, str(answer.get("errmsg", "")), cmd)
        return answer

    async def _send_and_wait(self, ws: aiohttp.ClientWebSocketResponse, cmd: str, req_id: str,
                             body: dict | None, timeout: float) -> dict:
        if self._ws is not ws or ws.closed:
            raise SocketError(LOST, "connection closed", cmd)
        future: asyncio.Future = asyncio.get_running_loop().create_future()
        self._pending.setdefault(req_id, deque()).append(future)
        frame: dict[str, Any] = {"cmd": cmd, "headers": {"req_id": req_id}}
        if body is not None:
            frame["body"] = body
        await ws.send_str(json.dumps(frame, ensure_ascii=False))
        try:
            # shield: a late answer must still find its future, so that the next frame's answer
            # on this req_id is not taken for this one's.
            return await asyncio.wait_for(asyncio.shield(future), timeout)
        except asyncio.TimeoutError:
            raise SocketError(LOST, "no answer in time", cmd) from None

    async def _heartbeat(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        missed = 0
        while True:
            await asyncio.sleep(self._settings().heartbeat_seconds)
            try:
                await self.request(PING)
                missed = 0
            except SocketError as e:
                if e.errcode != LOST:
                    missed = 0  # answered, if not with "ok": the connection is alive
                    continue
                missed += 1
                logger.warning("AI-bot ping unanswered ({}/{})", missed, MISSED_PINGS)
                if missed >= MISSED_PINGS:
                    await ws.close()  # the reader ends, and the connection is made again
                    return


async def probe(settings: AibotSection, url: str, timeout: float = CONNECT_SECONDS) -> tuple[bool, str]:
    """One subscribe, then goodbye: whether the Bot ID and Secret work. A running bot with the
    same credentials is kicked by it, so `gridbot check-config` runs it only when asked."""
    sock = AibotSocket(lambda: settings, lambda: url, lambda *_: None)
    sock.start()
    try:
        await asyncio.wait_for(sock.first_outcome.wait(), timeout)
        ok, text = sock.subscribed.is_set(), sock.problem
    except asyncio.TimeoutError:
        ok, text = False, f"{timeout:.0f} 秒内没有连上 {url}"
    finally:
        await sock.stop()
    return ok, text
