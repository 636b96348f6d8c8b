"""The journal's JSON: fast, but the same files and the same refusals as the standard library's."""

from __future__ import annotations

import json
from datetime import date

import pytest

from bot.journal import dumps, read_segment
from bot.store import Store


def test_records_are_plain_readable_json():
    doc = {"id": "R1", "text": "清理小广告15处\n“引号”", "items": [{"quantity": 1.5}], "n": None}
    raw = dumps(doc)
    assert raw == json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode()
    assert "清理小广告".encode() in raw  # UTF-8 as is, readable in any editor


def test_values_json_refuses_are_refused_not_turned_into_strings():
    with pytest.raises(TypeError):
        dumps({"id": "R1", "work_date": date(2026, 11, 25)})
    assert dumps({1: "x"}) == b'{"1":"x"}'  # what json accepts still works


async def test_a_journal_written_by_the_standard_library_replays(tmp_path):
    store = Store(tmp_path)
    store.load()
    await store.start()
    await store.put("reports", {"id": "R1", "text": "入户走访12户"}, shard="2026-W48")
    await store.journal.close()  # a crash: no checkpoint
    seg = next(store.journal_dir.glob("*.log"))
    old = {"s": 2, "ops": [{"t": "reports", "w": "2026-W48", "d": {"id": "R2", "ratio": float("nan"),
                                                                    "text": "旧版写入"}}]}
    with open(seg, "ab") as f:
        f.write(json.dumps(old).encode() + b"\n")  # ASCII escapes and NaN, as json.dumps writes
    assert [r["s"] for r in read_segment(seg)] == [1, 2]
    again = Store(tmp_path, readonly=True)
    again.load()
    assert again.get("reports", "R2")["text"] == "旧版写入"
    assert again.get("reports", "R1")["text"] == "入户走访12户"
