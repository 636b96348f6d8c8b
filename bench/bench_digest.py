"""Benchmark: the leader digest and the ledger export for a street of 40 grids and 400 people.

    .venv/bin/python bench/bench_digest.py [--grids 40] [--per-grid 10] [--keep DIR]

Generates a full week of data (about 8,000 reports and 2,000 photo check-ins with their photo
files, plus the week before for week-over-week and 200 problems) into a temporary data folder
through the Store's API, then times each step. The baseline, measured in the same run, is the
time to just iterate the week's records once; the budget for digest + export is 10 s.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import random
import shutil
import sys
import tempfile
import time
from contextlib import redirect_stdout
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from PIL import Image  # noqa: E402

from bot.config_loading import parse_config  # noqa: E402
from bot.context import Bot  # noqa: E402
from bot.records import days_of_week  # noqa: E402
from bot.store import Store  # noqa: E402
from bot.transport import Transport  # noqa: E402

TZ = ZoneInfo("Asia/Shanghai")
WEEK = "2026-W48"
BUDGET_S = 10.0
SAMPLES = [
    ("清理小广告{a}处,入户走访{b}户", [("ads", "处"), ("visit", "户")]),
    ("巡查{a}次,劝导不文明行为{b}人次", [("patrol", "次"), ("persuasion", "人次")]),
    ("发放宣传资料{a}份", [("publicity", "份")]),
    ("清运垃圾{a}袋,清理楼道杂物{b}处", [("sanitation", "袋"), ("sanitation", "处")]),
    ("排查消防隐患{a}处", [("hazard", "处")]),
    ("调解邻里纠纷{a}起", [("mediation", "起")]),
    ("规范非机动车停放{a}辆", [("order", "辆")]),
    ("=修剪绿化带{a}米", [("greening", "米")]),
]


def make_config(folder: Path, n_grids: int, per_grid: int):
    communities = max(1, n_grids // 10)
    out = ["[bot]", 'street = "幸福街道"', 'data_dir = "data"', "",
           "[wecom]", 'corp_id = "wwbench"', "agent_id = 1", 'secret = "s"', 'token = "t"',
           'encoding_aes_key = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"', ""]
    for c in range(communities):
        out += ["[[communities]]", f'id = "c{c}"', f'name = "第{c + 1}社区"', ""]
    for g in range(n_grids):
        out += ["[[grids]]", f'id = "g{g}"', f'name = "{g + 1}号网格"', f'community = "c{g % communities}"',
                "targets = { visit = 60, ads = 40 }", ""]
        for p in range(per_grid):
            role = "grid_leader" if p == 0 else "member"
            out += ["[[people]]", f'userid = "u{g}_{p}"', f'name = "网格员{g}-{p}"', f'role = "{role}"',
                    f'grid = "g{g}"', ""]
    for c in range(communities):
        out += ["[[people]]", f'userid = "leader{c}"', f'name = "书记{c}"', 'role = "leader"',
                f'scope = ["c{c}"]', ""]
    out += ["[[people]]", 'userid = "street"', 'name = "街道主任"', 'role = "leader"', ""]
    path = folder / "config.toml"
    path.write_text("\n".join(out), encoding="utf-8")
    return parse_config(path.read_text(encoding="utf-8"), source=path)


def jpeg_bytes() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (64, 48), (120, 160, 90)).save(buf, "JPEG", quality=70)
    return buf.getvalue()


def generate(cfg, week: str, rng: random.Random, with_photos: bool) -> tuple[list, int]:
    """(store entries, photo files written) for one week."""
    entries = []
    photo = jpeg_bytes()
    n_photos = 0
    data_dir = cfg.data_path
    people = [p for p in cfg.people if p.role in ("member", "grid_leader")]
    for d in days_of_week(week):
        workday = d.weekday() < 5
        for p in people:
            # Four reports a workday, fewer at weekends; a check-in most workdays.
            for k in range(4 if workday else rng.choice((0, 1))):
                text, cats = rng.choice(SAMPLES)
                a, b = rng.randint(1, 30), rng.randint(1, 20)
                items = [{"category": c, "quantity": float(v), "unit": u} for (c, u), v in zip(cats, (a, b))]
                sent = datetime(d.year, d.month, d.day, 9 + k * 2, rng.randint(0, 59), tzinfo=TZ)
                flags = ["implausible"] if rng.random() < 0.01 else []
                rid = f"R{len(entries) + 1}_{week}"
                entries.append(("reports", {
                    "id": rid, "msgid": rid, "userid": p.userid, "name": p.name, "grid": p.grid,
                    "work_date": d.isoformat(), "sent_at": int(sent.timestamp()), "text": text.format(a=a, b=b),
                    "items": items, "flags": flags, "late": False, "unconfirmed": bool(flags),
                    "status": "withdrawn" if rng.random() < 0.02 else "active", "history": []}, week))
            if workday and rng.random() < 0.88:
                cid = f"C{len(entries) + 1}_{week}"
                t = datetime(d.year, d.month, d.day, 8, rng.randint(0, 59), tzinfo=TZ)
                rel = f"media/{week}/{p.grid}/{d.isoformat()}_checkin_{p.userid}_{cid.lower()}.jpg"
                if with_photos:
                    f = data_dir / rel
                    f.parent.mkdir(parents=True, exist_ok=True)
                    f.write_bytes(photo)
                    n_photos += 1
                dup = rng.random() < 0.02
                entries.append(("checkins", {
                    "id": cid, "msgid": cid, "userid": p.userid, "name": p.name, "grid": p.grid,
                    "date": d.isoformat(), "time": int(t.timestamp()), "counted": not dup,
                    "flags": ["duplicate"] if dup else [], "reason": "疑似重复照片" if dup else "",
                    "file": rel, "thumb": rel.replace(".jpg", ".thumb.jpg"), "sha256": cid, "phash": "0" * 16,
                    "exif_time": None, "gps": None, "width": 64, "height": 48,
                    "location": {"lat": 30.27, "lng": 120.15, "label": "幸福路"}, "duplicate_of": None}, week))
    return entries, n_photos


def problems(cfg, rng: random.Random, n: int) -> list:
    monday = date.fromisocalendar(2026, 48, 1)
    out = []
    for i in range(1, n + 1):
        g = rng.choice(cfg.grids)
        opened = datetime.combine(monday - timedelta(days=rng.randint(0, 9)), datetime.min.time(), TZ) + \
            timedelta(hours=rng.randint(8, 18))
        closed = rng.random() < 0.6
        out.append(("problems", {
            "id": f"P{i}", "grid": g.id, "reporter": f"u{g.id[1:]}_1", "reporter_name": "网格员", "text":
            f"幸福路{i}号楼下堆放建筑垃圾", "category": "sanitation", "opened_at": int(opened.timestamp()),
            "deadline": int((opened + timedelta(hours=48)).timestamp()), "status": "closed" if closed else "open",
            "closed_at": int((opened + timedelta(hours=30)).timestamp()) if closed else None,
            "closed_by": f"u{g.id[1:]}_0" if closed else None, "closed_note": "已清理" if closed else "",
            "closed_without_photo": False, "photos_before": [], "photos_after": [], "location": None,
            "history": []}, "main"))
    return out


class CountingTransport(Transport):
    """Records what the job would send; nothing leaves the process."""

    def __init__(self):
        super().__init__(client=None, robot_url=lambda g: "")  # type: ignore[arg-type]
        self.sent: list[tuple[str, str, int]] = []

    def _enqueue(self, msg) -> None:
        size = len(msg.content.encode() if isinstance(msg.content, str) else msg.content)
        self.sent.append((msg.target, msg.msgtype, size))


def timed(label: str, fn, rows: list):
    t, c = time.perf_counter(), time.process_time()
    result = fn()
    rows.append((label, time.perf_counter() - t, time.process_time() - c))
    return result


async def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--grids", type=int, default=40)
    ap.add_argument("--per-grid", type=int, default=10)
    ap.add_argument("--keep", help="keep the generated data folder here")
    args = ap.parse_args()

    folder = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="gridbot-bench-"))
    folder.mkdir(parents=True, exist_ok=True)
    try:
        cfg = make_config(folder, args.grids, args.per_grid)
        rng = random.Random(48)
        t = time.perf_counter()
        this, n_photos = generate(cfg, WEEK, rng, with_photos=True)
        prev, _ = generate(cfg, "2026-W47", rng, with_photos=False)
        store = Store(cfg.data_path)
        store.load()
        await store.start()
        await store.put_many(this + prev + problems(cfg, rng, 200))
        await store.close()
        print(f"generated {len(this)} records for {WEEK} ({n_photos} photo files) and {len(prev)} for the "
              f"week before, {len(cfg.grids)} grids, {len(cfg.people)} people, in {time.perf_counter() - t:.1f} s")

        from schedules.archive import write_photo_zip
        from schedules.chart import configure_fonts, render_chart
        from schedules.digest import build_digest, weekly_digest
        from schedules.export_cli import export_command
        from schedules.ledger import ledger_from_data
        from schedules.weekdata import collect_week, scope_grid_ids
        configure_fonts()  # once per process, like the running bot; not part of a digest

        rows: list[tuple[str, float]] = []
        ro = timed("open the store read-only (as gridbot export does)",
                   lambda: (s := Store(cfg.data_path, readonly=True), s.load(), s)[2], rows)

        def baseline():
            n = 0
            for table in ("reports", "checkins"):
                for doc in ro.docs(table, [WEEK]):
                    n += len(doc.get("items", ())) + 1
            return n
        timed("baseline: iterate the week's records once", baseline, rows)
        data = timed("collect the week (weekdata)", lambda: collect_week(cfg, ro, WEEK), rows)
        street = timed("build the street digest (markdown)", lambda: build_digest(cfg, ro, WEEK, None, data=data),
                       rows)
        timed("build 4 community digests", lambda: [build_digest(cfg, ro, WEEK, scope_grid_ids(cfg, [c.id]),
                                                                 scope=[c.id], data=data)
                                                    for c in cfg.communities], rows)
        png = timed("render the chart (40 grids)", lambda: render_chart(cfg, data, list(data.grids.values()),
                                                                          street["title"]), rows)
        xlsx = timed("build the xlsx ledger (street)", lambda: ledger_from_data(cfg, data), rows)
        zpath = folder / "out" / "photos.zip"
        photos = timed("zip the week's photos", lambda: write_photo_zip(cfg, data, zpath), rows)

        out = folder / "out"
        sink = io.StringIO()
        with redirect_stdout(sink):
            rc = timed("gridbot export (whole command, incl. store load)",
                       lambda: export_command(cfg, (s := Store(cfg.data_path, readonly=True), s.load(), s)[2],
                                              WEEK, out), rows)
        assert rc == 0, sink.getvalue()

        monday_after = datetime(2026, 11, 30, 8, 30, tzinfo=TZ)

        async def run_job(people: list) -> CountingTransport:
            transport = CountingTransport()
            job_cfg = cfg.model_copy(update={"people": people})
            bot = Bot(config=job_cfg, store=ro, transport=transport, clock=None)  # type: ignore[arg-type]
            t, c = time.perf_counter(), time.process_time()
            await weekly_digest(bot, monday_after)
            return transport, time.perf_counter() - t, time.process_time() - c

        members = [p for p in cfg.people if p.role != "leader"]
        street_leader = [p for p in cfg.people if p.userid == "street"]
        _, wall, cpu = await run_job(members + street_leader)
        rows.append(("weekly_digest job, the street leader (digest, chart, xlsx)", wall, cpu))
        transport, wall, cpu = await run_job(list(cfg.people))
        rows.append((f"weekly_digest job, all {len(cfg.people_with_role('leader'))} leaders "
                     "(street + each community)", wall, cpu))

        width = max(len(r[0]) for r in rows)
        print()
        print(f"  {'step':<{width}}  {'wall':>9}     {'cpu':>9}")
        for label, secs, cpu in rows:
            print(f"  {label:<{width}}  {secs * 1000:9.1f} ms  {cpu * 1000:9.1f} ms")
        records = sum(len(g.reports) + len(g.checkins) for g in data.grids.values())
        job_s = rows[-2][1]
        export_s = next(r[1] for r in rows if r[0].startswith("gridbot export"))
        print()
        print(f"  records in the week: {records}; reports counted: {street['reports']}; "
              f"digest parts: {len(street['parts'])} (max {max(len(p.encode()) for p in street['parts'])} bytes)")
        print(f"  chart: {len(png) / 1024:.0f} KiB; xlsx: {len(xlsx) / 1024:.0f} KiB; "
              f"photos zipped: {photos[0]} ({photos[1]} missing); messages queued by the job: {len(transport.sent)}")
        load = os.getloadavg()[0]
        ok = job_s < BUDGET_S and export_s < BUDGET_S
        print(f"  street digest {job_s:.2f} s, export {export_s:.2f} s (budget {BUDGET_S:.0f} s each) — "
              f"{'OK' if ok else 'OVER BUDGET'}; load average {load:.1f} on {os.cpu_count()} CPUs")
        return 0 if ok else 1
    finally:
        if not args.keep:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
