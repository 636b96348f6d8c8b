"""Households named in a visit report ("走访3栋2单元302户"), so coverage counts each home once.

Coverage (入户走访覆盖率) is distinct households visited over the grid's households. A count
("入户走访12户") cannot tell a new home from one visited last week; an address can. So a report
that names households counts those, each once a month however often it is named; a report that
names none counts its quantity, and the bulletin says how many were counted that way.

Recognised: 3栋2单元302(户/室/号), 3号楼2单元302, 3幢302室, 3-2-302, optionally after an estate
name (幸福小区5栋301户); "5栋301户、502户" names 5栋301 and 5栋502. All become one spelling,
"幸福小区5栋2单元302", so 3号楼 and 3栋 are the same building.
"""

from __future__ import annotations

import re
import unicodedata

_ESTATE = r"(?P<estate>[\u4e00-\u9fff]{1,10}?(?:小区|花园|家园|新村|公寓|大院|苑|园|里|村|院))?"
_FULL = re.compile(_ESTATE + r"(?P<bld>\d{1,3})\s*(?:栋|幢|座|号楼|号?楼)\s*(?:(?P<unit>\d{1,2})\s*单元)?\s*"
                   r"(?P<room>\d{2,4})\s*(?:户|室|号)?")
_DASHED = re.compile(_ESTATE + r"(?<![\d-])(?P<bld>\d{1,3})-(?P<unit>\d{1,2})-(?P<room>\d{2,4})(?![\d-])")
# More rooms of the same building after a named one: "、502户", "和601室".
_MORE = re.compile(r"\s*[、,,和及与/]\s*(?P<room>\d{2,4})\s*(?:户|室|号)?(?![\d栋幢座楼单元-])")


# Words that end a sentence's lead-in, never part of an estate's name: "走访幸福小区" is 幸福小区.
_LEAD_IN = re.compile(r"^.*(?:走访|入户|上门|慰问|探访|前往|其中|了)")
_ESTATE_END = re.compile(r"(?:小区|花园|家园|新村|公寓|大院|苑|园|里|村|院)$")


def _key(estate: str | None, bld: str, unit: str | None, room: str) -> str:
    estate = _LEAD_IN.sub("", estate or "")
    if not _ESTATE_END.search(estate):
        estate = ""
    return f"{estate}{int(bld)}栋" + (f"{int(unit)}单元" if unit else "") + str(int(room))


def named_households(text: str) -> list[str]:
    """The households a text names, in one spelling each, first mention first, no repeats."""
    text = unicodedata.normalize("NFKC", text or "")
    found: list[tuple[int, str]] = []
    taken: list[tuple[int, int]] = []
    for rx in (_FULL, _DASHED):
        for m in rx.finditer(text):
            if any(a < m.end() and m.start() < b for a, b in taken):
                continue
            taken.append((m.start(), m.end()))
            estate, bld, unit = m.group("estate"), m.group("bld"), m.group("unit")
            found.append((m.start(), _key(estate, bld, unit, m.group("room"))))
            pos = m.end()
            while (more := _MORE.match(text, pos)) is not None:
                found.append((more.start(), _key(estate, bld, unit, more.group("room"))))
                pos = more.end()
            taken[-1] = (m.start(), pos)
    out: list[str] = []
    for _, key in sorted(found):
        if key not in out:
            out.append(key)
    return out
