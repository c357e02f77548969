"""Walk distances from every source to every target within a cut-off, as a sparse matrix.

:func:`carecircle.coverage.reach.nearest_distance` answers "how far is the *nearest*
source"; siting and capacity need "which targets does *each* source reach" — the coverage
sets of candidate sites, the catchment of every facility. :func:`catchment_matrix` gives
them from the same construction, so the two always agree: the sources are inserted into the
walk graph once (:func:`~carecircle.coverage.reach.augment`: split nodes, chains, virtual
nodes), :func:`bounded_search` runs one bounded ``dijkstra`` per source (batched, on spatial
crops of the graph), and every target reads its distance from the two chain anchors around
it on its edge (:func:`~carecircle.coverage.reach.anchors`) exactly as ``nearest_distance``
does. Sources on a target's own edge are anchors of its chain, so the direct along-edge walk
is included. The minimum over the sources of a column is therefore *bit-for-bit*
``nearest_distance`` (floating-point addition is monotone, so the minimum of the per-source
sums is the multi-source sum).

Memory grows with the reached (source, target) pairs, never with sources × targets: each
batch of sources keeps only the pairs within the cut-off, and the batches are placed into
the CSR arrays without a global sort.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
from scipy.sparse import csr_array
from scipy.sparse.csgraph import dijkstra

from carecircle.coverage.graph import WalkGraph
from carecircle.coverage.reach import Augmented, anchors, augment
from carecircle.coverage.snap import Snapped
from carecircle.errors import InputError

# Sources per tile and per dijkstra call: enough to amortise the crop, few enough that the
# dense (sources × cropped nodes) distance block of one call stays small.
TILE_SOURCES = 48


def catchment_matrix(graph: WalkGraph, sources: Snapped, targets: Snapped, *, cutoff_m: float) -> csr_array:
    """Walk distance from each source to each target it reaches within ``cutoff_m``.

    The distance is the one of :func:`~carecircle.coverage.reach.nearest_distance`,
    ``|P–P′| + network(P′, F′) + |F′–F|`` on the edge-snapped graph, for every source
    instead of only the nearest.

    Parameters
    ----------
    graph : WalkGraph
    sources : Snapped
        Facilities or candidate sites; entries with ``ok=False`` get an empty row.
    targets : Snapped
        Population points, buildings ...; entries with ``ok=False`` get an empty column.
    cutoff_m : float
        Largest distance kept, in metres (boundary inclusive: ``d ≤ cutoff_m``).

    Returns
    -------
    scipy.sparse.csr_array
        ``len(sources) × len(targets)``, float64, sorted indices. An entry is stored
        exactly when the target is within the cut-off of that source, **including
        distances of exactly 0, stored as explicit zeros**: read the coverage relation from
        the structure (``indptr``/``indices``, or :func:`covers`), not from ``!= 0``, and do
        not call ``eliminate_zeros`` on it.

    Notes
    -----
    ``catchment_matrix(...).min(axis=0)`` over the stored entries equals
    ``nearest_distance(...)[0]`` for every target within the cut-off.
    """
    if not cutoff_m >= 0:
        raise InputError(f"catchment: cutoff_m={cutoff_m}: must be ≥ 0")
    ns, nt = len(sources), len(targets)
    counts = np.zeros(ns, dtype=np.int64)
    batches = []
    t = np.flatnonzero(targets.ok)
    if sources.ok.any() and len(t):
        aug = augment(graph, sources)
        node_ptr, node_target, node_along = _anchored_targets(graph, aug, targets, t)
        access = targets.access_m
        for rows, nodes, dists in bounded_search(graph, aug, cutoff_m):
            # Every reached node hands its distance to the targets anchored on it.
            cnt = node_ptr[nodes + 1] - node_ptr[nodes]
            pos = _ranges(node_ptr[nodes], cnt)
            row = np.repeat(rows, cnt)
            target = node_target[pos]
            via = np.repeat(dists, cnt) + node_along[pos]
            # A target is reached over its left and its right anchor: keep the shorter.
            order = np.lexsort((via, target, row))
            row, target, via = row[order], target[order], via[order]
            first = np.ones(len(row), dtype=bool)
            first[1:] = (row[1:] != row[:-1]) | (target[1:] != target[:-1])
            row, target = row[first], target[first]
            best = via[first] + access[target]
            keep = best <= cutoff_m
            src = aug.source_pos[row[keep]]
            batches.append((src, target[keep], best[keep]))
            counts += np.bincount(src, minlength=ns)
    indptr = np.zeros(ns + 1, dtype=np.int64)
    np.cumsum(counts, out=indptr[1:])
    nnz = int(indptr[-1])
    index_dtype = np.int32 if nnz < 2**31 and max(ns, nt) < 2**31 else np.int64
    indices = np.empty(nnz, dtype=index_dtype)
    data = np.empty(nnz)
    # Each source's pairs come from one batch, sorted by target: copy the runs into place.
    for src, target, best in batches:
        if not len(src):
            continue
        start = np.flatnonzero(np.r_[True, src[1:] != src[:-1]])
        run = np.diff(np.r_[start, len(src)])
        dst = _ranges(indptr[src[start]], run)
        indices[dst] = target
        data[dst] = best
    return csr_array((data, indices, indptr.astype(index_dtype)), shape=(ns, nt))


def covers(matrix: csr_array) -> csr_array:
    """The coverage relation of a :func:`catchment_matrix` as a boolean matrix (zeros kept as True)."""
    return csr_array((np.ones(matrix.nnz, dtype=bool), matrix.indices, matrix.indptr), shape=matrix.shape)


def bounded_search(graph: WalkGraph, aug: Augmented, cutoff_m: float) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Bounded ``dijkstra`` from every source of ``aug``, batch by batch.

    Sources are grouped in spatial tiles: a search can only reach nodes within
    ``cutoff_m × graph.length_factor`` of its source in straight line, so each tile runs on
    a crop of the graph (its 3 × 3 block of cells), which bounds memory and makes the work
    grow with sources × reach, not sources × city.

    Parameters
    ----------
    graph : WalkGraph
    aug : Augmented
        The graph with the sources inserted (:func:`~carecircle.coverage.reach.augment`).
    cutoff_m : float
        Search limit in metres (nodes farther than this are not reported).

    Yields
    ------
    rows, nodes, dists : numpy.ndarray
        Reached (source row of ``aug.source_pos``, node, distance) triples of one batch of
        sources, sorted by source then node; every source appears in exactly one batch.
    """
    virtual = aug.virtual
    nf = len(virtual)
    radius = cutoff_m * graph.length_factor
    x, y = aug.node_x, aug.node_y
    span = max(np.ptp(x), np.ptp(y), 1.0)
    if not math.isfinite(radius) or radius * 3 >= span:
        tiles = [(np.arange(nf), np.arange(aug.n_nodes))]
    else:
        # Tiles of side >= radius, sized for ~TILE_SOURCES sources each; a tile's crop is
        # its 3 × 3 block of cells, which holds every node within radius.
        fx, fy = x[virtual], y[virtual]
        area = max(np.ptp(fx) * np.ptp(fy), 1.0)
        side = max(radius * (1 + 1e-9), math.sqrt(area * TILE_SOURCES / nf))
        x0, y0 = x.min(), y.min()
        ncol = int((x.max() - x0) // side) + 1
        cx = ((x - x0) // side).astype(np.int64)
        cy = ((y - y0) // side).astype(np.int64)
        cell = cy * ncol + cx
        by_cell = np.argsort(cell, kind="stable")
        cell_sorted = cell[by_cell]
        fcell = cell[virtual]
        forder = np.argsort(fcell, kind="stable")
        tile_cells, first = np.unique(fcell[forder], return_index=True)
        tiles = []
        for tcell, fac in zip(tile_cells, np.split(forder, first[1:])):
            tx, ty = tcell % ncol, tcell // ncol
            lo, hi = max(tx - 1, 0), min(tx + 1, ncol - 1)
            crop = np.concatenate([
                by_cell[np.searchsorted(cell_sorted, yy * ncol + lo, "left"):np.searchsorted(cell_sorted, yy * ncol + hi, "right")]
                for yy in (ty - 1, ty, ty + 1) if yy >= 0
            ])
            tiles.append((fac, crop))
    local = np.full(aug.n_nodes, -1, dtype=np.int64)
    for fac, crop in tiles:
        crop = np.union1d(crop, virtual[fac])
        local[crop] = np.arange(len(crop))
        sub = _crop(aug.csr, crop, local)
        for lo in range(0, len(fac), TILE_SOURCES):
            chunk = np.sort(fac[lo:lo + TILE_SOURCES])
            d = dijkstra(sub, directed=True, indices=local[virtual[chunk]], limit=cutoff_m)
            r, j = np.nonzero(np.isfinite(d))
            nodes = crop[j]
            # crop is sorted (union1d), so nodes are sorted within each source already.
            yield chunk[r], nodes, d[r, j]
        local[crop] = -1


def _anchored_targets(graph: WalkGraph, aug: Augmented, targets: Snapped, t: np.ndarray):
    """Node → targets incidence: each target under its left and right chain anchors.

    Returns ``ptr, target, along`` (CSR by node over ``aug.n_nodes``): the targets anchored
    at node ``i`` are ``target[ptr[i]:ptr[i+1]]``, with the along-edge walk from the node
    to them, computed as in ``nearest_distance`` so the sums match bit for bit.
    """
    off = targets.offset_m[t]
    left, left_off, right, right_off = anchors(graph, aug, targets.edge[t], off)
    node = np.concatenate([left, right])
    target = np.concatenate([t, t])
    along = np.concatenate([off - left_off, right_off - off])
    order = np.argsort(node, kind="stable")
    ptr = np.zeros(aug.n_nodes + 1, dtype=np.int64)
    np.cumsum(np.bincount(node, minlength=aug.n_nodes), out=ptr[1:])
    return ptr, target[order], along[order]


def _ranges(start: np.ndarray, count: np.ndarray) -> np.ndarray:
    """Concatenated ``arange(start[i], start[i] + count[i])``, vectorised."""
    count = np.asarray(count, dtype=np.int64)
    total = int(count.sum())
    return np.arange(total, dtype=np.int64) - np.repeat(np.cumsum(count) - count, count) + np.repeat(np.asarray(start, dtype=np.int64), count)


def _crop(csr: csr_array, keep: np.ndarray, local: np.ndarray) -> csr_array:
    """The sub-matrix on nodes ``keep`` (``local`` maps node → position in keep, else -1)."""
    start = csr.indptr[keep].astype(np.int64)
    count = csr.indptr[keep + 1].astype(np.int64) - start
    row = np.repeat(np.arange(len(keep)), count)
    idx = _ranges(start, count)
    col = local[csr.indices[idx]]
    inside = col >= 0
    row, col, w = row[inside], col[inside], csr.data[idx][inside]
    indptr = np.zeros(len(keep) + 1, dtype=np.int64)
    np.cumsum(np.bincount(row, minlength=len(keep)), out=indptr[1:])
    return csr_array((w, col.astype(np.int32), indptr.astype(np.int32)), shape=(len(keep), len(keep)))
