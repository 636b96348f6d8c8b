"""What the report parser counts with: categories, units and synonyms (DESIGN.md, "Report parsing
rules"), and the warnings `gridbot check-config` prints about them.

Admins extend it in the config: [[categories]] keywords, [parsing] extra_units (位, 方…) and
synonyms (a variant → the standard form, replaced before parsing). Everything is stored in
simplified form, since messages are normalised to simplified before they are read.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Mapping, Sequence

from bot.numbers_zh import normalize
from bot.report_text import to_simplified
from bot.taxonomy import DEFAULT_CATEGORIES, Category

# Surface form → the unit an item is counted in. 户次 counts as 户 and 车次 as 车: the same
# household visited twice is two visits either way, and the ledger adds them up.
BUILTIN_UNITS: dict[str, str] = {
    "平方米": "平方米", "平米": "平方米", "平方": "平方米", "㎡": "平方米", "m²": "平方米",
    "人次": "人次", "户次": "户", "车次": "车", "家次": "家", "场次": "场",
    "小时": "小时", "钟头": "小时", "公里": "公里", "千米": "公里",
    "处": "处", "个": "个", "块": "块", "户": "户", "家": "家", "份": "份", "张": "张",
    "条": "条", "册": "册", "本": "本", "人": "人", "名": "名", "辆": "辆", "车": "车",
    "袋": "袋", "吨": "吨", "米": "米", "次": "次", "场": "场", "起": "起", "件": "件",
    "栋": "栋", "株": "株", "棵": "棵",
}
# Units measured rather than counted: only these may carry a fraction (2.5吨, 1.5小时). For a
# counted unit "2.200份" is list item 2 and 200 copies, not 2.2 copies.
MEASURED_UNITS = frozenset({"吨", "平方米", "米", "公里", "小时"})
# A unit glued to what follows it as an ordinary word: 3处理, 本周, 一次性, 一块儿, 3个月,
# 3栋2单元 (an address), 一条心, 名单, 方面 (for the admin's 方), 位置 (for 位).
UNIT_NOT_BEFORE: dict[str, str] = {
    "处": r"[理置分罚长]",
    "本": r"[周月年日次人社网小区地届着]",
    "次": r"[性日]",
    "块": r"儿",
    "个": r"月",
    "栋": r"\s*\d|[一二三四五六七八九十]+单元|楼下",
    "条": r"[心龙]",
    "名": r"[单额]",
    "方": r"[面便式法案向位针]",
    "位": r"[置于]",
    "米": r"[饭粒面]",
}


@dataclass(frozen=True, eq=False)
class Vocabulary:
    """One parser's words. Compared by identity: the config hands out the same object until it
    is reloaded, so the compiled parser is found again without hashing every keyword."""
    categories: tuple[Category, ...]
    units: Mapping[str, str] = field(default_factory=lambda: dict(BUILTIN_UNITS))
    synonyms: Mapping[str, str] = field(default_factory=dict)

    def keywords(self, category: Category) -> list[str]:
        """The category's keywords as the parser matches them: simplified, full-width folded."""
        return [w for w in (simplify(k) for k in category.keywords) if w]


def simplify(word: str) -> str:
    return normalize(to_simplified(word)).strip()


def build_vocabulary(categories: Sequence[Category] = DEFAULT_CATEGORIES,
                     extra_units: Sequence[str] | Mapping[str, str] = (),
                     synonyms: Mapping[str, str] | None = None) -> Vocabulary:
    """extra_units: ["位", "方"] (each its own unit) or {"立方": "方"} (a form → its unit).
    A synonym whose standard form is a unit becomes another form of that unit (立方 → 方); any
    other synonym is a word replaced in the text before parsing (牛皮藓 → 牛皮癣)."""
    units = dict(BUILTIN_UNITS)
    pairs = extra_units.items() if isinstance(extra_units, Mapping) else ((u, u) for u in extra_units)
    for form, unit in pairs:
        form, unit = simplify(form), simplify(unit)
        if form and unit:
            units[form] = units.get(unit, unit)
    words: dict[str, str] = {}
    for variant, standard in (synonyms or {}).items():
        variant, standard = simplify(variant), simplify(standard)
        if not variant or variant == standard:
            continue
        if standard in units:
            units[variant] = units[standard]
        else:
            words[variant] = standard
    return Vocabulary(tuple(categories), units, words)


DEFAULT_VOCABULARY = build_vocabulary()


# --- check-config warnings ----------------------------------------------------------


def vocabulary_warnings(vocab: Vocabulary) -> list[str]:
    """Keywords that can never decide a category, and synonyms that change nothing, each as one
    line an admin can act on. Categories are tried in order and the first whose keyword occurs
    wins, so a keyword that contains an earlier category's keyword always goes to that earlier
    category (and a keyword listed twice, to the first)."""
    out: list[str] = []
    cats = vocab.categories
    seen_pairs: set[tuple[str, str]] = set()
    for j, later in enumerate(cats):
        for word in vocab.keywords(later):
            for earlier in cats[:j]:
                if earlier.id == later.id:
                    continue
                inner = next((k for k in vocab.keywords(earlier) if k in word), None)
                if inner is None or (later.id, word) in seen_pairs:
                    continue
                seen_pairs.add((later.id, word))
                if inner == word:
                    out.append(f"关键词“{word}”同时属于“{earlier.label}”和“{later.label}”,"
                               f"按顺序总是计入排在前面的“{earlier.label}”;请只保留一处。")
                else:
                    out.append(f"“{later.label}”的关键词“{word}”包含“{earlier.label}”的关键词“{inner}”,"
                               f"而“{earlier.label}”排在前面,所以含“{word}”的上报都会计入"
                               f"“{earlier.label}”;如要计入“{later.label}”,请把“{later.label}”"
                               f"移到“{earlier.label}”前面。")
    all_words = [k for c in cats for k in vocab.keywords(c)]
    for variant, standard in vocab.synonyms.items():
        if not any(k in standard for k in all_words) and not any(k in variant for k in all_words):
            out.append(f"同义词“{variant}”→“{standard}”:“{standard}”既不是计量单位,也不含任何类别的"
                       f"关键词,替换后不影响统计;如是新单位请写进 extra_units,如是新说法请加到类别的 keywords。")
    return out


def synonym_pattern(vocab: Vocabulary) -> re.Pattern | None:
    if not vocab.synonyms:
        return None
    return re.compile("|".join(re.escape(w) for w in sorted(vocab.synonyms, key=len, reverse=True)))
