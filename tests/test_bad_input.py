"""Malformed input: every row is kept or rejected with a reason, or the file is refused with InputError.

Never another exception: the CLI turns InputError into exit code 2 with one line, anything
else is an internal error (exit 1).
"""

import csv
import io
import math

import geopandas as gpd
import numpy as np
import pytest
import shapely
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openpyxl import Workbook
from shapely.geometry import Polygon

from carecircle.layers import crs
from carecircle.layers.areas import read_communities
from carecircle.layers.facilities import read_facilities
from carecircle.layers.population import read_population_points
from carecircle.errors import InputError

UTM51 = "EPSG:32651"
SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

coordinate = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.floats(73.0, 136.0).map(lambda v: f"{v:.6f}"),
    st.floats(3.0, 54.0).map(lambda v: f"{v:.6f}"),
    st.sampled_from(["", " ", "nan", "NaN", "inf", "-inf", "１２０.５", "1,200", "东经120度", "null", "1e400", "--"]),
)
text = st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=12)
field = st.one_of(coordinate, text, st.sampled_from(["日间照料中心", "助餐点", "养老院", "综合养老服务中心"]))
row = st.lists(field, min_size=0, max_size=7)


def check_rows_counted(out, data_rows: int):
    """Nothing readable and nothing there, or every non-blank data row counted; the kept rows."""
    if out is None:
        assert data_rows == 0
        return None
    gdf, report = out
    check_facilities(gdf, report)
    assert report.read == data_rows
    return gdf


def check_facilities(gdf, report):
    assert report.read == report.kept + len(report.rejected)
    assert report.kept == len(gdf)
    assert gdf["fid"].tolist() == list(range(len(gdf)))
    assert gdf["source_row"].is_unique
    assert set(gdf["source_row"]).isdisjoint(set(report.rejected["row"]))
    assert np.isfinite(gdf.geometry.x).all() and np.isfinite(gdf.geometry.y).all()
    assert crs.in_china(gdf["lon"].to_numpy(), gdf["lat"].to_numpy()).all()
    assert report.rejected["reason"].map(lambda r: isinstance(r, str) and r != "").all()


def run(path, **kw):
    try:
        return read_facilities(path, target_crs=UTM51, **kw)
    except InputError as err:
        assert "\n" not in str(err) and str(path) in str(err)
        return None


@SETTINGS
@given(rows=st.lists(row, min_size=1, max_size=25), encoding=st.sampled_from(["utf-8", "utf-8-sig", "gbk", "gb18030"]), auto_fix=st.booleans())
def test_well_formed_csv_with_garbage_values(tmp_path_factory, rows, encoding, auto_fix):
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["名称", "类型", "经度", "纬度"])
    w.writerows(rows)
    p = tmp_path_factory.mktemp("csv") / "fac.csv"
    p.write_bytes(buf.getvalue().encode(encoding, errors="replace"))
    out = run(p, auto_fix=auto_fix)
    check_rows_counted(out, sum(1 for r in rows if any(f.strip() for f in r)))


@SETTINGS
@given(blob=st.binary(max_size=400), header=st.booleans())
def test_garbage_bytes(tmp_path_factory, blob, header):
    p = tmp_path_factory.mktemp("bin") / "fac.csv"
    p.write_bytes(("名称,经度,纬度\n".encode("gbk") if header else b"") + blob)
    out = run(p)
    if out is not None:
        check_facilities(*out)


@SETTINGS
@given(
    lines=st.lists(st.lists(st.sampled_from(["120.3", "31.5", "", '"', '"a,b"', "x\ny", "甲", ",", "inf", "1e999"]), max_size=6), min_size=1, max_size=15),
    encodings=st.lists(st.sampled_from(["utf-8", "gbk", "latin-1"]), min_size=1, max_size=3),
)
def test_broken_quoting_and_mixed_encodings(tmp_path_factory, lines, encodings):
    # lines joined without a csv writer (stray quotes, embedded newlines) and each line in
    # its own encoding: the mixed files Excel users produce by appending to a CSV
    body = b"".join(
        (",".join(fields) + "\n").encode(encodings[i % len(encodings)], errors="replace") for i, fields in enumerate(lines)
    )
    p = tmp_path_factory.mktemp("mixed") / "fac.csv"
    p.write_bytes("名称,经度,纬度\n".encode("utf-8") + body)
    out = run(p)
    if out is not None:
        check_facilities(*out)


# openpyxl refuses control characters, so cells draw printable text
printable = st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")), max_size=12)
cell = st.one_of(st.none(), st.floats(allow_nan=False, allow_infinity=False), st.integers(-10**6, 10**6), printable, st.sampled_from(["inf", "nan", "120.3", "31.5"]))


@SETTINGS
@given(rows=st.lists(st.lists(cell, min_size=0, max_size=5), min_size=1, max_size=15))
def test_xlsx_with_garbage_cells(tmp_path_factory, rows):
    wb = Workbook()
    wb.active.append(["名称", "经度", "纬度", "床位", "面积"])
    for r in rows:
        wb.active.append([("'" + v if isinstance(v, str) and v.startswith("=") else v) for v in r])
    p = tmp_path_factory.mktemp("xlsx") / "fac.xlsx"
    wb.save(p)
    out = run(p)
    gdf = check_rows_counted(out, sum(1 for r in rows if any(v is not None and str(v).strip() for v in r)))
    if gdf is not None:
        assert ((gdf["beds"] >= 0) | gdf["beds"].isna()).all()


def elderly(count):
    """A third of a finite count; NaN, inf and None pass through as the junk they are."""
    return count / 3 if isinstance(count, (int, float)) and math.isfinite(count) else count


ring = st.lists(st.tuples(st.floats(0, 1000), st.floats(0, 1000)), min_size=3, max_size=7)


@SETTINGS
@given(rings=st.lists(st.one_of(st.none(), ring), min_size=1, max_size=8), counts=st.lists(st.one_of(st.floats(), st.integers(-5, 10**5), st.none()), min_size=8, max_size=8))
def test_invalid_geometries_and_counts(tmp_path_factory, rings, counts):
    geoms = [None if r is None else Polygon([(820_000 + x, 3_490_000 + y) for x, y in r]) for r in rings]
    n = len(geoms)
    g = gpd.GeoDataFrame(
        {"社区名称": [f"社区{i}" for i in range(n)], "常住人口": counts[:n], "老年人口": [elderly(c) for c in counts[:n]]},
        geometry=geoms,
        crs="EPSG:32650",
    )
    d = tmp_path_factory.mktemp("geo")
    p = d / "com.gpkg"
    g.to_file(p)
    try:
        out, report = read_communities(p, target_crs="EPSG:32650")
    except InputError:
        return
    assert report.read == n == report.kept + len(report.rejected)
    assert shapely.is_valid(out.geometry.to_numpy()).all()
    assert out.geometry.geom_type.isin(["Polygon", "MultiPolygon"]).all()
    assert ((out["population"] >= 0) | out["population"].isna()).all()
    try:
        pts, preport = read_population_points(p, elderly_field="老年人口", target_crs="EPSG:32650")
    except InputError:
        return
    assert preport.read == n == preport.kept + len(preport.rejected)
    assert (np.isfinite(pts.people) & (pts.people >= 0) & (pts.elderly <= pts.people)).all()


def test_point_rows_outside_china_only_give_a_hint(tmp_path):
    p = tmp_path / "paris.csv"
    p.write_text("name,lng,lat\nA,2.35,48.86\nB,2.36,48.87\n", encoding="utf-8")
    gdf, report = read_facilities(p, target_crs=UTM51)
    assert len(gdf) == 0 and report.rejected["reason"].tolist() == ["outside China"] * 2
    assert any("check the crs" in n for n in report.notes)


@pytest.mark.parametrize("content", [b"\xff\xfe\x00garbage", b"\x00\x01\x02" * 50])
def test_binary_noise_is_an_input_error_or_accounted(tmp_path, content):
    p = tmp_path / "x.csv"
    p.write_bytes(content)
    out = run(p)
    if out is not None:
        check_facilities(*out)
