"""Reading and showing single config values: a time of day as an office admin writes it, and any
value as it stood in the TOML (for error messages)."""

from __future__ import annotations

import re
import unicodedata
from datetime import time

from pydantic import BaseModel, ConfigDict


def _toml(v: object) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return f'"{v}"'
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{k} = {_toml(x)}" for k, x in v.items()) + " }"
    return str(v)


def show_value(v: object) -> str:
    """A value as the admin typed it in TOML, for error messages (never used for secrets)."""
    text = _toml(v)
    return text if len(text) <= 40 else text[:40] + "…"


_HHMM = re.compile(r"^(\d{1,2}):(\d{2})(?::(\d{2}))?$")


def time_of_day(v: object) -> time:
    """ "08:30", "8:30", "08:30:00" or a TOML time (08:30:00). A bare number is refused: pydantic
    would read 8 as eight seconds past midnight, not eight o'clock."""
    if isinstance(v, time):
        return v
    if isinstance(v, str):
        # Full-width digits and colon (８：３０) are what a Chinese input method types.
        m = _HHMM.match(unicodedata.normalize("NFKC", v).strip())
        if m:
            h, mi, sec = int(m[1]), int(m[2]), int(m[3] or 0)
            if h < 24 and mi < 60 and sec < 60:
                return time(h, mi, sec)
    raise ValueError(f'应为时间,格式如 "08:30",写成了 {show_value(v)}')


class Section(BaseModel):
    """Every config section: unknown keys are typos more often than not, refused with their line."""
    model_config = ConfigDict(extra="forbid", frozen=True)
