"""The parser's vocabulary follows the config file while the bot runs: an admin adds a unit or a
synonym, the next report counts with it, no restart."""

from __future__ import annotations

import asyncio
import time

from tests.support.factories import BASE_CONFIG

PARSING = '\n[parsing]\nextra_units = ["位"]\nsynonyms = { "牛皮藓" = "牛皮癣" }\n'


async def wait_for(cond, timeout: float = 5.0) -> None:
    start = time.monotonic()
    while not cond():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"not within {timeout} s")
        await asyncio.sleep(0.05)


def items(harness) -> list[list]:
    docs = sorted(harness.store.docs("reports"), key=lambda r: int(r["id"][1:]))
    return [[(i["category"], i["quantity"], i["unit"]) for i in r["items"]] for r in docs]


async def test_units_and_synonyms_added_to_the_config_count_without_a_restart(harness, config_path):
    await harness.text("lisi", "慰问老党员6位")
    await harness.text("lisi", "清理牛皮藓8处")
    assert items(harness) == [[]]  # 慰问 is a keyword: a report without a count; 牛皮藓 is not one
    old = harness.bot.config
    config_path.write_text(BASE_CONFIG + PARSING, encoding="utf-8")
    await wait_for(lambda: harness.bot.config is not old)
    await harness.text("lisi", "慰问老党员6位")
    await harness.text("lisi", "清理牛皮藓8处")
    assert items(harness)[1:] == [[("visit", 6, "位")], [("ads", 8, "处")]]
    assert "· 入户走访 6位" in harness.replies("lisi")[-2]
