"""A ledger that WeCom cannot take in one file (20 MB, bot.outgoing.MEDIA_LIMITS) goes as several.

A district's week is some 36 MB of xlsx. The first file keeps the sheets a leader reads first (the
summary ones, small whatever the scope); the row-per-record sheets follow in parts, whole
communities to a part where they fit, a community's grids apart where one alone is too big. Each
part is measured as written (the writer's output, not a guess from row counts): one over the cap
is split again. The weights below choose where to cut, and whether to write the whole file at all:
a ledger whose sample of details says it is well over the cap goes straight to parts (writing a
district's 36 MB only to throw it away cost a fifth of its digest).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from math import ceil
from typing import Any, Callable

from loguru import logger

from bot import outgoing

FILL = 0.85  # a first cut aims under the cap: compression varies from part to part
# Deciding without the whole file. Below SURE_RATIO bytes per unit of weight a ledger is taken to
# fit and written whole (every community of a district is far below); above, a sample decides:
# estimated over OVER_MARGIN times the cap, the whole file is never written. Between the two
# (or with one unit), it is written and measured as before.
SURE_RATIO = 0.5
SAMPLE_SHARE = 0.05
OVER_MARGIN = 1.2


@dataclass
class Unit:
    """Grids that stay in one part if they can: a community, or one grid of a big community."""
    label: str
    grids: list[Any]
    weight: float
    whole: bool = True  # a community (may be split into its grids), not a single grid
    labels: list[str] = field(default_factory=list)  # the grids' own labels, for such a split


@dataclass
class LedgerFile:
    filename: str
    data: bytes


def file_cap() -> int:
    return outgoing.media_limit("file")


def fit_ledger(filename: str, whole: bytes | Callable[[], bytes], summary: Callable[[], bytes],
               details: Callable[[list[Any]], bytes], units: list[Unit], cap: int | None = None) -> list[LedgerFile]:
    """`whole` if it fits; else the summary workbook and the detail parts, each within `cap`.
    `details(grids)` writes the detail sheets of those grids; units come in the ledger's order.
    `whole` may be the writer of the one-file ledger, called only when it may fit."""
    cap = cap or file_cap()
    total = sum(u.weight for u in units) or 1
    first: bytes | None = None
    if callable(whole):
        size = None
        if total * SURE_RATIO > cap and len(units) > 1:
            first = summary()
            size = round(estimate(first, units, details, total))
        if size is not None and size > cap * OVER_MARGIN:
            whole = b""  # not written: parts from the estimate
        else:
            whole, size = whole(), None
    else:
        size = None
    if size is None:
        if len(whole) <= cap:
            return [LedgerFile(filename, whole)]
        size = len(whole)
    stem = filename.removesuffix(".xlsx")
    first = first if first is not None else summary()
    n = max(1, ceil(size / (cap * FILL)))
    parts: list[tuple[list[Unit], bytes]] = []
    for group in _cut(units, n, total):
        parts += _fit(group, details, cap)
    files = [LedgerFile(f"{stem}(汇总).xlsx", first)]
    for i, (group, data) in enumerate(parts, 1):
        span = group[0].label if len(group) == 1 else f"{group[0].label}—{group[-1].label}"
        number = f" {i}／{len(parts)}" if len(parts) > 1 else ""
        files.append(LedgerFile(f"{stem}(明细{number}:{span}).xlsx", data))
    logger.info("{}: {:,} bytes{}, over WeCom's {:,}-byte file limit: split into {} files ({} bytes)", filename, size,
                "" if whole else " (estimated)", cap, len(files), ", ".join(f"{len(f.data):,}" for f in files))
    return files


def estimate(first: bytes, units: list[Unit], details: Callable[[list[Any]], bytes], total: float) -> float:
    """The one-file ledger's size, guessed from the summary workbook and the details of a few units
    spread over the ledger (about SAMPLE_SHARE of the units), scaled to all of it. A workbook's
    own bytes (styles, headers, the zip's directory) are counted once, not scaled with the rows."""
    k = max(1, round(len(units) * SAMPLE_SHARE))
    sample = [units[int((i + 0.5) * len(units) / k)] for i in range(k)]
    weight = sum(u.weight for u in sample) or 1
    empty = len(details([]))
    return len(first) + max(0, len(details([g for u in sample for g in u.grids])) - empty) * total / weight


def _cut(units: list[Unit], n: int, total: float) -> list[list[Unit]]:
    """`units` in order, in about `n` runs of equal weight."""
    runs: list[list[Unit]] = [[]]
    acc, share = 0.0, total / n
    for u in units:
        if runs[-1] and acc + u.weight / 2 > share * len(runs):
            runs.append([])
        runs[-1].append(u)
        acc += u.weight
    return [r for r in runs if r]


def _fit(group: list[Unit], details: Callable[[list[Any]], bytes], cap: int) -> list[tuple[list[Unit], bytes]]:
    data = details([g for u in group for g in u.grids])
    if len(data) <= cap:
        return [(group, data)]
    if len(group) == 1:
        u = group[0]
        if not (u.whole and len(u.grids) > 1):
            # One grid's week over 20 MB: nothing smaller to cut by. Sent as it is, the transport
            # refuses it and the job tells the leader.
            logger.error("ledger part {}: {:,} bytes for one grid, over the {:,}-byte limit", u.label, len(data), cap)
            return [(group, data)]
        per = u.weight / len(u.grids)
        group = [Unit(label, [g], per, whole=False) for g, label in zip(u.grids, u.labels)]
    half = _cut(group, 2, sum(u.weight for u in group) or 1)
    if len(half) == 1:  # all the weight on one side: split by count
        half = [group[:len(group) // 2], group[len(group) // 2:]]
    return [p for h in half for p in _fit(h, details, cap)]


def send_ledger(transport: Any, userid: str, files: list[LedgerFile], what: str) -> bool:
    """Send a ledger's files to one leader, saying first why there are several and naming any the
    transport would refuse (one grid's week over the cap). True: every file went out."""
    limit = file_cap()
    over = [f for f in files if len(f.data) > limit]
    if len(files) > 1 or over:
        transport.send_text(userid, ledger_note(files, over, what, limit))
    sent = not over
    for f in files:
        try:
            transport.send_file(userid, f.data, f.filename)  # refuses (and logs) one over the cap
        except outgoing.MediaTooLarge:
            sent = False
    return sent


def ledger_note(files: list[LedgerFile], over: list[LedgerFile], what: str, limit: int) -> str:
    """What the leader reads before the files, in words they can forward as they are."""
    cap = f"企业微信单个文件 {_size(limit)} 的上限"
    if len(files) == 1:
        text = f"{what}({_size(len(over[0].data))})超过{cap},未能发送。"
    else:
        rest = "第 2 个为明细" if len(files) == 2 else f"其余 {len(files) - 1} 个为按社区拆分的明细"
        text = f"{what}数据量较大,超过{cap},已拆分为 {len(files)} 个文件发送:第 1 个为汇总表,{rest}。"
        if over:
            names = "、".join(f"《{f.filename.removesuffix('.xlsx')}》" for f in over)
            text += f"其中{names}仍超过上限,未能发送。"
        else:
            text += "请一并查收。"
    if over:
        text += "完整台账请联系管理员用 gridbot export 命令导出。"
    return text


def _size(n: int) -> str:
    """20000000 → 20MB, 35912345 → 35.9MB, 5120 → 5KB (WeCom counts in MB; a test cap is tiny)."""
    if n >= 1_000_000:
        return f"{n / 1e6:.1f}".removesuffix(".0") + "MB"
    return f"{max(1, round(n / 1e3))}KB"
