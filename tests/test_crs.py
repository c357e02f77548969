"""GCJ-02 / BD-09 conversions against published reference pairs, round trips, sanity checks."""

import numpy as np
import pyproj
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from carecircle.layers import crs

GEOD = pyproj.Geod(ellps="WGS84")


def metres(lon1, lat1, lon2, lat2):
    return np.asarray(GEOD.inv(lon1, lat1, lon2, lat2)[2])


# (wgs_lon, wgs_lat, gcj_lon, gcj_lat) from the eviltransform test suite
# (github.com/googollee/eviltransform, python/test.py and go/transform_test.go: Shanghai,
# Shenzhen, Beijing).
EVILTRANSFORM_WGS_GCJ = [
    (121.5272106, 31.1774276, 121.531541859215, 31.17530398364597),
    (113.912316, 22.543847, 113.9171764808363, 22.540796131694766),
    (116.377817, 39.911954, 116.38404722455657, 39.91334545536069),
]

# WGS84 / GCJ02 / BD09 triples from gcoord's fixture (github.com/hujiulong/gcoord,
# test/fixtures/china-cities.json: 驻马店, 沈阳, 泰州, 那曲), given to 7 decimals.
GCOORD_TRIPLES = [
    ((114.0164322, 33.0133556), (114.022306, 33.0115324), (114.0287781, 33.0176697)),
    ((123.4253306, 41.8032629), (123.4314787, 41.8057023), (123.438095, 41.8114013)),
    ((119.9183831, 32.4580023), (119.9231242, 32.4557802), (119.9296902, 32.4615531)),
    ((92.0499619, 31.4784436), (92.0512438, 31.4762063), (92.0576832, 31.4824421)),
]

# GCJ-02 → BD-09 from wandergis/coordtransform's test/app.js (the JS original of the
# coordTransform package): gcj02tobd09(116.404, 39.915).
WANDERGIS_GCJ_BD = ((116.404, 39.915), (116.41036949371029, 39.92133699351021))


@pytest.mark.parametrize("wlon,wlat,glon,glat", EVILTRANSFORM_WGS_GCJ)
def test_gcj02_matches_eviltransform_pairs(wlon, wlat, glon, glat):
    lon, lat = crs.from_wgs84([wlon], [wlat], "gcj02")
    assert metres(lon[0], lat[0], glon, glat) < 1.0
    lon, lat = crs.to_wgs84([glon], [glat], "gcj02")
    assert metres(lon[0], lat[0], wlon, wlat) < 1.0


@pytest.mark.parametrize("wgs,gcj,bd", GCOORD_TRIPLES)
def test_gcj02_bd09_match_gcoord_fixture(wgs, gcj, bd):
    for kind, ref in (("gcj02", gcj), ("bd09", bd)):
        lon, lat = crs.from_wgs84([wgs[0]], [wgs[1]], kind)
        assert metres(lon[0], lat[0], *ref) < 1.0
        lon, lat = crs.to_wgs84([ref[0]], [ref[1]], kind)
        assert metres(lon[0], lat[0], *wgs) < 1.0


def test_bd09_matches_wandergis_pair():
    (glon, glat), (blon, blat) = WANDERGIS_GCJ_BD
    wlon, wlat = crs.to_wgs84([blon], [blat], "bd09")
    lon, lat = crs.from_wgs84(wlon, wlat, "gcj02")
    assert metres(lon[0], lat[0], glon, glat) < 1.0


def test_offsets_are_hundreds_of_metres_in_shanghai():
    # the whole point of converting: Amap coordinates are ~300-600 m off WGS-84 in Shanghai
    glon, glat = 121.4737, 31.2304
    wlon, wlat = crs.to_wgs84([glon], [glat], "gcj02")
    assert 300 < metres(wlon[0], wlat[0], glon, glat) < 700


china = st.tuples(st.floats(75.0, 134.0), st.floats(18.0, 53.0))


@settings(max_examples=200, deadline=None)
@given(st.lists(china, min_size=1, max_size=20), st.sampled_from(["gcj02", "bd09"]))
def test_round_trip_within_a_centimetre(points, kind):
    lon, lat = np.array(points).T
    olon, olat = crs.from_wgs84(lon, lat, kind)
    blon, blat = crs.to_wgs84(olon, olat, kind)
    assert np.all(metres(blon, blat, lon, lat) < 0.01)


@settings(max_examples=100, deadline=None)
@given(st.floats(-179.0, 179.0), st.floats(-89.0, 89.0))
def test_sanity_flags_swapped_pairs(lon, lat):
    reasons = crs.lonlat_sanity([lon, lat], [lat, lon])
    inside = bool(crs.in_china([lon], [lat])[0])
    assert (reasons[0] == "") == inside
    if inside and not crs.in_china([lat], [lon])[0]:
        assert reasons[1] == "lat/lng swapped"


def test_sanity_reasons():
    nan, inf = float("nan"), float("inf")
    got = crs.lonlat_sanity([121.5, nan, inf, 200.0, 2.35, 31.2], [31.2, 31.2, 31.2, 95.0, 48.86, 121.5])
    assert list(got) == ["", "missing coordinates", "non-finite coordinates", "coordinates out of range", "outside China", "lat/lng swapped"]


def test_transform_xy_and_existing_helpers():
    x, y = crs.transform_xy([121.0], [31.0], "EPSG:4326", "EPSG:32651")
    lon, lat = crs.transform_xy(x, y, "EPSG:32651", 4326)
    assert metres(lon[0], lat[0], 121.0, 31.0) < 1e-6
    assert crs.utm_crs(120.3, 31.5).to_epsg() == 32651
    assert crs.gk3_crs(120.3).to_epsg() == 4549
    assert crs.parse_crs("高德")[0] == "gcj02"
