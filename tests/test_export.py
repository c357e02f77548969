"""The planning-department package read back with pyogrio/GDAL: geometry, values and Chinese
text against the in-memory layers, for UTF-8 and GBK."""

from __future__ import annotations

import zipfile

import geopandas as gpd
import numpy as np
import openpyxl
import pandas as pd
import pyogrio
import pytest
import shapely
from hypothesis import given, settings, strategies as st

from carecircle.errors import InputError
from carecircle.maps import export as E
from fixtures_maps import EVIL, LABELS, small_inputs

LONG = "步行圈内无日间照料中心；" * 20  # 240 characters: 720 bytes in UTF-8, 480 in GBK


def package_layers() -> dict[str, gpd.GeoDataFrame]:
    d = small_inputs()
    com = d["communities"].copy()
    com.loc[1, "flags"] = LONG
    com["dist_day_care_mean_m"] = com["dist_day_care_mean_m"].astype(float)
    com.loc[2, "dist_day_care_mean_m"] = np.inf  # unreachable
    com.loc[3, "nearest_meal"] = None
    pop = d["population"]
    uncovered = pop[~(pop["dist_day_care_m"] <= d["cutoff_m"])].reset_index(drop=True)
    return {"communities": com, "streets": d["streets"], "facilities": d["facilities"],
            "isochrones": d["isochrones"], "uncovered": uncovered}


def read_back(info: dict, fields: pd.DataFrame, layer: str) -> gpd.GeoDataFrame:
    """Read a shapefile with GDAL's own encoding detection and restore full column names,
    joining split text columns."""
    got = pyogrio.read_dataframe(info["path"])
    rows = fields[fields["layer"] == layer]
    got = got.rename(columns=dict(zip(rows["field"], rows["column"])))
    for col, parts in info["split"].items():
        pieces = [got[col]] + [got[f"{col}_part{i}"] for i in range(2, parts + 1)]
        got[col] = pieces[0].fillna("").str.cat([p.fillna("") for p in pieces[1:]]).where(pieces[0].notna(), None)
        got = got.drop(columns=[f"{col}_part{i}" for i in range(2, parts + 1)])
    return got


def assert_same(expected: gpd.GeoDataFrame, got: gpd.GeoDataFrame, target, *, blank_is_null: bool = False,
                stated: bool = True) -> None:
    """Geometry within tolerance, numbers, booleans and text equal. ``blank_is_null``: a DBF
    stores an empty string and a missing value alike (both blank)."""
    # The shapefile package states values to what they mean (metres 0.1, shares 4 decimals,
    # whole counts); a GeoPackage (``stated=False``) keeps every digit.
    if stated:
        expected = E.rounded(expected)
    exp = expected.to_crs(target)
    # Geometry: the same shapes (shapefiles may re-orient rings) within a micrometre ...
    a, b = shapely.normalize(np.asarray(exp.geometry.values)), shapely.normalize(np.asarray(got.geometry.values))
    assert shapely.equals_exact(a, b, tolerance=1e-6).all()
    # ... and back in the analysis CRS within a millimetre.
    back = got.set_crs(target, allow_override=True).to_crs(expected.crs)
    assert max(shapely.hausdorff_distance(np.asarray(expected.geometry.values), np.asarray(back.geometry.values))) < 1e-3
    for col in [c for c in expected.columns if c != "geometry"]:
        e, g = expected[col], got[col]
        if pd.api.types.is_bool_dtype(e.dtype):
            assert (g.astype(bool).to_numpy() == e.to_numpy()).all(), col
        elif pd.api.types.is_numeric_dtype(e.dtype):
            ev = e.to_numpy(dtype=float)
            ev = np.where(np.isinf(ev), np.nan, ev)  # inf has no DBF form: written empty
            assert np.allclose(g.to_numpy(dtype=float), ev, equal_nan=True, rtol=1e-12), col
        else:
            def norm(values):
                return [None if pd.isna(v) or (blank_is_null and v == "") else v for v in values]

            assert norm(g) == norm(e), col


@pytest.mark.parametrize("encoding", ["UTF-8", "GBK"])
def test_shapefiles_round_trip(tmp_path, encoding):
    layers = package_layers()
    res = E.write_package(tmp_path, layers, crs="auto", encoding=encoding)
    # Wuxi is at 120.3° E: the 3-degree zone with central meridian 120° E is EPSG:4549.
    assert res["crs"] == "EPSG:4549"
    fields = pd.read_csv(res["fields_csv"], encoding="utf-8-sig")
    for name, gdf in layers.items():
        info = res["layers"][name]
        assert pyogrio.read_info(info["path"])["crs"] == "EPSG:4549"
        assert_same(gdf, read_back(info, fields, name), "EPSG:4549", blank_is_null=True)
    # The long flags text was split, not cut: 720 UTF-8 bytes need 3 parts, 480 GBK bytes 2.
    assert res["layers"]["communities"]["split"] == {"flags": 3 if encoding == "UTF-8" else 2}


@pytest.mark.parametrize("encoding, cpg, ldid, codec", [("UTF-8", "UTF-8", 0x00, "utf-8"), ("GBK", "936", 0x4D, "gbk")])
def test_dbf_bytes_are_in_the_chosen_encoding(tmp_path, encoding, cpg, ldid, codec):
    res = E.write_package(tmp_path, package_layers(), crs="EPSG:4490", encoding=encoding)
    path = res["layers"]["communities"]["path"]
    assert path.with_suffix(".cpg").read_text() == cpg
    raw = path.with_suffix(".dbf").read_bytes()
    assert raw[29] == ldid
    assert "新华社区".encode(codec) in raw
    other = "gbk" if codec == "utf-8" else "utf-8"
    assert "新华社区".encode(other) not in raw
    fac = res["layers"]["facilities"]["path"].with_suffix(".dbf").read_bytes()
    assert EVIL.encode(codec) in fac  # stored verbatim: the shapefile is data, not HTML


def test_field_names_fit_and_alias_table_is_complete(tmp_path):
    layers = package_layers()
    res = E.write_package(tmp_path, layers, crs="EPSG:4326", labels=LABELS)
    fields = pd.read_csv(res["fields_csv"], encoding="utf-8-sig")
    for name, info in res["layers"].items():
        names = pyogrio.read_info(info["path"])["fields"].tolist()
        assert all(len(n.encode()) <= 10 for n in names)
        assert len({n.lower() for n in names}) == len(names)
        assert names == fields.loc[fields["layer"] == name, "field"].tolist()
    # Analysis columns carry the analysis stage's labels; the facilities' own columns the maps stage's.
    row = fields[(fields["layer"] == "communities") & (fields["column"] == "elderly_covered_share_day_care")].iloc[0]
    assert (row["label_zh"], row["label_en"]) == ("日间照料中心老年人覆盖率", "elderly covered, day-care centre")
    row = fields[(fields["layer"] == "communities") & (fields["column"] == "name")].iloc[0]
    assert (row["label_zh"], row["label_en"]) == ("社区名称", "community")
    row = fields[(fields["layer"] == "facilities") & (fields["column"] == "name")].iloc[0]
    assert (row["label_zh"], row["label_en"]) == ("名称", "name")
    part = fields[fields["column"] == "flags_part2"].iloc[0]
    assert part["label_zh"] == "问题（续2）"
    book = openpyxl.load_workbook(res["fields_xlsx"])
    assert [c.value for c in book.active[1]][:4] == ["图层 layer", "字段 field", "列名 column", "中文名"]
    with zipfile.ZipFile(res["zip"]) as zf:
        listed = set(zf.namelist())
    for name in layers:
        assert {f"shp/{name}.{ext}" for ext in ("shp", "shx", "dbf", "prj", "cpg")} <= listed
    assert {"shp/fields.csv", "shp/fields.xlsx", "shp/README.txt"} <= listed


@settings(max_examples=60, deadline=None)
@given(st.lists(st.text(alphabet=st.sampled_from("abcdefghij_XYZ养老0123"), min_size=1, max_size=30),
                min_size=1, max_size=25, unique=True))
def test_short_names_are_unique_and_short(columns):
    short = E.short_field_names(columns)
    assert list(short) == columns
    assert all(len(v.encode()) <= 10 and v.isascii() for v in short.values())
    assert len({v.lower() for v in short.values()}) == len(columns)
    assert E.short_field_names(columns) == short  # deterministic


def test_text_gbk_cannot_hold_is_an_error(tmp_path):
    layers = package_layers()
    layers["facilities"].loc[3, "name"] = "𠮷祥养老院"
    with pytest.raises(InputError, match=r"shp/facilities.dbf: column name row 4: .*UTF-8"):
        E.write_package(tmp_path, {"facilities": layers["facilities"]}, encoding="GBK")
    E.write_package(tmp_path, {"facilities": layers["facilities"]}, encoding="UTF-8")


def test_crs_choices(tmp_path):
    layers = {"facilities": package_layers()["facilities"]}
    for spec, code in (("EPSG:4326", "EPSG:4326"), ("cgcs2000", "EPSG:4490"), ("EPSG:4549", "EPSG:4549")):
        res = E.write_package(tmp_path / code.replace(":", "_"), layers, crs=spec)
        assert res["crs"] == code and pyogrio.read_info(res["layers"]["facilities"]["path"])["crs"] == code
    for bad in ("gcj02", "EPSG:999999"):
        with pytest.raises(InputError):
            E.write_package(tmp_path / "bad", layers, crs=bad)
    with pytest.raises(InputError, match="encoding"):
        E.write_package(tmp_path / "bad", layers, encoding="latin-1")


def test_geopackage_keeps_everything(tmp_path):
    layers = package_layers()
    path = E.write_geopackage(tmp_path / "carecircle.gpkg", layers)
    assert [n for n, _ in pyogrio.list_layers(path)] == list(layers)
    for name, gdf in layers.items():
        got = pyogrio.read_dataframe(path, layer=name)
        assert [c for c in got.columns if c != "geometry"] == [c for c in gdf.columns if c != "geometry"]
        assert_same(gdf.replace([np.inf], np.nan), got.replace([np.inf], np.nan), gdf.crs, stated=False)
    got = pyogrio.read_dataframe(path, layer="communities")
    assert got.loc[1, "flags"] == LONG and np.isinf(got.loc[2, "dist_day_care_mean_m"])


def test_tables_csv_and_xlsx(tmp_path):
    d = small_inputs()
    out = E.write_tables(tmp_path, {"communities": d["communities"], "actions": d["actions"]}, services=d["services"], labels=LABELS)
    csv = out["communities"]["csv"]
    assert csv.read_bytes()[:3] == b"\xef\xbb\xbf"
    back = pd.read_csv(csv, encoding="utf-8-sig")
    assert list(back.columns) == [c for c in d["communities"].columns if c != "geometry"]
    assert back["name"].tolist() == d["communities"]["name"].tolist()
    assert back["flag_no_day_care"].tolist() == d["communities"]["flag_no_day_care"].tolist()
    assert set(csv.read_text(encoding="utf-8-sig").splitlines()[1].split(",")) & {"true", "false"}
    book = openpyxl.load_workbook(out["communities"]["xlsx"])
    summary, data, fields = book.worksheets
    assert summary.title == "汇总"
    heads = [c.value for c in data[1]]
    assert heads[:3] == ["社区名称", "所属街道", "户数"]
    assert "日间照料中心老年人覆盖率" in heads
    assert fields.title == "字段说明"
    assert [c.value for c in fields[2]] == ["社区名称", "name", "社区名称", "community"]
    assert data.cell(2, 1).value == "新华社区"
    en = E.write_tables(tmp_path / "en", {"actions": d["actions"]}, lang="en", labels=LABELS)
    assert [c.value for c in openpyxl.load_workbook(en["actions"]["xlsx"]).worksheets[1][1]][:3] == ["rank", "community", "sub-district"]
