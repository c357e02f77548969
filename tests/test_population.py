"""Population: raster cells, counted points/polygons, dasymetric distribution."""

import geopandas as gpd
import numpy as np
import pyproj
import pytest
import rasterio
from rasterio.transform import from_origin
from shapely.geometry import Point, Polygon, box

from conftest import shared_data

from carecircle.layers.population import distribute_by_buildings, read_population_points, read_population_raster
from carecircle.errors import InputError

UTM50 = "EPSG:32650"
NODATA = -9999.0
# A 40 x 50 grid of 0.001° cells (~95 x 111 m) over Wuxi, in lon/lat (not UTM).
X0, Y0, D = 120.30, 31.55, 0.001
H, W = 40, 50


def grid_values():
    r, c = np.mgrid[0:H, 0:W]
    v = (1 + r * 100 + c).astype("float32")  # each cell's value names it
    v[5, 5] = NODATA
    v[10, 10:20] = 0.0
    v[12, 12] = -5.0
    return v


def write_raster(path, values, crs="EPSG:4326", transform=None, nodata=NODATA):
    with rasterio.open(
        path, "w", driver="GTiff", width=values.shape[1], height=values.shape[0], count=1,
        dtype="float32", crs=crs, transform=transform or from_origin(X0, Y0, D, D), nodata=nodata,
    ) as dst:
        dst.write(values.astype("float32"), 1)
    return path


def cell_centres_utm():
    """Reference centres computed directly (not through the loader's affine arithmetic)."""
    r, c = np.mgrid[0:H, 0:W]
    lon, lat = X0 + (c + 0.5) * D, Y0 - (r + 0.5) * D
    x, y = pyproj.Transformer.from_crs(4326, UTM50, always_xy=True).transform(lon, lat)
    return np.asarray(x), np.asarray(y)


def test_raster_whole_grid_nodata_zero_negative(tmp_path):
    p = write_raster(tmp_path / "pop.tif", grid_values())
    pts, report = read_population_raster(p, target_crs=UTM50, elderly_share=0.2)
    v = grid_values()
    valid = (v != NODATA) & (v != 0)
    assert report.read == valid.sum() == H * W - 1 - 10
    assert report.rejected["reason"].tolist() == ["negative count"]
    assert report.rejected["row"].tolist() == [12 * W + 12 + 1]
    assert report.kept == len(pts) == valid.sum() - 1
    expected = v[valid & (v > 0)].sum()
    assert pts.people.sum() == pytest.approx(expected)
    assert pts.elderly.sum() == pytest.approx(0.2 * expected)
    # the point for value 1 + 3*100 + 7 is the centre of cell (3, 7)
    x, y = cell_centres_utm()
    hit = pts[pts.people == 308].geometry.iloc[0]
    assert hit.distance(Point(x[3, 7], y[3, 7])) < 0.01
    assert list(pts.columns) == ["pid", "people", "elderly", "geometry"]


def test_windowed_read_returns_the_cells_in_the_study_area(tmp_path):
    p = write_raster(tmp_path / "pop.tif", grid_values())
    x, y = cell_centres_utm()
    # a polygon (a triangle) covering part of the grid, in the analysis CRS
    area = Polygon([(x[2, 3], y[2, 3]), (x[2, 25], y[2, 25]), (x[20, 3], y[20, 3])]).buffer(10)
    pts, report = read_population_raster(p, target_crs=UTM50, study_area=area, elderly_share=0.1)
    v = grid_values()
    inside = np.array([[area.contains(Point(x[r, c], y[r, c])) for c in range(W)] for r in range(H)])
    want = inside & (v > 0) & (v != NODATA)
    assert len(pts) == want.sum()
    assert pts.people.sum() == pytest.approx(v[want].sum())
    assert sorted(pts.people.tolist()) == sorted(v[want].tolist())
    # only a window was read (cells outside the triangle but inside its box are rejected)
    note = next(n for n in report.notes if n.startswith("window"))
    assert "of 40×50" in note and "rows 0–39" not in note
    assert set(report.rejected["reason"]) <= {"outside study area", "negative count"}
    assert report.read == report.kept + len(report.rejected)


def test_raster_outside_study_area_and_without_crs(tmp_path):
    p = write_raster(tmp_path / "pop.tif", grid_values())
    far = box(0, 0, 1000, 1000)
    with pytest.raises(InputError, match="does not overlap"):
        read_population_raster(p, target_crs=UTM50, study_area=far, elderly_share=0.2)
    q = write_raster(tmp_path / "nocrs.tif", grid_values(), crs=None)
    with pytest.raises(InputError, match="no CRS"):
        read_population_raster(q, target_crs=UTM50, elderly_share=0.2)
    with pytest.raises(InputError, match="elderly_share"):
        read_population_raster(p, target_crs=UTM50, elderly_share=1.5)


def test_elderly_from_an_aligned_raster(tmp_path):
    v = grid_values()
    e = np.where(v > 0, v * 0.25, NODATA)
    e[0, 1] = v[0, 1] + 1  # more elderly than people
    e[0, 2] = NODATA  # a gap: filled with the raster-wide share
    pop = write_raster(tmp_path / "pop.tif", v)
    eld = write_raster(tmp_path / "eld.tif", e)
    pts, report = read_population_raster(pop, target_crs=UTM50, elderly_raster=eld)
    assert set(report.rejected["reason"]) == {"elderly > people", "negative count"}
    assert pts.elderly.to_numpy() == pytest.approx(0.25 * pts.people.to_numpy())


def test_elderly_from_a_coarser_raster_is_scaled_by_cell_area(tmp_path):
    v = np.full((4, 4), 10.0)
    pop = write_raster(tmp_path / "pop.tif", v)
    # 2x2 coarse cells holding 8 elderly each = 2 per fine cell
    eld = write_raster(tmp_path / "eld.tif", np.full((2, 2), 8.0), transform=from_origin(X0, Y0, 2 * D, 2 * D))
    pts, report = read_population_raster(pop, target_crs=UTM50, elderly_raster=eld)
    assert pts.elderly.to_numpy() == pytest.approx(np.full(16, 2.0))
    assert any("scaled by cell area" in n for n in report.notes)


def test_population_points_and_polygons(tmp_path):
    g = gpd.GeoDataFrame(
        {
            "社区": ["甲", "乙", "丙", "丁", "戊", "己"],
            "常住人口": [1000, 2000, -5, None, 300, 400],
            "老年人口": [200, 500, 1, 1, 400, 80],
            "户数": [400, None, 1, 1, 100, "150户"],
        },
        geometry=[Point(120.30, 31.50), box(120.31, 31.50, 120.32, 31.51), Point(120.33, 31.5),
                  Point(120.34, 31.5), Point(120.35, 31.5), None],
        crs="EPSG:4326",
    )
    p = tmp_path / "pop.gpkg"
    g.to_file(p)
    pts, report = read_population_points(p, count_field="常住人口", elderly_field="老年人口", target_crs=UTM50)
    reasons = dict(zip(report.rejected["row"], report.rejected["reason"]))
    assert reasons == {3: "negative count", 4: "missing count", 5: "elderly > people", 6: "missing geometry"}
    assert pts.people.tolist() == [1000, 2000] and pts.elderly.tolist() == [200, 500]
    assert pts.households.tolist()[0] == 400 and np.isnan(pts.households.tolist()[1])
    centre = gpd.GeoSeries([box(120.31, 31.50, 120.32, 31.51).centroid], crs=4326).to_crs(UTM50)[0]
    assert pts.geometry[1].distance(centre) < 0.01
    # detection of the Chinese fields; elderly from a share
    pts, _ = read_population_points(p, elderly_share=0.25, target_crs=UTM50)
    assert pts.elderly.tolist() == [250.0, 500.0, 75.0]


def test_unreadable_households_are_unknown_and_noted(tmp_path):
    g = gpd.GeoDataFrame(
        {"人口": [10, 20, 30, 40], "户数": ["4户", "-1", "x", None]},
        geometry=[Point(120.30 + 0.01 * i, 31.5) for i in range(4)],
        crs="EPSG:4326",
    )
    p = tmp_path / "hh.gpkg"
    g.to_file(p)
    pts, report = read_population_points(p, elderly_share=0.2, target_crs=UTM50)
    assert len(pts) == 4 and report.rejected.empty  # households never reject a feature
    assert pts.households.tolist()[0] == 4.0 and np.isnan(pts.households.to_numpy()[1:]).all()
    # -1 and "x" are wrong; a blank cell is merely unknown
    assert "户数: 2 unreadable or negative value(s) left unknown (NaN)" in report.notes


def test_distribute_sums_and_zero_weights(tmp_path):
    g = gpd.GeoDataFrame(
        {"res_m2": [0.0, 1.0, 3.0, None, -1.0, 4.0]},
        geometry=[box(i, 0, i + 1, 1) for i in range(6)],
        crs=UTM50,
    )
    p = tmp_path / "b.gpkg"
    g.to_file(p)
    pts, report = distribute_by_buildings(p, total_population=1000, weight_field="res_m2", elderly_share=0.3, target_crs=UTM50)
    assert pts.people.tolist() == [0.0, 125.0, 375.0, 500.0]
    assert pts.people.sum() == 1000 and pts.elderly.sum() == pytest.approx(300)
    assert dict(zip(report.rejected["row"], report.rejected["reason"])) == {4: "missing weight", 5: "negative weight"}
    with pytest.raises(InputError, match="weight field 'nope'|column 'nope'"):
        distribute_by_buildings(p, total_population=1000, weight_field="nope", elderly_share=0.3, target_crs=UTM50)


@pytest.mark.shared
def test_wuxi_building_grid_distribution():
    path = shared_data("wuxi_xinwu", "xinwu_built_env_250m.gpkg")
    total = 750_000
    pts, report = distribute_by_buildings(
        path, total_population=total, weight_field="area_residential_m2", elderly_share=0.2, target_crs=UTM50, layer="built_env_250m"
    )
    assert (report.read, report.kept, len(pts)) == (3999, 3999, 3999)
    assert pts.people.sum() == pytest.approx(total, abs=1e-6)
    src = gpd.read_file(path, layer="built_env_250m")
    w = src["area_residential_m2"].to_numpy()
    assert (pts.people.to_numpy()[w == 0] == 0).all() and (w == 0).sum() == 2913
    i = int(np.argmax(w))
    assert pts.people[i] == pytest.approx(total * w[i] / w.sum())
    assert pts.elderly.sum() == pytest.approx(0.2 * total)
    assert pts.geometry.within(src.geometry.to_crs(UTM50)).all()
