"""Report parser: throughput on one core with the Traditional→simplified converter in the path,
the cost of normalisation on its own, and accuracy (item F1, work-date accuracy) on the examples.

Run: .venv/bin/python bench/bench_parser.py  — exits 1 under 20,000 messages/second (CPU time
on one core) or when an example set falls under F1 0.97 or date accuracy 0.97.

The process is pinned to one CPU. This machine is shared, so wall-clock rates drift with the
neighbours' load; CPU time (time.process_time) is what the parser itself costs, and is what the
target is checked against. Both are printed.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
from collections import Counter
from datetime import date
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bot.numbers_zh import normalize  # noqa: E402
from bot.report_parser import parse_report  # noqa: E402
from bot.report_text import prepare, to_simplified  # noqa: E402
from bot.report_vocab import DEFAULT_VOCABULARY  # noqa: E402

SETS = {
    "shared": REPO.parent / "shared" / "examples" / "reports.jsonl",
    "project": REPO / "tests" / "data" / "reports.jsonl",
}
TARGET = 20_000  # messages per second, one core
MIN_F1 = MIN_DATE = 0.97
SECONDS = 2.0
SENT = date(2026, 11, 25)  # the examples' message date (a Wednesday)
LONG_REPORTS = [
    "【第五网格】今日工作:1.入户走访20户 2.发放宣传资料150份 3.巡查1次 4.清理小广告三十余处",
    "1号网格张三今日工作汇报:\n1、巡查辖区2次;\n2、劝导占道经营5家;\n3、清理小广告30余处。\n"
    "4、入户走访独居老人12户,发放宣传资料两百余份;\n5、排查消防隐患3处,已整改2处。",
    "昨天组织志愿者15人开展义务劳动,清运垃圾3车约2吨,清理卫生死角8处,修剪绿化带300多平方米,"
    "规范非机动车停放50辆,劝导不文明行为7起",
    "安全隐患排查:检查沿街商铺12家,发现问题2处 入户走访 20户 张贴海报20张、发放倡议书100份",
    "「李主任:今天每人至少走访20户」\n- - - - - - - - - - - - - - -\n收到,今天入戶走訪了15戶,清理小廣告8處",
]


def load(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def rate(fn, texts: list[str], seconds: float = SECONDS) -> tuple[float, float]:
    """(messages per CPU second, messages per wall second)."""
    done = 0
    wall, cpu = time.perf_counter(), time.process_time()
    while time.process_time() - cpu < seconds:
        for text in texts:
            fn(text)
        done += len(texts)
    return done / (time.process_time() - cpu), done / (time.perf_counter() - wall)


def accuracy(examples: list[dict]) -> tuple[float, float, float, float]:
    """(precision, recall, F1) over items, counted as a multiset per message, and the share of
    messages whose work-date offset is right (null: an explicit date or no single date)."""
    tp = predicted = gold = dates = 0
    for e in examples:
        parsed = parse_report(e["text"], DEFAULT_VOCABULARY, SENT)
        got = Counter((i.category, i.quantity, i.unit) for i in parsed.items)
        want = Counter(tuple(i) for i in e["items"])
        tp += sum((got & want).values())
        predicted += sum(got.values())
        gold += sum(want.values())
        dates += parsed.date_offset == e["date_offset"]
    precision = tp / predicted if predicted else 1.0
    recall = tp / gold if gold else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1, dates / len(examples)


def main() -> int:
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    sets = {name: load(path) for name, path in SETS.items() if path.exists()}
    texts = [e["text"] for examples in sets.values() for e in examples] + LONG_REPORTS
    vocab = DEFAULT_VOCABULARY
    parse_report(texts[0], vocab, SENT)  # compile outside the timing
    traditional = sum(to_simplified(t) != t for t in texts)

    parser_cpu, parser_wall = rate(lambda text: parse_report(text, vocab, SENT), texts)
    convert_cpu, _ = rate(to_simplified, texts)
    prepare_cpu, _ = rate(prepare, texts)
    baseline_cpu, _ = rate(re.compile(r"\d+").findall, texts)
    simplified = [normalize(to_simplified(t)) for t in texts]
    # What the parser costs once the text is already simplified: the converter's share.
    bare_cpu, _ = rate(lambda text: parse_report(text, vocab, SENT), simplified)

    per_msg = 1e6 / parser_cpu
    print(f"texts: {len(texts)} ({traditional} with Traditional characters, {len(LONG_REPORTS)} long reports), "
          f"{SECONDS:.0f} s of CPU each, pinned to one core")
    print(f"parse_report (OpenCC t2s in the path): {parser_cpu:10,.0f} msg/s CPU  ({per_msg:5.1f} µs/msg), "
          f"{parser_wall:10,.0f} msg/s wall")
    print(f"  normalisation (t2s + full-width + quotes): {1e6 / prepare_cpu:5.1f} µs/msg "
          f"({100 * parser_cpu / prepare_cpu:4.1f}% of a parse), of which OpenCC t2s {1e6 / convert_cpu:5.1f} µs/msg")
    print(f"  the same texts already simplified:     {bare_cpu:10,.0f} msg/s CPU")
    print(f"baseline re.findall(r'\\d+'):            {baseline_cpu:10,.0f} msg/s CPU "
          f"(parser/baseline {parser_cpu / baseline_cpu:.4f}: compare runs by this ratio)")
    ok = parser_cpu >= TARGET
    for name, examples in sets.items():
        precision, recall, f1, date_ok = accuracy(examples)
        print(f"accuracy on {name} examples ({len(examples)}): precision {precision:.3f}, recall {recall:.3f}, "
              f"F1 {f1:.3f}, work date {date_ok:.3f}")
        ok = ok and f1 >= MIN_F1 and date_ok >= MIN_DATE
    if not ok:
        print(f"FAIL: under {TARGET:,} msg/s, or F1 / date accuracy under {MIN_F1}")
        return 1
    print(f"OK: at least {TARGET:,} msg/s on one core, F1 and date accuracy at least {MIN_F1}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
