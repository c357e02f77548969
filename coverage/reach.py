"""Exact walk distance from every target to the nearest source, one multi-source search.

The distance of a target point P to a source (facility) F is

    |P–P′| + network(P′, F′) + |F′–F|

where P′ and F′ are the snapped points on their edges (:mod:`carecircle.coverage.snap`).
Both edges are split virtually: the walk may leave P′ or F′ in either direction.

How it is computed in one ``scipy.sparse.csgraph.dijkstra`` call (``min_only=True``):

* every interior source position becomes a *split node* on its edge; the split nodes of an
  edge are chained ``u – s1 – s2 – … – v`` in both directions (the original edge stays in
  the matrix too: a parallel path of the same length changes nothing);
* every source gets a *virtual node* with one directed edge of weight ``|F–F′|`` into its
  split node (or into ``u``/``v`` when it sits on an end). Virtual nodes have no incoming
  edges, so no path passes through another facility's access leg;
* ``dijkstra(indices=virtual nodes, min_only=True, limit=cutoff)`` gives for every node the
  distance to, and the identity of, the nearest source;
* a target on edge e at offset t reads its value from the two anchors around it on e's chain
  (``u`` or the split node before t, the split node after t or ``v``):
  ``min(d[left] + (t − o_left), d[right] + (o_right − t)) + |P–P′|``. Sources on the target's
  own edge are anchors of that chain, so the direct along-edge walk is included.

Zero-weight edges (a facility exactly on a street, coincident nodes) are stored as explicit
zeros, which ``csgraph`` treats as edges; the matrix is assembled by hand so no sparse
operation drops them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.sparse import csr_array
from scipy.sparse.csgraph import dijkstra

from carecircle.coverage.graph import WalkGraph
from carecircle.coverage.snap import Snapped
from carecircle.errors import InputError


@dataclass
class Augmented:
    """The walk graph with a set of sources inserted (split nodes, chains, virtual nodes).

    Node numbering: ``0..n_base-1`` the network nodes, then ``n_split`` split nodes, then
    one virtual node per usable source.

    Attributes
    ----------
    csr : scipy.sparse.csr_array
        ``n_nodes × n_nodes`` directed matrix (symmetric except the virtual edges).
    n_base, n_split : int
    source_pos : numpy.ndarray
        Position in the input :class:`Snapped` of each usable source (virtual node
        ``n_base + n_split + i`` is source ``source_pos[i]``).
    split_edge, split_off, split_node : numpy.ndarray
        Split nodes sorted by (edge, offset): their edge, offset along it, node id.
    node_x, node_y : numpy.ndarray
        Coordinates of every node (split and virtual nodes at the snapped point).
    """

    csr: csr_array
    n_base: int
    n_split: int
    source_pos: np.ndarray
    split_edge: np.ndarray
    split_off: np.ndarray
    split_node: np.ndarray
    node_x: np.ndarray
    node_y: np.ndarray

    @property
    def n_nodes(self) -> int:
        """Network, split and virtual nodes together."""
        return self.csr.shape[0]

    @property
    def virtual(self) -> np.ndarray:
        """Node ids of the virtual (source) nodes, in ``source_pos`` order."""
        return self.n_base + self.n_split + np.arange(len(self.source_pos))

    def nearest_source(self, limit: float) -> tuple[np.ndarray, np.ndarray]:
        """One multi-source search from every virtual node (``min_only``).

        Parameters
        ----------
        limit : float
            Search cut-off in metres (may be ``inf``).

        Returns
        -------
        dist : numpy.ndarray
            Per node, the walk distance to the nearest source (``inf`` beyond ``limit``).
        row : numpy.ndarray
            Per node, the nearest source as a row of ``source_pos``, ``-1`` if unreached.
        """
        d, _, src = dijkstra(self.csr, directed=True, indices=self.virtual, min_only=True,
                             limit=limit, return_predecessors=True)
        return d, np.where(src >= 0, src - self.n_base - self.n_split, -1)


def augment(graph: WalkGraph, sources: Snapped) -> Augmented:
    """Insert the usable (``ok``) sources into the walk graph (see the module notes).

    Parameters
    ----------
    graph : WalkGraph
    sources : Snapped
        Entries with ``ok=False`` are left out.

    Returns
    -------
    Augmented
    """
    pos = np.flatnonzero(sources.ok)
    e = sources.edge[pos]
    off = sources.offset_m[pos]
    acc = sources.access_m[pos]
    n = graph.n_nodes
    length = graph.edge_len[e]

    # Unique interior positions become split nodes; positions on an end use u or v itself.
    interior = (off > 0) & (off < length)
    ie, io = e[interior], off[interior]
    order = np.lexsort((io, ie))
    ie, io = ie[order], io[order]
    new = np.ones(len(ie), dtype=bool)
    new[1:] = (ie[1:] != ie[:-1]) | (io[1:] != io[:-1])
    split_id = np.cumsum(new) - 1
    split_edge, split_off = ie[new], io[new]
    k = len(split_edge)
    split_node = n + np.arange(k)

    attach = np.where(off <= 0, graph.edge_u[e], graph.edge_v[e])
    attach_interior = np.empty(len(ie), dtype=np.int64)
    attach_interior[order] = split_node[split_id]
    attach[interior] = attach_interior

    # Chains u – s1 – … – sk – v over each split edge, both directions.
    a, b, _, off0, off1 = chain_pieces(graph, split_edge, split_off, split_node)
    w = off1 - off0

    virtual = n + k + np.arange(len(pos))
    rows = np.concatenate([a, b, virtual])
    cols = np.concatenate([b, a, attach])
    weights = np.concatenate([w, w, acc])
    m = n + k + len(pos)
    csr = _add_entries(graph.csr, rows, cols, weights, m)

    sx, sy = sources.x[pos], sources.y[pos]
    node_x = np.concatenate([graph.node_x, np.zeros(k), sx])
    node_y = np.concatenate([graph.node_y, np.zeros(k), sy])
    node_x[split_node[split_id]] = sx[interior][order]
    node_y[split_node[split_id]] = sy[interior][order]
    return Augmented(csr, n, k, pos, split_edge, split_off, split_node, node_x, node_y)


def chain_pieces(graph: WalkGraph, split_edge: np.ndarray, split_off: np.ndarray, split_node: np.ndarray):
    """The pieces ``u – s1``, ``s1 – s2``, …, ``sk – v`` of the chains over split edges.

    Parameters
    ----------
    graph : WalkGraph
    split_edge, split_off, split_node : numpy.ndarray
        Split nodes sorted by (edge, offset), as in :class:`Augmented`.

    Returns
    -------
    a, b : numpy.ndarray
        Node at the start and at the end of each piece.
    edge : numpy.ndarray
        The split edge the piece lies on.
    off0, off1 : numpy.ndarray
        Offsets of ``a`` and ``b`` along that edge (metres from its ``u``).
    """
    first = np.ones(len(split_edge), dtype=bool)
    first[1:] = split_edge[1:] != split_edge[:-1]
    last = np.ones(len(split_edge), dtype=bool)
    last[:-1] = first[1:]
    a = np.concatenate([np.where(first, graph.edge_u[split_edge], np.roll(split_node, 1)), split_node[last]])
    b = np.concatenate([split_node, graph.edge_v[split_edge[last]]])
    edge = np.concatenate([split_edge, split_edge[last]])
    off0 = np.concatenate([np.where(first, 0.0, np.roll(split_off, 1)), split_off[last]])
    off1 = np.concatenate([split_off, graph.edge_len[split_edge[last]]])
    return a, b, edge, off0, off1


def _add_entries(base: csr_array, rows, cols, weights, m: int) -> csr_array:
    """``base`` grown to ``m × m`` with extra (row, col, weight) entries, explicit zeros kept."""
    n = base.shape[0]
    base_counts = np.diff(base.indptr).astype(np.int64)
    counts = np.zeros(m, dtype=np.int64)
    counts[:n] = base_counts
    extra = np.bincount(rows, minlength=m)
    indptr = np.zeros(m + 1, dtype=np.int64)
    np.cumsum(counts + extra, out=indptr[1:])
    nnz = int(indptr[-1])
    indices = np.empty(nnz, dtype=np.int64)
    data = np.empty(nnz)
    # Base entries keep their row order, shifted by the extras inserted in earlier rows.
    shift = np.repeat(indptr[:n] - base.indptr[:-1], base_counts)
    dst = np.arange(base.nnz, dtype=np.int64) + shift
    indices[dst] = base.indices
    data[dst] = base.data
    # Extras go after the base entries of their row.
    order = np.argsort(rows, kind="stable")
    r = rows[order]
    rank = np.arange(len(r)) - np.searchsorted(r, r, side="left")
    dst = indptr[r] + counts[r] + rank
    indices[dst] = cols[order]
    data[dst] = weights[order]
    index_dtype = np.int32 if nnz < 2**31 and m < 2**31 else np.int64
    return csr_array((data, indices.astype(index_dtype), indptr.astype(index_dtype)), shape=(m, m))


def nearest_distance(graph: WalkGraph, sources: Snapped, targets: Snapped, *, cutoff_m: float) -> tuple[np.ndarray, np.ndarray]:
    """Walk distance from every target to its nearest source, within a cut-off.

    Parameters
    ----------
    graph : WalkGraph
    sources : Snapped
        The facilities of one service; entries with ``ok=False`` take no part.
    targets : Snapped
        Population points, buildings, community centroids ...
    cutoff_m : float
        Largest distance of interest (metres, may be ``inf``); farther targets get ``inf``.

    Returns
    -------
    dist_m : numpy.ndarray
        ``|P–P′| + network(P′, F′) + |F′–F|`` to the nearest source; ``inf`` beyond the
        cut-off, unreachable, or for unsnapped targets.
    source_index : numpy.ndarray
        Position in ``sources`` of the nearest source, ``-1`` where ``dist_m`` is ``inf``.
    """
    if not cutoff_m >= 0:
        raise InputError(f"reach: cutoff_m={cutoff_m}: must be ≥ 0")
    nt = len(targets)
    dist = np.full(nt, np.inf)
    who = np.full(nt, -1, dtype=np.int64)
    if not sources.ok.any() or not targets.ok.any():
        return dist, who
    aug = augment(graph, sources)
    d, row = aug.nearest_source(cutoff_m)
    t = np.flatnonzero(targets.ok)
    left, left_off, right, right_off = anchors(graph, aug, targets.edge[t], targets.offset_m[t])
    via_left = d[left] + (targets.offset_m[t] - left_off)
    via_right = d[right] + (right_off - targets.offset_m[t])
    use_right = via_right < via_left
    best = np.where(use_right, via_right, via_left) + targets.access_m[t]
    node = np.where(use_right, right, left)
    reached = np.isfinite(best) & (best <= cutoff_m)
    dist[t[reached]] = best[reached]
    who[t[reached]] = aug.source_pos[row[node[reached]]]
    return dist, who


def anchors(graph: WalkGraph, aug: Augmented, edge: np.ndarray, offset: np.ndarray):
    """The chain nodes around positions on edges.

    Left is the last split node at or before ``offset`` on the edge (else ``u``, offset 0);
    right is the first split node after it (else ``v``, offset ``length_m``).

    Parameters
    ----------
    graph : WalkGraph
    aug : Augmented
        The graph with the sources inserted (:func:`augment`).
    edge, offset : numpy.ndarray
        Query positions: edge index and metres from its ``u`` (e.g. snapped targets).

    Returns
    -------
    left, left_off, right, right_off : numpy.ndarray
        Per query, the left anchor node and its offset, the right anchor node and its offset.
    """
    left = graph.edge_u[edge].copy()
    left_off = np.zeros(len(edge))
    right = graph.edge_v[edge].copy()
    right_off = graph.edge_len[edge].copy()
    if aug.n_split == 0 or len(edge) == 0:
        return left, left_off, right, right_off
    on_split = np.flatnonzero(np.isin(edge, aug.split_edge))
    if len(on_split) == 0:
        return left, left_off, right, right_off
    # Merge the split nodes (sorted by edge, offset) with the queries; on a tie the split
    # node sorts first, so it is the query's left anchor at distance 0.
    k = aug.n_split
    qe, qo = edge[on_split], offset[on_split]
    all_e = np.concatenate([aug.split_edge, qe])
    all_o = np.concatenate([aug.split_off, qo])
    is_q = np.concatenate([np.zeros(k, dtype=bool), np.ones(len(qe), dtype=bool)])
    order = np.lexsort((is_q, all_o, all_e))
    ranks = np.arange(len(order))
    split_at = np.where(~is_q[order], order, -1)  # split index at merged position, else -1
    pos_of = np.where(~is_q[order], ranks, -1)
    last_split = np.maximum.accumulate(pos_of)
    pos_next = np.where(~is_q[order], ranks, len(order))
    next_split = np.minimum.accumulate(pos_next[::-1])[::-1]
    q_rank = np.empty(len(qe), dtype=np.int64)
    q_rank[order[is_q[order]] - k] = ranks[is_q[order]]
    lp = last_split[q_rank]
    li = np.where(lp >= 0, split_at[np.maximum(lp, 0)], 0)
    has_left = (lp >= 0) & (aug.split_edge[li] == qe)
    nxt = next_split[q_rank]
    ri = np.where(nxt < len(order), split_at[np.minimum(nxt, len(order) - 1)], 0)
    has_right = (nxt < len(order)) & (aug.split_edge[ri] == qe)
    sel = on_split[has_left]
    left[sel] = aug.split_node[li[has_left]]
    left_off[sel] = aug.split_off[li[has_left]]
    sel = on_split[has_right]
    right[sel] = aug.split_node[ri[has_right]]
    right_off[sel] = aug.split_off[ri[has_right]]
    return left, left_off, right, right_off
