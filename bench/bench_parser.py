"""Report parser throughput on one core: the shared examples plus a few long multi-item reports.

Run: .venv/bin/python bench/bench_parser.py  — exits 1 under 10,000 messages/second.
"""

from __future__ import annotations

import json
import re
import sys
import time
from datetime import date
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bot.report_parser import parse_report  # noqa: E402
from bot.taxonomy import DEFAULT_CATEGORIES  # noqa: E402

_SHARED = REPO.parent / "shared" / "examples" / "reports.jsonl"
EXAMPLES = _SHARED if _SHARED.exists() else REPO / "tests" / "data" / "reports.jsonl"
TARGET = 10_000  # messages per second
SECONDS = 2.0
LONG_REPORTS = [
    "【第五网格】今日工作:1.入户走访20户 2.发放宣传资料150份 3.巡查1次 4.清理小广告三十余处",
    "1号网格张三今日工作汇报:\n1、巡查辖区2次;\n2、劝导占道经营5家;\n3、清理小广告30余处。\n"
    "4、入户走访独居老人12户,发放宣传资料两百余份;\n5、排查消防隐患3处,已整改2处。",
    "昨天组织志愿者15人开展义务劳动,清运垃圾3车约2吨,清理卫生死角8处,修剪绿化带300多平方米,"
    "规范非机动车停放50辆,劝导不文明行为7起",
    "安全隐患排查:检查沿街商铺12家,发现问题2处 入户走访 20户 张贴海报20张、发放倡议书100份",
]


def load_texts() -> list[str]:
    lines = EXAMPLES.read_text(encoding="utf-8").splitlines()
    return [json.loads(line)["text"] for line in lines if line.strip()] + LONG_REPORTS


def rate(fn, texts: list[str], seconds: float = SECONDS) -> float:
    done = 0
    start = time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        for text in texts:
            fn(text)
        done += len(texts)
    return done / elapsed


def main() -> int:
    texts = load_texts()
    sent = date(2026, 11, 25)
    categories = DEFAULT_CATEGORIES
    parse_report(texts[0], categories, sent)  # compile outside the timing
    digits = re.compile(r"\d+")
    baseline = rate(digits.findall, texts)
    parser = rate(lambda text: parse_report(text, categories, sent), texts)
    print(f"texts: {len(texts)} ({len(LONG_REPORTS)} long multi-item reports), {SECONDS:.0f} s each")
    print(f"parse_report:          {parser:12,.0f} msg/s")
    print(f"baseline re.findall:   {baseline:12,.0f} msg/s")
    print(f"ratio parser/baseline: {parser / baseline:12.3f}")
    if parser < TARGET:
        print(f"FAIL: under {TARGET:,} msg/s")
        return 1
    print(f"OK: at least {TARGET:,} msg/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
