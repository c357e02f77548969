"""Isochrone polygons agree with the graph search: containment, partial reach, nesting."""

from __future__ import annotations

import math

import numpy as np
import pytest
import shapely
from conftest import make_network, path3

from carecircle.coverage.graph import build_graph
from carecircle.coverage.isochrones import (
    catchments,
    dissolve_isochrones,
    facility_isochrones,
    reach_lines,
)
from carecircle.coverage.reach import nearest_distance
from carecircle.coverage.snap import snap_points


def grid_network(k=30, step=80.0, seed=3):
    """A jittered k × k street grid with a few streets missing and some bent ones."""
    rng = np.random.default_rng(seed)
    ij = np.array([(i, j) for j in range(k) for i in range(k)])
    xy = ij * step + rng.normal(0, 6, ij.shape)
    n = lambda i, j: j * k + i  # noqa: E731
    edges = [(n(i, j), n(i + 1, j), []) for j in range(k) for i in range(k - 1)]
    edges += [(n(i, j), n(i, j + 1), [(i * step + 15, j * step + step / 2)]) for j in range(k - 1) for i in range(k)]
    keep = rng.random(len(edges)) > 0.1
    return make_network(xy, [e for e, kk in zip(edges, keep) if kk])


@pytest.fixture(scope="module")
def city():
    net = grid_network()
    graph = build_graph(net, min_component_nodes=10)
    rng = np.random.default_rng(11)
    extent = 29 * 80.0
    facilities = snap_points(graph, shapely.points(rng.uniform(0, extent, (25, 2))))
    people_xy = rng.uniform(-40, extent + 40, (4000, 2))
    people = snap_points(graph, shapely.points(people_xy), max_snap_m=100)
    return graph, facilities, people, people_xy


def unit_path():
    graph = build_graph(path3(), min_component_nodes=1)
    # A facility 10 m off edge A–B at 50 m from A.
    return graph, snap_points(graph, shapely.points([(50, 10)]))


def test_partial_reach_into_the_last_edge_by_hand():
    graph, fac = unit_path()
    lines = reach_lines(graph, fac, [5], cutoffs_m=[150.0])
    # 10 m access, then 50 m to A (A–B fully reached) and 50 m to B, leaving
    # 150 - 10 - 50 = 90 m into B–C: the piece [0, 90] of edge 1, 90 m long.
    on_bc = lines[lines["edge"] == 1]
    assert len(on_bc) == 1
    assert on_bc["start_m"].iloc[0] == 0.0 and on_bc["end_m"].iloc[0] == pytest.approx(90.0)
    assert on_bc.geometry.length.iloc[0] == pytest.approx(90.0)
    assert lines.geometry.length.sum() == pytest.approx(100.0 + 90.0)
    assert set(lines["facility_fid"]) == {5}


def test_cutoff_below_the_access_leg_reaches_nothing():
    graph, fac = unit_path()
    assert reach_lines(graph, fac, None, cutoffs_m=[8.0]).empty
    assert facility_isochrones(graph, fac, [1], cutoffs_m=[8.0]).empty


def test_catchment_split_where_walks_meet():
    graph = build_graph(path3(), min_component_nodes=1)
    fac = snap_points(graph, shapely.points([(50, 10), (280, 0)]))
    lines = reach_lines(graph, fac, [7, 8], cutoffs_m=[150.0], per="nearest")
    # On B–C: facility 7 is at 60 m from B, facility 8 at 180 m along; they meet where
    # 60 + x = 180 - x, x = 60.
    bc = lines[lines["edge"] == 1].sort_values("start_m")
    assert bc["facility_fid"].tolist() == [7, 8, 8]
    np.testing.assert_allclose(bc[["start_m", "end_m"]].to_numpy(), [[0, 60], [60, 180], [180, 200]])
    polys = catchments(graph, fac, [7, 8], cutoffs_m=[150.0])
    assert polys["kind"].eq("catchment").all() and sorted(polys["facility_fid"]) == [7, 8]


def test_dissolved_polygon_contains_every_covered_point(city):
    graph, facilities, people, people_xy = city
    cutoffs = [300.0, 600.0]
    diss = dissolve_isochrones(graph, facilities, cutoffs_m=cutoffs, buffer_m=50.0, service="meal", speed_kmh=4.0)
    assert diss["kind"].eq("dissolved").all() and diss["service"].eq("meal").all()
    assert diss["minutes"].tolist() == pytest.approx([4.5, 9.0])
    for c in cutoffs:
        dist, _ = nearest_distance(graph, facilities, people, cutoff_m=c)
        covered = np.isfinite(dist) & (people.access_m <= 50.0)
        assert covered.sum() > 100
        poly = diss.loc[diss["cutoff_m"] == c, "geometry"].iloc[0]
        inside = shapely.contains_xy(poly, people_xy[:, 0], people_xy[:, 1])
        assert inside[covered].all()


def test_facility_polygons_match_their_own_search(city):
    graph, facilities, people, people_xy = city
    fids = np.arange(100, 100 + len(facilities))
    iso = facility_isochrones(graph, facilities, fids, cutoffs_m=[400.0], buffer_m=40.0)
    assert iso["kind"].eq("facility").all() and len(iso) == facilities.ok.sum()
    px, py = people_xy.T
    for i in np.flatnonzero(facilities.ok)[:8]:
        dist, _ = nearest_distance(graph, facilities.take([i]), people, cutoff_m=400.0)
        covered = np.isfinite(dist) & (people.access_m <= 40.0)
        poly = iso.loc[iso["facility_fid"] == fids[i], "geometry"].iloc[0]
        assert shapely.contains_xy(poly, px[covered], py[covered]).all()
        # and nothing far beyond: points 400 m + buffer farther than any reach are outside
        far = ~np.isfinite(nearest_distance(graph, facilities.take([i]), people, cutoff_m=400.0 + 3 * 40.0)[0])
        assert not shapely.contains_xy(poly, px[far & people.ok], py[far & people.ok]).any()


def test_per_facility_reach_equals_single_source_reach(city):
    """The tiled, batched per-facility searches give the same reach as an uncropped search
    from that facility alone (the multi-source pass with one source)."""
    graph, facilities, _, _ = city
    assert graph.length_factor == pytest.approx(1.0)  # cropping is on: 3 × 350 m < 2.3 km
    both = reach_lines(graph, facilities, None, cutoffs_m=[350.0])
    for i in np.flatnonzero(facilities.ok)[::3]:
        alone = reach_lines(graph, facilities.take([i]), [i], cutoffs_m=[350.0], per="nearest")
        mine = both[both["facility_fid"] == i]
        assert mine.geometry.length.sum() == pytest.approx(alone.geometry.length.sum(), abs=1e-6)
        assert mine["end_m"].sub(mine["start_m"]).sum() == pytest.approx(alone.geometry.length.sum(), abs=1e-6)


def test_rings_are_nested(city):
    graph, facilities, _, _ = city
    rings = [333.0, 667.0, 1000.0]
    iso = facility_isochrones(graph, facilities, np.arange(len(facilities)), cutoffs_m=rings)
    for fid, grp in iso.groupby("facility_fid"):
        g = grp.sort_values("cutoff_m").geometry.to_numpy()
        for inner, outer in zip(g, g[1:]):
            assert shapely.area(shapely.difference(inner, outer)) < 1e-6 * shapely.area(inner)
    diss = dissolve_isochrones(graph, facilities, cutoffs_m=rings).sort_values("cutoff_m").geometry.to_numpy()
    for inner, outer in zip(diss, diss[1:]):
        assert shapely.area(shapely.difference(inner, outer)) < 1e-6 * shapely.area(inner)


def test_concave_hull_option(city):
    graph, facilities, _, _ = city
    iso = facility_isochrones(graph, facilities, np.arange(len(facilities)), cutoffs_m=[500.0], method="concave")
    assert (shapely.get_type_id(iso.geometry.values) == 3).all()  # Polygons
    lines = reach_lines(graph, facilities, np.arange(len(facilities)), cutoffs_m=[500.0])
    # The hull holds every reached street vertex.
    for fid, grp in lines.groupby("facility_fid"):
        hull = iso.loc[iso["facility_fid"] == fid, "geometry"].iloc[0]
        ends = shapely.get_coordinates(grp.geometry.values)
        assert shapely.contains_xy(shapely.buffer(hull, 1e-6), ends[:, 0], ends[:, 1]).all()


def test_bad_arguments():
    from carecircle.errors import InputError

    graph, fac = unit_path()
    with pytest.raises(InputError):
        facility_isochrones(graph, fac, [1], cutoffs_m=[100.0], method="hexagon")
    with pytest.raises(InputError):
        facility_isochrones(graph, fac, [1, 2], cutoffs_m=[100.0])
    with pytest.raises(InputError):
        facility_isochrones(graph, fac, [1], cutoffs_m=[math.inf])
