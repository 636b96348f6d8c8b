"""Start-up's replay of acknowledged messages never handled: it looks at fourteen weeks of
message ids, which for a district is millions of them at every restart. Weeks found settled
(every message handled) are remembered and not read again, until a message dated in one of
them comes in."""

from __future__ import annotations

from datetime import datetime

from bot.app import create_app
from bot.config_loading import load_config
from bot.store import Store
from tests.conftest import TZ
from tests.support.factories import BotHarness

OLD_WEEKS = ["2026-W44", "2026-W45", "2026-W46"]


async def settled_history(cfg) -> None:
    store = Store(cfg.data_path)
    store.load()
    await store.start()
    entries = []
    for w, week in enumerate(OLD_WEEKS):
        for n in range(20):
            key = f"{week}-{n}"
            entries.append(("inbox", {"id": key, "event": {"kind": "text", "key": key, "sender": "lisi",
                                                          "create_time": 1761000000 + w * 604800 + n,
                                                          "content": "入户走访3户"}, "received": 0}, week))
            entries.append(("inbox_done", {"id": key}, week))
    await store.put_many(entries)
    await store.close()


async def start(aiohttp_client, cfg, clock) -> BotHarness:
    app = create_app(cfg, clock=clock)
    client = await aiohttp_client(app)
    h = BotHarness(app, client, clock)
    h.emulator.set_origin(str(client.make_url("")).rstrip("/"))
    return h


async def test_settled_weeks_are_read_once_and_again_after_a_message_lands_in_one(
        aiohttp_client, config_path, clock, monkeypatch):
    cfg = load_config(config_path)
    await settled_history(cfg)
    asked: list[str] = []
    unhandled = Store.unhandled

    def counting(self, shard):
        asked.append(shard)
        return unhandled(self, shard)
    monkeypatch.setattr(Store, "unhandled", counting)

    h = await start(aiohttp_client, cfg, clock)  # the first start reads every week
    assert set(OLD_WEEKS) <= set(asked)
    settled = set(h.store.get("meta", "inbox_clean")["weeks"])
    assert set(OLD_WEEKS) <= settled and "2026-W47" not in settled  # last week may still settle
    await h.client.close()

    asked.clear()
    h = await start(aiohttp_client, cfg, clock)
    assert not set(OLD_WEEKS) & set(asked)  # settled: not read again
    # A message dated in a settled week (a phone whose clock was a month behind).
    late = int(datetime(2026, 11, 4, 10, 0, tzinfo=TZ).timestamp())
    assert await h.text("lisi", "入户走访5户", at=late, msgid="7700001") == 200
    assert set(h.store.get("meta", "inbox_clean")["weeks"]) == settled - {"2026-W45"}
    await h.client.close()

    asked.clear()
    h = await start(aiohttp_client, cfg, clock)
    assert "2026-W45" in asked and "2026-W44" not in asked
    # Handled, so settled once more.
    assert set(h.store.get("meta", "inbox_clean")["weeks"]) == settled
    await h.client.close()
