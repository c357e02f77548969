"""The walk rules of an OSM extract, one hand-made file per rule, with hand-worked distances.

Node coordinates are rounded to OSM's 1e-7° (about 1 cm), so distances worked out in whole
metres hold to 2 cm; distances worked out as geodesics of the same coordinates hold to 1 mm.

Every file is a handful of nodes 100–300 m apart near 116.405 E, 39.905 N; distances are
geodesic lengths of the ways walked (the local transverse Mercator the networks are read
in keeps those to well under a millimetre), and the network distance between two places
is a networkx Dijkstra over the network's edges.
"""

from __future__ import annotations

import networkx as nx
import numpy as np
import pyproj
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_network import LOCAL_TM, geodesic, osm_xml

from carecircle.layers import network as nw
from carecircle.layers.osm import read_osm

TO_METRIC = pyproj.Transformer.from_crs(4326, LOCAL_TM, always_xy=True)


def ll(east_m: float, north_m: float) -> tuple[float, float]:
    """A lon/lat ``east_m`` / ``north_m`` metres from 116.405 E, 39.905 N, on OSM's 1e-7° grid."""
    lon, lat = pyproj.Transformer.from_crs(LOCAL_TM, 4326, always_xy=True).transform(east_m, north_m)
    return round(lon, 7), round(lat, 7)


def write(tmp_path, nodes, ways, node_tags=None, bounds=(116.400, 39.900, 116.410, 39.910), name="rules.osm"):
    text = osm_xml(nodes=nodes, ways=ways, bounds=bounds)
    for node, tags in (node_tags or {}).items():
        plain = f'<node id="{node}" version="1" lat="{nodes[node][1]}" lon="{nodes[node][0]}"/>'
        tagged = plain[:-2] + ">" + "".join(f'<tag k="{k}" v="{v}"/>' for k, v in tags.items()) + "</node>"
        assert plain in text
        text = text.replace(plain, tagged)
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def walk(net, a: tuple[float, float], b: tuple[float, float]) -> float:
    """Network distance between the nodes at lon/lat ``a`` and ``b`` (inf if not connected).

    A closed barrier leaves several nodes at one location: the shortest over them."""
    graph = nx.MultiGraph()
    graph.add_nodes_from(range(len(net.nodes)))
    graph.add_weighted_edges_from(net.edges[["u", "v", "length_m"]].itertuples(index=False), weight="length")
    xy = net.nodes[["x", "y"]].to_numpy()

    def at(p):
        x, y = TO_METRIC.transform(*p)
        found = np.flatnonzero(np.hypot(xy[:, 0] - x, xy[:, 1] - y) < 0.01)
        assert len(found), f"no node at {p}"
        return found

    best = np.inf
    for s in at(a):
        dist = nx.single_source_dijkstra_path_length(graph, int(s), weight="length")
        best = min([best, *(dist[int(t)] for t in at(b) if int(t) in dist)])
    return best


# --------------------------------------------------------------------------- barrier nodes

# A ---- G ---- B      the street through the gate G (one way, G an interior node)
#  \            /
#   C ---------'       a detour
GATE = {1: ll(0, 0), 2: ll(200, 0), 3: ll(400, 0), 4: ll(200, -250)}
GATE_WAYS = {1: ([1, 2, 3], {"highway": "residential"}), 2: ([1, 4, 3], {"highway": "footway"})}
THROUGH = geodesic(GATE[1], GATE[2], GATE[3])
DETOUR = geodesic(GATE[1], GATE[4], GATE[3])


@pytest.mark.parametrize(
    ("tags", "closed", "closed_with_private"),
    [
        ({"barrier": "gate"}, False, False),  # a compound gate residents pass (门禁 with a guard)
        ({"barrier": "gate", "access": "no"}, True, True),  # Wudaokou node 1360087386
        ({"barrier": "entrance", "foot": "no", "motorcar": "yes"}, True, True),  # node 494772221
        ({"barrier": "gate", "access": "no", "foot": "yes"}, False, False),  # foot=yes overrides access
        ({"barrier": "gate", "locked": "yes"}, True, False),
        ({"barrier": "gate", "access": "private"}, True, False),
        ({"access": "no", "amenity": "parking"}, False, False),  # not a barrier: about the car park
    ],
)
def test_barrier_nodes(tmp_path, tags, closed, closed_with_private):
    path = write(tmp_path, GATE, GATE_WAYS, {2: tags})
    assert THROUGH == pytest.approx(400.0, abs=0.02) and DETOUR > 600
    for include_private, expect_closed in ((False, closed), (True, closed_with_private)):
        net = read_osm(path, target_crs=LOCAL_TM, include_private=include_private)
        assert walk(net, GATE[1], GATE[3]) == pytest.approx(DETOUR if expect_closed else THROUGH, abs=1e-3)
        assert sum(net.stats["barriers_closed"].values()) == int(expect_closed)
        if expect_closed:
            # the street still leads up to the gate from both sides: two dead ends at G
            assert walk(net, GATE[1], GATE[2]) == pytest.approx(geodesic(GATE[1], GATE[2]), abs=1e-3)
            assert walk(net, GATE[3], GATE[2]) == pytest.approx(geodesic(GATE[3], GATE[2]), abs=1e-3)
        # A and B, plus G twice when closed; A-G-B is one edge through an open gate
        assert net.stats["nodes"] == (4 if expect_closed else 2)
        assert net.stats["edges"] == (3 if expect_closed else 2)
        assert net.stats["barriers_open"] == int("barrier" in tags and not expect_closed)


def test_a_closed_gate_where_ways_meet_closes_every_passage(tmp_path):
    # three streets meet at the gate node: no walk passes through it in any direction
    nodes = {**GATE, 5: ll(200, 200)}
    ways = {**GATE_WAYS, 3: ([2, 5], {"highway": "service"})}
    net = read_osm(write(tmp_path, nodes, ways, {2: {"barrier": "gate", "access": "no"}}), target_crs=LOCAL_TM)
    assert walk(net, GATE[1], nodes[5]) == np.inf
    assert walk(net, GATE[1], GATE[3]) == pytest.approx(DETOUR, abs=1e-3)
    assert net.stats["nodes"] == 2 + 3 + 1  # A, B, three dead ends at G, the end of way 3
    assert net.stats["barriers_closed"] == {"access=no": 1}


# --------------------------------------------------------------------------- steps

# A --steps-- B   (80 m)        and a ramp round the side A - R - B (2 × 100 m)
STEPS = {1: ll(0, 0), 2: ll(80, 0), 3: ll(40, 91.65)}


@pytest.mark.parametrize(
    ("step_tags", "step_free_uses_steps"),
    [
        ({}, False),
        ({"ramp": "yes"}, True),
        ({"ramp:wheelchair": "yes"}, True),
        ({"wheelchair": "yes"}, True),
        ({"ramp": "yes", "ramp:wheelchair": "separate"}, False),  # the ramp is its own way
        ({"foot": "yes"}, False),  # walkable, but still steps
    ],
)
def test_steps_with_and_without_step_free(tmp_path, step_tags, step_free_uses_steps):
    ways = {1: ([1, 2], {"highway": "steps", **step_tags}), 2: ([1, 3, 2], {"highway": "footway"})}
    path = write(tmp_path, STEPS, ways)
    flight, ramp = geodesic(STEPS[1], STEPS[2]), geodesic(STEPS[1], STEPS[3], STEPS[2])
    assert flight == pytest.approx(80.0, abs=0.02) and ramp == pytest.approx(200.0, abs=0.02)
    assert walk(read_osm(path, target_crs=LOCAL_TM), STEPS[1], STEPS[2]) == pytest.approx(flight, abs=1e-3)
    net = read_osm(path, target_crs=LOCAL_TM, step_free=True)
    assert walk(net, STEPS[1], STEPS[2]) == pytest.approx(flight if step_free_uses_steps else ramp, abs=1e-3)
    assert net.stats["rules"]["step_free"] is True
    if not step_free_uses_steps:
        assert net.report.rejected.set_index("osm_id")["reason"].to_dict() == {1: "steps (step-free)"}


def test_step_free_closes_wheelchair_no_ways_stiles_and_raised_kerbs(tmp_path):
    ways = {1: ([1, 2], {"highway": "footway", "wheelchair": "no"}), 2: ([1, 3, 2], {"highway": "footway"})}
    path = write(tmp_path, STEPS, ways)
    ramp = geodesic(STEPS[1], STEPS[3], STEPS[2])
    assert walk(read_osm(path, target_crs=LOCAL_TM, step_free=True), STEPS[1], STEPS[2]) == pytest.approx(ramp, abs=1e-3)
    for tags in ({"barrier": "stile"}, {"barrier": "kerb", "kerb": "raised"}, {"barrier": "gate", "wheelchair": "no"}):
        ways = {1: ([1, 4, 2], {"highway": "footway"}), 2: ([1, 3, 2], {"highway": "footway"})}
        path = write(tmp_path, {**STEPS, 4: ll(40, 0)}, ways, {4: tags})
        assert walk(read_osm(path, target_crs=LOCAL_TM), STEPS[1], STEPS[2]) == pytest.approx(80.0, abs=0.02)
        net = read_osm(path, target_crs=LOCAL_TM, step_free=True)
        assert walk(net, STEPS[1], STEPS[2]) == pytest.approx(ramp, abs=1e-3), tags
    lowered = write(tmp_path, {**STEPS, 4: ll(40, 0)}, ways, {4: {"barrier": "kerb", "kerb": "lowered"}})
    assert walk(read_osm(lowered, target_crs=LOCAL_TM, step_free=True), STEPS[1], STEPS[2]) == pytest.approx(80.0, abs=0.02)


# --------------------------------------------------------------------------- bounds

# bounds: x in [-500, 500], y in [-500, 500] (metres)
#   A(-300, 400) --- X(0, 700) --- B(300, 400)   way 1 leaves the box through the north edge
#   A --- C(0, -400) --- B                       way 2 stays inside
EDGE = {1: ll(-300, 400), 2: ll(0, 700), 3: ll(300, 400), 4: ll(0, -400), 5: ll(0, 900)}
EDGE_BOUNDS = (*ll(-500, -500), *ll(500, 500))


def test_a_way_past_the_bounds_keeps_the_nodes_the_file_holds(tmp_path):
    ways = {1: ([1, 2, 3], {"highway": "residential"}), 2: ([1, 4, 3], {"highway": "residential"})}
    path = write(tmp_path, EDGE, ways, bounds=EDGE_BOUNDS)
    outside = geodesic(EDGE[1], EDGE[2], EDGE[3])  # 2 × 424.3 m through X
    inside = geodesic(EDGE[1], EDGE[4], EDGE[3])  # 2 × 854.4 m through C
    assert outside == pytest.approx(2 * np.hypot(300, 300), abs=0.02)
    net = read_osm(path, target_crs=LOCAL_TM)
    assert walk(net, EDGE[1], EDGE[3]) == pytest.approx(outside, abs=1e-3)
    assert net.stats["nodes_beyond_bounds"] == 1 and net.stats["clipped_edges"] == 0
    assert net.stats["nodes"] == 2 and net.stats["dangles"] == 0  # no stub at the box edge
    assert any("beyond the file's <bounds> (up to 200 m outside)" in note for note in net.report.notes)

    # clipping at the bounds (the old behaviour) cuts the link and leaves two stubs
    clipped = read_osm(path, target_crs=LOCAL_TM, clip_margin_m=0)
    assert walk(clipped, EDGE[1], EDGE[3]) == pytest.approx(inside, abs=1e-3)
    assert clipped.stats["clipped_edges"] == 1 and clipped.stats["dangles"] == 2
    # a margin wider than the way's reach beyond the box keeps it whole
    assert walk(read_osm(path, target_crs=LOCAL_TM, clip_margin_m=250), EDGE[1], EDGE[3]) == pytest.approx(outside, abs=1e-3)


def test_inputs_are_admitted_only_where_the_network_is_complete(tmp_path):
    # a spur X - Y(0, 900) makes X and Y nodes; beyond the bounds the file is not complete
    ways = {1: ([1, 2, 3], {"highway": "residential"}), 3: ([2, 5], {"highway": "footway"})}
    net = read_osm(write(tmp_path, EDGE, ways, bounds=EDGE_BOUNDS), target_crs=LOCAL_TM)
    assert net.stats["nodes"] == 4
    west, south, east, north = net.complete_area().bounds
    assert (west, south, east, north) == pytest.approx((-300, 400, 300, 500), abs=0.05)


def test_only_what_the_file_lacks_is_cut(tmp_path):
    # way 1 runs A - X - B - Y with Y (node 5) referenced but not in the file
    nodes = {k: v for k, v in EDGE.items() if k != 5}
    ways = {1: ([1, 2, 3, 5], {"highway": "residential"}), 2: ([1, 4, 3], {"highway": "residential"})}
    path = tmp_path / "lacks.osm"
    text = osm_xml(nodes=nodes, ways=ways, bounds=EDGE_BOUNDS)
    path.write_text(text)
    net = read_osm(path, target_crs=LOCAL_TM)
    assert walk(net, EDGE[1], EDGE[3]) == pytest.approx(geodesic(EDGE[1], EDGE[2], EDGE[3]), abs=1e-3)
    assert net.stats["ways_cut_at_missing_nodes"] == 1
    assert any("lack nodes the file does not hold" in note for note in net.report.notes)


# --------------------------------------------------------------------------- pedestrian areas

# A square 100 × 100 m (corners 1-4) tagged highway=pedestrian area=yes; a street enters at
# the middle of the west side (5, from 7) and at the north-east corner (3, from 8).
SQUARE = {1: ll(0, 0), 2: ll(100, 0), 3: ll(100, 100), 4: ll(0, 100), 5: ll(0, 50),
          7: ll(-100, 50), 8: ll(200, 100)}
SQUARE_WAYS = {
    1: ([1, 2, 3, 4, 5, 1], {"highway": "pedestrian", "area": "yes", "name": "广场"}),
    2: ([7, 5], {"highway": "residential"}),
    3: ([3, 8], {"highway": "residential"}),
}


def test_pedestrian_square_across_outline_or_none(tmp_path):
    path = write(tmp_path, SQUARE, SQUARE_WAYS)
    across = read_osm(path, target_crs=LOCAL_TM)
    # straight across from the west entrance to the NE corner: 100 + √(100² + 50²) + 100
    assert walk(across, SQUARE[7], SQUARE[8]) == pytest.approx(200 + np.hypot(100, 50), abs=0.02)
    assert across.stats["pedestrian_areas"] == 1 and across.stats["area_crossings"] == 1
    assert any("straight across between entrances (1 crossings)" in note for note in across.report.notes)
    outline = read_osm(path, target_crs=LOCAL_TM, pedestrian_areas="outline")
    # along the outline the short way round: 100 + 50 (north half of the west side) + 100 + 100
    assert walk(outline, SQUARE[7], SQUARE[8]) == pytest.approx(350.0, abs=0.02)
    assert outline.stats["area_crossings"] == 0
    none = read_osm(path, target_crs=LOCAL_TM, pedestrian_areas="none")
    assert walk(none, SQUARE[7], SQUARE[8]) == np.inf
    assert none.report.rejected.set_index("osm_id")["reason"].to_dict() == {1: "area=yes"}


def test_no_crossing_leaves_a_concave_square(tmp_path):
    # an L-shaped square: the straight line between its two entrances cuts the missing corner
    nodes = {1: ll(0, 0), 2: ll(100, 0), 3: ll(100, 50), 4: ll(50, 50), 5: ll(50, 100), 6: ll(0, 100),
             7: ll(100, -100), 8: ll(-100, 100)}
    ways = {1: ([1, 2, 3, 4, 5, 6, 1], {"highway": "pedestrian", "area": "yes"}),
            2: ([7, 3], {"highway": "footway"}), 3: ([8, 5], {"highway": "footway"})}
    net = read_osm(write(tmp_path, nodes, ways), target_crs=LOCAL_TM)
    assert net.stats["area_crossings"] == 0
    # round the inner corner 3 - 4 - 5: 50 + 50
    assert walk(net, nodes[3], nodes[5]) == pytest.approx(100.0, abs=0.02)


# --------------------------------------------------------------------------- cycleways


@pytest.mark.parametrize(("foot", "kept"), [(None, {True: True, "foot_yes": False, False: False}),
                                            ("yes", {True: True, "foot_yes": True, False: False}),
                                            ("no", {True: False, "foot_yes": False, False: False})])
def test_cycleway_choice(foot, kept):
    tags = {"highway": "cycleway", **({"foot": foot} if foot else {})}
    for choice, expected in kept.items():
        assert (nw.walk_exclusion(tags, cycleways=choice) is None) is expected, (foot, choice)


def test_walk_exclusion_documented_rules():
    # foot=yes overrides access=no, motorroad and a separately mapped sidewalk
    assert nw.walk_exclusion({"highway": "primary", "access": "no", "foot": "yes"}) is None
    assert nw.walk_exclusion({"highway": "primary", "sidewalk": "separate", "foot": "yes"}) is None
    assert nw.walk_exclusion({"highway": "primary", "foot": "use_sidepath"}) == "sidewalk mapped separately"
    assert nw.walk_exclusion({"highway": "primary", "sidewalk:left": "separate"}) == "sidewalk mapped separately"
    assert nw.walk_exclusion({"highway": "busway"}) == "highway=busway"
    assert nw.walk_exclusion({"highway": "trunk", "motorroad": "yes"}) == "motorroad=yes"
    assert nw.walk_exclusion({"highway": "pedestrian", "area": "yes"}) is None
    assert nw.walk_exclusion({"highway": "pedestrian", "area": "yes"}, areas=False) == "area=yes"
    assert nw.walk_exclusion({"highway": "steps", "foot": "yes"}, step_free=True) == "steps (step-free)"
    assert nw.node_closure({"barrier": "bollard"}) is None
    assert nw.node_closure({"barrier": "gate", "access": "private"}, include_private=True) is None


# --------------------------------------------------------------------------- property


lattice_node = st.integers(1, 25)  # node k sits at column (k - 1) % 5, row (k - 1) // 5, 100 m apart
lattice_way = st.lists(lattice_node, min_size=2, max_size=6).filter(lambda ids: all(a != b for a, b in zip(ids, ids[1:])))


@settings(max_examples=25, deadline=None)
@given(st.lists(lattice_way, min_size=1, max_size=7), st.sets(lattice_node, max_size=6))
def test_closed_gates_match_a_segment_graph(tmp_path_factory, ways, gates):
    """Closing barrier nodes keeps every walk of the segment graph in which each closed node
    is one dead end per segment reaching it."""
    nodes = {k: ll(100.0 * ((k - 1) % 5), 100.0 * ((k - 1) // 5)) for k in range(1, 26)}
    path = write(tmp_path_factory.mktemp("gates"), nodes,
                 {i + 1: (ids, {"highway": "footway"}) for i, ids in enumerate(ways)},
                 {g: {"barrier": "gate", "access": "no"} for g in gates})
    reference = nx.MultiGraph()
    for w, ids in enumerate(ways):
        for s, (a, b) in enumerate(zip(ids, ids[1:])):
            ka = (a, w, s) if a in gates else a
            kb = (b, w, s) if b in gates else b
            reference.add_edge(ka, kb, length=geodesic(nodes[a], nodes[b]))
    net = read_osm(path, target_crs=LOCAL_TM)
    assert net.edges["length_m"].sum() == pytest.approx(reference.size(weight="length"), abs=1e-3)
    assert net.stats["components"] == nx.number_connected_components(reference)
    assert net.stats["dangles"] == sum(1 for _, degree in reference.degree() if degree == 1)
    # walks between the open places that are network nodes (junctions, ends; not interior vertices)
    xy = net.nodes[["x", "y"]].to_numpy()
    at = {k: np.flatnonzero(np.hypot(*(xy - TO_METRIC.transform(*nodes[k])).T) < 0.01) for k in nodes}
    open_nodes = sorted(k for k in {k for ids in ways for k in ids} - gates if len(at[k]))
    ours = nx.MultiGraph()
    ours.add_weighted_edges_from(net.edges[["u", "v", "length_m"]].itertuples(index=False), weight="length")
    for a in open_nodes:
        theirs = nx.single_source_dijkstra_path_length(reference, a, weight="length")
        mine = nx.single_source_dijkstra_path_length(ours, int(at[a][0]), weight="length")
        for b in open_nodes:
            assert mine.get(int(at[b][0]), np.inf) == pytest.approx(theirs.get(b, np.inf), abs=1e-3)
