"""A generated street for benchmarks: 40 grids, 400 people, and optionally a year of history."""

from __future__ import annotations

import asyncio
import random
import re
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from bot.clock import iso_week
from bot.store import Store

TZ = ZoneInfo("Asia/Shanghai")
TOKEN = "benchtoken123"
AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
CORP_ID = "wwbench000000001"
AGENT_ID = 1000002
SECRET = "bench-secret"
CATS = ["ads", "visit", "publicity", "sanitation", "patrol", "order"]
UNITS = {"ads": "处", "visit": "户", "publicity": "份", "sanitation": "处", "patrol": "次", "order": "辆"}
TEXTS = {"ads": "清理小广告{}处", "visit": "入户走访{}户", "publicity": "发放宣传资料{}份",
         "sanitation": "清理卫生死角{}处", "patrol": "巡查{}次", "order": "规范非机动车停放{}辆"}


def people(grids: int = 40, per_grid: int = 10) -> list[tuple[str, str, str]]:
    out = []
    for g in range(1, grids + 1):
        for p in range(per_grid):
            out.append((f"u{g:02d}{p:02d}", f"网格员{g}-{p}", f"g{g}"))
    return out


def write_config(folder: Path, port: int = 0, grids: int = 40, per_grid: int = 10, *,
                 wecom_at: str | None = None) -> Path:
    """A street config; with `wecom_at` (the API base of a WeCom stand-in, ending in cgi-bin/) the
    bot runs in live mode against it, as it would against WeCom, instead of serving an emulator."""
    mode = "live" if wecom_at else "emulator"
    api_base = wecom_at or "https://qyapi.weixin.qq.com/cgi-bin/"
    robot_base = api_base if wecom_at else "https://qyapi.weixin.qq.com/cgi-bin/"
    lines = [head(port, mode, api_base)]
    if unpaced_field():
        # The benches measure the bot's own cost against a stand-in, not WeCom's enterprise-wide
        # cap (bot.send_pace); code from before that cap has no such setting.
        lines.append("[transport]\napi_per_minute = 0\n")
    for c in range(1, 5):
        lines.append(f'[[communities]]\nid = "c{c}"\nname = "第{c}社区"\n')
    for g in range(1, grids + 1):
        lines.append(f'[[grids]]\nid = "g{g}"\nname = "{g}号网格"\ncommunity = "c{(g - 1) % 4 + 1}"\n'
                     f'robot_webhook = "{robot_base}webhook/send?key=k{g}"\n'
                     f'households = {300 + g * 7}\n')
    for i, (uid, name, grid) in enumerate(people(grids, per_grid)):
        role = "grid_leader" if uid.endswith("00") else "member"
        lines.append(f'[[people]]\nuserid = "{uid}"\nname = "{name}"\nrole = "{role}"\ngrid = "{grid}"\n')
    lines.append('[[people]]\nuserid = "leader"\nname = "街道领导"\nrole = "leader"\n')
    lines.append(example_categories())
    path = folder / "config.toml"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def head(port: int, mode: str, api_base: str, street: str = "基准街道") -> str:
    """[bot], [server] and [wecom] of a bench's bot (the test corp's keys), and no repeat check."""
    return f"""[bot]
name = "网格助手"
street = "{street}"
data_dir = "data"
log_level = "WARNING"

[server]
host = "127.0.0.1"
port = {port}

[wecom]
mode = "{mode}"
api_base = "{api_base}"
corp_id = "{CORP_ID}"
agent_id = {AGENT_ID}
secret = "{SECRET}"
token = "{TOKEN}"
encoding_aes_key = "{AES_KEY}"

[reports]
repeat_minutes = 0
"""


def unpaced_field() -> bool:
    from bot.config_platform import TransportSection
    return "api_per_minute" in TransportSection.model_fields


def example_categories() -> str:
    """The [[categories]] tables of config.example.toml: a deployment configures its taxonomy."""
    text = (Path(__file__).resolve().parents[1] / "config.example.toml").read_text(encoding="utf-8")
    tables = re.split(r"(?m)^(?=\[)", text)
    return "\n".join(t for t in tables if t.startswith("[[categories]]"))


def history_docs(weeks: int = 52, total: int = 60_000, end: date | None = None, seed: int = 1):
    """Reports and check-ins spread over `weeks` weeks ending at `end`."""
    rnd = random.Random(seed)
    end = end or date.today()
    ppl = people()
    for i in range(total):
        day = end - timedelta(days=rnd.randrange(weeks * 7))
        uid, name, grid = rnd.choice(ppl)
        ts = int(datetime(day.year, day.month, day.day, 9, tzinfo=TZ).timestamp()) + rnd.randrange(36000)
        if i % 3 == 2:
            yield "checkins", {"id": f"C{i + 1}", "msgid": f"h{i}", "userid": uid, "name": name, "grid": grid,
                               "date": day.isoformat(), "time": ts, "counted": True, "flags": [],
                               "sha256": f"{rnd.getrandbits(256):064x}", "phash": f"{rnd.getrandbits(64):016x}",
                               "file": "", "thumb": ""}, iso_week(day)
        else:
            cat = rnd.choice(CATS)
            q = rnd.randint(1, 30)
            yield "reports", {"id": f"R{i + 1}", "msgid": f"h{i}", "userid": uid, "name": name, "grid": grid,
                              "work_date": day.isoformat(), "sent_at": ts, "text": TEXTS[cat].format(q),
                              "items": [{"category": cat, "quantity": q, "unit": UNITS[cat]}], "flags": [],
                              "late": False, "unconfirmed": False, "status": "active", "history": []}, iso_week(day)


async def fill_history(data_dir: Path, **kw) -> int:
    store = Store(data_dir)
    store.load()
    await store.start()
    batch, n = [], 0
    for entry in history_docs(**kw):
        batch.append(entry)
        if len(batch) == 5000:
            await store.put_many(batch)
            n += len(batch)
            batch = []
    if batch:
        await store.put_many(batch)
        n += len(batch)
    await store.close()
    return n


if __name__ == "__main__":
    import sys
    print(asyncio.run(fill_history(Path(sys.argv[1]))))
