"""The sample district: deterministic files whose values and gaps hold by independent computation.

Every check reads the written files back with plain tools (xml.etree, rasterio, pyogrio,
networkx, pyproj) rather than trusting the generator's own bookkeeping.
"""

from __future__ import annotations

import csv
import xml.etree.ElementTree as ET
from pathlib import Path

import geopandas as gpd
import networkx as nx
import numpy as np
import pyproj
import pytest
import rasterio
import rasterio.features
import shapely
import yaml
from scipy.spatial import cKDTree

from carecircle.layers import crs as cccrs
from carecircle.layers.sample import DEFAULT_SEED, SampleDistrict, generate_sample

WALK_M = 1000.0  # 15 min at 4 km/h
COVERED_M = 800.0  # every resident outside the gap community is at least this well inside
UNWALKABLE = {"motorway", "motorway_link", "trunk", "trunk_link"}
# Service by facility type (日间照料 → day care, 助餐 → meals). The 街道 comprehensive centre
# serves day care and meals in reality, but a reader may flag it as the street centre only: it
# counts as a meal point where that makes the gap harder to keep (the no-meal check) and
# never where it would make the coverage of the other communities easier.
DAY_CARE_TYPES = {"日间照料中心（含助餐点）", "日间照料中心"}
MEAL_TYPES = {"日间照料中心（含助餐点）", "老年助餐点"}


@pytest.fixture(scope="module")
def district(sample_district) -> SampleDistrict:
    return sample_district


@pytest.fixture(scope="module")
def osm(district):
    """Parsed OSM: node id → (x, y) in EPSG:4549, node tags, ways (refs, tags)."""
    root = ET.parse(district.osm).getroot()
    ids, lon, lat, node_tags = [], [], [], {}
    for n in root.iter("node"):
        nid = int(n.get("id"))
        ids.append(nid)
        lon.append(float(n.get("lon")))
        lat.append(float(n.get("lat")))
        tags = {t.get("k"): t.get("v") for t in n.iter("tag")}
        if tags:
            node_tags[nid] = tags
    x, y = pyproj.Transformer.from_crs(4326, 4549, always_xy=True).transform(lon, lat)
    xy = dict(zip(ids, zip(x, y)))
    ways = [([int(nd.get("ref")) for nd in w.iter("nd")], {t.get("k"): t.get("v") for t in w.iter("tag")})
            for w in root.iter("way")]
    return {"xy": xy, "node_tags": node_tags, "ways": ways, "root": root}


@pytest.fixture(scope="module")
def walk_graph(osm):
    """Walkable ways as a networkx graph weighted by metres."""
    g = nx.Graph()
    xy = osm["xy"]
    for refs, tags in osm["ways"]:
        if tags.get("highway") in UNWALKABLE or tags.get("foot") == "no":
            continue
        for a, b in zip(refs[:-1], refs[1:]):
            g.add_edge(a, b, weight=float(np.hypot(xy[a][0] - xy[b][0], xy[a][1] - xy[b][1])))
    return g


@pytest.fixture(scope="module")
def residents(district):
    """Populated cell centres (EPSG:4549) with the community each falls in."""
    with rasterio.open(district.population) as src:
        pop = src.read(1)
        nodata = src.nodata
        rows, cols = np.nonzero((pop != nodata) & (pop > 0))
        xs, ys = rasterio.transform.xy(src.transform, rows, cols)
    pts = gpd.GeoDataFrame({"people": pop[rows, cols]}, geometry=gpd.points_from_xy(xs, ys), crs=src.crs)
    com = gpd.read_file(district.communities)
    return gpd.sjoin(pts, com[["name", "geometry"]], predicate="within").drop(columns="index_right")


@pytest.fixture(scope="module")
def facilities(district):
    with open(district.facilities, encoding="utf-8-sig", newline="") as fh:
        rows = list(csv.DictReader(fh))
    lon, lat = cccrs.to_wgs84([float(r["经度"]) for r in rows], [float(r["纬度"]) for r in rows], "gcj02")
    x, y = pyproj.Transformer.from_crs(4326, 4549, always_xy=True).transform(lon, lat)
    for r, a, b, px, py in zip(rows, lon, lat, x, y):
        r.update(lon=a, lat=b, x=px, y=py)
    return rows


def _nearest_nodes(graph: nx.Graph, xy: dict, points: np.ndarray) -> list[int]:
    nodes = np.array(list(graph.nodes))
    tree = cKDTree(np.array([xy[n] for n in nodes]))
    return list(nodes[tree.query(points)[1]])


def _distance_to(graph, xy, residents, facilities, types) -> np.ndarray:
    """Network distance (nearest node to nearest node) from each resident cell to the
    nearest facility of ``types`` — one multi-source Dijkstra, as a reference."""
    fac = np.array([(f["x"], f["y"]) for f in facilities if f["类型"] in types])
    sources = set(_nearest_nodes(graph, xy, fac))
    dist = nx.multi_source_dijkstra_path_length(graph, sources)
    homes = _nearest_nodes(graph, xy, np.column_stack([residents.geometry.x, residents.geometry.y]))
    return np.array([dist.get(n, np.inf) for n in homes])


# ----------------------------------------------------------------------------- determinism

FILES = ("district.osm", "facilities.csv", "facilities_gbk.csv", "population.tif", "elderly.tif",
         "communities.gpkg", "estates.gpkg", "streets.gpkg", "config.yaml")


def test_same_seed_gives_byte_identical_files(district, tmp_path):
    again = generate_sample(tmp_path / "again", seed=DEFAULT_SEED)
    for name in FILES:
        assert (district.out_dir / name).read_bytes() == (again.out_dir / name).read_bytes(), name


@pytest.mark.parametrize("seed", [3, 7])
def test_other_seed_gives_other_district_with_the_same_gaps(district, tmp_path, seed):
    other = generate_sample(tmp_path / "other", seed=seed)
    for name in ("district.osm", "facilities.csv", "population.tif", "estates.gpkg"):
        assert (district.out_dir / name).read_bytes() != (other.out_dir / name).read_bytes(), name
    assert [(g.check, g.street, g.community, g.estate) for g in other.gaps] == \
           [(g.check, g.street, g.community, g.estate) for g in district.gaps]
    (no_meal,) = other.gaps_of("no_meal")
    assert no_meal.value >= 1150  # Manhattan lower bound of the walk to the nearest meal


# ----------------------------------------------------------------------------- files and values


def test_config_is_the_public_format_with_relative_paths(district):
    from carecircle.config import load_config

    raw = yaml.safe_load(district.config.read_text(encoding="utf-8"))
    assert raw["profile"] == "wuxi"
    assert raw["facilities"]["crs"] == "gcj02" and raw["facilities"]["x"] == "经度"
    assert not Path(raw["network"]["osm"]).is_absolute()
    cfg = load_config(district.config)  # every named file exists
    assert cfg.network.osm == district.osm.resolve()
    assert cfg.population.elderly_raster == district.elderly.resolve()


def test_raster_sums_per_community_equal_the_community_table(district):
    com = gpd.read_file(district.communities)
    assert com.crs.to_epsg() == 4549 and 10 <= len(com) <= 15
    with rasterio.open(district.population) as src, rasterio.open(district.elderly) as eld:
        assert src.crs.to_epsg() == 4549 and src.res == (100.0, 100.0) and src.nodata is not None
        pop, old = src.read(1, masked=True), eld.read(1, masked=True)
        assert 0 < pop.mask.sum() < 20  # a few nodata cells (the wetland pond)
        for _, c in com.iterrows():
            inside = ~rasterio.features.geometry_mask([c.geometry], pop.shape, src.transform)
            assert float(pop[inside].sum()) == c["population"], c["name"]
            assert float(old[inside].sum()) == c["elderly"], c["name"]
        assert float(pop.sum()) == com["population"].sum()
        assert np.all(pop.compressed() == np.round(pop.compressed()))  # whole persons


def test_households_elderly_and_estates_are_consistent(district):
    com = gpd.read_file(district.communities).set_index("name")
    est = gpd.read_file(district.estates)
    assert set(com["street"]) == {"旺庄街道", "硕放街道", "梅村街道"}
    per = est.groupby("community")[["households", "population", "elderly"]].sum()
    assert (per["households"] == com.loc[per.index, "households"]).all()
    assert (per["population"] == com.loc[per.index, "population"]).all()
    assert ((com["population"] / com["households"]).between(2.2, 2.9)).all()
    assert ((com["elderly"] / com["population"]).between(0.1, 0.4)).all()
    # every estate lies inside the community it names
    joined = gpd.sjoin(est.set_geometry(est.representative_point()), com.reset_index()[["name", "geometry"]],
                       predicate="within")
    assert (joined["community"] == joined["name_right"]).all() and len(joined) == len(est)
    assert (est["built_year"] >= 2014).any() and (est["built_year"] < 2014).any()
    assert est["name"].is_unique
    streets = gpd.read_file(district.streets)
    assert streets.crs.to_epsg() == 4326 and sorted(streets["name"]) == sorted(set(com["street"]))
    assert shapely.union_all(streets.to_crs(4549).geometry.values).area == pytest.approx(3000 * 3000, rel=1e-3)


def test_facility_csv_headers_encodings_and_gcj02_round_trip(district, facilities):
    raw = district.facilities.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    assert raw.decode("utf-8-sig").splitlines()[0] == "名称,类型,地址,经度,纬度,建筑面积,床位"
    assert district.facilities_gbk.read_bytes().decode("gbk") == raw.decode("utf-8-sig")
    geod = pyproj.Geod(ellps="WGS84")
    for f in facilities:
        lon, lat = district.facility_wgs84[f["名称"]]
        assert geod.inv(lon, lat, f["lon"], f["lat"])[2] < 0.01, f["名称"]
        # GCJ-02 really is shifted (hundreds of metres in Wuxi)
        assert geod.inv(lon, lat, float(f["经度"]), float(f["纬度"]))[2] > 100
    types = {f["类型"] for f in facilities}
    assert {"日间照料中心（含助餐点）", "日间照料中心", "老年助餐点", "街道综合养老服务中心", "护理院"} <= types


# ----------------------------------------------------------------------------- the network


def test_osm_has_bounds_names_and_the_ways_to_exclude(osm):
    bounds = osm["root"].find("bounds")
    assert bounds is not None
    lon = [float(n.get("lon")) for n in osm["root"].iter("node")]
    assert float(bounds.get("minlon")) < min(lon) and max(lon) < float(bounds.get("maxlon"))
    highways = [t.get("highway") for _, t in osm["ways"]]
    assert {"primary", "secondary", "residential", "footway", "motorway"} <= set(highways)
    assert any(t.get("foot") == "no" for _, t in osm["ways"])
    assert "长江路" in {t.get("name") for _, t in osm["ways"]}
    assert 120.3 < np.mean(lon) < 120.4


def test_compounds_reach_the_street_only_through_gates(district, osm, walk_graph):
    est = gpd.read_file(district.estates)
    gated = est[est["gated"]]
    assert len(gated) > 50
    gates = {n for n, t in osm["node_tags"].items() if t.get("barrier") == "gate"}
    nodes = np.array(list(walk_graph.nodes))
    pts = shapely.points([osm["xy"][n] for n in nodes])
    no_gates = walk_graph.subgraph(set(walk_graph.nodes) - gates)
    outside = next(refs[0] for refs, tags in osm["ways"] if tags.get("highway") == "primary")
    for _, e in gated.iterrows():
        # (coordinates went through 7-decimal degrees: "on the fence" means within 5 cm)
        on_fence = nodes[shapely.dwithin(pts, e.geometry.boundary, 0.05)]
        interior = set(nodes[shapely.contains_properly(e.geometry, pts)]) - set(on_fence)
        own_gates = set(on_fence) & gates
        assert interior and len(own_gates) >= 3, e["name"]
        assert set(on_fence) == own_gates, e["name"]  # nothing else crosses the fence
        # without its gates the compound is an island of exactly its interior nodes ...
        assert nx.node_connected_component(no_gates, next(iter(interior))) == interior, e["name"]
        # ... and through them it joins the street network
        assert nx.has_path(walk_graph, next(iter(interior)), outside), e["name"]
    # open 新村 are open: their lanes reach the street without any gate
    for _, e in est[~est["gated"]].iterrows():
        inner = nodes[shapely.contains_properly(e.geometry, pts)]
        assert inner.size and nx.has_path(no_gates, inner[0], outside), e["name"]


def _walkable_length_km(district) -> float:
    """Length of the walkable ways, summed independently from the XML."""
    root = ET.parse(district.osm).getroot()
    lonlat = {n.get("id"): (float(n.get("lon")), float(n.get("lat"))) for n in root.iter("node")}
    geod = pyproj.Geod(ellps="WGS84")
    total = 0.0
    for w in root.iter("way"):
        tags = {t.get("k"): t.get("v") for t in w.iter("tag")}
        if tags.get("highway") in UNWALKABLE or tags.get("foot") == "no":
            continue
        lon, lat = zip(*(lonlat[nd.get("ref")] for nd in w.iter("nd")))
        total += geod.line_length(lon, lat)
    return total / 1000


def test_the_project_osm_reader_drops_the_unwalkable_ways(district):
    from carecircle.layers.osm import read_osm

    net = read_osm(district.osm)
    assert net.report.read == sum(1 for _ in ET.parse(district.osm).getroot().iter("way"))
    assert len(net.report.rejected) == 3  # motorway, motorway_link, foot=no
    assert net.stats["components"] == 1
    assert net.stats["total_length_km"] == pytest.approx(_walkable_length_km(district), rel=0.01)


# ----------------------------------------------------------------------------- the gaps


def test_gap_community_has_no_meal_point_in_reach_and_everyone_else_does(district, osm, walk_graph,
                                                                          residents, facilities):
    (gap,) = district.gaps_of("no_meal")
    meal_like = MEAL_TYPES | {"街道综合养老服务中心"}
    to_meal_any = _distance_to(walk_graph, osm["xy"], residents, facilities, meal_like)
    to_meal = _distance_to(walk_graph, osm["xy"], residents, facilities, MEAL_TYPES)
    to_day = _distance_to(walk_graph, osm["xy"], residents, facilities, DAY_CARE_TYPES)
    in_gap = (residents["name"] == gap.community).to_numpy()
    assert in_gap.sum() >= 4
    assert to_meal_any[in_gap].min() > WALK_M + 100  # nobody in the gap community
    assert to_meal[~in_gap].max() <= COVERED_M  # everybody elsewhere, with margin
    assert to_day.max() <= COVERED_M  # day care everywhere, the gap community included
    assert gap.value >= 1150 and gap.street == "梅村街道"


def test_gap_estate_is_short_of_space_and_every_other_estate_meets_it(district):
    (gap,) = district.gaps_of("space")
    est = gpd.read_file(district.estates)
    rate = np.where(est["built_year"] >= 2014, 20.0, 15.0)  # Wuxi minimum per 100 households
    required = est["households"] * rate / 100
    short = est["space_m2"] < required
    assert est.loc[short, "name"].tolist() == [gap.estate]
    row = est[est["name"] == gap.estate].iloc[0]
    assert row["built_year"] >= 2014 and row["community"] == gap.community
    assert gap.required == pytest.approx(row["households"] * 0.20)
    assert (est.loc[~short, "space_m2"] >= 1.1 * required[~short]).all()  # margin
    # the shortfall shows in the community total as well
    mine = est["community"] == gap.community
    assert est.loc[mine, "space_m2"].sum() < required[mine].sum() - 50


def test_gap_street_has_no_comprehensive_centre_and_the_others_do(district, facilities):
    (gap,) = district.gaps_of("no_street_centre")
    streets = gpd.read_file(district.streets).to_crs(4549)
    centres = [shapely.Point(f["x"], f["y"]) for f in facilities if f["类型"] == "街道综合养老服务中心"]
    having = {s["name"] for _, s in streets.iterrows() if any(s.geometry.contains(p) for p in centres)}
    assert set(streets["name"]) - having == {gap.street}


def test_every_community_has_a_station_inside(district, facilities):
    com = gpd.read_file(district.communities)
    pts = gpd.GeoDataFrame(geometry=[shapely.Point(f["x"], f["y"]) for f in facilities
                                     if f["类型"] in DAY_CARE_TYPES | MEAL_TYPES], crs=4549)
    inside = gpd.sjoin(pts, com, predicate="within")["name"]
    assert set(inside) == set(com["name"])
