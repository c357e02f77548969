"""Reading CSV/XLSX/vector files: encodings, row numbers, header detection, numbers."""

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
from openpyxl import Workbook
from shapely.geometry import Point

from carecircle.layers.accounting import start_report
from carecircle.layers.columns import find_column, non_negative, text_column, to_number, X_CANDIDATES, Y_CANDIDATES
from carecircle.layers.locate import geometry_reason, study_zone
from carecircle.layers.readers import dbf_encoding, read_layer, read_table
from carecircle.errors import InputError

ROWS = "名称,经度,纬度,建筑面积\n幸福日间照料中心,120.31,31.49,500\n阳光助餐点,120.32,31.50,80\n"


@pytest.mark.parametrize(
    "encoding,reported",
    [("gbk", "gb18030"), ("gb18030", "gb18030"), ("utf-8-sig", "utf-8-bom"), ("utf-8", "utf-8")],
)
def test_csv_encodings_round_trip(tmp_path, encoding, reported):
    p = tmp_path / "fac.csv"
    p.write_bytes(ROWS.encode(encoding))
    df, meta = read_table(p)
    assert meta.encoding == reported
    assert list(df.columns) == ["名称", "经度", "纬度", "建筑面积", "row"]
    assert df["名称"].tolist() == ["幸福日间照料中心", "阳光助餐点"]
    assert df["row"].tolist() == [2, 3]


def test_mixed_utf8_and_gbk_lines(tmp_path):
    p = tmp_path / "mixed.csv"
    p.write_bytes("名称,经度,纬度\n甲养老院,120.1,31.1\n".encode("utf-8") + "乙日间照料中心,120.2,31.2\n".encode("gbk"))
    df, meta = read_table(p)
    assert meta.encoding == "mixed utf-8/gb18030"
    assert df["名称"].tolist() == ["甲养老院", "乙日间照料中心"]


def test_explicit_encoding_and_bad_explicit_encoding(tmp_path):
    p = tmp_path / "fac.csv"
    p.write_bytes(ROWS.encode("gbk"))
    df, meta = read_table(p, encoding="gbk")
    assert meta.encoding == "gbk" and df.iloc[0, 0] == "幸福日间照料中心"
    with pytest.raises(InputError, match="cannot decode as utf-8"):
        read_table(p, encoding="utf-8")


def test_csv_line_numbers_survive_blank_lines_quotes_and_title_rows(tmp_path):
    p = tmp_path / "fac.csv"
    text = (
        "某某区养老设施名单,,\n"  # line 1: title row
        "名称,经度,纬度\n"  # line 2: header
        "甲,120.1,31.1\n"  # 3
        "\n"  # 4 blank
        '"乙\n（分部）",120.2,31.2\n'  # 5-6: quoted newline
        ",,\n"  # 7 empty
        "丙,120.3,31.3,extra\n"  # 8: too many fields -> rejected
        "丁,120.4,31.4,,\n"  # 9: trailing empty fields -> kept
        "戊,120.5\n"  # 10: short -> padded
    )
    p.write_text(text, encoding="utf-8")
    df, meta = read_table(p)
    assert df["row"].tolist() == [3, 5, 9, 10]
    assert df["名称"].tolist() == ["甲", "乙\n（分部）", "丁", "戊"]
    assert pd.isna(df.loc[3, "纬度"])
    assert meta.rejected["row"].tolist() == [8]
    report = start_report("facilities", df, meta)
    assert (report.read, report.kept, len(report.rejected)) == (5, 4, 1)
    assert any("title row" in n for n in meta.notes)


def test_semicolon_and_tab_delimiters(tmp_path):
    for sep in (";", "\t"):
        p = tmp_path / "t.csv"
        p.write_text(f"名称{sep}经度{sep}纬度\n甲{sep}120.1{sep}31.1\n", encoding="utf-8")
        df, _ = read_table(p)
        assert df.loc[0, "经度"] == "120.1"


def test_xlsx_rows_are_spreadsheet_rows(tmp_path):
    wb = Workbook()
    ws = wb.active
    ws.title = "设施"
    ws.append(["无锡市新吴区养老设施"])  # title row 1
    ws.append(["机构名称", "经度", "纬度", "床位数"])  # header row 2
    ws.append(["甲养老院", 120.35, 31.49, 120])
    ws.append([None, None, None, None])  # empty row 4
    ws.append(["乙日间照料中心", "120.36", "31.50", None])
    other = wb.create_sheet("其他")
    other.append(["x"])
    p = tmp_path / "fac.xlsx"
    wb.save(p)
    df, meta = read_table(p)
    assert meta.kind == "xlsx" and meta.sheet == "设施"
    assert df["row"].tolist() == [3, 5]
    assert df["机构名称"].tolist() == ["甲养老院", "乙日间照料中心"]
    assert df["经度"].tolist() == ["120.35", "120.36"]
    assert df["床位数"].tolist()[0] == "120"
    with pytest.raises(InputError, match="sheet 'nope' not found"):
        read_table(p, sheet="nope")


def _points_gdf():
    return gpd.GeoDataFrame(
        {"名称": ["幸福日间照料中心", "阳光助餐点", "长寿敬老院"], "类型": ["日间照料", "助餐", "养老院"]},
        geometry=[Point(120.31, 31.49), Point(120.32, 31.50), Point(120.33, 31.51)],
        crs="EPSG:4326",
    )


def test_shapefile_without_cpg_in_gbk(tmp_path):
    p = tmp_path / "fac.shp"
    _points_gdf().to_file(p, encoding="GBK", engine="pyogrio")
    cpg = p.with_suffix(".cpg")
    if cpg.exists():
        cpg.unlink()
    raw = p.with_suffix(".dbf").read_bytes()
    assert "幸福".encode("gbk") in raw  # really GBK on disk
    assert dbf_encoding(p.with_suffix(".dbf")) == "GB18030"
    df, meta = read_table(p)
    assert meta.kind == "vector" and meta.crs.to_epsg() == 4326
    assert df["名称"].tolist() == ["幸福日间照料中心", "阳光助餐点", "长寿敬老院"]
    assert df["row"].tolist() == [1, 2, 3]


def test_shapefile_with_cpg_and_utf8_without(tmp_path):
    p = tmp_path / "fac.shp"
    _points_gdf().to_file(p, encoding="UTF-8", engine="pyogrio")
    df, _ = read_table(p)
    assert df["类型"].tolist() == ["日间照料", "助餐", "养老院"]
    p.with_suffix(".cpg").unlink(missing_ok=True)
    assert dbf_encoding(p.with_suffix(".dbf")) == "UTF-8"
    df, _ = read_table(p)
    assert df["类型"].tolist() == ["日间照料", "助餐", "养老院"]


def test_geojson_and_gpkg_layers(tmp_path):
    g = _points_gdf()
    gj = tmp_path / "fac.geojson"
    g.to_file(gj, driver="GeoJSON")
    df, meta = read_table(gj)
    assert df["名称"].tolist()[2] == "长寿敬老院" and meta.crs.to_epsg() == 4326
    gp = tmp_path / "fac.gpkg"
    g.to_file(gp, layer="a")
    g.iloc[:1].to_file(gp, layer="b")
    df, meta = read_table(gp, layer="b")
    assert len(df) == 1 and meta.layer == "b"
    df, meta = read_table(gp)
    assert len(df) == 3 and any("first layer" in n for n in meta.notes)


def test_bad_files(tmp_path):
    with pytest.raises(InputError, match="file not found"):
        read_table(tmp_path / "none.csv")
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    with pytest.raises(InputError, match="empty"):
        read_table(empty)
    header_only = tmp_path / "h.csv"
    header_only.write_text("名称,经度,纬度\n", encoding="utf-8")
    with pytest.raises(InputError, match="no data rows"):
        read_table(header_only)
    junk = tmp_path / "junk.gpkg"
    junk.write_bytes(b"this is not a geopackage")
    with pytest.raises(InputError, match="cannot read"):
        read_table(junk)
    xls = tmp_path / "old.xls"
    xls.write_bytes(b"\xd0\xcf\x11\xe0")
    with pytest.raises(InputError, match=r"\.xlsx"):
        read_table(xls)
    fake = tmp_path / "fake.xlsx"
    fake.write_text("a,b\n1,2\n")
    with pytest.raises(InputError, match="not a readable .xlsx"):
        read_table(fake)


def test_find_column_rules():
    df = pd.DataFrame(columns=["机构名称（全称）", "gcj_lng", "GCJ_LAT", "建筑面积(㎡)", "population", "row"])
    assert find_column(df, ["名称", "name"], key="name", path="f.csv") == "机构名称（全称）"
    assert find_column(df, X_CANDIDATES, key="x", path="f.csv") == "gcj_lng"
    assert find_column(df, Y_CANDIDATES, key="y", path="f.csv") == "GCJ_LAT"
    assert find_column(df, ["建筑面积", "面积"], key="floor_area", path="f.csv") == "建筑面积(㎡)"
    # "lat" inside "population" is not a word: no false match
    assert find_column(pd.DataFrame(columns=["population"]), ["lat"], key="y", path="f.csv", required=False) is None
    assert find_column(df, [], key="x", path="f.csv", given="gcj lng") == "gcj_lng"
    with pytest.raises(InputError) as err:
        find_column(df, ["床位"], key="beds", path="f.csv")
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith("f.csv: no column for beds") and "beds: <column>" in msg
    with pytest.raises(InputError, match="column 'nope' \\(for name\\) not found"):
        find_column(df, [], key="name", path="f.csv", given="nope")
    amb = pd.DataFrame(columns=["占地面积", "用地面积"])
    with pytest.raises(InputError, match="ambiguous"):
        find_column(amb, ["面积"], key="floor_area", path="f.csv")


def test_to_number():
    v, bad = to_number(["１２０.５", " 1,200 ", "500㎡", "", None, "abc", "inf", 3, "-7.5", "nan"])
    assert v[0] == 120.5 and v[1] == 1200 and np.isnan(v[2]) and v[7] == 3 and v[8] == -7.5
    assert np.isinf(v[6]) and np.isnan(v[9])
    assert bad.tolist() == [False, False, True, False, False, True, False, False, False, False]
    v, bad = to_number(["500㎡", "约50张", "2005年", "x"], lenient=True)
    assert v[:3].tolist() == [500, 50, 2005] and bad.tolist() == [False, False, False, True]


def test_ascii_and_utf8_lines_without_gbk_are_not_mixed(tmp_path):
    # pure UTF-8 never reaches the mixed decoder; pure GBK is not "mixed" either
    p = tmp_path / "gbk.csv"
    p.write_bytes("名称,x\n".encode("gbk") + b"a,1\n" + "阳光,2\n".encode("gbk"))
    df, meta = read_table(p)
    assert meta.encoding == "gb18030"
    assert df["名称"].tolist() == ["a", "阳光"]


def test_non_negative_leaves_bad_values_unknown_and_counts_them():
    from carecircle.layers.accounting import LayerReport

    report = LayerReport(layer="t", source="t.csv")
    df = pd.DataFrame({"面积": ["１２０", "500㎡", "-3", "约50张", "inf?", "", None, "abc", "1e999"]})
    v = non_negative(df, "面积", label="floor area", report=report)
    # "inf?" has no digits (lenient parse finds no number) and "1e999" overflows to inf
    want = [120.0, 500.0, np.nan, 50.0, np.nan, np.nan, np.nan, np.nan, np.nan]
    np.testing.assert_array_equal(v, want)
    # -3, "inf?", "abc", 1e999: blank cells are unknown without being wrong
    assert report.notes == ["floor area: 4 unreadable or negative value(s) left unknown (NaN)"]
    quiet = LayerReport(layer="t", source="t.csv")
    np.testing.assert_array_equal(non_negative(pd.DataFrame({"b": [1.0, 2.5]}), "b", report=quiet), [1.0, 2.5])
    np.testing.assert_array_equal(non_negative(df, None, report=quiet), np.full(9, np.nan))
    assert quiet.notes == []
    non_negative(pd.DataFrame({"户数": ["-1", "2"]}), "户数", report=quiet)
    assert quiet.notes == ["户数: 1 unreadable or negative value(s) left unknown (NaN)"]  # the column names itself


def test_text_column_strips_and_blanks_to_na():
    df = pd.DataFrame({"a": [" 甲 ", "", None, "乙"]}, index=[5, 6, 7, 8])
    s = text_column(df, "a")
    assert list(s.index) == [0, 1, 2, 3]
    assert s.tolist()[0] == "甲" and s.tolist()[3] == "乙"
    assert s.isna().tolist() == [False, True, True, False]
    assert text_column(df, None).isna().all() and len(text_column(df, None)) == 4


def test_study_zone_buffers_reprojects_and_unions():
    from shapely.geometry import box

    assert study_zone(None, "EPSG:32650") is None
    zone = study_zone(box(0, 0, 10, 10), "EPSG:32650", 5.0)
    assert zone.bounds == pytest.approx((-5, -5, 15, 15))
    assert study_zone(box(0, 0, 10, 10), "EPSG:32650").area == pytest.approx(100.0)
    # two features, given in another CRS: reprojected to the target, then unioned
    g = gpd.GeoDataFrame(geometry=[box(0, 0, 10, 10), box(10, 0, 20, 10)], crs="EPSG:32650")
    z = study_zone(g.to_crs("EPSG:4326"), "EPSG:32650")
    assert z.area == pytest.approx(200.0, rel=1e-6)
    assert z.bounds == pytest.approx((0, 0, 20, 10), abs=1e-4)


@pytest.mark.filterwarnings("ignore:'crs' was not provided")
def test_geometry_reason_and_read_layer(tmp_path):
    from shapely.geometry import Polygon

    g = gpd.GeoDataFrame({"a": [1, 2, 3]}, geometry=[Point(1, 2), None, Polygon()], crs="EPSG:4326")
    assert geometry_reason(g).tolist() == ["", "missing geometry", "missing geometry"]
    p = tmp_path / "t.csv"
    p.write_text(ROWS, encoding="utf-8")
    with pytest.raises(InputError, match=r"t\.csv: things need a layer$"):
        read_layer(p, need="things need a layer")
    q = tmp_path / "nocrs.shp"
    gpd.GeoDataFrame({"a": [1]}, geometry=[Point(1, 2)]).to_file(q)  # no CRS: no .prj
    with pytest.raises(InputError, match=r"no CRS \(\.prj missing\?\)"):
        read_layer(q, need="x")
    r = tmp_path / "ok.gpkg"
    g.to_file(r)
    df, meta = read_layer(r, need="x")
    assert meta.kind == "vector" and meta.crs.to_epsg() == 4326
    assert df["row"].tolist() == [1, 2, 3]
