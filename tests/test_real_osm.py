"""Network readers on the real extracts in ../shared/data, checked against independent builds.

Reference for the OSM extracts: osmnx ``graph_from_xml`` (unsimplified: one edge per way
segment, osmnx's own XML parser), filtered to the walkable ways, each segment clipped to
the file's bounds, measured with geodesic (pyproj.Geod) lengths and loaded into a networkx
MultiGraph keyed by location. Reference for the Wuxi line layer: a networkx graph of every
line segment. The walking filter itself is tested case by case in test_network.py.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

import geopandas as gpd
import networkx as nx
import numpy as np
import pyproj
import pytest
import shapely
from scipy.spatial import cKDTree

from carecircle.layers import network as nw
from carecircle.layers.lines import LINE_EXCLUDED_CLASSES, read_lines
from carecircle.layers.osm import read_osm

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
OSM_DIR = DATA / "osm"
WUXI = DATA / "wuxi_xinwu" / "xinwu_road_centerlines.gpkg"
GEOD = pyproj.Geod(ellps="WGS84")
WAY_TAGS = ["access", "area", "foot", "highway", "motorroad", "service", "sidewalk", "sidewalk:both",
            "sidewalk:left", "sidewalk:right"]

pytestmark = pytest.mark.shared
if not DATA.is_dir():
    pytest.skip(f"../shared/data absent: {DATA} (real-data network tests)", allow_module_level=True)

OSM_FILES = sorted(OSM_DIR.glob("*.osm"))


def file_bounds(path: Path) -> tuple[float, float, float, float]:
    head = path.read_text(encoding="utf-8")[:2000]
    attrs = dict(re.findall(r'(min\w+|max\w+)="([-\d.]+)"', re.search(r"<bounds[^>]*>", head).group(0)))
    return tuple(float(attrs[k]) for k in ("minlon", "minlat", "maxlon", "maxlat"))


def reference_graph(path: Path):
    """Walkable way segments clipped to the bounds: networkx MultiGraph on 1e-7° locations."""
    import osmnx as ox

    saved = ox.settings.useful_tags_way
    ox.settings.useful_tags_way = sorted(set(saved) | set(WAY_TAGS))
    try:
        graph = ox.graph_from_xml(path, simplify=False, retain_all=True, bidirectional=True)
    finally:
        ox.settings.useful_tags_way = saved
    nodes, edges = ox.graph_to_gdfs(graph, fill_edge_geometry=False)
    edges = edges.reset_index()
    edges = edges[edges["highway"].notna()]
    tags = [c for c in WAY_TAGS if c in edges.columns]
    walkable = [
        nw.walk_exclusion({k: v for k, v in zip(tags, row) if isinstance(v, str)}) is None
        for row in edges[tags].itertuples(index=False)
    ]
    edges = edges[walkable]
    # each way segment once (the graph holds both directions)
    pair = np.sort(edges[["u", "v"]].to_numpy(), axis=1)
    edges = edges.assign(a=pair[:, 0], b=pair[:, 1]).drop_duplicates(["osmid", "a", "b"])
    start = nodes.loc[edges["u"], ["x", "y"]].to_numpy()
    end = nodes.loc[edges["v"], ["x", "y"]].to_numpy()
    segments = shapely.linestrings(np.stack([start, end], axis=1))
    pieces = shapely.get_parts(shapely.clip_by_rect(segments, *file_bounds(path)))
    pieces = pieces[shapely.get_type_id(pieces) == 1]
    a = shapely.get_coordinates(shapely.get_point(pieces, 0))
    b = shapely.get_coordinates(shapely.get_point(pieces, -1))
    _, _, length = GEOD.inv(a[:, 0], a[:, 1], b[:, 0], b[:, 1])
    key_a = [tuple(k) for k in np.rint(a * 1e7).astype(np.int64)]
    key_b = [tuple(k) for k in np.rint(b * 1e7).astype(np.int64)]
    reference = nx.MultiGraph()
    reference.add_weighted_edges_from(
        ((p, q, d) for p, q, d in zip(key_a, key_b, length) if p != q), weight="length"
    )
    return reference


def reference_highway_counts(path: Path) -> Counter:
    counts = Counter()
    for way in ET.parse(path).getroot().iter("way"):
        tags = {t.get("k"): t.get("v") for t in way.iter("tag")}
        if "highway" in tags:
            counts[tags["highway"]] += 1
    return counts


@pytest.fixture(scope="module", params=OSM_FILES, ids=[p.stem for p in OSM_FILES])
def extract(request):
    path = request.param
    return path, read_osm(path), reference_graph(path)


def test_osm_extract_counts_ways(extract):
    path, net, _ = extract
    highways = reference_highway_counts(path)
    assert net.report.read == sum(highways.values())
    assert net.report.read == net.report.kept + len(net.report.rejected)
    for value in ("motorway", "motorway_link", "platform", "construction"):
        assert net.stats["excluded_by_reason"].get(f"highway={value}", 0) == highways.get(value, 0)
    assert set(net.report.rejected.columns) >= {"row", "osm_id", "highway", "reason"}
    assert net.crs.to_epsg() in (32650, 32649)


def test_osm_extract_matches_osmnx_segments(extract):
    path, net, reference = extract
    # planar UTM lengths vs geodesics: the UTM scale error here is below 0.07 %
    total = reference.size(weight="length")
    assert net.edges["length_m"].sum() == pytest.approx(total, rel=1.5e-3)
    assert net.stats["components"] == nx.number_connected_components(reference)
    assert net.stats["dangles"] == sum(1 for _, degree in reference.degree() if degree == 1)
    largest = max(nx.connected_components(reference), key=len)
    share = reference.subgraph(largest).size(weight="length") / total
    assert net.stats["largest_component_length_share"] == pytest.approx(share, abs=2e-3)
    assert 300 < net.stats["nodes"] < 1200 and net.stats["largest_component_share"] > 0.85


def test_osm_extract_nodes_and_walk_distances(extract):
    path, net, reference = extract
    to_metric = pyproj.Transformer.from_crs(4326, net.crs, always_xy=True)
    keys = list(reference.nodes)
    lonlat = np.asarray(keys, dtype=float) / 1e7
    ref_xy = np.column_stack(to_metric.transform(lonlat[:, 0], lonlat[:, 1]))
    ours_xy = net.nodes[["x", "y"]].to_numpy()

    # every node is a reference location, and every junction or dead end is a node
    gap, match = cKDTree(ref_xy).query(ours_xy)
    assert gap.max() < 0.05
    junctions = np.array([reference.degree(k) != 2 for k in keys])
    gap_back, _ = cKDTree(ours_xy).query(ref_xy[junctions])
    assert gap_back.max() < 0.05

    ours = nx.MultiGraph()
    ours.add_weighted_edges_from(net.edges[["u", "v", "length_m"]].itertuples(index=False), weight="length")
    rng = np.random.default_rng(7)
    for source in rng.choice(net.stats["nodes"], size=5, replace=False):
        mine = nx.single_source_dijkstra_path_length(ours, int(source), weight="length")
        theirs = nx.single_source_dijkstra_path_length(reference, keys[match[source]], weight="length")
        targets = np.array(sorted(mine))
        expected = np.array([theirs[keys[match[t]]] for t in targets])
        got = np.array([mine[t] for t in targets])
        np.testing.assert_allclose(got, expected, rtol=1.5e-3, atol=0.05)


@pytest.fixture(scope="module")
def wuxi():
    if not WUXI.is_file():
        pytest.skip(f"../shared/data absent: {WUXI}")
    return gpd.read_file(WUXI)


def segment_graph(frame) -> tuple[nx.Graph, int]:
    """Every vertex a node (1 mm), every segment an edge; and the count of vertices that
    are line ends or occur more than once (where noding on shared vertices cuts)."""
    graph = nx.MultiGraph()
    uses = Counter()
    for line in frame.geometry.to_numpy():
        pts = [tuple(p) for p in np.rint(shapely.get_coordinates(line) * 1000).astype(np.int64)]
        pts = [p for i, p in enumerate(pts) if i == 0 or p != pts[i - 1]]
        graph.add_weighted_edges_from(
            ((p, q, float(np.hypot(p[0] - q[0], p[1] - q[1])) / 1000) for p, q in zip(pts, pts[1:])),
            weight="length",
        )
        uses.update(pts)
        uses.update([pts[0], pts[-1]])
    return graph, sum(1 for count in uses.values() if count >= 2)


def test_wuxi_line_layer_every_line(wuxi):
    net = read_lines(WUXI, exclude_classes=())
    reference, cut_vertices = segment_graph(wuxi)
    largest = max(nx.connected_components(reference), key=len)
    # the data README's "~26k nodes, ~98.6 % in one component" counts every vertex
    assert 25_000 < reference.number_of_nodes() < 27_000
    assert len(largest) / reference.number_of_nodes() == pytest.approx(0.986, abs=0.002)
    # noding on shared vertices keeps the topology with only the junctions as nodes
    assert net.stats["nodes"] == cut_vertices
    assert net.stats["components"] == nx.number_connected_components(reference)
    assert net.stats["dangles"] == sum(1 for _, degree in reference.degree() if degree == 1)
    total = reference.size(weight="length")
    assert net.edges["length_m"].sum() == pytest.approx(total, rel=1e-6)
    assert net.edges["length_m"].sum() == pytest.approx(wuxi.geometry.length.sum(), rel=1e-6)
    assert net.stats["largest_component_length_share"] == pytest.approx(
        reference.subgraph(largest).size(weight="length") / total, rel=1e-6
    )
    assert net.stats["largest_component_share"] > 0.98
    assert net.report.read == net.report.kept == len(wuxi)
    assert net.crs.to_epsg() == 32650


def test_wuxi_line_layer_walking_classes(wuxi):
    net = read_lines(WUXI)
    excluded = wuxi["highway"][wuxi["highway"].isin(LINE_EXCLUDED_CLASSES)].value_counts()
    assert net.stats["excluded_by_reason"] == {f"highway={k}": int(v) for k, v in excluded.items()}
    assert net.report.kept == len(wuxi) - int(excluded.sum())
    kept = wuxi[~wuxi["highway"].isin(LINE_EXCLUDED_CLASSES)]
    reference, cut_vertices = segment_graph(kept)
    assert net.stats["nodes"] == cut_vertices
    assert net.stats["components"] == nx.number_connected_components(reference)
    assert set(net.edges["highway"]) == set(kept["highway"])
    assert net.edges["length_m"].sum() == pytest.approx(kept.geometry.length.sum(), rel=1e-6)
