"""Per-source catchments against a plain networkx reference and against nearest_distance.

Every stored entry must be the networkx single-source distance (edges split at every
snapped point, as in ``test_reach.reference``), every pair within the cut-off must be
stored (zeros explicitly), and the column minimum must be ``nearest_distance`` bit for bit.
"""

from __future__ import annotations

import math

import networkx as nx
import numpy as np
import pytest
import shapely
from hypothesis import HealthCheck, given, settings
from conftest import jittered_grid, make_network, path3
from test_reach import random_case, reference

from carecircle.coverage.catchment import catchment_matrix, covers
from carecircle.coverage.graph import build_graph
from carecircle.coverage.reach import nearest_distance
from carecircle.coverage.snap import snap_points
from carecircle.errors import InputError


def check(net, src_pts, tgt_pts, cutoff, max_snap, min_nodes=1):
    graph = build_graph(net, min_component_nodes=min_nodes)
    sources = snap_points(graph, src_pts, max_snap_m=max_snap)
    targets = snap_points(graph, tgt_pts, max_snap_m=max_snap)
    m = catchment_matrix(graph, sources, targets, cutoff_m=cutoff)
    assert m.shape == (len(sources), len(targets))
    assert m.has_sorted_indices
    _, _, g = reference(graph, sources, targets, cutoff)
    want = {}
    for i in np.flatnonzero(sources.ok):
        d = nx.single_source_dijkstra_path_length(g, ("s", int(i)), cutoff=cutoff, weight="weight")
        for j in np.flatnonzero(targets.ok):
            if ("t", int(j)) in d:
                want[(int(i), int(j))] = d[("t", int(j))]
    coo = m.tocoo()
    got = {(int(i), int(j)): float(v) for i, j, v in zip(coo.row, coo.col, coo.data)}
    # The reference is float-exact only up to summation order; pairs at the cut-off within
    # rounding may go either way.
    for key in set(want) ^ set(got):
        assert abs(want.get(key, got.get(key)) - cutoff) < 1e-6, key
    for key in set(want) & set(got):
        assert got[key] == pytest.approx(want[key], abs=1e-6)
    dist, _ = nearest_distance(graph, sources, targets, cutoff_m=cutoff)
    col_min = np.full(len(targets), np.inf)
    np.minimum.at(col_min, coo.col, coo.data)
    np.testing.assert_array_equal(col_min, dist)  # bit for bit, inf where nothing is in reach
    return graph, sources, targets, m


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(random_case())
def test_random_graphs_match_networkx_and_nearest(case):
    xy, edges, src, tgt, cutoff, max_snap, min_nodes = case
    as_points = lambda p: shapely.points(np.array(p, dtype=float).reshape(-1, 2))  # noqa: E731
    check(make_network(xy, edges), as_points(src), as_points(tgt), cutoff, max_snap, min_nodes)


def test_three_node_path_by_hand():
    #  A(0,0) ---100--- B(100,0) ---200--- C(300,0)
    graph = build_graph(path3(), min_component_nodes=1)
    src = snap_points(graph, shapely.points([(50, 10), (250, 0), (0, 900)]))
    tgt = snap_points(graph, shapely.points([(250, -5), (20, 0), (250, 0)]))
    m = catchment_matrix(graph, src, tgt, cutoff_m=215.0)
    # source 0: 10 + 50 + 150 + 5 = 215 (boundary kept), same edge 10 + 30 = 40, 10+50+150 = 210
    # source 1 sits on the street at (250, 0): 5, 230 (> cut-off), 0 (kept as an explicit zero)
    # source 2 is not snapped: an empty row
    assert m.toarray().tolist() == [[215.0, 40.0, 210.0], [5.0, 0.0, 0.0], [0.0, 0.0, 0.0]]
    assert m.indptr.tolist() == [0, 3, 5, 5] and m.indices.tolist() == [0, 1, 2, 0, 2]
    assert covers(m).toarray().tolist() == [[True, True, True], [True, False, True], [False, False, False]]
    assert catchment_matrix(graph, src, tgt, cutoff_m=214.999).nnz == 4
    with pytest.raises(InputError, match="cutoff_m"):
        catchment_matrix(graph, src, tgt, cutoff_m=-1)


def test_grid_many_sources_over_tiles():
    """Enough sources and a small cut-off that the search runs on several spatial crops."""
    rng = np.random.default_rng(3)
    net = jittered_grid(14, rng, jitter_m=6, drop=0.1)
    src = shapely.points(rng.uniform(0, 780, (150, 2)))
    tgt = shapely.points(rng.uniform(-20, 800, (300, 2)))
    _, _, _, m = check(net, src, tgt, 130.0, 40.0)
    assert m.nnz > 100


def test_no_sources_or_no_targets():
    graph = build_graph(path3(), min_component_nodes=1)
    none = snap_points(graph, shapely.points(np.zeros((0, 2))))
    some = snap_points(graph, shapely.points([(10, 0)]))
    assert catchment_matrix(graph, none, some, cutoff_m=100).shape == (0, 1)
    assert catchment_matrix(graph, some, none, cutoff_m=math.inf).shape == (1, 0)
