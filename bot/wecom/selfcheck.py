"""Start-up self-check for live mode: the common misconfigurations, said plainly."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import aiohttp

from bot.config import Config
from bot.wecom.api import WecomClient, WecomError

# WeCom errcodes behind the mistakes admins actually make when going live.
EXPLAIN = {
    40001: ("Secret 不正确,请在“应用管理 → 自建应用”中重新查看并复制 Secret",
            "wrong secret: copy it again from the app's page"),
    40013: ("企业ID(corp_id)不正确,请在“我的企业 → 企业信息”中复制",
            "wrong corp_id: copy it from My Company → Company Info"),
    40056: ("AgentId 不正确,请核对自建应用的 AgentId", "wrong agent_id"),
    60020: ("服务器 IP 不在应用的“企业可信IP”中,请在应用设置里添加本机出口 IP",
            "server IP is not in the app's trusted IP list"),
    93000: ("群机器人 Webhook 地址无效,请在群设置 → 群机器人中重新复制", "invalid robot webhook key"),
}


@dataclass
class CheckResult:
    ok: bool
    what: str
    message: str
    optional: bool = False  # a failure that costs something but does not stop the bot working


def explain(code: int, errmsg: str) -> str:
    zh, en = EXPLAIN.get(code, ("企业微信返回错误", "WeCom returned an error"))
    return f"{zh} / {en} (errcode {code}: {errmsg})"


async def self_check(cfg: Config, client: WecomClient) -> list[CheckResult]:
    results: list[CheckResult] = []
    try:
        await client.token()
        results.append(CheckResult(True, "gettoken", "access token 获取成功 / token OK"))
    except WecomError as e:
        results.append(CheckResult(False, "gettoken", explain(e.errcode, e.errmsg)))
        return results
    except (aiohttp.ClientError, TimeoutError) as e:
        results.append(CheckResult(False, "gettoken", f"无法连接企业微信接口 {client.api_base} / cannot reach the API: "
                                                      f"{type(e).__name__}"))
        return results
    try:
        body = await client._call("GET", "agent/get", params={"agentid": str(cfg.wecom.agent_id)})
        results.append(CheckResult(True, "agent", f"应用“{body.get('name', '')}”可用 / agent OK"))
    except WecomError as e:
        results.append(CheckResult(False, "agent", explain(e.errcode, e.errmsg)))
    return results + await robot_checks(cfg, client)


async def robot_checks(cfg: Config, client: WecomClient) -> list[CheckResult]:
    results: list[CheckResult] = []
    for g in cfg.grids:
        if not g.robot_webhook:
            results.append(CheckResult(False, f"robot:{g.id}", f"{g.name} 未配置群机器人 / no robot_webhook"))
            continue
        try:
            # An empty text is refused with 44004 by a valid robot and 93000 by an invalid key;
            # nothing reaches the group either way.
            await client.robot_send(g.robot_webhook, {"msgtype": "text", "text": {"content": ""}})
            results.append(CheckResult(True, f"robot:{g.id}", f"{g.name} 群机器人可用 / robot OK"))
        except WecomError as e:
            ok = e.errcode != 93000
            results.append(CheckResult(ok, f"robot:{g.id}", f"{g.name} 群机器人可用 / robot OK" if ok
                                       else f"{g.name}: {explain(e.errcode, e.errmsg)}"))
        except (aiohttp.ClientError, TimeoutError) as e:
            results.append(CheckResult(False, f"robot:{g.id}", f"{g.name}: 无法连接 / unreachable ({type(e).__name__})"))
    return results


APP_OPTIONAL = ("长连接模式下群里的上报、回复和提醒不受影响;但应用接口不可用时,领导周报的图表和 Excel 台账、"
                "发给还没和智能机器人说过话的人的通知无法送达(可用 gridbot export 导出台账后转发)")
FIRST_CONNECT_WAIT = 20.0  # seconds the self-check waits for the long connection's first subscribe


async def live_checks(cfg: Config, client: WecomClient) -> list[CheckResult]:
    """The app's and the robots' checks. Over the AI bot's long connection the app is optional
    (no public address often means no trusted IP either): its failures are marked so, and the
    robots are checked all the same."""
    results = await self_check(cfg, client)
    if not (cfg.aibot.enabled and cfg.aibot.mode == "websocket"):
        return results
    if not any(r.what.startswith("robot:") for r in results):
        results += await robot_checks(cfg, client)
    return [CheckResult(r.ok, r.what, r.message, optional=True) if r.what in ("gettoken", "agent") else r
            for r in results]


def aibot_mode_line(cfg: Config) -> str:
    """Which way the AI bot is configured, for check-config and the self-check."""
    a = cfg.aibot
    if not a.enabled:
        return "智能机器人 / AI bot: 未启用"
    if a.mode == "websocket":
        where = "内置模拟器的长连接网关" if cfg.wecom.mode == "emulator" else a.ws_url
        return (f"智能机器人 / AI bot: 长连接模式(由本机连出到 {where},Bot ID {a.bot_id or '未填写'};"
                f"无需公网地址)/ websocket mode")
    return (f"智能机器人 / AI bot: 回调模式(企业微信把消息推送到 https://你的域名{a.path},需要公网 HTTPS 地址)"
            f" / callback mode")


async def aibot_check(cfg: Config, relay) -> list[CheckResult]:
    """The AI bot's side: in websocket mode, whether the first subscribe got through (the
    running connection's own result: a second connection for a test would kick it)."""
    a = cfg.aibot
    if not a.enabled:
        return []
    if a.mode == "callback":
        return [CheckResult(True, "aibot", aibot_mode_line(cfg) + ";Token 与 EncodingAESKey 在管理后台"
                                           "保存回调地址时由企业微信验证")]
    if relay is None:
        return [CheckResult(False, "aibot", "智能机器人长连接没有启动 / the long connection did not start")]
    try:
        await asyncio.wait_for(relay.socket.first_outcome.wait(), FIRST_CONNECT_WAIT)
    except asyncio.TimeoutError:
        return [CheckResult(False, "aibot", f"智能机器人长连接 {FIRST_CONNECT_WAIT:.0f} 秒内没有连上 {relay.url()}:"
                                            f"请确认本机可以访问该地址(出网 443 端口)/ no connection yet")]
    if relay.socket.subscribed.is_set():
        return [CheckResult(True, "aibot", f"智能机器人长连接已连接并订阅成功,Bot ID 与 Secret 正确 / "
                                           f"long connection subscribed ({relay.url()})")]
    return [CheckResult(False, "aibot", relay.socket.problem or "智能机器人长连接未能订阅 / not subscribed")]
