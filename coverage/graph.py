"""The walk graph: a compact CSR matrix in metres plus the per-edge arrays snapping needs.

Walking ignores one-way restrictions, so the graph is undirected; it is stored as a
*symmetric directed* CSR matrix (both directions explicit) because the reach searches add
one-way virtual edges from facilities into it and call ``scipy.sparse.csgraph.dijkstra``
with ``directed=True``, which is also faster than letting scipy symmetrise on every call.

Parallel edges collapse to the shortest in the matrix (a shortest path never takes the
longer twin), but every street edge stays in the per-edge arrays: points snap to the real
street they are next to, not to its shorter twin.

Components: the network loaders keep everything walkable, including stray islands (a
service road inside a campus, a footway fragment cut by the study-area clip). A point that
snaps onto such an island cannot reach anything, so only edges in components of at least
``min_component_nodes`` nodes are *snappable* (:attr:`WalkGraph.snappable_edge`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import shapely
from scipy.sparse import csr_array
from scipy.sparse.csgraph import connected_components

from carecircle.errors import InputError


@dataclass
class WalkGraph:
    """An undirected walk network ready for snapping and shortest-path searches.

    Attributes
    ----------
    n_nodes : int
        Number of network nodes (node ``i`` is row ``i`` of ``network.nodes``).
    csr : scipy.sparse.csr_array
        ``n_nodes × n_nodes`` symmetric matrix of edge lengths in metres, the minimum over
        parallel edges; self-loops are left out (they never shorten a path). Zero-length
        edges are stored as explicit zeros, which ``csgraph`` treats as edges.
    node_x, node_y : numpy.ndarray
        Node coordinates (metric CRS).
    edge_u, edge_v : numpy.ndarray
        Edge end nodes (int64); ``edge_geom`` runs from ``edge_u`` to ``edge_v``.
    edge_len : numpy.ndarray
        Edge length in metres (``length_m``), the routing weight.
    edge_geom : numpy.ndarray
        Shapely LineStrings, one per edge.
    component : numpy.ndarray
        Connected-component label per node.
    snappable_edge : numpy.ndarray
        Bool per edge: the edge lies in a component with at least ``min_component_nodes``
        nodes (or in the largest component when every component is smaller).
    length_factor : float
        ``max(1, geometry length / length_m)`` over all edges: straight-line distance is at
        most ``length_factor ×`` the walk distance, which lets per-facility searches work
        on a spatial crop of the graph without losing paths (``inf`` disables cropping).
    crs : object
        CRS of the network (``pyproj.CRS`` or whatever the network carried).
    stats : dict
        ``nodes``, ``edges``, ``self_loops``, ``parallel_edges``, ``components``,
        ``largest_component_nodes``, ``min_component_nodes``, ``snappable_components``,
        ``snappable_nodes``, ``snappable_edges``, ``unsnappable_edges``.
    """

    n_nodes: int
    csr: csr_array
    node_x: np.ndarray
    node_y: np.ndarray
    edge_u: np.ndarray
    edge_v: np.ndarray
    edge_len: np.ndarray
    edge_geom: np.ndarray
    component: np.ndarray
    snappable_edge: np.ndarray
    length_factor: float
    crs: object
    stats: dict
    # Lazily built helpers (snap index, edge vertex table), shared by the coverage modules.
    cache: dict = field(default_factory=dict, repr=False, compare=False)

    @property
    def n_edges(self) -> int:
        """Number of street edges (rows of ``network.edges``), parallel edges included."""
        return len(self.edge_u)


def build_graph(network, *, min_component_nodes: int = 50) -> WalkGraph:
    """Build the walk graph of a :class:`~carecircle.layers.network.Network`.

    Parameters
    ----------
    network : Network or any object with ``.nodes``, ``.edges`` and ``.crs``
        ``nodes``: RangeIndex ``0..n-1`` with columns ``x``, ``y`` (metres);
        ``edges``: columns ``u``, ``v`` (node positions), ``length_m`` and a LineString
        geometry running from ``u`` to ``v``.
    min_component_nodes : int, default 50
        Components with fewer nodes are kept for routing but no point snaps onto them. If
        no component is that large, the largest one is snappable.

    Returns
    -------
    WalkGraph

    Raises
    ------
    InputError
        Edges that reference missing nodes, or lengths that are missing or negative.
    """
    nodes, edges = network.nodes, network.edges
    n = len(nodes)
    x = np.asarray(nodes["x"], dtype=np.float64)
    y = np.asarray(nodes["y"], dtype=np.float64)
    u = np.asarray(edges["u"], dtype=np.int64)
    v = np.asarray(edges["v"], dtype=np.int64)
    length = np.asarray(edges["length_m"], dtype=np.float64)
    geom = np.asarray(edges.geometry.values, dtype=object)
    _check(n, u, v, length, geom)

    csr, n_parallel = _symmetric_min_csr(n, u, v, length)
    n_comp, component = connected_components(csr, directed=False)
    sizes = np.bincount(component, minlength=n_comp)
    big = sizes >= min_component_nodes
    if not big.any() and n_comp:
        big[np.argmax(sizes)] = True
    snappable = big[component[u]] if len(u) else np.zeros(0, dtype=bool)

    geom_len = shapely.length(geom)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(geom_len > 0, geom_len / length, 0.0)
    length_factor = float(max(1.0, ratio.max(initial=0.0)))

    stats = {
        "nodes": int(n),
        "edges": int(len(u)),
        "self_loops": int(np.count_nonzero(u == v)),
        "parallel_edges": int(n_parallel),
        "components": int(n_comp),
        "largest_component_nodes": int(sizes.max(initial=0)),
        "min_component_nodes": int(min_component_nodes),
        "snappable_components": int(big.sum()),
        "snappable_nodes": int(sizes[big].sum()),
        "snappable_edges": int(snappable.sum()),
        "unsnappable_edges": int((~snappable).sum()),
    }
    return WalkGraph(
        n_nodes=n, csr=csr, node_x=x, node_y=y, edge_u=u, edge_v=v, edge_len=length,
        edge_geom=geom, component=component, snappable_edge=snappable,
        length_factor=length_factor, crs=network.crs, stats=stats,
    )


def _check(n: int, u: np.ndarray, v: np.ndarray, length: np.ndarray, geom: np.ndarray) -> None:
    """Raise :class:`InputError` on the first edge row that breaks a rule, rules in this order."""
    rules = (
        ((u < 0) | (u >= n) | (v < 0) | (v >= n),
         f"u/v is not a node position 0..{n - 1}; rebuild the network with carecircle.layers.network"),
        (~np.isfinite(length) | (length < 0), "length_m is missing or negative; give every edge a length in metres"),
        (shapely.is_missing(geom) | shapely.is_empty(geom), "edge has no geometry; every edge needs a LineString from u to v"),
    )
    for bad, what in rules:
        if bad.any():
            raise InputError(f"network: edges row {int(np.flatnonzero(bad)[0])}: {what}")


def _symmetric_min_csr(n: int, u: np.ndarray, v: np.ndarray, length: np.ndarray) -> tuple[csr_array, int]:
    """Symmetric CSR of the shortest edge per node pair; returns it and the parallel-edge count.

    Parallel edges are reduced to their minimum first (a hash group-by on the unordered
    pair), because the ``coo → csr`` conversion *sums* duplicates. Explicit zeros
    (zero-length edges) survive the conversion.
    """
    keep = u != v
    lo = np.minimum(u[keep], v[keep])
    hi = np.maximum(u[keep], v[keep])
    shortest = pd.Series(length[keep]).groupby(lo * n + hi, sort=False).min()
    key = shortest.index.to_numpy()
    n_parallel = int(keep.sum()) - len(key)
    a, b = key // n, key % n
    w = shortest.to_numpy()
    csr = csr_array((np.concatenate([w, w]), (np.concatenate([a, b]), np.concatenate([b, a]))), shape=(n, n))
    return csr, n_parallel


def edge_vertices(graph: WalkGraph) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The vertex table of all edge geometries, computed once per graph.

    Parameters
    ----------
    graph : WalkGraph

    Returns
    -------
    coords : numpy.ndarray
        ``(V, 2)`` vertex coordinates, edge after edge.
    start : numpy.ndarray
        ``n_edges + 1`` offsets: edge ``e`` owns ``coords[start[e]:start[e + 1]]``.
    cum : numpy.ndarray
        Distance of each vertex from the start of its edge along the geometry (metres).
    """
    if "vertices" not in graph.cache:
        coords, owner = shapely.get_coordinates(graph.edge_geom, return_index=True)
        start = np.zeros(graph.n_edges + 1, dtype=np.int64)
        np.cumsum(np.bincount(owner, minlength=graph.n_edges), out=start[1:])
        step = np.zeros(len(coords))
        if len(coords) > 1:
            step[1:] = np.hypot(np.diff(coords[:, 0]), np.diff(coords[:, 1]))
        step[start[:-1]] = 0.0  # every edge has a geometry (checked), so starts are vertices
        cum = np.cumsum(step)
        cum -= np.repeat(cum[start[:-1]], np.diff(start))
        graph.cache["vertices"] = (coords, start, cum)
    return graph.cache["vertices"]


def edge_geom_length(graph: WalkGraph) -> np.ndarray:
    """Length of each edge geometry (metres), the last entry of its :func:`edge_vertices` ``cum``.

    Parameters
    ----------
    graph : WalkGraph

    Returns
    -------
    numpy.ndarray
        One length per edge; it differs from ``edge_len`` (``length_m``, the routing
        weight) when the network's lengths are not the drawn ones.
    """
    _, start, cum = edge_vertices(graph)
    return cum[start[1:] - 1]
