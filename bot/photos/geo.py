"""Where a photo was taken, and whether that lies in a grid's geofence.

WeCom location messages and Chinese maps use GCJ-02 coordinates while cameras write WGS-84 into
EXIF; the two differ by up to ~700 m in China, so EXIF GPS is converted before it is compared
with a grid's geofence (which is read as GCJ-02, like everything people pick on a map).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

from bot.config import Geofence

EARTH_RADIUS_M = 6_371_008.8


def distance_m(lat1: float, lng1: float, lat2: float, lng2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lng2 - lng1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(a)))


def in_polygon(lat: float, lng: float, polygon: Sequence[Sequence[float]]) -> bool:
    """Ray casting on (lng, lat) as plane coordinates: exact enough for a grid's few hundred metres."""
    inside = False
    n = len(polygon)
    for i in range(n):
        (ay, ax), (by, bx) = polygon[i], polygon[(i + 1) % n]
        if (ay > lat) != (by > lat):
            x = ax + (lat - ay) * (bx - ax) / (by - ay)
            if lng < x:
                inside = not inside
    return inside


@dataclass(frozen=True)
class FenceResult:
    inside: bool
    from_centre_m: float | None  # for a circular fence


def check_fence(fence: Geofence, lat: float, lng: float) -> FenceResult:
    """Inside the polygon or the circle (either one counts when both are configured)."""
    inside, dist, judged = False, None, False
    if fence.polygon and len(fence.polygon) >= 3:
        judged = True
        inside = in_polygon(lat, lng, fence.polygon)
    if None not in (fence.lat, fence.lng, fence.radius_m):
        judged = True
        dist = distance_m(fence.lat, fence.lng, lat, lng)  # type: ignore[arg-type]
        inside = inside or dist <= fence.radius_m  # type: ignore[operator]
    return FenceResult(inside or not judged, dist)


_GCJ_A = 6378245.0
_GCJ_EE = 0.00669342162296594323


def _out_of_china(lat: float, lng: float) -> bool:
    return not (72.004 <= lng <= 137.8347 and 0.8293 <= lat <= 55.8271)


def _gcj_dlat(x: float, y: float) -> float:
    r = -100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * math.sqrt(abs(x))
    r += (20.0 * math.sin(6.0 * x * math.pi) + 20.0 * math.sin(2.0 * x * math.pi)) * 2.0 / 3.0
    r += (20.0 * math.sin(y * math.pi) + 40.0 * math.sin(y / 3.0 * math.pi)) * 2.0 / 3.0
    r += (160.0 * math.sin(y / 12.0 * math.pi) + 320.0 * math.sin(y * math.pi / 30.0)) * 2.0 / 3.0
    return r


def _gcj_dlng(x: float, y: float) -> float:
    r = 300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * math.sqrt(abs(x))
    r += (20.0 * math.sin(6.0 * x * math.pi) + 20.0 * math.sin(2.0 * x * math.pi)) * 2.0 / 3.0
    r += (20.0 * math.sin(x * math.pi) + 40.0 * math.sin(x / 3.0 * math.pi)) * 2.0 / 3.0
    r += (150.0 * math.sin(x / 12.0 * math.pi) + 300.0 * math.sin(x / 30.0 * math.pi)) * 2.0 / 3.0
    return r


def wgs84_to_gcj02(lat: float, lng: float) -> tuple[float, float]:
    """The published GCJ-02 transform; identity outside China, where the offset does not apply."""
    if _out_of_china(lat, lng):
        return lat, lng
    dlat = _gcj_dlat(lng - 105.0, lat - 35.0)
    dlng = _gcj_dlng(lng - 105.0, lat - 35.0)
    rad = lat / 180.0 * math.pi
    magic = 1 - _GCJ_EE * math.sin(rad) ** 2
    sq = math.sqrt(magic)
    dlat = (dlat * 180.0) / ((_GCJ_A * (1 - _GCJ_EE)) / (magic * sq) * math.pi)
    dlng = (dlng * 180.0) / (_GCJ_A / sq * math.cos(rad) * math.pi)
    return lat + dlat, lng + dlng

