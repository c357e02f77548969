"""Boundaries: 社区 with 街道 (field or overlap), 小区, repairs, field detection."""

import geopandas as gpd
import numpy as np
import pytest
from shapely.geometry import Point, Polygon, box

from carecircle.layers.areas import assign_by_overlap, read_communities, read_estates, read_streets
from carecircle.errors import InputError

UTM50 = "EPSG:32650"
X0, Y0 = 820_000, 3_490_000


def sq(i, j, size=1000):
    return box(X0 + i * size, Y0 + j * size, X0 + (i + 1) * size, Y0 + (j + 1) * size)


def bowtie(i, j):
    x, y = X0 + i * 1000, Y0 + j * 1000
    return Polygon([(x, y), (x + 1000, y + 1000), (x + 1000, y), (x, y + 1000)])


@pytest.fixture
def streets_file(tmp_path):
    g = gpd.GeoDataFrame({"街道名称": ["旺庄街道", "硕放街道"]}, geometry=[box(X0, Y0, X0 + 2000, Y0 + 3000), box(X0 + 2000, Y0, X0 + 4000, Y0 + 3000)], crs=UTM50)
    p = tmp_path / "streets.gpkg"
    g.to_file(p)
    return p


def test_communities_with_chinese_fields_repairs_and_rejections(tmp_path):
    g = gpd.GeoDataFrame(
        {
            "社区名称": ["春阳社区", "长江社区", "坊前社区", "", "梅村社区"],
            "所属街道": ["旺庄街道", "旺庄街道", "硕放街道", "硕放街道", "梅村街道"],
            "户数": ["3200", "2800户", "abc", "100", "1000"],
            "常住人口": [8200, 7100, 5000, 100, 2600],
            "60岁以上": [1800, 1500, 1200, 10, 500],
            "建成年代": ["2005年", "1998", "2016-06-01", "1990", "公元前"],
        },
        geometry=[sq(0, 0), bowtie(1, 0), sq(2, 0), sq(3, 0), Point(X0, Y0)],
        crs=UTM50,
    )
    p = tmp_path / "com.gpkg"
    g.to_file(p)
    out, report = read_communities(p, target_crs="EPSG:4549")
    assert report.read == 5 and report.kept == len(out) == 3
    assert dict(zip(report.rejected["row"], report.rejected["reason"])) == {4: "missing name", 5: "not a polygon"}
    assert out["name"].tolist() == ["春阳社区", "长江社区", "坊前社区"]
    assert out["street"].tolist() == ["旺庄街道", "旺庄街道", "硕放街道"]
    assert out["households"].tolist()[:2] == [3200.0, 2800.0] and np.isnan(out["households"][2])
    assert out["population"].tolist() == [8200, 7100, 5000] and out["elderly"].tolist() == [1800, 1500, 1200]
    assert out["built_year"].tolist() == [2005, 1998, 2016]
    # the bow-tie (two 0.25 km² triangles) is repaired, not dropped
    repaired = out.geometry[1]
    assert repaired.is_valid and repaired.geom_type == "MultiPolygon"
    assert repaired.area == pytest.approx(500_000, rel=5e-3)  # UTM vs GK scale factors differ by < 0.5 %
    assert any("repaired" in n for n in report.notes)
    assert out.crs.to_epsg() == 4549
    assert list(out.columns) == ["name", "street", "households", "population", "elderly", "built_year", "kind", "street_kind",
                                 "geometry"]


def test_street_by_largest_overlap(tmp_path, streets_file):
    streets, sreport = read_streets(streets_file, target_crs=UTM50)
    assert streets["street"].tolist() == ["旺庄街道", "硕放街道"] and sreport.kept == 2
    # community 2 straddles both streets: 300 m in 旺庄, 700 m in 硕放
    g = gpd.GeoDataFrame(
        {"name": ["A", "B", "C"]},
        geometry=[sq(0, 0), box(X0 + 1700, Y0, X0 + 2700, Y0 + 1000), box(X0 + 9000, Y0, X0 + 9500, Y0 + 500)],
        crs=UTM50,
    )
    p = tmp_path / "com.shp"
    g.to_file(p)
    out, report = read_communities(p, name_field="name", target_crs=UTM50, streets=streets)
    assert out["street"].tolist()[:2] == ["旺庄街道", "硕放街道"] and out["street"].isna().tolist()[2]
    assert any("largest overlap" in n for n in report.notes)
    assert np.isnan(out["households"]).all() and np.isnan(out["built_year"]).all()


def test_estates_points_and_polygons_joined_to_communities(tmp_path):
    communities = gpd.GeoDataFrame({"name": ["春阳社区", "长江社区"]}, geometry=[sq(0, 0), sq(1, 0)], crs=UTM50)
    g = gpd.GeoDataFrame(
        {
            "小区名称": ["春阳花园", "长江新村", "江南苑"],
            "所属社区": [None, None, "春阳社区"],
            "总户数": [1200, 800, 300],
            "建成年份": [2018, 1995, None],
            "养老服务用房面积": [360, None, "90平方米"],
        },
        geometry=[box(X0 + 100, Y0 + 100, X0 + 400, Y0 + 400), Point(X0 + 1500, Y0 + 500), Point(X0 + 200, Y0 + 800)],
        crs=UTM50,
    ).to_crs(4326)
    p = tmp_path / "estates.geojson"
    g.to_file(p, driver="GeoJSON")
    out, report = read_estates(p, target_crs=UTM50, communities=communities)
    assert list(out.columns) == ["name", "community", "households", "built_year", "space_m2", "geometry"]
    assert out["community"].tolist() == ["春阳社区", "长江社区", "春阳社区"]
    assert out["households"].tolist() == [1200, 800, 300]
    assert out["space_m2"].tolist()[0] == 360 and np.isnan(out["space_m2"][1]) and out["space_m2"][2] == 90
    assert out["built_year"].tolist()[:2] == [2018, 1995]
    assert report.read == 3 == report.kept


@pytest.mark.filterwarnings("ignore:'crs' was not provided")
def test_no_crs_and_tables_are_input_errors(tmp_path):
    g = gpd.GeoDataFrame({"name": ["A"]}, geometry=[sq(0, 0)])
    p = tmp_path / "nocrs.shp"
    g.to_file(p)
    with pytest.raises(InputError, match="no CRS"):
        read_communities(p, target_crs=UTM50)
    csv = tmp_path / "c.csv"
    csv.write_text("社区名称,户数\nA,100\n", encoding="utf-8")
    with pytest.raises(InputError, match="polygon layer"):
        read_communities(csv, target_crs=UTM50)
    g.set_crs(UTM50).rename(columns={"name": "编号"}).to_file(tmp_path / "noname.gpkg")
    with pytest.raises(InputError, match="no column for name_field"):
        read_communities(tmp_path / "noname.gpkg", target_crs=UTM50)


def test_assign_by_overlap_points_and_polygons():
    zones = [sq(0, 0), sq(1, 0)]
    got = assign_by_overlap([Point(X0 + 1500, Y0 + 10), box(X0 + 900, Y0, X0 + 1950, Y0 + 10), Point(0, 0)], zones, ["a", "b"])
    assert got.tolist()[:2] == ["b", "b"] and got.isna().tolist()[2]


def test_estates_without_a_community_are_rejected_with_a_reason(tmp_path):
    communities = gpd.GeoDataFrame({"name": ["春阳社区", "长江社区"]}, geometry=[sq(0, 0), sq(1, 0)], crs=UTM50)
    g = gpd.GeoDataFrame(
        {
            "小区名称": ["春阳花园", "远郊新村", "长江苑", "旧名小区", "无形小区", "跨界苑"],
            "所属社区": [None, None, "长江社区", "长江村", None, ""],
            "总户数": [1200, 500, 300, 400, 100, 900],
        },
        geometry=[
            box(X0 + 100, Y0 + 100, X0 + 400, Y0 + 400),   # inside 春阳 → joined
            Point(X0 + 5000, Y0 + 5000),                   # outside every polygon → rejected
            Point(X0 + 9000, Y0 + 9000),                   # named, known: kept where it lies
            Point(X0 + 1500, Y0 + 500),                    # names a community the layer lacks → rejected
            None,                                          # no geometry → rejected for that
            box(X0 + 800, Y0, X0 + 1900, Y0 + 500),        # blank name, straddles: 900 m in 长江
        ],
        crs=UTM50,
    )
    p = tmp_path / "estates.gpkg"
    g.to_file(p)
    out, report = read_estates(p, target_crs=UTM50, communities=communities)
    assert report.read == 6 == report.kept + len(report.rejected) and report.kept == len(out) == 3
    assert dict(zip(report.rejected["row"], report.rejected["reason"])) == {
        2: "outside every community polygon",
        4: "community not in the communities layer",
        5: "missing geometry",
    }
    # the rejected rows keep their fields, so the planner sees the name to fix
    assert report.rejected.set_index("row").loc[4, "所属社区"] == "长江村"
    assert any("长江村" in n for n in report.notes)
    assert out["name"].tolist() == ["春阳花园", "长江苑", "跨界苑"]
    assert out["community"].tolist() == ["春阳社区", "长江社区", "长江社区"]
    assert set(out["community"]) <= set(communities["name"])
    # without a communities layer nothing is judged: the named community stays as read
    alone, areport = read_estates(p, target_crs=UTM50)
    assert areport.kept == 5 and alone["community"].tolist()[3] == "长江村" and alone["community"].isna().sum() == 3


def test_a_layer_with_no_usable_feature_stops(tmp_path):
    g = gpd.GeoDataFrame({"社区名称": ["A", "", "C"]}, geometry=[None, sq(0, 0), Point(X0, Y0)], crs=UTM50)
    p = tmp_path / "com.gpkg"
    g.to_file(p)
    with pytest.raises(InputError, match=r"com\.gpkg: no usable communities: all 3 features rejected \(") as err:
        read_communities(p, target_crs=UTM50)
    assert "\n" not in str(err.value) and "missing geometry: 1" in str(err.value) and "missing name: 1" in str(err.value)
    communities = gpd.GeoDataFrame({"name": ["春阳社区"]}, geometry=[sq(0, 0)], crs=UTM50)
    e = gpd.GeoDataFrame({"小区名称": ["甲", "乙"], "所属社区": ["旧社区", None]},
                         geometry=[Point(X0 + 10, Y0 + 10), Point(X0 + 5000, Y0)], crs=UTM50)
    e.to_file(tmp_path / "est.gpkg")
    with pytest.raises(InputError, match="no usable estates"):
        read_estates(tmp_path / "est.gpkg", target_crs=UTM50, communities=communities)
