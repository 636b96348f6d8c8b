"""Is a new problem one already on the ledger (疑似重复登记), or one that keeps coming back (反弹)?

A registration is flagged, never refused: the person on the spot may know better. A problem is a
possible duplicate of another when both are in the same grid, of the same category (both without
a category counts as the same), the other is still open, and their texts name a similar place —
see `similar_place`.

It recurs (反弹) when an earlier problem of the same category at the same place was fixed (closed,
or its fix waits for the check) and registered within [problems] recurrence_days: the same place
is within recurrence_distance_m when both have a location, else a similar place in the texts of
two problems of one grid. Places where problems keep coming are hot spots (`hot_spots`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from bot.config import Config
from bot.numbers_zh import chinese_number, normalize
from bot.photos.geo import distance_m

# Words that end a named place: "幸福路", "和平街", "阳光小区", "人民广场". Longer words first, so
# "大街" is not read as "街".
PLACE_WORDS = ("大道", "大街", "胡同", "小区", "花园", "家园", "新村", "公寓", "广场", "市场", "公园",
               "大厦", "商场", "路", "街", "巷", "弄", "苑")
# Characters that end what comes before a place's name, so "在幸福路" names 幸福路 and "堆在路边"
# no road at all. Characters that start real names (和平路, 向阳街, 新华路) are not among them.
_NAME_BREAKS = set("在于到从沿靠旁边往及与的是有个")
_HAN = r"[\u4e00-\u9fff]"
_PLACE = re.compile("|".join(PLACE_WORDS))
_CN_NUM = "零〇一二两三四五六七八九十百"
_CN_BEFORE_UNIT = re.compile(rf"[{_CN_NUM}]+(?=\s*(?:号|栋|幢|座|单元|室|层|楼))")
# Kinds of address numbers, read in this order; each match is blanked so "3号楼" is not also "3号".
NUMBER_KINDS = (
    ("building", re.compile(r"(\d+)\s*(?:号楼|号院楼|栋|幢|座)")),
    ("unit", re.compile(r"(\d+)\s*单元")),
    ("room", re.compile(r"(\d+)\s*(?:室|房)")),
    ("floor", re.compile(r"(\d+)\s*(?:层|楼)")),
    ("door", re.compile(r"(?<![月\d])(\d+)\s*号(?!网格)")),
)
# Words that say nothing about where or what ("发现…存在…问题"), left out when texts are compared
# character by character.
FILLER = ("发现", "存在", "出现", "问题", "情况", "现象", "一些", "大量", "较多", "很多", "多处", "有人",
          "请尽快", "尽快", "处理", "需要", "目前", "仍然", "还有", "依旧")
TEXT_OVERLAP = 0.8


@dataclass
class Address:
    names: set[str] = field(default_factory=set)  # "幸福路", "阳光小区"
    numbers: dict[str, set[int]] = field(default_factory=dict)  # {"building": {3}, "unit": {2}}

    def __bool__(self) -> bool:
        return bool(self.names or self.numbers)


def _arabic(text: str) -> str:
    def conv(m: re.Match) -> str:
        try:
            return str(chinese_number(m.group(0)))
        except Exception:
            return m.group(0)
    return _CN_BEFORE_UNIT.sub(conv, normalize(text))


def address(text: str) -> Address:
    """The named places and address numbers a problem text gives."""
    text = _arabic(text)
    out = Address()
    for m in _PLACE.finditer(text):
        run = re.search(rf"{_HAN}*$", text[:m.start()]).group(0)[-4:]
        cut = max((i for i, ch in enumerate(run) if ch in _NAME_BREAKS), default=-1)
        name = run[cut + 1:]
        # Every tail of two or more characters: what precedes a name is not told from the name
        # ("沿线幸福路" also names "幸福路"); one character ("马路", "菜市场") is no name.
        out.names |= {name[i:] + m.group(0) for i in range(len(name) - 1)}
    for kind, rx in NUMBER_KINDS:
        for m in rx.finditer(text):
            out.numbers.setdefault(kind, set()).add(int(m.group(1)))
        text = rx.sub(" ", text)
    return out


def _bigrams(text: str) -> set[str]:
    text = re.sub(r"[^\w]", "", normalize(text))
    for word in FILLER:
        text = text.replace(word, "")
    return {text[i:i + 2] for i in range(len(text) - 1)}


def text_overlap(a: str, b: str) -> float:
    """How much of two texts is the same, from 0 to 1 (Sørensen–Dice over character pairs)."""
    x, y = _bigrams(a), _bigrams(b)
    return 2 * len(x & y) / (len(x) + len(y)) if x and y else 0.0


def similar_place(a: str, b: str) -> bool:
    """Do problem texts `a` and `b` name a similar place?

    Both texts are read for address tokens (Chinese numerals and full-width digits count: 三号楼 is
    3号楼): named places — two or more characters before a place word such as 路, 街, 巷, 小区,
    广场 (幸福路, 阳光小区) — and numbers of a kind: building (3号楼 = 3栋 = 3幢 = 3座), unit
    (2单元), room (302室), floor (5层, 5楼), door (18号). Then:

    - different places: both name places but none in common (幸福路 / 和平路), or a kind of number
      both give with no value in common (3号楼 / 5号楼) — not similar, whatever else they share;
    - the same place: a kind of number in common, the places agreeing as above (幸福路3号楼 /
      幸福路三号楼; 3号楼楼下 / 幸福路3号楼旁, where only one names the road), or a named place in
      common and no numbers on either side (幸福路口 / 幸福路边);
    - otherwise (no tokens to go by, or only one text precise: 幸福路 / 幸福路3号楼): similar when
      the texts, filler words ("发现", "存在", "问题"…) stripped, share at least 80% of their
      character pairs.
    """
    pa, pb = address(a), address(b)
    if pa.names and pb.names and not pa.names & pb.names:
        return False
    shared = pa.numbers.keys() & pb.numbers.keys()
    if any(pa.numbers[k].isdisjoint(pb.numbers[k]) for k in shared):
        return False
    if shared or (pa.names & pb.names and not (pa.numbers or pb.numbers)):
        return True
    return text_overlap(a, b) >= TEXT_OVERLAP


def possible_duplicates(candidates, grid: str, category: str | None, text: str) -> list[dict]:
    """The open problems among `candidates` (oldest first) that `text` may be registering again."""
    return [p for p in candidates
            if p.get("status") in STILL_OPEN and p.get("grid") == grid and p.get("category") == category
            and similar_place(text, p.get("text") or "")]


STILL_OPEN = ("open", "pending_check")
FIXED = ("closed", "pending_check")


def same_place(cfg: Config, a: dict, b: dict) -> bool:
    """Are problems `a` and `b` at the same place? By their locations when both have one."""
    la, lb = a.get("location"), b.get("location")
    if la and lb:
        return distance_m(la["lat"], la["lng"], lb["lat"], lb["lng"]) <= cfg.problems.recurrence_distance_m
    return a.get("grid") == b.get("grid") and similar_place(a.get("text") or "", b.get("text") or "")


def recurrence_of(cfg: Config, candidates, doc: dict) -> list[str]:
    """Ids of the earlier problems among `candidates` that `doc` is a recurrence of (反弹):
    fixed ones of its category at its place, registered within the recurrence window, oldest first."""
    since = doc["opened_at"] - cfg.problems.recurrence_days * 86400
    found = [p for p in candidates
             if p["id"] != doc["id"] and p.get("status") in FIXED and p.get("category") == doc.get("category")
             and since <= (p.get("opened_at") or 0) <= doc["opened_at"] and same_place(cfg, doc, p)]
    return [p["id"] for p in sorted(found, key=lambda p: (p["opened_at"], p["id"]))]


def hot_spots(cfg: Config, problems, now_ts: float) -> list[list[dict]]:
    """Places with [problems] hot_spot_count problems or more registered in the last
    recurrence_days, by the links made at registration (recurrences and duplicates): each a list
    of its problems, oldest first; the places with most problems first."""
    since = now_ts - cfg.problems.recurrence_days * 86400
    recent = {p["id"]: p for p in problems
              if p.get("status") != "withdrawn" and since <= (p.get("opened_at") or 0) <= now_ts}
    parent = {pid: pid for pid in recent}

    def root(x: str) -> str:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for pid, p in recent.items():
        for other in (p.get("recurs_of") or []) + (p.get("possible_duplicates") or []):
            if other in recent:
                parent[root(pid)] = root(other)
    groups: dict[str, list[dict]] = {}
    for pid, p in recent.items():
        groups.setdefault(root(pid), []).append(p)
    spots = [sorted(g, key=lambda p: (p["opened_at"], p["id"])) for g in groups.values()
             if len(g) >= cfg.problems.hot_spot_count]
    return sorted(spots, key=lambda g: (-len(g), g[0]["opened_at"]))
