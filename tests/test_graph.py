"""The walk graph: CSR weights, parallel edges, zero-length edges, components, snappable mask."""

from __future__ import annotations

import numpy as np
import pytest
import shapely
from conftest import make_network

from carecircle.coverage.graph import build_graph, edge_geom_length, edge_vertices
from carecircle.errors import InputError


def two_parts():
    # A 60-node path (component of 60) and a 3-node island far away.
    main = [(i * 10.0, 0.0) for i in range(60)]
    island = [(0.0, 500.0), (10.0, 500.0), (20.0, 500.0)]
    edges = [(i, i + 1, []) for i in range(59)] + [(60, 61, []), (61, 62, [])]
    return make_network(main + island, edges)


def test_csr_is_symmetric_minimum_over_parallel_edges():
    net = make_network([(0, 0), (100, 0), (100, 100)], [(0, 1, [(50, 40)]), (0, 1, []), (1, 2, []), (2, 2, [(150, 150), (150, 100)])])
    g = build_graph(net, min_component_nodes=1)
    dense = g.csr.toarray()
    np.testing.assert_array_equal(dense, dense.T)
    assert dense[0, 1] == pytest.approx(100.0)  # the straight twin, not the 128 m bend
    assert dense[1, 2] == pytest.approx(100.0)
    assert dense[2, 2] == 0 and g.csr.nnz == 4  # the self-loop is not in the matrix
    assert g.stats["parallel_edges"] == 1 and g.stats["self_loops"] == 1
    # ... but every edge stays in the per-edge arrays
    assert g.n_edges == 4 and g.edge_len[0] == pytest.approx(2 * np.hypot(50, 40))


def test_zero_length_edge_is_an_explicit_zero():
    net = make_network([(0, 0), (0, 0), (10, 0)], [(0, 1, []), (1, 2, [])])
    g = build_graph(net, min_component_nodes=1)
    assert g.csr.nnz == 4 and g.csr[0, 1] == 0.0
    assert g.stats["components"] == 1


def test_components_and_snappable_edges():
    g = build_graph(two_parts(), min_component_nodes=50)
    assert g.stats["components"] == 2 and g.stats["largest_component_nodes"] == 60
    assert g.snappable_edge.tolist() == [True] * 59 + [False, False]
    assert g.stats["snappable_nodes"] == 60 and g.stats["unsnappable_edges"] == 2
    # When no component is big enough the largest is snappable.
    g = build_graph(two_parts(), min_component_nodes=1000)
    assert g.snappable_edge.sum() == 59 and g.stats["snappable_components"] == 1
    g = build_graph(two_parts(), min_component_nodes=3)
    assert g.snappable_edge.all()


def test_length_factor_allows_cropping_only_when_lengths_are_geometric():
    net = two_parts()
    assert build_graph(net).length_factor == pytest.approx(1.0)
    net.edges.loc[0, "length_m"] = 5.0  # shorter than its 10 m geometry
    assert build_graph(net).length_factor == pytest.approx(2.0)


def test_edge_vertices_table():
    net = make_network([(0, 0), (30, 40)], [(0, 1, [(0, 40)])])
    coords, start, cum = edge_vertices(build_graph(net, min_component_nodes=1))
    assert start.tolist() == [0, 3]
    np.testing.assert_allclose(cum, [0, 40, 70])
    np.testing.assert_allclose(coords[1], [0, 40])

    # The geometry length (70 m) is the last cum entry of the edge, not length_m.
    net.edges["length_m"] = 5.0
    np.testing.assert_allclose(edge_geom_length(build_graph(net, min_component_nodes=1)), [70.0])


def test_bad_edges_name_the_first_bad_row_in_one_line():
    net = two_parts()
    net.edges.loc[3, "geometry"] = None
    with pytest.raises(InputError) as err:
        build_graph(net)
    assert str(err.value) == "network: edges row 3: edge has no geometry; every edge needs a LineString from u to v"
    net = two_parts()
    net.edges.loc[[2, 5], "length_m"] = np.nan
    net.edges.loc[4, "v"] = 63  # u/v is checked before lengths
    with pytest.raises(InputError) as err:
        build_graph(net)
    assert str(err.value) == ("network: edges row 4: u/v is not a node position 0..62; "
                              "rebuild the network with carecircle.layers.network")


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda e: e.__setitem__("u", e["u"].where(e.index != 0, 99)), "u/v"),
        (lambda e: e.__setitem__("length_m", -1.0), "length_m"),
    ],
)
def test_bad_edges_raise_input_error(change, message):
    net = two_parts()
    change(net.edges)
    with pytest.raises(InputError, match=message):
        build_graph(net)


def test_real_network_dataclass_is_accepted():
    network = pytest.importorskip("carecircle.layers.network")
    from carecircle.layers.accounting import LayerReport

    dummy = two_parts()
    net = network.Network(nodes=dummy.nodes, edges=dummy.edges, report=LayerReport("network", "test"), stats={})
    g = build_graph(net)
    assert g.n_nodes == 63 and g.crs == dummy.edges.crs
    assert shapely.get_num_points(g.edge_geom).sum() == 2 * 61
