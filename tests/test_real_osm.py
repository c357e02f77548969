"""Network readers on the real extracts in ../shared/data, checked against independent counts.

OSM extracts: every highway way is kept or rejected with its reason, counted against the
file's own tags (the walk distances on these extracts are compared with an osmnx/networkx
reference in test_walk_rules_real.py). Wuxi line layer: a networkx graph of every line
segment. The walking filter itself is tested case by case in test_network.py and
test_walk_rules.py.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

import geopandas as gpd
import networkx as nx
import numpy as np
import pytest
import shapely
from conftest import SHARED_DATA

from carecircle.layers.lines import LINE_EXCLUDED_CLASSES, read_lines
from carecircle.layers.osm import read_osm

DATA = SHARED_DATA
OSM_DIR = DATA / "osm"
WUXI = DATA / "wuxi_xinwu" / "xinwu_road_centerlines.gpkg"

pytestmark = pytest.mark.shared
if not DATA.is_dir():
    pytest.skip(f"../shared/data absent: {DATA} (real-data network tests)", allow_module_level=True)

OSM_FILES = sorted(OSM_DIR.glob("*.osm"))


def reference_highway_counts(path: Path) -> Counter:
    counts = Counter()
    for way in ET.parse(path).getroot().iter("way"):
        tags = {t.get("k"): t.get("v") for t in way.iter("tag")}
        if "highway" in tags:
            counts[tags["highway"]] += 1
    return counts


@pytest.fixture(scope="module", params=OSM_FILES, ids=[p.stem for p in OSM_FILES])
def extract(request):
    return request.param, read_osm(request.param)


def test_osm_extract_counts_ways(extract):
    path, net = extract
    highways = reference_highway_counts(path)
    assert net.report.read == sum(highways.values())
    assert net.report.read == net.report.kept + len(net.report.rejected)
    for value in ("motorway", "motorway_link", "platform", "construction"):
        assert net.stats["excluded_by_reason"].get(f"highway={value}", 0) == highways.get(value, 0)
    assert set(net.report.rejected.columns) >= {"row", "osm_id", "highway", "reason"}
    assert net.crs.to_epsg() in (32650, 32649)


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
