"""Snapping: nearest point on the nearest edge, against brute force over all edges."""

from __future__ import annotations

import numpy as np
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st
from conftest import make_network

from carecircle.coverage.graph import build_graph
from carecircle.coverage.snap import REASON_EMPTY, REASON_FAR, snap_points
from carecircle.errors import InputError


def street_grid(seed=0, k=12, step=70.0):
    rng = np.random.default_rng(seed)
    ij = np.array([(i, j) for j in range(k) for i in range(k)])
    xy = ij * step + rng.normal(0, 5, ij.shape)
    n = lambda i, j: j * k + i  # noqa: E731
    edges = [(n(i, j), n(i + 1, j), []) for j in range(k) for i in range(k - 1)]
    # Long bent north-south streets: segments longer than the snap index's pieces.
    edges += [(n(i, j), n(i, j + 2), [(i * step + 25, (j + 1) * step)]) for j in range(0, k - 2, 2) for i in range(k)]
    return make_network(xy, edges)


def brute_force(graph, pts):
    """Distance to the nearest snappable edge by shapely over all edges."""
    d = shapely.distance(pts[:, None], graph.edge_geom[None, graph.snappable_edge])
    return d.min(axis=1)


def test_nearest_point_on_the_nearest_edge_by_hand():
    # Edge 0: (0,0) → (100,0); edge 1: (100,0) → (100,100)
    net = make_network([(0, 0), (100, 0), (100, 100)], [(0, 1, []), (1, 2, [])])
    g = build_graph(net, min_component_nodes=1)
    s = snap_points(g, shapely.points([(30, 8), (104, 70), (100, 0), (130, -40)]))
    # (100, 0) is the shared node and (130, -40) is 50 m from it: either edge is nearest.
    assert s.edge[:2].tolist() == [0, 1] and set(s.edge[2:]) <= {0, 1}
    np.testing.assert_allclose(s.offset_m[:2], [30, 70])
    np.testing.assert_allclose(s.access_m, [8, 4, 0, 50])
    np.testing.assert_allclose(np.c_[s.x, s.y][[0, 1, 3]], [[30, 0], [100, 70], [100, 0]])
    assert s.ok.all() and (s.reason == "").all()


def test_offset_follows_length_m_when_it_differs_from_the_geometry():
    net = make_network([(0, 0), (100, 0)], [(0, 1, [])])
    net.edges["length_m"] = 150.0  # e.g. a surveyed length
    g = build_graph(net, min_component_nodes=1)
    s = snap_points(g, shapely.points([(40, 3)]))
    assert s.offset_m[0] == pytest.approx(60.0) and s.access_m[0] == pytest.approx(3.0)


def test_far_and_missing_points_are_reported_not_dropped():
    net = make_network([(0, 0), (100, 0)], [(0, 1, [])])
    g = build_graph(net, min_component_nodes=1)
    pts = np.array([shapely.Point(50, 299), shapely.Point(50, 301), None, shapely.Point()], dtype=object)
    s = snap_points(g, pts, max_snap_m=300)
    assert len(s) == 4 and s.ok.tolist() == [True, False, False, False]
    assert s.reason.tolist() == ["", REASON_FAR, REASON_EMPTY, REASON_EMPTY]
    assert s.edge[1:].tolist() == [-1, -1, -1] and np.isnan(s.access_m[1:]).all()
    sub = s.take([0, 1])
    assert len(sub) == 2 and sub.ok.tolist() == [True, False]


def test_islands_never_capture_a_point():
    # A long main street and a short island right next to the point.
    main = [(i * 20.0, 0.0) for i in range(60)]
    island = [(500.0, 30.0), (520.0, 30.0)]
    net = make_network(main + island, [(i, i + 1, []) for i in range(59)] + [(60, 61, [])])
    g = build_graph(net, min_component_nodes=50)
    s = snap_points(g, shapely.points([(510, 28)]))
    assert s.edge[0] != 59 and s.access_m[0] == pytest.approx(28.0)


def test_polygons_are_refused():
    g = build_graph(make_network([(0, 0), (100, 0)], [(0, 1, [])]), min_component_nodes=1)
    with pytest.raises(InputError):
        snap_points(g, np.array([shapely.box(0, 0, 1, 1)]))


def test_many_points_equal_brute_force():
    g = build_graph(street_grid(), min_component_nodes=1)
    rng = np.random.default_rng(5)
    pts = shapely.points(rng.uniform(-100, 900, (3000, 2)))
    s = snap_points(g, pts, max_snap_m=60)
    ref = brute_force(g, pts)
    np.testing.assert_array_equal(s.ok, ref <= 60)
    np.testing.assert_allclose(s.access_m[s.ok], ref[s.ok], atol=1e-9)
    # P′ lies on the chosen edge, at offset_m from u along it, and |P–P′| = access_m.
    back = shapely.line_interpolate_point(g.edge_geom[s.edge[s.ok]], s.offset_m[s.ok] / g.edge_len[s.edge[s.ok]], normalized=True)
    np.testing.assert_allclose(shapely.get_coordinates(back), np.c_[s.x, s.y][s.ok], atol=1e-6)
    np.testing.assert_allclose(shapely.distance(back, pts[s.ok]), s.access_m[s.ok], atol=1e-6)


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 10_000), st.sampled_from([1.0, 20.0, 300.0]))
def test_random_points_equal_brute_force(seed, max_snap):
    g = build_graph(street_grid(seed, k=6), min_component_nodes=1)
    rng = np.random.default_rng(seed)
    pts = shapely.points(rng.uniform(-50, 450, (200, 2)))
    s = snap_points(g, pts, max_snap_m=max_snap)
    ref = brute_force(g, pts)
    np.testing.assert_array_equal(s.ok, ref <= max_snap)
    np.testing.assert_allclose(s.access_m[s.ok], ref[s.ok], atol=1e-9)


def test_geodataframe_geoseries_and_array_inputs_agree():
    import geopandas as gpd

    g = build_graph(street_grid(), min_component_nodes=1)
    pts = shapely.points(np.random.default_rng(2).uniform(0, 700, (50, 2)))
    a = snap_points(g, pts)
    b = snap_points(g, gpd.GeoSeries(pts))
    c = snap_points(g, gpd.GeoDataFrame({"people": np.ones(50)}, geometry=pts))
    for other in (b, c):
        np.testing.assert_array_equal(a.edge, other.edge)
        np.testing.assert_array_equal(a.offset_m, other.offset_m)
