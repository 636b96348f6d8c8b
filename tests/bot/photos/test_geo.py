"""Geofences and the WGS-84 to GCJ-02 transform."""

from __future__ import annotations

import pytest

from bot.config import Geofence
from bot.photos.geo import check_fence, distance_m, wgs84_to_gcj02


def test_wgs84_to_gcj02_matches_the_published_transform():
    lat, lng = wgs84_to_gcj02(31.1774276, 121.5272106)  # Shanghai
    assert (lat, lng) == pytest.approx((31.17530398364597, 121.531541859215), abs=1e-9)
    assert wgs84_to_gcj02(48.8584, 2.2945) == (48.8584, 2.2945)  # outside China: unchanged


def test_circle_fence():
    fence = Geofence(lat=39.9087, lng=116.3975, radius_m=300)
    assert check_fence(fence, 39.9100, 116.3990).inside
    far = check_fence(fence, 39.9200, 116.3975)
    assert not far.inside and far.from_centre_m == pytest.approx(1256, rel=0.01)


def test_concave_polygon_fence():
    # An L-shaped grid: the notch at the top right is outside.
    poly = [(30.000, 120.000), (30.000, 120.010), (30.005, 120.010), (30.005, 120.005),
            (30.010, 120.005), (30.010, 120.000)]
    fence = Geofence(polygon=poly)
    assert check_fence(fence, 30.002, 120.008).inside
    assert check_fence(fence, 30.008, 120.002).inside
    assert not check_fence(fence, 30.008, 120.008).inside
    assert not check_fence(fence, 29.999, 120.005).inside


def test_distance_m():
    # One degree of latitude is about 111.2 km.
    assert distance_m(30, 120, 31, 120) == pytest.approx(111_195, rel=1e-3)
