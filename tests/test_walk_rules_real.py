"""The walk rules on the three real extracts, against an osmnx/networkx reference.

The reference is built independently of carecircle's noding: osmnx parses the XML
(``graph_from_xml``, unsimplified: one edge per way segment, with the way and node tags the
rules read), the documented rules select the ways (``walk_exclusion``) and close the
barrier nodes (``node_closure``: in networkx a closed node becomes one dead end per
segment that reaches it), pedestrian areas get straight crossings between the points where
other ways meet their outline (when the line stays inside), nothing is clipped at the
bounds (in the ``clip_margin_m=0`` case each segment is clipped on its own), and nodes are
keyed by their 1e-7° location (duplicate nodes merge). Segment lengths are planar in the
network's CRS. Points are snapped to the nearest reference segment with shapely and walked
with networkx; carecircle's distances must agree within 1 m for at least 99.5 % of them.
"""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import networkx as nx
import numpy as np
import pyproj
import pytest
import shapely

from carecircle.coverage.graph import build_graph
from carecircle.coverage.reach import nearest_distance
from carecircle.coverage.snap import snap_points
from carecircle.layers import network as nw
from carecircle.layers.osm import read_osm

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
OSM_FILES = sorted((DATA / "osm").glob("*.osm")) if DATA.is_dir() else []
WAY_TAGS = ["access", "area", "foot", "highway", "motorroad", "service", "sidewalk", "sidewalk:both",
            "sidewalk:left", "sidewalk:right", "wheelchair", "ramp", "ramp:wheelchair"]
NODE_TAGS = ["barrier", "access", "foot", "locked", "wheelchair", "kerb"]
#: read_osm keywords per case; "clipped" is the clip_margin_m option with areas left out
RULES = {"default": {}, "step_free": {"step_free": True}, "private": {"include_private": True},
         "clipped": {"clip_margin_m": 0, "pedestrian_areas": "none"}}
MAX_SNAP, CUTOFF = 200.0, 3000.0

pytestmark = [
    pytest.mark.shared,
    pytest.mark.skipif(not OSM_FILES, reason=f"../shared/data absent: {DATA} (real OSM extracts)"),
]


def reference_graph(path: Path, crs, rules: dict) -> nx.MultiGraph:
    """Walkable segments as a networkx MultiGraph in ``crs``; nodes keyed by location."""
    import osmnx as ox

    saved = ox.settings.useful_tags_way, ox.settings.useful_tags_node
    ox.settings.useful_tags_way = sorted(set(saved[0]) | set(WAY_TAGS))
    ox.settings.useful_tags_node = sorted(set(saved[1]) | set(NODE_TAGS))
    try:
        graph = ox.graph_from_xml(path, simplify=False, retain_all=True, bidirectional=True)
    finally:
        ox.settings.useful_tags_way, ox.settings.useful_tags_node = saved
    nodes, edges = ox.graph_to_gdfs(graph, fill_edge_geometry=False)
    edges = edges.reset_index()
    edges = edges[edges["highway"].notna()]
    way_cols = [c for c in WAY_TAGS if c in edges.columns]
    areas = rules.get("pedestrian_areas", "across")
    way_rules = {k: v for k, v in rules.items() if k in ("include_private", "step_free", "cycleways")}
    way_ok = [nw.walk_exclusion({k: v for k, v in zip(way_cols, row) if isinstance(v, str)}, areas=areas != "none",
                                **way_rules) is None
              for row in edges[way_cols].itertuples(index=False)]
    edges = edges[way_ok]
    pair = np.sort(edges[["u", "v"]].to_numpy(), axis=1)
    edges = edges.assign(a=pair[:, 0], b=pair[:, 1]).drop_duplicates(["osmid", "a", "b"])
    node_cols = [c for c in NODE_TAGS if c in nodes.columns]
    closed = {
        node for node, row in zip(nodes.index, nodes[node_cols].itertuples(index=False))
        if nw.node_closure({k: v for k, v in zip(node_cols, row) if isinstance(v, str)},
                           include_private=rules.get("include_private", False),
                           step_free=rules.get("step_free", False)) is not None
    }
    to_metric = pyproj.Transformer.from_crs(4326, crs, always_xy=True)
    x, y = to_metric.transform(nodes["x"].to_numpy(), nodes["y"].to_numpy())
    xy = dict(zip(nodes.index, zip(x, y)))
    lonlat = dict(zip(nodes.index, map(tuple, nodes[["x", "y"]].to_numpy())))

    def grid(point):
        return tuple(np.rint(np.asarray(point) * 1e7).astype(np.int64))

    location = {n: grid(lonlat[n]) for n in nodes.index}
    closed_locations = {location[n] for n in closed}
    box = file_bounds(path) if rules.get("clip_margin_m") == 0 else None

    reference = nx.MultiGraph()

    def key(node, edge_id):  # a closed location: one dead end per segment reaching it
        return (location[node], edge_id) if location[node] in closed_locations else location[node]

    def add(p, q, edge_id):
        ka, kb, a, b = key(p, edge_id), key(q, edge_id), xy[p], xy[q]
        here, there = location[p], location[q]
        if box is not None:  # each segment clipped on its own; cut points on the 1e-7° grid
            piece = shapely.clip_by_rect(shapely.LineString([lonlat[p], lonlat[q]]), *box)
            if piece.is_empty or piece.geom_type != "LineString":
                return
            ends = shapely.get_coordinates(piece)[[0, -1]]
            if grid(ends[0]) != here:
                here = ka = grid(ends[0])
                a = to_metric.transform(*ends[0])
            if grid(ends[1]) != there:
                there = kb = grid(ends[1])
                b = to_metric.transform(*ends[1])
        if here == there:
            return
        reference.add_edge(ka, kb, length=float(np.hypot(*np.subtract(a, b))), line=(a, b), start=ka)

    for i, (u, v) in enumerate(edges[["u", "v"]].itertuples(index=False)):
        add(u, v, ("e", i))
    # pedestrian areas: straight crossings between entrances, inside the area
    ways_of_node: dict = {}
    for osmid, u, v in edges[["osmid", "u", "v"]].itertuples(index=False):
        for n in (u, v):
            ways_of_node.setdefault(location[n], set()).add(osmid)
    for osmid, ring in edges[(edges["area"] == "yes") & (areas == "across")].groupby("osmid"):
        ring_nodes = list(dict.fromkeys(ring["u"].tolist() + ring["v"].tolist()))
        polygon = shapely.Polygon([xy[n] for n in _ring_order(ring)])
        if not polygon.is_valid:
            polygon = shapely.make_valid(polygon)
        entrances = list({location[n]: n for n in ring_nodes if len(ways_of_node[location[n]]) >= 2}.values())
        for p, q in itertools.combinations(entrances, 2):
            if shapely.covers(shapely.buffer(polygon, 1e-3), shapely.LineString([xy[p], xy[q]])):
                add(p, q, ("x", osmid, p, q))
    return reference


def file_bounds(path: Path) -> tuple[float, float, float, float]:
    """minlon, minlat, maxlon, maxlat of an OSM XML export's ``<bounds>``."""
    head = path.read_text(encoding="utf-8")[:2000]
    attrs = dict(re.findall(r'(min\w+|max\w+)="([-\d.]+)"', re.search(r"<bounds[^>]*>", head).group(0)))
    return tuple(float(attrs[k]) for k in ("minlon", "minlat", "maxlon", "maxlat"))


def _ring_order(ring) -> list:
    """The nodes of a closed way in walking order, from its (unordered) segments."""
    adjacency: dict = {}
    for u, v in ring[["u", "v"]].itertuples(index=False):
        adjacency.setdefault(u, []).append(v)
        adjacency.setdefault(v, []).append(u)
    start = next(iter(adjacency))
    order, previous = [start], None
    while True:
        here = order[-1]
        step = [n for n in adjacency[here] if n != previous]
        if not step or (step[0] == start and len(order) > 2):
            break
        previous = here
        order.append(step[0])
    return order


def reference_distances(reference: nx.MultiGraph, sources, targets) -> np.ndarray:
    """Nearest-segment snapping (within MAX_SNAP) and a multi-source Dijkstra in networkx."""
    data = list(reference.edges(keys=True, data=True))
    segments = shapely.linestrings([d["line"] for *_, d in data])
    tree = shapely.STRtree(segments)

    def snap(points):
        idx, dist = tree.query_nearest(points, max_distance=MAX_SNAP, return_distance=True, all_matches=False)
        out = [None] * len(points)
        for (p, s), d in zip(idx.T, dist):
            out[p] = (int(s), float(shapely.line_locate_point(segments[s], points[p])), float(d))
        return out

    graph = reference.copy()
    src, tgt = snap(sources), snap(targets)
    for name, snapped in (("s", src), ("t", tgt)):
        for i, hit in enumerate(snapped):
            if hit is None:
                continue
            s, along, access = hit
            a, b, _, d = data[s]
            first, second = (a, b) if d["start"] == a else (b, a)
            graph.add_edge((name, i), first, length=access + along)
            graph.add_edge((name, i), second, length=access + d["length"] - along)
    # a source and a target on one segment also walk straight along it
    for j, hit in enumerate(tgt):
        for i, s_hit in enumerate(src):
            if hit and s_hit and hit[0] == s_hit[0]:
                graph.add_edge(("s", i), ("t", j), length=hit[2] + abs(hit[1] - s_hit[1]) + s_hit[2])
    graph.add_node("origin")
    for i, hit in enumerate(src):
        if hit is not None:
            graph.add_edge("origin", ("s", i), length=0.0)
    dist = nx.single_source_dijkstra_path_length(graph, "origin", cutoff=CUTOFF, weight="length")
    # a path through another target's virtual node is a real walk too (it lies on a street)
    return np.array([dist.get(("t", j), np.inf) if tgt[j] else np.inf for j in range(len(targets))])


def random_points(network, n, rng, spread=120.0):
    coords = shapely.get_coordinates(network.edges.geometry.values)
    return shapely.points(coords[rng.integers(0, len(coords), n)] + rng.normal(0, spread, (n, 2)))


@pytest.mark.parametrize("rules", list(RULES), ids=list(RULES))
@pytest.mark.parametrize("path", OSM_FILES, ids=[p.stem for p in OSM_FILES])
def test_real_extract_distances_match_the_reference(path, rules):
    net = read_osm(path, **RULES[rules])
    reference = reference_graph(path, net.crs, RULES[rules])
    # the same streets, lengths and topology
    assert net.edges["length_m"].sum() == pytest.approx(reference.size(weight="length"), rel=1e-6)
    assert net.stats["components"] == nx.number_connected_components(reference)
    assert net.stats["dangles"] == sum(1 for _, degree in reference.degree() if degree == 1)

    rng = np.random.default_rng(len(path.name) + len(rules))
    sources, targets = random_points(net, 6, rng), random_points(net, 800, rng)
    graph = build_graph(net, min_component_nodes=1)
    ours, _ = nearest_distance(graph, snap_points(graph, sources, max_snap_m=MAX_SNAP),
                               snap_points(graph, targets, max_snap_m=MAX_SNAP), cutoff_m=CUTOFF)
    theirs = reference_distances(reference, sources, targets)
    gap = np.abs(np.nan_to_num(ours, posinf=-1.0) - np.nan_to_num(theirs, posinf=-1.0))
    agree = (np.isinf(ours) == np.isinf(theirs)) & (gap <= 1.0)
    assert agree.mean() >= 0.995, (agree.mean(), np.flatnonzero(~agree)[:10])
    assert np.isfinite(ours).sum() >= 200  # the comparison bit: most points walk somewhere
