"""Free-text task report → counted items and a work date (DESIGN.md, "Report parsing rules",
second edition). Pure functions, no I/O.

The text is first made simplified and half-width (Traditional 小廣告15處 reads as 小广告15处),
with the admin's synonyms replaced and quoted messages blanked (bot.report_text). One regex pass
then finds quantities, dates, list markers and separators (bot.report_tokens). Each quantity's
category is the first category, in the configured order, whose keyword occurs

1. just before it, back to the nearest 、 or space, then back to the previous quantity or the
   clause start ("清理小广告、张贴海报20张" is posters: the nearer words win);
2. failing that, just after it, up to the next quantity or the clause end ("清理了15处小广告");
3. failing that, in the heading: the text before a colon, or 【…】, naming a category by a
   keyword or by its label ("环境卫生:清理4处"); a heading that names none ends the reach of
   the one before.

A quantity that none of these names is no item: there is no "same as the previous item" step, so
"拆除违建2处约30平方米" counts the 2处 only. Choices where the design leaves room:
- a range keeps its lower end (3-5处 = 3, 七八十个 = 70) and "at least" words keep the number
  (三十多处 = 30, 十几户 = 10, 几十人 = 10, 百十来份 = 100, 上百份 = 100);
- counted units come whole: a decimal point before one at the start of an item is a list
  marker ("2.200份" = 200份 after marker 2), and a zero or negative count is no item;
- not counts: grid names and house numbers (3号网格, 3栋2单元302户), sizes (10米长的横幅,
  长约15米), ordinals (第4次), idioms (一起 as "together", 一户一档, 一次性, 三番五次),
  dates, times, phone numbers, percentages, years, and anything quoted: 「…」 (a short quoted
  phrase such as 「门前三包」 keeps its words, never its numbers), “…” after a name and a colon
  or a verb of saying, and the quoted message above WeCom's "- - - -" line;
- planned work is no item: counts governed by 明天, 后天, 下周… or following 计划/打算/预计 in
  the same clause are returned apart (`planned`), never booked;
- the work date comes from the date words (bot.report_dates); counts under two different dates
  leave the message without a single date (`mixed_dates`); a message that opens with 补报 and
  names no date reports yesterday's work.
"""

from __future__ import annotations

import datetime
import functools
import re
from dataclasses import dataclass, field
from typing import Sequence

from bot.report_dates import DateMark, date_mark, governing, work_date
from bot.report_text import Quote, prepare
from bot.report_tokens import (
    bare_number_reason,
    Tokenizer,
    glued_marker,
    is_address,
    is_dimension,
    is_idiom,
    quantity_value,
)
from bot.report_vocab import MEASURED_UNITS, Vocabulary, build_vocabulary, simplify, synonym_pattern
from bot.taxonomy import Category

DATE_KINDS = frozenset({"ymd", "md", "mdnum", "rel", "wk", "ago", "dayno"})
BOUNDARY_KINDS = frozenset({"hard", "colon", "marker", "bracket"})
ITEM_START_AFTER = " \t\n\r,;。:、!?|"
LATE_WORD = "补报"


@dataclass(frozen=True)
class Item:
    category: str  # category id
    quantity: int | float  # int when whole
    unit: str


@dataclass(frozen=True)
class Finding:
    """One number (or date word) found in the text and what became of it, for `parse --explain`."""
    start: int
    end: int
    text: str  # as it reads in the normalised text
    quantity: int | float | None
    unit: str
    outcome: str  # item, planned, skipped, date
    reason: str  # item/planned: before, after, heading; skipped: address, quote, no_category…
    category: str | None = None
    word: str = ""  # the keyword or heading that decided; for a date, the day (ISO) or ""


@dataclass(frozen=True)
class ParsedReport:
    items: tuple[Item, ...]
    work_date: datetime.date
    absolute_date: bool  # the text named an explicit date like 11月20日
    matched: bool  # some category keyword or label occurs in the text (a report even without numbers)
    date_offset: int | None  # work_date - message_date in days; None when absolute or mixed
    planned: tuple[Item, ...] = ()  # counts of work announced for later: never booked
    mixed_dates: bool = False  # counts under two different dates: no single work date
    dated: bool = False  # the text named the work date
    planned_only: bool = False  # nothing done, only plans (明天入户走访10户)
    findings: tuple[Finding, ...] = field(default=(), compare=False)  # only when explained
    text: str = field(default="", compare=False)  # the normalised text, only when explained


def to_json(parsed: ParsedReport) -> dict:
    return {
        "items": [{"category": i.category, "quantity": i.quantity, "unit": i.unit} for i in parsed.items],
        "date_offset": parsed.date_offset,
    }


def _alternation(words) -> str:
    return "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True))


class Parser:
    """The report parser for one vocabulary (category priority = list order)."""

    def __init__(self, vocab: Vocabulary):
        self.vocab = vocab
        self.categories = vocab.categories
        self.units = dict(vocab.units)
        self.measured = frozenset(f for f, u in self.units.items() if u in MEASURED_UNITS)
        self.tokenizer = Tokenizer(self.units)
        self._patterns: list[tuple[str, re.Pattern]] = []
        words: set[str] = set()
        for cat in self.categories:
            own = set(vocab.keywords(cat))
            if own:
                self._patterns.append((cat.id, re.compile(_alternation(own))))
                words |= own
        self._any = re.compile(_alternation(words)) if words else None
        self._labels = [(c.id, label) for c in self.categories if (label := simplify(c.label))]
        names = words | {label for _, label in self._labels}
        self._named = re.compile(_alternation(names)) if names else None
        self._synonyms = synonym_pattern(vocab)

    # -- categories ------------------------------------------------------------------

    def category_in(self, text: str, start: int, end: int) -> tuple[str, str] | None:
        """(category id, keyword) of the first category whose keyword occurs in text[start:end]."""
        if start >= end or self._any is None or self._any.search(text, start, end) is None:
            return None
        for cid, pattern in self._patterns:
            m = pattern.search(text, start, end)
            if m is not None:
                return cid, m.group()
        return None

    def heading_of(self, text: str, start: int, end: int) -> tuple[str, str] | None:
        """A heading names a category by its label ("环境卫生") or by a keyword ("安全隐患排查")."""
        segment = text[start:end]
        for cid, label in self._labels:
            if label in segment:
                return cid, label
        return self.category_in(text, start, end)

    # -- parsing -----------------------------------------------------------------------

    def parse(self, text: str, message_date: datetime.date, explain: bool = False) -> ParsedReport:
        prep = prepare(text, self._synonyms, self.vocab.synonyms)
        t = prep.text
        phrases = [q for q in prep.quotes if not q.whole]
        notes: list[Finding] | None = [] if explain else None
        marks: list[DateMark] = []
        done: list[tuple] = []  # start, end, value, unit, (category, word) | None, how, planned
        pending: list[tuple] = []  # the current clause's quantities: start, end, value, unit, planned
        softs: list[tuple[int, int]] = []
        heading: tuple[str, str] | None = None
        clause_start = 0
        plan_clause = plan_seen = False
        last_qty_end = -1

        for m in self.tokenizer.scan(t):
            kind = m.lastgroup
            if kind == "qty":
                start = m.start()
                unit = self.units[m["unit"]]
                digits = None
                if m["ar"] is not None and "." in m["ar"]:
                    at_item_start = start == 0 or t[start - 1] in ITEM_START_AFTER or start == last_qty_end
                    digits = glued_marker(t, m, m["unit"] in self.measured, at_item_start)
                    if digits is not None:  # "2.200份": list marker 2, then 200份
                        if pending:
                            self._resolve(t, clause_start, start, pending, softs, heading, done)
                        if notes is not None:
                            notes.append(Finding(start, m.end("ar") - len(digits), m["ar"][:-len(digits)],
                                                 None, "", "skipped", "marker"))
                        start = clause_start = m.end("ar") - len(digits)
                        pending, softs, plan_clause = [], [], False
                value = quantity_value(m, digits)
                reason = self._not_a_count(t, m, value, unit, phrases)
                if reason is not None:
                    if notes is not None:
                        notes.append(Finding(start, m.end(), t[start:m.end()], value, unit, "skipped", reason))
                    continue
                pending.append((start, m.end(), value, unit, plan_clause))
                last_qty_end = m.end()
            elif kind == "soft":
                softs.append(m.span())
            elif kind in BOUNDARY_KINDS:
                if pending:
                    self._resolve(t, clause_start, m.start(), pending, softs, heading, done)
                if kind == "colon":
                    heading = self.heading_of(t, clause_start, m.start())
                elif kind == "bracket":
                    heading = self.heading_of(t, m.start("btext"), m.end("btext"))
                elif notes is not None and kind == "marker":
                    notes.append(Finding(m.start(), m.end(), m.group(), None, "", "skipped", "marker"))
                clause_start = m.end()
                pending, softs, plan_clause = [], [], False
            elif kind == "planv":
                plan_clause = plan_seen = True
            elif kind in DATE_KINDS:
                mark = date_mark(m, t, message_date)
                if mark is not None:
                    marks.append(mark)
                if notes is not None:
                    notes.append(_date_finding(m, mark))
            elif notes is not None:
                reason = bare_number_reason(t, m) if kind == "num" else kind
                notes.append(Finding(m.start(), m.end(), m.group(), None, "", "skipped", reason))
        if pending:
            self._resolve(t, clause_start, len(t), pending, softs, heading, done)

        items: list[Item] = []
        planned: list[Item] = []
        item_marks: list[DateMark | None] = []
        for start, end, value, unit, found, how, plan in done:
            if found is None:
                if notes is not None:
                    notes.append(Finding(start, end, t[start:end], value, unit, "skipped", "no_category"))
                continue
            item = Item(found[0], value, unit)
            mark = governing(marks, start)
            is_plan = plan or (mark is not None and mark.planned)
            (planned if is_plan else items).append(item)
            if not is_plan:
                item_marks.append(mark)
            if notes is not None:
                notes.append(Finding(start, end, t[start:end], value, unit, "planned" if is_plan else "item",
                                     how, found[0], found[1]))
        wd = work_date(marks, item_marks, done[0][0] if done else None, message_date)
        matched = bool(items or planned) or (self._named is not None and self._named.search(t) is not None)
        day = wd.day
        if not wd.dated and t.lstrip().startswith(LATE_WORD):
            day = message_date - datetime.timedelta(days=1)  # "补报 入户走访10户": yesterday's work
        offset = None if wd.absolute or wd.mixed else (day - message_date).days
        planned_only = not items and (bool(planned) or wd.planned_only or plan_seen)
        if notes is not None:
            notes.extend(Finding(q.start, q.end, prep.shown[q.start:q.end], None, "", "skipped", "quote_block")
                         for q in prep.quotes if q.whole)
            notes.sort(key=lambda f: f.start)
        return ParsedReport(tuple(items), day, wd.absolute, matched, offset, tuple(planned), wd.mixed,
                            wd.dated, planned_only, tuple(notes or ()), prep.shown if explain else "")

    def _not_a_count(self, t: str, m: re.Match, value, unit: str, phrases: list[Quote]) -> str | None:
        start = m.start()
        if phrases and any(q.start <= start < q.end for q in phrases):
            return "quote"
        if m["neg"]:
            return "negative"
        if start and t[start - 1] == "第":
            return "ordinal"
        if is_idiom(t, m):
            return "idiom"
        if is_address(t, m, unit):
            return "address"
        if is_dimension(t, m, unit):
            return "dimension"
        if value <= 0:
            return "zero"
        return None

    def _resolve(self, t, clause_start, clause_end, pending, softs, heading, done) -> None:
        """Give each quantity of one clause its category (module docstring, steps 1–3).

        Within a clause, 、 and spaces separate items more weakly than ,or ;. So the words just
        before a number are read first back to the nearest 、/space, then the words after it (up
        to the next quantity, or to a 、/space before it: "出动8人、清理小广告15处" leaves the 8人
        without one), then back to the previous quantity or the clause start, then the heading.
        """
        last = len(pending) - 1
        for i, (q_start, q_end, value, unit, plan) in enumerate(pending):
            bound = pending[i - 1][1] if i else clause_start
            near = bound
            for s_start, s_end in softs:
                if s_start >= bound and s_end <= q_start and t[s_end:q_start].strip():
                    near = s_end
            how = "before"
            found = self.category_in(t, near, q_start)
            if found is None:
                after_end = clause_end
                if i < last:
                    after_end = pending[i + 1][0]
                    for s_start, _ in softs:
                        if q_end <= s_start < after_end:
                            after_end = s_start
                            break
                found = self.category_in(t, q_end, after_end)
                how = "after"
            if found is None and near != bound:
                found = self.category_in(t, bound, q_start)
                how = "before"
            if found is None and heading is not None:
                found, how = heading, "heading"
            done.append((q_start, q_end, value, unit, found, how, plan))


def _date_finding(m: re.Match, mark: DateMark | None) -> Finding:
    if mark is None:
        return Finding(m.start(), m.end(), m.group(), None, "", "skipped", "not_a_day")
    if mark.planned:
        return Finding(m.start(), m.end(), m.group(), None, "", "date", "plan")
    return Finding(m.start(), m.end(), m.group(), None, "", "date", "date", word=mark.day.isoformat())


@functools.lru_cache(maxsize=32)
def _compiled(vocab: Vocabulary) -> Parser:
    return Parser(vocab)


@functools.lru_cache(maxsize=32)
def _vocab_for(categories: tuple[Category, ...]) -> Vocabulary:
    return build_vocabulary(categories)


_last: tuple[object, Parser] | None = None


def compile_categories(vocabulary: Vocabulary | Sequence[Category]) -> Parser:
    """The (cached) parser for a vocabulary, or for a bare category list with the default units.
    The config hands out the same object until it is reloaded, so that object is checked first:
    hashing every category costs more than a short report's parse."""
    global _last
    last = _last
    if last is not None and last[0] is vocabulary:
        return last[1]
    if isinstance(vocabulary, Vocabulary):
        parser = _compiled(vocabulary)
    else:
        parser = _compiled(_vocab_for(tuple(vocabulary)))
    _last = (vocabulary, parser)
    return parser


def parse_report(text: str, vocabulary: Vocabulary | Sequence[Category], message_date: datetime.date,
                 *, explain: bool = False) -> ParsedReport:
    return compile_categories(vocabulary).parse(text, message_date, explain)
