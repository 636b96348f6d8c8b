"""Capture time and GPS position from a photo's EXIF, which is untrusted and often malformed.

The position is WGS-84, as cameras write it; bot.photos.geo converts it before any geofence check.
"""

from __future__ import annotations

import math
import re
from datetime import datetime, timedelta, timezone, tzinfo
from typing import Any

from PIL import Image

EXIF_IFD = 0x8769
GPS_IFD = 0x8825
DATETIME = 306
DATETIME_ORIGINAL = 36867
DATETIME_DIGITIZED = 36868
OFFSET_TIME_ORIGINAL = 36881
_EXIF_TIME = re.compile(r"(\d{4})[:\-](\d{2})[:\-](\d{2})[ T](\d{2}):(\d{2}):(\d{2})")
_OFFSET = re.compile(r"([+-])(\d{2}):?(\d{2})")


def read_exif(img: Image.Image | Image.Exif, tz: tzinfo) -> tuple[datetime | None, tuple[float, float] | None]:
    """Capture time and GPS position; (None, None) when absent or unreadable, never an error."""
    try:
        # An Exif as read at decode: a PNG's getexif() would decode the whole image to find it.
        exif = img if isinstance(img, Image.Exif) else img.getexif()
        sub = exif.get_ifd(EXIF_IFD)
        raw = sub.get(DATETIME_ORIGINAL) or sub.get(DATETIME_DIGITIZED) or exif.get(DATETIME)
        when = parse_exif_time(raw, sub.get(OFFSET_TIME_ORIGINAL), tz)
    except Exception:  # malformed EXIF comes in every shape; a check-in must not fail on it
        when = None
        exif = None
    try:
        gps = parse_gps(exif.get_ifd(GPS_IFD)) if exif is not None else None
    except Exception:
        gps = None
    return when, gps


def _text(v: Any) -> str:
    if isinstance(v, bytes):
        v = v.decode("ascii", "ignore")
    return v if isinstance(v, str) else ""


def parse_exif_time(raw: Any, offset: Any, tz: tzinfo) -> datetime | None:
    m = _EXIF_TIME.search(_text(raw))
    if not m:
        return None
    try:
        naive = datetime(*(int(g) for g in m.groups()))
    except ValueError:
        return None
    if naive.year < 2001:  # a camera whose clock was reset: the time says nothing
        return None
    zone: tzinfo = tz
    om = _OFFSET.fullmatch(_text(offset).strip())
    if om:
        mins = int(om.group(2)) * 60 + int(om.group(3))
        zone = timezone(timedelta(minutes=-mins if om.group(1) == "-" else mins))
    return naive.replace(tzinfo=zone).astimezone(tz)


def _degrees(v: Any) -> float:
    parts = [float(x) for x in v]
    while len(parts) < 3:
        parts.append(0.0)
    return parts[0] + parts[1] / 60 + parts[2] / 3600


def parse_gps(gps: dict) -> tuple[float, float] | None:
    if not gps or 2 not in gps or 4 not in gps:
        return None
    lat, lng = _degrees(gps[2]), _degrees(gps[4])
    if _text(gps.get(1)).upper().startswith("S"):
        lat = -lat
    if _text(gps.get(3)).upper().startswith("W"):
        lng = -lng
    if not (math.isfinite(lat) and math.isfinite(lng)) or abs(lat) > 90 or abs(lng) > 180:
        return None
    if lat == 0 and lng == 0:  # "no fix" written as zeros
        return None
    return round(lat, 6), round(lng, 6)

