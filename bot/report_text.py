"""A report's text made ready for counting: Traditional characters to simplified (OpenCC),
full-width characters folded, the admin's synonyms replaced, and quoted text set apart.

The original message is stored as sent; only the parser reads this form. Quoted messages (a
reply that quotes the leader's "今天每人至少走访20户") are blanked out with line breaks, keeping
every position, so none of their numbers or words is counted and `parse --explain` can still
point at them.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass

from bot.numbers_zh import normalize

_converter = None
_converter_lock = threading.Lock()


def to_simplified(text: str) -> str:
    """Traditional → simplified with OpenCC's own tables (t2s), which leave simplified text as it
    is. Pure ASCII has nothing to convert, which saves the call for "R12"-like messages."""
    global _converter
    if text.isascii():
        return text
    if _converter is None:
        with _converter_lock:
            if _converter is None:
                import opencc
                _converter = opencc.OpenCC("t2s")
    return _converter.convert(text)


# 「…」 and 『…』 are quotation marks in any case. Double quotes are also used for titles and
# emphasis (发放“垃圾分类”宣传单), so they only quote when they follow a name and a colon or a
# verb of saying: 李主任:“…”, 王书记说“…”.
_CORNER = re.compile(r"「[^」]*(?:」|$)|『[^』]*(?:』|$)", re.M)
_SAID = re.compile(r"(?:[::]|(?:说|讲|道|要求|强调|指出|通知|提出)[,:]?)\s*(“[^”]*(?:”|$)|\"[^\"\n]*(?:\"|$))", re.M)
# The separator WeCom and WeChat put under a quoted message in a reply ("- - - - - -"):
# everything above it is the quote.
# A corner-quoted phrase (「门前三包」) keeps its words for telling categories apart; a quoted
# message (with a speaker's colon, a line break, a figure, or simply long) is blanked whole.
_QUOTED_MESSAGE = re.compile(r"[:\n\d]")
_QUOTE_RULE = re.compile(r"^[ \t]*(?:[-—–][ \t]*){5,}$", re.M)


@dataclass(frozen=True)
class Quote:
    start: int
    end: int
    whole: bool  # a quoted message: blanked, words and all; else a quoted phrase: its numbers do not count


@dataclass(frozen=True)
class Prepared:
    text: str  # what the parser reads (same length as `shown`)
    shown: str  # the normalised text before quotes were blanked, for explanations
    quotes: tuple[Quote, ...]


def _blank(text: str, start: int, end: int) -> str:
    return text[:start] + "\n" * (end - start) + text[end:]


def find_quotes(text: str) -> list[Quote]:
    quotes: list[Quote] = []
    rule = _QUOTE_RULE.search(text) if "-" in text or "—" in text or "–" in text else None
    if rule is not None:
        quotes.append(Quote(0, rule.end(), True))
    covered = quotes[0].end if quotes else 0
    if "「" in text or "『" in text:
        for m in _CORNER.finditer(text, covered):
            body = m.group()
            quotes.append(Quote(m.start(), m.end(), _QUOTED_MESSAGE.search(body) is not None or len(body) > 10))
    if "“" in text or '"' in text:
        for m in _SAID.finditer(text, covered):
            quotes.append(Quote(m.start(1), m.end(1), True))
    return quotes


def prepare(text: str, synonyms: re.Pattern | None = None, synonym_map=None) -> Prepared:
    shown = normalize(to_simplified(text))
    if synonyms is not None:
        shown = synonyms.sub(lambda m: synonym_map[m.group()], shown)
    quotes = find_quotes(shown)
    masked = shown
    for q in quotes:
        if q.whole:
            masked = _blank(masked, q.start, q.end)
    return Prepared(masked, shown, tuple(quotes))


def unquoted(text: str) -> str:
    """The text as the parser reads it, quoted messages blanked: what the sender wrote themselves."""
    return prepare(text).text
