"""Households named in visit reports: one spelling per home, so coverage counts each once."""

from __future__ import annotations

import pytest

from bot.households import named_households


@pytest.mark.parametrize("text, homes", [
    ("走访3栋2单元302户", ["3栋2单元302"]),
    ("入户走访3户:3栋2单元302、3栋2单元401、5栋1单元101", ["3栋2单元302", "3栋2单元401", "5栋1单元101"]),
    ("入户走访12户,其中3号楼2单元302室", ["3栋2单元302"]),  # 3号楼 and 3栋 are one building
    ("走访幸福小区5栋301户、502户", ["幸福小区5栋301", "幸福小区5栋502"]),  # 502 is in the same building
    ("慰问和平花园1号楼2单元101", ["和平花园1栋2单元101"]),
    ("入户走访2户(3-2-302、5-1-101)", ["3栋2单元302", "5栋1单元101"]),
    ("上门走访3幢1单元201", ["3栋1单元201"]),
    ("走访３栋２单元３０２户", ["3栋2单元302"]),  # full-width digits
    ("走访3栋2单元302户,又去了3号楼2单元302室", ["3栋2单元302"]),  # named twice, one home
    ("走访3号楼302、303和305室,电话13812345678", ["3栋302", "3栋303", "3栋305"]),
    ("入户走访12户", []),
    ("2026-11-25 入户走访", []),  # a date is no address
])
def test_households_named_in_a_report(text, homes):
    assert named_households(text) == homes
