"""A whole district from a planning department's files: Wuxi Xinwu (新吴区), through the real CLI.

The network is the district's road-centreline *line layer* (not an OSM file), population is
600,000 people spread over the 250 m building grid by residential floor area, and the
communities and facilities are written into ``tmp_path`` as a planner would have them: 社区
polygons with Chinese names in three 街道, and a GBK-encoded facility CSV with Chinese
headers in GCJ-02 (Amap) coordinates. Every value asserted is worked out here
independently: walking distances by a networkx graph built from the centreline file itself.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import geopandas as gpd
import networkx as nx
import numpy as np
import pandas as pd
import pyogrio
import pytest
import shapely
import yaml
from shapely.geometry import box
from conftest import SHARED_DATA

from carecircle.coverage.profile import load_profile
from carecircle.layers.crs import from_wgs84

DATA = SHARED_DATA
XINWU = DATA / "wuxi_xinwu"
ROADS = XINWU / "xinwu_road_centerlines.gpkg"
GRID = XINWU / "xinwu_built_env_250m.gpkg"
UTM50 = "EPSG:32650"
TOTAL = 600_000
ELDERLY_SHARE = 0.2
CELL_M = 2000.0
STREETS = ("旺庄街道", "硕放街道", "梅村街道")  # west to east, by thirds of the district
NAME_CHARS = "春夏秋冬东南西北金木水火土山川河湖海天地日月星云风雨"
# Road classes nobody walks on (the OSM walk filter's; the layer also has construction/services).
NOT_WALKABLE = {"motorway", "motorway_link", "construction", "services"}
MIN_COMPONENT_NODES = 50  # the config defaults: smaller islands capture no point,
MAX_SNAP_M = 300.0  # and a point farther than this from every street is unreachable
FACILITY_TYPE = "日间照料中心（含助餐点）"

pytestmark = [
    pytest.mark.shared,
    pytest.mark.skipif(not (ROADS.exists() and GRID.exists()),
                       reason=f"../shared/data absent: {XINWU} (Xinwu centrelines and building grid) not found"),
]


# ------------------------------------------------------------------ independent reference


class Reference:
    """The walk network rebuilt from the centreline file with networkx, independently.

    Lines are cut at every vertex that is used more than once (by another line or the same
    one) and at their ends; each piece is an edge weighted by its length. A point is snapped
    to the nearest point of the nearest edge in a component of ≥ 50 nodes (exact, via an
    STRtree nearest query) and walks ``access + along-edge + network``; a point farther than
    300 m (``max_snap_m``) from every edge is unreachable. ``grid_m`` rounds the vertices
    first, as the loader documents it does (1 mm), so that results can agree to 1e-6 m.
    """

    def __init__(self, path: Path, grid_m: float | None = None) -> None:
        roads = gpd.read_file(path)
        roads = roads[~roads["highway"].isin(NOT_WALKABLE)]
        lines = shapely.get_parts(roads.geometry.to_numpy())
        if grid_m is not None:
            lines = shapely.transform(lines, lambda xy: np.rint(xy / grid_m) * grid_m)
        pieces = []
        seen: dict[tuple, int] = {}
        for line in lines:
            for xy in np.asarray(line.coords)[1:-1]:
                seen[tuple(xy)] = seen.get(tuple(xy), 0) + 1
            for xy in (line.coords[0], line.coords[-1]):
                seen[tuple(xy)] = seen.get(tuple(xy), 0) + 2  # an end is always a node
        for line in lines:
            coords = [tuple(c) for c in np.asarray(line.coords)]
            start = 0
            for k in range(1, len(coords)):
                if k == len(coords) - 1 or seen[coords[k]] >= 2:
                    piece = [c for i, c in enumerate(coords[start:k + 1]) if i == 0 or c != coords[start + i - 1]]
                    if len(piece) >= 2:
                        pieces.append(shapely.LineString(piece))
                    start = k
        g = nx.MultiGraph()
        for i, p in enumerate(pieces):
            a, b = p.coords[0], p.coords[-1]
            if a == b and p.length < 0.05:
                continue
            g.add_edge(a, b, key=i, length=p.length)
        self.graph = g
        big = set()
        for comp in nx.connected_components(g):
            if len(comp) >= MIN_COMPONENT_NODES:
                big |= comp
        keep = [i for i, p in enumerate(pieces) if p.coords[0] in big]
        self.edges = np.array([pieces[i] for i in keep], dtype=object)
        self.tree = shapely.STRtree(self.edges)
        self.node_set = big

    def snap(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Nearest edge, offset along it from its first vertex, and access distance per point."""
        idx = self.tree.query_nearest(points, all_matches=False)[1]
        edges = self.edges[idx]
        access = shapely.distance(points, edges)
        offset = shapely.line_locate_point(edges, points)
        return edges, offset, access

    def distances(self, sources: np.ndarray, targets: np.ndarray) -> np.ndarray:
        """Walk metres from the nearest source point to each target point (both snapped)."""
        s_edges, s_off, s_acc = self.snap(sources)
        g = self.graph.copy()
        # Split each source's edge virtually: a super-source with legs to both ends.
        for k, (e, t, a) in enumerate(zip(s_edges, s_off, s_acc)):
            u, v = e.coords[0], e.coords[-1]
            g.add_edge("S", u, key=f"s{k}u", length=a + t)
            g.add_edge("S", v, key=f"s{k}v", length=a + e.length - t)
        d = nx.single_source_dijkstra_path_length(g, "S", weight="length")
        t_edges, t_off, t_acc = self.snap(targets)
        out = np.empty(len(targets))
        for k, (e, t, a) in enumerate(zip(t_edges, t_off, t_acc)):
            u, v = e.coords[0], e.coords[-1]
            best = min(d.get(u, np.inf) + t, d.get(v, np.inf) + e.length - t)
            # a source on the same edge reaches it along the edge
            for j, se in enumerate(s_edges):
                if se.equals_exact(e, 0):
                    best = min(best, s_acc[j] + abs(s_off[j] - t))
            out[k] = a + best if a <= MAX_SNAP_M else np.inf
        return out


# ------------------------------------------------------------------ the planner's inputs


def _communities(ref: Reference) -> gpd.GeoDataFrame:
    """2 km squares over the district, clipped to its extent (the convex hull of its roads)."""
    hull = shapely.convex_hull(shapely.union_all(ref.edges))
    x0, y0, x1, y1 = hull.bounds
    ni, nj = int(np.ceil((x1 - x0) / CELL_M)), int(np.ceil((y1 - y0) / CELL_M))
    rows = []
    for i in range(ni):
        for j in range(nj):
            cell = box(x0 + i * CELL_M, y0 + j * CELL_M, x0 + (i + 1) * CELL_M, y0 + (j + 1) * CELL_M)
            part = cell.intersection(hull)
            if part.area < 0.25 * CELL_M**2:  # slivers along the hull are not communities
                continue
            street = STREETS[min(int(3 * (cell.centroid.x - x0) / (x1 - x0)), 2)]
            rows.append({"社区名称": f"{NAME_CHARS[i]}{NAME_CHARS[j]}社区", "所属街道": street, "i": i, "j": j,
                         "geometry": part})
    return gpd.GeoDataFrame(rows, crs=UTM50)


def _facility_nodes(ref: Reference, com: gpd.GeoDataFrame, pop: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """One day-care centre with meals in every third community, on the network node nearest the
    elderly-weighted centre of the community's residents; none elsewhere."""
    nodes = np.array([xy for xy in ref.node_set])
    pts = shapely.points(nodes)
    rows = []
    for _, c in com.iterrows():
        if (c["i"] + 2 * c["j"]) % 3:
            continue
        inside = pop[pop.within(c.geometry) & (pop["elderly"] > 0)]
        if inside.empty:
            continue
        w = inside["elderly"].to_numpy()
        centre = shapely.Point(np.average(inside.geometry.x, weights=w), np.average(inside.geometry.y, weights=w))
        own = shapely.contains(c.geometry, pts)
        best = nodes[own][np.argmin(shapely.distance(pts[own], centre))]
        rows.append({"community": c["社区名称"], "geometry": shapely.Point(best)})
    return gpd.GeoDataFrame(rows, crs=UTM50)


def _population(ref: Reference) -> gpd.GeoDataFrame:
    """600,000 people by residential floor area, one point per cell (its centroid; the loader may
    pick another point inside a cell whose centroid falls outside it)."""
    grid = gpd.read_file(GRID, layer="built_env_250m")
    w = grid["area_residential_m2"].to_numpy(float)
    people = TOTAL * w / w.sum()
    return gpd.GeoDataFrame({"people": people, "elderly": people * ELDERLY_SHARE, "cell": grid.geometry.to_numpy()},
                            geometry=grid.geometry.centroid.to_numpy(), crs=grid.crs)


@pytest.fixture(scope="module")
def xinwu(tmp_path_factory):
    root = tmp_path_factory.mktemp("xinwu")
    ref = Reference(ROADS)
    pop = _population(ref)
    com = _communities(ref)
    com.drop(columns=["i", "j"]).to_file(root / "社区.gpkg")
    fac = _facility_nodes(ref, com, pop)
    lonlat = fac.to_crs(4326)
    glon, glat = from_wgs84(lonlat.geometry.x.to_numpy(), lonlat.geometry.y.to_numpy(), "gcj02")
    table = pd.DataFrame({
        "机构名称": [f"{c}日间照料中心" for c in fac["community"]],
        "服务类型": FACILITY_TYPE,
        "经度": [f"{v:.9f}" for v in glon],
        "纬度": [f"{v:.9f}" for v in glat],
        "建筑面积": 600,
    })
    # Two rows a planner's list always has: a copy-paste from Shanghai, a blank coordinate.
    table.loc[len(table)] = ["上海某养老院", "养老院", "121.437000000", "31.188000000", 900]
    table.loc[len(table)] = ["坐标待补日间照料中心", "日间照料中心", "", "", 300]
    table.to_csv(root / "设施.csv", index=False, encoding="gbk")
    cfg = {
        "profile": "wuxi",
        "network": {"lines": str(ROADS)},
        "facilities": {"path": "设施.csv", "crs": "gcj02"},
        "population": {"buildings": str(GRID), "layer": "built_env_250m", "weight_field": "area_residential_m2",
                       "total_population": TOTAL, "elderly_share": ELDERLY_SHARE},
        "communities": {"path": "社区.gpkg"},
        "output": {"formats": ["population", "communities", "facilities", "rejected", "shp"],
                   "shapefile_encoding": "GBK"},
    }
    (root / "cfg.yaml").write_text(yaml.safe_dump(cfg, allow_unicode=True), encoding="utf-8")
    out = root / "out"
    proc = subprocess.run([sys.executable, "-m", "carecircle", "run", str(root / "cfg.yaml"), "--out", str(out)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    return {"ref": ref, "pop": pop, "com": com, "fac": fac, "table": table, "out": out, "summary": summary,
            "root": root}


def test_population_sums_to_the_total(xinwu) -> None:
    out, summary = xinwu["out"], xinwu["summary"]
    pop = gpd.read_file(out / "population.gpkg")
    grid_cells = pyogrio.read_info(GRID, layer="built_env_250m")["features"]
    assert summary["inputs"]["population"]["read"] == grid_cells == len(pop)
    assert pop["people"].sum() == pytest.approx(TOTAL, rel=1e-12)
    assert summary["population"]["people"] == pytest.approx(TOTAL, rel=1e-12)
    assert pop["elderly"].sum() == pytest.approx(TOTAL * ELDERLY_SHARE, rel=1e-12)
    # people per cell = total × weight / Σ weight, at a point inside the cell
    expected = xinwu["pop"]
    np.testing.assert_allclose(pop["people"].to_numpy(), expected["people"].to_numpy(), rtol=1e-9, atol=1e-6)
    assert shapely.within(pop.geometry.to_numpy(), expected["cell"].to_numpy()).all()


def test_every_row_accounted_for(xinwu) -> None:
    out, summary, ref = xinwu["out"], xinwu["summary"], xinwu["ref"]
    for layer, entry in summary["inputs"].items():
        assert entry["read"] == entry["kept"] + entry["rejected"], layer
        assert sum(entry["rejected_by_reason"].values()) == entry["rejected"], layer
        rejected_csv = out / f"rejected_{layer}.csv"
        if entry["rejected"]:
            rej = pd.read_csv(rejected_csv, encoding="utf-8-sig")
            assert len(rej) == entry["rejected"] and rej["row"].notna().all() and rej["reason"].notna().all(), layer
        else:
            assert not rejected_csv.exists(), layer
    roads = gpd.read_file(ROADS)
    net = summary["inputs"]["network"]
    assert net["read"] == len(roads)
    # Only the non-walkable road classes are dropped (the layer's lines are all valid).
    dropped = {k.split("=", 1)[1]: v for k, v in net["rejected_by_reason"].items()}
    assert dropped == roads.loc[roads["highway"].isin(NOT_WALKABLE), "highway"].value_counts().to_dict()
    assert summary["network"]["nodes"] == ref.graph.number_of_nodes()
    fac = summary["inputs"]["facilities"]
    assert fac["read"] == len(xinwu["table"]) and fac["kept"] == len(xinwu["fac"]) and fac["rejected"] == 2
    rej = pd.read_csv(out / "rejected_facilities.csv", encoding="utf-8-sig")
    # line numbers in the file: header is line 1, the two extra rows are the last two lines
    assert sorted(rej["row"].tolist()) == [len(xinwu["table"]), len(xinwu["table"]) + 1]
    assert summary["inputs"]["communities"]["kept"] == len(xinwu["com"])


def test_flags_follow_independent_distances(xinwu) -> None:
    """Communities with no facility within 1 km (straight line, a lower bound of the walk) are
    flagged; those with a centre in them are covered exactly when the networkx distances say so."""
    out, ref, com_in, fac = xinwu["out"], xinwu["ref"], xinwu["com"], xinwu["fac"]
    cutoff = xinwu["summary"]["parameters"]["walk_distance_m"]
    assert cutoff == pytest.approx(1000.0)
    thr = load_profile("wuxi").circle.min_covered_share
    com = gpd.read_file(out / "communities.gpkg").set_index("name")
    pop = gpd.read_file(out / "population.gpkg")
    d = ref.distances(fac.geometry.to_numpy(), pop.geometry.to_numpy())
    far = shapely.distance(com_in.geometry.to_numpy()[:, None], fac.geometry.to_numpy()[None, :]).min(axis=1) > cutoff
    assert far.sum() >= 10 and (~far).sum() >= 10
    for name in com_in.loc[far, "社区名称"]:
        assert com.loc[name, "flag_no_meal"] and com.loc[name, "flag_no_day_care"], name
    covered_seen = 0
    for _, c in com_in.iterrows():
        inside = pop.within(c.geometry).to_numpy()
        e = pop["elderly"].to_numpy()[inside]
        if e.sum() == 0:
            continue
        share = e[d[inside] <= cutoff].sum() / e.sum()
        assert com.loc[c["社区名称"], "elderly_covered_share_meal"] == pytest.approx(share, abs=1e-9), c["社区名称"]
        assert bool(com.loc[c["社区名称"], "flag_no_meal"]) == (share < thr), c["社区名称"]
        if c["社区名称"] in set(fac["community"]):
            covered_seen += share >= thr
    assert covered_seen >= 0.5 * len(fac)  # most communities with a centre are covered


def test_distances_equal_networkx(xinwu) -> None:
    """dist_meal_m of a sample of population points against networkx, to 1e-6 m.

    The reference rounds the centreline vertices to 1 mm as the loader documents (its
    noding grid) and starts from the facility positions the run wrote (facilities.gpkg):
    the GCJ-02 → WGS-84 inversion is the facility loader's business, tested on its own.
    Against the *raw* vertices the two differ by the accumulated rounding: measured at a
    median 0.6 mm and at most 1.0 cm over 2,700 paths of up to 3 km, so 2 cm is the bound.
    """
    out = xinwu["out"]
    pop = gpd.read_file(out / "population.gpkg")
    fac = gpd.read_file(out / "facilities.gpkg").to_crs(UTM50)
    assert fac["snapped"].all()
    limit = xinwu["summary"]["parameters"]["distance_search_limit_m"]
    sample = np.random.default_rng(6).choice(len(pop), 400, replace=False)
    got = pop["dist_meal_m"].to_numpy()[sample]
    points = pop.geometry.to_numpy()[sample]
    exact = Reference(ROADS, grid_m=0.001)
    want = exact.distances(fac.geometry.to_numpy(), points)
    within = want <= limit
    assert within.sum() >= 200 and (~within).sum() >= 20
    np.testing.assert_allclose(got[within], want[within], rtol=0, atol=1e-6)
    assert np.isnan(got[~within]).all()  # beyond 3 × the circle, or more than 300 m from a street
    access = exact.snap(points)[2]
    snapped = access <= MAX_SNAP_M
    np.testing.assert_allclose(pop["snap_m"].to_numpy()[sample][snapped], access[snapped], rtol=0, atol=1e-6)
    assert np.isnan(pop["snap_m"].to_numpy()[sample][~snapped]).all()
    raw = xinwu["ref"].distances(fac.geometry.to_numpy(), points)
    np.testing.assert_allclose(got[within], raw[within], rtol=0, atol=0.02)


def test_gbk_shapefile_package(xinwu) -> None:
    out = xinwu["out"]
    shp = out / "shp" / "communities.shp"
    assert shp.with_suffix(".cpg").read_text(encoding="ascii").strip().upper() in {"GBK", "936", "CP936"}
    back = gpd.read_file(shp, encoding="gbk")
    names = set(xinwu["com"]["社区名称"])
    name_col = next(c for c in back.columns if back[c].astype(str).isin(names).all())
    assert set(back[name_col]) == names
    assert pyogrio.read_info(shp)["crs"] == "EPSG:4549"  # CGCS2000 3° GK at 120° E
