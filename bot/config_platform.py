"""The config sections that say how the bot reaches WeCom: the self-built app ([wecom]), the AI
bot ([aibot], by callback or long connection) and the development emulator ([emulator])."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr, ValidationInfo, field_validator

from bot.config_values import Section as _Model
from bot.config_values import show_value
from bot.send_pace import DEFAULT_PER_HOUR, DEFAULT_PER_MINUTE

DEFAULT_WS_URL = "wss://openws.work.weixin.qq.com"
PUBLIC_API_BASE = "https://qyapi.weixin.qq.com/cgi-bin/"


class WecomSection(_Model):
    mode: Literal["emulator", "live"] = "emulator"
    corp_id: str
    agent_id: int
    secret: SecretStr
    token: SecretStr
    encoding_aes_key: SecretStr
    api_base: str = PUBLIC_API_BASE  # 政务微信 and private deployments have their own host

    @field_validator("encoding_aes_key")
    @classmethod
    def _aes_len(cls, v: SecretStr) -> SecretStr:
        if len(v.get_secret_value()) != 43:
            raise ValueError(aes_key_message(len(v.get_secret_value())))
        return v

    @field_validator("api_base")
    @classmethod
    def _slash(cls, v: str) -> str:
        return v if v.endswith("/") else v + "/"


def aes_key_message(length: int) -> str:
    # Only the length is shown: the key is a secret.
    return f"EncodingAESKey 应为 43 个字符,现在是 {length} 个,请从企业微信管理后台完整复制"


class AibotSection(_Model):
    # WeCom's 智能机器人: added to grid groups, it hears every message that @-mentions it.
    enabled: bool = False
    # How messages reach the bot: "callback" (WeCom POSTs to `path`: needs a public HTTPS
    # address) or "websocket" (the bot connects out to WeCom's gateway with bot_id and secret:
    # no public address, no open port).
    mode: Literal["callback", "websocket"] = "callback"
    # Callback mode: aibotid, callbacks for another bot are refused. Websocket mode: the Bot ID
    # ("aib…") from the console's API credentials, used to subscribe.
    bot_id: str = ""
    token: SecretStr = SecretStr("")
    encoding_aes_key: SecretStr = SecretStr("")
    path: str = "/wecom/aibot"  # the callback URL's path on this server
    secret: SecretStr = SecretStr("")  # websocket mode: the long connection's Secret
    ws_url: str = DEFAULT_WS_URL  # websocket mode: private deployments have their own gateway
    # How long the callback waits for the answer before replying with an unfinished stream,
    # which WeCom then refreshes (it allows a few seconds per callback). Over the socket: how
    # long before a "正在处理" frame goes out ahead of the answer.
    reply_wait_seconds: float = Field(1.5, ge=0, le=4)
    # WeCom keeps an unfinished stream for 6 minutes (the docs; 10 minutes seen over the socket);
    # an answer not given by then goes to the one-shot response_url (valid 1 hour), else as an
    # app message.
    stream_seconds: float = Field(330, gt=0, le=600)
    # --- websocket mode: the connection ---
    heartbeat_seconds: float = Field(30, ge=1, le=300)  # WeCom asks for a ping every 30 s
    reconnect_max_seconds: float = Field(60, ge=1, le=3600)  # backoff ceiling after a drop
    ack_timeout_seconds: float = Field(5, gt=0, le=60)  # WeCom acks each frame in well under 1 s
    # --- websocket mode: facts the sources disagree on, as settings ---
    # Frames of one reply awaiting their ack at once: 1 as WeCom's SDK does (acks then match
    # for sure), more to pipeline as some clients do (acks of one req_id then match by order).
    frames_in_flight: int = Field(1, ge=1, le=16)
    # aibot_send_msg with chat_type (1 single, 2 group): one report says a push failed without
    # it, WeCom's SDK leaves it out.
    send_chat_type: bool = True
    # Pushes (reminders, tallies, notices to a person) go by the AI bot first and fall back to
    # the group robot or the app message; WeCom takes them only in chats that talked to the
    # bot, and one report says it takes none in groups.
    proactive_push: bool = True

    @field_validator("path")
    @classmethod
    def _path(cls, v: str) -> str:
        if not v.startswith("/"):
            raise ValueError(f'应以 / 开头,如 "/wecom/aibot",写成了 {show_value(v)}')
        return v


class EmulatorSection(_Model):
    # The chat page and emulator API bind with the server; in live mode they stay off
    # unless enabled explicitly with a token.
    enabled_in_live: bool = False
    admin_token: SecretStr | None = None


class TransportSection(_Model):
    # How long a message WeCom has not taken yet (it refuses connections, answers with an error
    # or not at all) is kept and retried, in hours. A reply still makes sense hours later, not
    # the next day; past this it is given up and logged. WeCom's duplicate check, which makes a
    # retry after a lost answer safe, reaches back at most 4 hours.
    reply_hours: float = Field(4, gt=0, le=72)
    # The longest wait between two attempts while WeCom is unreachable, in seconds; the first
    # success wakes every waiting message at once.
    retry_max_seconds: float = Field(30, ge=1, le=3600)
    # How long one call waits for WeCom's answer, in seconds.
    timeout_seconds: float = Field(10, gt=0, le=120)
    # Calls to WeCom, all recipients together, per minute and per hour (bot.send_pace): large
    # pushes are spread within them, replies to people first. WeCom's published limits
    # (developer.work.weixin.qq.com/document/path/90454, 访问频率限制, updated 2023-08-28): each
    # enterprise at most 10,000 calls a minute and 150,000 an hour to any one API, each server IP
    # 20,000 a minute and 600,000 an hour; app messages also at most 30 a minute and 1,000 an hour
    # to one member (bot.outgoing) and 账号上限 × 200 recipients a day per app; app group chats
    # 20,000 recipients a minute for the enterprise; each group robot 20 messages a minute
    # (130101 "send too fast" beyond, that robot then refused for a while). Over a per-minute
    # limit WeCom blocks the enterprise for 60 s, over a per-hour one for an hour (45009). The
    # defaults leave the enterprise's other systems room under those limits; 0 per minute turns
    # the pacing off (benchmarks against a stand-in).
    api_per_minute: int = Field(DEFAULT_PER_MINUTE, ge=0, le=1_000_000)
    api_per_hour: int = Field(DEFAULT_PER_HOUR, ge=0, le=60_000_000)

    @field_validator("api_per_hour")
    @classmethod
    def _hour_holds_a_minute(cls, v: int, info: ValidationInfo) -> int:
        minute = info.data.get("api_per_minute")
        if v and minute and v < minute:
            raise ValueError(f"每小时的上限({v})不能小于每分钟的上限 api_per_minute({minute});"
                             f"填 0 表示不设每小时上限")
        return v
