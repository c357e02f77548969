"""Facilities: headers, coordinate systems, swapped pairs, service flags, row accounting."""

import geopandas as gpd
import numpy as np
import pandas as pd
import pyproj
import pytest
from shapely.geometry import Point, box

from conftest import shared_data

from carecircle.layers import crs
from carecircle.layers.facilities import DEFAULT_KEYWORDS, read_facilities
from carecircle.errors import InputError

UTM51 = "EPSG:32651"
GEOD = pyproj.Geod(ellps="WGS84")
# eviltransform's Shanghai reference pair (see test_crs.py): WGS-84 and its GCJ-02 image
WGS = (121.5272106, 31.1774276)
GCJ = (121.531541859215, 31.17530398364597)


def write(tmp_path, text, name="fac.csv", encoding="utf-8"):
    p = tmp_path / name
    p.write_bytes(text.encode(encoding))
    return p


def accounted(report, gdf):
    assert report.read == report.kept + len(report.rejected)
    assert report.kept == len(gdf)


def test_gcj02_csv_with_chinese_headers_lands_on_the_wgs84_point(tmp_path):
    p = write(
        tmp_path,
        f"名称,类型,地址,经度,纬度,建筑面积,床位\n浦东日间照料中心,日间照料中心（含助餐）,浦东新区某路1号,{GCJ[0]},{GCJ[1]},500㎡,30\n",
        encoding="gbk",
    )
    gdf, report = read_facilities(p, crs="gcj02", target_crs=UTM51)
    accounted(report, gdf)
    row = gdf.iloc[0]
    assert GEOD.inv(row.lon, row.lat, *WGS)[2] < 1.0
    ex, ey = crs.transform_xy([WGS[0]], [WGS[1]], 4326, UTM51)
    assert np.hypot(row.geometry.x - ex[0], row.geometry.y - ey[0]) < 1.0
    assert list(gdf.columns) == ["fid", "source_row", "name", "type", "address", "floor_area_m2", "beds",
                                 "capacity", "day_care", "meal", "street_centre", "institution", "lon", "lat", "geometry"]
    assert (row.fid, row.source_row, row["name"], row.address) == (0, 2, "浦东日间照料中心", "浦东新区某路1号")
    assert (row.floor_area_m2, row.beds) == (500.0, 30.0)
    assert (row.day_care, row.meal, row.street_centre, row.institution) == (True, True, False, False)
    assert gdf.crs == pyproj.CRS(UTM51)


def test_bd09_and_projected_input(tmp_path):
    blon, blat = crs.from_wgs84([WGS[0]], [WGS[1]], "bd09")
    p = write(tmp_path, f"name,lng,lat\nA,{float(blon[0])!r},{float(blat[0])!r}\n")
    gdf, _ = read_facilities(p, crs="bd09", target_crs=UTM51)
    assert GEOD.inv(gdf.lon[0], gdf.lat[0], *WGS)[2] < 0.01
    x, y = crs.transform_xy([WGS[0]], [WGS[1]], 4326, 4549)  # CGCS2000 3° GK 120°E
    p = write(tmp_path, f"名称,X,Y\nB,{x[0]:.3f},{y[0]:.3f}\n")
    gdf, _ = read_facilities(p, crs="EPSG:4549", target_crs=UTM51)
    assert GEOD.inv(gdf.lon[0], gdf.lat[0], *WGS)[2] < 0.5  # CGCS2000 vs WGS-84: centimetres


def test_swapped_pairs_rejected_or_fixed(tmp_path):
    p = write(tmp_path, "名称,经度,纬度\n甲,120.30,31.50\n乙,31.51,120.31\n丙,120.32,31.52\n")
    gdf, report = read_facilities(p, target_crs=UTM51)
    accounted(report, gdf)
    assert gdf["name"].tolist() == ["甲", "丙"]
    assert report.rejected["reason"].tolist() == ["lat/lng swapped (set auto_fix: true to correct)"]
    assert report.rejected["row"].tolist() == [3]
    gdf, report = read_facilities(p, target_crs=UTM51, auto_fix=True)
    accounted(report, gdf)
    assert gdf["name"].tolist() == ["甲", "乙", "丙"]
    assert (gdf.lon[1], gdf.lat[1]) == (120.31, 31.51)
    assert any("swapped" in n for n in report.notes)


def test_projected_swapped_columns_detected(tmp_path):
    x, y = crs.transform_xy([120.3], [31.5], 4326, UTM51)
    p = write(tmp_path, f"名称,x,y\n甲,{y[0]:.2f},{x[0]:.2f}\n")
    _, report = read_facilities(p, crs=UTM51, target_crs=UTM51)
    assert report.rejected["reason"].tolist() == ["lat/lng swapped (set auto_fix: true to correct)"]
    gdf, _ = read_facilities(p, crs=UTM51, target_crs=UTM51, auto_fix=True)
    assert abs(gdf.lon[0] - 120.3) < 1e-6 and abs(gdf.lat[0] - 31.5) < 1e-6


def test_every_bad_row_has_its_reason(tmp_path):
    text = (
        "名称,经度,纬度\n"
        "好,120.30,31.50\n"  # 2 kept
        "空,,\n"  # 3
        "字,东经120度,31.5\n"  # 4
        "无穷,inf,31.5\n"  # 5
        "超界,200,95\n"  # 6
        "巴黎,2.35,48.86\n"  # 7
        "好,120.30,31.50\n"  # 8 duplicate of 2
        "非数,NaN,31.5\n"  # 9
    )
    gdf, report = read_facilities(write(tmp_path, text), target_crs=UTM51)
    accounted(report, gdf)
    reasons = dict(zip(report.rejected["row"], report.rejected["reason"]))
    assert reasons == {
        3: "missing coordinates",
        4: "non-numeric coordinates",
        5: "non-finite coordinates",
        6: "coordinates out of range",
        7: "outside China",
        8: "duplicate (same name and location as an earlier row)",
        9: "missing coordinates",
    }
    assert gdf["source_row"].tolist() == [2]


def test_study_area_filter_and_no_overlap_error(tmp_path):
    x, y = crs.transform_xy([120.30, 120.40], [31.50, 31.60], 4326, UTM51)
    area = box(x[0] - 500, y[0] - 500, x[0] + 500, y[0] + 500)
    p = write(tmp_path, "名称,经度,纬度\n内,120.30,31.50\n外,120.40,31.60\n")
    gdf, report = read_facilities(p, target_crs=UTM51, study_area=area)
    assert gdf["name"].tolist() == ["内"] and report.rejected["reason"].tolist() == ["outside study area"]
    far = box(0, 0, 10, 10)
    with pytest.raises(InputError, match="no facility lies within the study area"):
        read_facilities(p, target_crs=UTM51, study_area=far)


def test_keywords_several_flags_and_explicit_columns(tmp_path):
    text = (
        "名称,类型,日间照料\n"
        "梁溪区综合养老服务中心,日间照料+助餐,\n"
        "幸福敬老院,养老机构,是\n"
        "老年食堂,,否\n"
        "Sunshine Day Care,meal,\n"
    )
    rows = "\n".join(f"{line},120.3{i},31.5" for i, line in enumerate(text.splitlines()[1:]))
    p = write(tmp_path, "名称,类型,日间照料,经度,纬度\n" + rows + "\n")
    gdf, _ = read_facilities(p, target_crs=UTM51, columns={"day_care": "日间照料"})
    got = gdf[list(DEFAULT_KEYWORDS)].to_numpy().tolist()
    assert got == [
        [True, True, True, False],  # keywords: 日间照料, 助餐, 综合养老服务中心
        [True, False, False, True],  # 是 in the explicit column
        [False, True, False, False],  # 否 overrides nothing; 食堂 → meal
        [True, True, False, False],  # English keywords, case-insensitive
    ]
    custom = {"day_care": ["照料"], "meal": ["助餐点"]}
    gdf, _ = read_facilities(p, target_crs=UTM51, keywords=custom)
    assert list(gdf.columns[8:10]) == ["day_care", "meal"] and gdf["meal"].tolist() == [False] * 4


def test_columns_override_and_missing_required_column(tmp_path):
    p = write(tmp_path, "机构,东,北,kind\nA,120.3,31.5,养老院\n")
    gdf, _ = read_facilities(p, target_crs=UTM51, columns={"x": "东", "y": "北", "name": "机构", "type": "kind"})
    assert (gdf["name"][0], gdf["type"][0], bool(gdf["institution"][0])) == ("A", "养老院", True)
    with pytest.raises(InputError) as err:
        read_facilities(write(tmp_path, "名称,地址\nA,某路\n"), target_crs=UTM51)
    assert "\n" not in str(err.value) and "no column for x" in str(err.value) and "fac.csv" in str(err.value)
    with pytest.raises(InputError, match="not a known coordinate system"):
        read_facilities(p, crs="mars", target_crs=UTM51, columns={"x": "东", "y": "北"})
    with pytest.raises(InputError, match="unknown key"):
        read_facilities(p, target_crs=UTM51, columns={"lon": "东"})


def test_location_column_and_xlsx(tmp_path):
    p = write(tmp_path, "name,location,type\n甲,\"120.3,31.5\",助餐点\n")
    gdf, _ = read_facilities(p, target_crs=UTM51)
    assert (gdf.lon[0], gdf.lat[0], bool(gdf.meal[0])) == (120.3, 31.5, True)
    from openpyxl import Workbook

    wb = Workbook()
    wb.active.append(["名称", "经度", "纬度", "床位数"])
    wb.active.append(["甲养老院", 120.3, 31.5, 100])
    wb.active.append(["乙", None, None, None])
    x = tmp_path / "f.xlsx"
    wb.save(x)
    gdf, report = read_facilities(x, target_crs=UTM51)
    accounted(report, gdf)
    assert gdf.beds.tolist() == [100.0] and report.rejected["row"].tolist() == [3]


def test_vector_layer_declared_wgs84_but_gcj02(tmp_path):
    g = gpd.GeoDataFrame({"名称": ["甲", "乙"], "类型": ["日间照料", "助餐"]},
                         geometry=[Point(*GCJ), None], crs="EPSG:4326")
    p = tmp_path / "fac.geojson"
    g.to_file(p, driver="GeoJSON")
    gdf, report = read_facilities(p, crs="gcj02", target_crs=UTM51)
    accounted(report, gdf)
    assert GEOD.inv(gdf.lon[0], gdf.lat[0], *WGS)[2] < 1.0
    assert report.rejected["reason"].tolist() == ["missing geometry"]
    gdf, _ = read_facilities(p, target_crs=UTM51)  # as declared
    assert GEOD.inv(gdf.lon[0], gdf.lat[0], *GCJ)[2] < 1e-3


@pytest.mark.shared
def test_real_shanghai_list_gcj02():
    path = shared_data("facilities", "shanghai_elderly_care_orgs_gcj02.csv")
    gdf, report = read_facilities(path, crs="gcj02", target_crs=UTM51)
    accounted(report, gdf)
    assert (report.read, report.kept) == (72, 71)
    assert report.rejected["reason"].tolist() == ["missing coordinates"]
    assert report.rejected["name"].tolist() == ["爱照护总部"]
    raw = pd.read_csv(path)
    sh = raw["city_guess"].eq("上海").to_numpy()[raw["lat"].notna().to_numpy()]
    assert sh.sum() == 63
    lon, lat = gdf.lon.to_numpy()[sh], gdf.lat.to_numpy()[sh]
    # Shanghai's extent (120.85–122.0 E, 30.67–31.9 N); the coast east of 122.0 E is sea
    assert lon.min() > 120.85 and lon.max() < 122.0 and lat.min() > 30.67 and lat.max() < 31.9
    # the conversion moved every point by the GCJ-02 offset (300–700 m in Shanghai), westward
    glon, glat = raw["lng"].dropna().to_numpy()[sh], raw["lat"].dropna().to_numpy()[sh]
    shift = GEOD.inv(lon, lat, glon, glat)[2]
    assert shift.min() > 300 and shift.max() < 700 and np.all(lon < glon)
    assert gdf["institution"].sum() >= 20  # 养老院/敬老院/福利院 in the names
