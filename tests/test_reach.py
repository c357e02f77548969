"""Exactness of the multi-source reach against a plain networkx reference.

The reference inserts every snapped point as a real node that splits its edge and attaches
the point itself by its access leg, then runs ``multi_source_dijkstra`` — independent of
the virtual-node / chain construction in :mod:`carecircle.coverage.reach`.
"""

from __future__ import annotations

import math
import networkx as nx
import numpy as np
import pytest
import shapely
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from conftest import jittered_grid, make_network, path3

from carecircle.coverage.graph import build_graph
from carecircle.coverage.reach import nearest_distance
from carecircle.coverage.snap import snap_points

def reference(graph, sources, targets, cutoff):
    """networkx distances and nearest-source positions, edges split at every snapped point."""
    g = nx.Graph()
    g.add_nodes_from(range(graph.n_nodes))
    on_edge: dict[int, list[tuple[float, object]]] = {}
    for kind, snapped in (("s", sources), ("t", targets)):
        for i in np.flatnonzero(snapped.ok):
            on_edge.setdefault(int(snapped.edge[i]), []).append((float(snapped.offset_m[i]), (kind, int(i))))
    for e in range(graph.n_edges):
        u, v, length = int(graph.edge_u[e]), int(graph.edge_v[e]), float(graph.edge_len[e])
        chain = [(0.0, u)]
        for off, point in sorted(on_edge.get(e, []), key=lambda p: p[0]):
            split = ("split", e, off)
            chain.append((off, split))
            kind, i = point
            access = float((sources if kind == "s" else targets).access_m[i])
            g.add_edge(point, split, weight=access)
        chain.append((length, v))
        for (o1, a), (o2, b) in zip(chain, chain[1:]):
            if a == b:  # a self-loop without points on it never shortens a path
                continue
            w = o2 - o1
            if g.has_edge(a, b):  # parallel edges: the shortest counts
                w = min(w, g[a][b]["weight"])
            g.add_edge(a, b, weight=w)
    srcs = [("s", int(i)) for i in np.flatnonzero(sources.ok)]
    dist = np.full(len(targets), np.inf)
    who = np.full(len(targets), -1)
    if srcs:
        d, paths = nx.multi_source_dijkstra(g, srcs, cutoff=cutoff, weight="weight")
        for j in np.flatnonzero(targets.ok):
            if ("t", int(j)) in d:
                dist[j] = d[("t", int(j))]
                who[j] = paths[("t", int(j))][0][1]
    return dist, who, g


def check_against_reference(net, src_pts, tgt_pts, cutoff, max_snap, min_nodes=1):
    graph = build_graph(net, min_component_nodes=min_nodes)
    sources = snap_points(graph, src_pts, max_snap_m=max_snap)
    targets = snap_points(graph, tgt_pts, max_snap_m=max_snap)
    dist, who = nearest_distance(graph, sources, targets, cutoff_m=cutoff)
    ref, ref_who, g = reference(graph, sources, targets, cutoff)
    np.testing.assert_array_equal(np.isinf(dist), np.isinf(ref))
    fin = np.isfinite(ref)
    np.testing.assert_allclose(dist[fin], ref[fin], atol=1e-6, rtol=0)
    assert (who[~fin] == -1).all()
    # Ties may pick another source: the chosen one must be at exactly that distance.
    for j in np.flatnonzero(fin & (who != ref_who)):
        alt = nx.dijkstra_path_length(g, ("s", int(who[j])), ("t", int(j)), weight="weight")
        assert alt == pytest.approx(dist[j], abs=1e-6)
    return graph, sources, targets, dist, who


# --------------------------------------------------------------------------- hand-computed


def test_three_node_path_by_hand():
    net = path3()
    graph = build_graph(net, min_component_nodes=1)
    fac = snap_points(graph, shapely.points([(50, 10)]))
    tgt = snap_points(graph, shapely.points([(250, -5), (20, 0), (0, 400)]))
    dist, who = nearest_distance(graph, fac, tgt, cutoff_m=1000)
    # (250,-5): 10 access + 50 to B + 150 along BC + 5 access = 215
    # (20, 0): same edge, 10 access + 30 along AB + 0 = 40
    # (0, 400): 400 m from every edge > 300 m snap limit: unreachable
    np.testing.assert_allclose(dist[:2], [215.0, 40.0])
    assert np.isinf(dist[2]) and who.tolist() == [0, 0, -1]
    assert not tgt.ok[2] and tgt.reason[2]
    dist, who = nearest_distance(graph, fac, tgt, cutoff_m=200)
    assert np.isinf(dist[0]) and dist[1] == pytest.approx(40.0) and who.tolist() == [-1, 0, -1]


def square():
    # 3 ---- 2
    # |      |      sides of 100 m, edges 0→1, 1→2, 2→3, 3→0
    # 0 ---- 1
    return make_network([(0, 0), (100, 0), (100, 100), (0, 100)], [(0, 1, []), (1, 2, []), (2, 3, []), (3, 0, [])])


def test_square_by_hand():
    graph = build_graph(square(), min_component_nodes=1)
    fac = snap_points(graph, shapely.points([(50, -3)]))
    tgt = snap_points(graph, shapely.points([(50, 104), (103, 80), (-2, 30)]))
    dist, _ = nearest_distance(graph, fac, tgt, cutoff_m=math.inf)
    # top middle: 3 + 50 + 100 + 50 + 4 either way round = 207
    # right side at y=80: 3 + 50 + 80 + 3 = 136
    # left side at y=30: 3 + 50 + 30 + 2 = 85
    np.testing.assert_allclose(dist, [207.0, 136.0, 85.0])


def test_two_sources_on_the_target_edge():
    graph = build_graph(square(), min_component_nodes=1)
    fac = snap_points(graph, shapely.points([(10, 0), (90, 0)]))
    tgt = snap_points(graph, shapely.points([(60, -2), (40, 1), (50, 60)]))
    dist, who = nearest_distance(graph, fac, tgt, cutoff_m=math.inf)
    # (60,-2): 30 along from the facility at x=90, +2 access; (40,1): 30 from x=10, +1
    # (50,60) snaps to the top side (40 m): 10 to a corner + 100 up + 50 along + 40 = 200
    np.testing.assert_allclose(dist, [32.0, 31.0, 200.0])
    assert who[:2].tolist() == [1, 0]


def test_source_on_a_node_and_zero_length_edge():
    # Two nodes at the same place joined by a zero-length edge: the explicit zero must
    # still connect them.
    net = make_network([(0, 0), (100, 0), (100, 0), (200, 0)], [(0, 1, []), (1, 2, []), (2, 3, [])])
    graph = build_graph(net, min_component_nodes=1)
    assert graph.csr[1, 2] == 0.0 and graph.stats["components"] == 1
    fac = snap_points(graph, shapely.points([(0, 0)]))
    tgt = snap_points(graph, shapely.points([(150, 0), (200, 0)]))
    dist, who = nearest_distance(graph, fac, tgt, cutoff_m=500)
    np.testing.assert_allclose(dist, [150.0, 200.0])


def test_parallel_edges_take_the_shorter_but_snap_to_the_real_one():
    # Straight edge 0→1 (100 m) and a bent twin via (50, 50) (~141 m).
    net = make_network([(0, 0), (100, 0), (200, 0)], [(0, 1, []), (0, 1, [(50, 50)]), (1, 2, [])])
    graph = build_graph(net, min_component_nodes=1)
    assert graph.stats["parallel_edges"] == 1
    fac = snap_points(graph, shapely.points([(200, 0)]))
    tgt = snap_points(graph, shapely.points([(50, 52), (0, 0)]))
    assert tgt.edge[0] == 1
    dist, _ = nearest_distance(graph, fac, tgt, cutoff_m=1000)
    half = math.hypot(50, 50)
    np.testing.assert_allclose(dist, [100 + half + 2, 200.0])


def test_no_sources_and_no_targets():
    graph = build_graph(square(), min_component_nodes=1)
    none = snap_points(graph, shapely.points(np.zeros((0, 2))))
    tgt = snap_points(graph, shapely.points([(50, 0)]))
    dist, who = nearest_distance(graph, none, tgt, cutoff_m=1000)
    assert np.isinf(dist).all() and (who == -1).all()
    far = snap_points(graph, shapely.points([(5000, 5000)]))
    dist, who = nearest_distance(graph, far, tgt, cutoff_m=1000)
    assert np.isinf(dist).all() and (who == -1).all()
    dist, who = nearest_distance(graph, tgt, none, cutoff_m=1000)
    assert dist.shape == (0,) and who.shape == (0,)


def test_unreachable_component():
    # Two separate segments: a target on the other one is unreachable, not 0 or NaN.
    net = make_network([(0, 0), (100, 0), (0, 50), (100, 50)], [(0, 1, []), (2, 3, [])])
    graph = build_graph(net, min_component_nodes=1)
    fac = snap_points(graph, shapely.points([(10, 0)]))
    tgt = snap_points(graph, shapely.points([(10, 49), (10, 1)]))
    dist, who = nearest_distance(graph, fac, tgt, cutoff_m=math.inf)
    assert np.isinf(dist[0]) and who[0] == -1 and dist[1] == pytest.approx(1.0)


# --------------------------------------------------------------------------- properties


@st.composite
def random_case(draw):
    n = draw(st.integers(2, 12))
    # Coordinates on a 5 m lattice so coincident nodes and zero-length edges occur.
    coords = draw(st.lists(st.tuples(st.integers(0, 20), st.integers(0, 20)), min_size=n, max_size=n))
    xy = np.array(coords, dtype=float) * 5
    m = draw(st.integers(1, 20))
    edges = []
    for _ in range(m):
        u = draw(st.integers(0, n - 1))
        v = draw(st.integers(0, n - 1))
        bend = draw(st.sampled_from(["straight", "straight", "bent", "twice"]))
        if u == v and bend == "straight":
            bend = "bent"  # a loop needs interior vertices
        mid = []
        if bend in ("bent", "twice"):
            mid.append(tuple(draw(st.tuples(st.integers(0, 100), st.integers(0, 100)))))
        if bend == "twice" or u == v:
            mid.append(tuple(draw(st.tuples(st.integers(0, 100), st.integers(0, 100)))))
        edges.append((u, v, mid))
        if draw(st.booleans()) and draw(st.booleans()):
            edges.append((u, v, []))  # a parallel twin
    pts = st.lists(st.tuples(st.floats(-30, 130), st.floats(-30, 130)), min_size=0, max_size=8)
    src = draw(pts)
    tgt = draw(pts)
    # Put some targets exactly onto the source positions' edges: same-edge cases.
    if src and tgt:
        tgt = tgt + [(x + 3.0, y) for x, y in src[:2]]
    cutoff = draw(st.sampled_from([0.0, 25.0, 80.0, 200.0, math.inf]))
    max_snap = draw(st.sampled_from([5.0, 20.0, 300.0]))
    min_nodes = draw(st.sampled_from([1, 1, 3]))
    return xy, edges, src, tgt, cutoff, max_snap, min_nodes


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(random_case())
def test_random_graphs_match_networkx(case):
    xy, edges, src, tgt, cutoff, max_snap, min_nodes = case
    net = make_network(xy, edges)
    as_points = lambda p: shapely.points(np.array(p, dtype=float).reshape(-1, 2))  # noqa: E731
    check_against_reference(net, as_points(src), as_points(tgt), cutoff, max_snap, min_nodes)


def test_grid_many_points_match_networkx():
    rng = np.random.default_rng(7)
    net = jittered_grid(8, rng, jitter_m=8, drop=0.15, bend=True)
    src = shapely.points(rng.uniform(-20, 440, (12, 2)))
    tgt = shapely.points(rng.uniform(-80, 500, (400, 2)))
    _, sources, targets, dist, _ = check_against_reference(net, src, tgt, 250.0, 40.0)
    assert np.isfinite(dist).sum() > 50 and (~targets.ok).sum() > 0
