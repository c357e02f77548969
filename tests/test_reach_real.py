"""The networkx comparison of test_reach on real networks: the OSM extracts and Xinwu's layer."""

from __future__ import annotations

import numpy as np
import pytest
import shapely
from conftest import SHARED_DATA
from test_reach import check_against_reference

from carecircle.coverage.graph import build_graph

DATA = SHARED_DATA
OSM = sorted((DATA / "osm").glob("*.osm")) if DATA.exists() else []
XINWU = DATA / "wuxi_xinwu" / "xinwu_road_centerlines.gpkg"

pytestmark = [
    pytest.mark.shared,
    pytest.mark.skipif(not DATA.exists(), reason=f"../shared/data absent: {DATA} (real-network comparison)"),
]


def points_near_streets(network, n, seed, spread=150.0):
    """Random points around random street vertices: most snap, some are beyond the limit."""
    rng = np.random.default_rng(seed)
    coords = shapely.get_coordinates(network.edges.geometry.values)
    base = coords[rng.integers(0, len(coords), n)]
    return shapely.points(base + rng.normal(0, spread, (n, 2)))


def compare(network, seed):
    sources = points_near_streets(network, 30, seed)
    targets = points_near_streets(network, 1500, seed + 1)
    graph, src, tgt, dist, _ = check_against_reference(network, sources, targets, cutoff=1200.0, max_snap=200.0,
                                                       min_nodes=50)
    # The comparison must have bitten: reached, beyond-cutoff and unsnapped targets all occur.
    assert np.isfinite(dist).sum() >= 20
    assert (~tgt.ok).sum() >= 1
    return graph


@pytest.mark.parametrize("path", OSM, ids=[p.stem for p in OSM])
def test_osm_extract_matches_networkx(path):
    from carecircle.layers.osm import read_osm

    graph = compare(read_osm(path), seed=len(path.name))
    assert graph.stats["snappable_edges"] > 100


@pytest.mark.skipif(not XINWU.exists(), reason=f"{XINWU} absent")
def test_xinwu_centrelines_match_networkx():
    from carecircle.layers.lines import read_lines

    network = read_lines(XINWU)
    graph = compare(network, seed=3)
    # Nearly the whole district is one walkable component (the README says ~98.6 %).
    assert graph.stats["largest_component_nodes"] / graph.n_nodes > 0.95


def test_isolated_graph_build_on_xinwu_is_consistent():
    """Parallel edges and components on the real layer agree with a direct count."""
    if not XINWU.exists():
        pytest.skip(f"{XINWU} absent")
    from carecircle.layers.lines import read_lines

    network = read_lines(XINWU)
    graph = build_graph(network)
    e = network.edges
    pairs = np.sort(e[["u", "v"]].to_numpy(), axis=1)
    loops = pairs[:, 0] == pairs[:, 1]
    distinct = len(np.unique(pairs[~loops], axis=0))
    assert graph.stats["parallel_edges"] == (~loops).sum() - distinct
    assert graph.csr.nnz == 2 * distinct
