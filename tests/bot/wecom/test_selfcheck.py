"""Live-mode self-check, run against the emulator playing a misconfigured WeCom."""

from bot.wecom.api import WecomClient
from bot.wecom.selfcheck import self_check


def live_like(harness, secret=None, corp=None):
    cfg = harness.bot.config
    base = harness.bot.transport.client.api_base
    grids = [g.model_copy(update={"robot_webhook": f"{base}webhook/send?key={g.id if g.id == 'g1' else 'nope'}"})
             for g in cfg.grids]
    cfg = cfg.model_copy(update={"grids": grids})
    return cfg, WecomClient(base, corp or cfg.wecom.corp_id, secret or cfg.wecom.secret.get_secret_value(),
                            cfg.wecom.agent_id)


async def test_wrong_secret_is_explained(harness):
    cfg, client = live_like(harness, secret="wrong")
    [r] = await self_check(cfg, client)
    assert not r.ok and "Secret 不正确" in r.message and "wrong" not in r.message.split("/")[0]
    await client.close()


async def test_wrong_corp_id_is_explained(harness):
    cfg, client = live_like(harness, corp="wwnotmine")
    [r] = await self_check(cfg, client)
    assert not r.ok and "企业ID" in r.message
    await client.close()


async def test_robot_keys_checked_without_posting(harness):
    cfg, client = live_like(harness)
    results = {r.what: r for r in await self_check(cfg, client)}
    assert results["gettoken"].ok
    assert results["robot:g1"].ok
    assert not results["robot:g2"].ok and "Webhook" in results["robot:g2"].message
    assert harness.pushes() == []
    await client.close()
