"""Isochrone polygons for maps and the planning package (never for coverage numbers).

Coverage numbers come from :func:`carecircle.coverage.reach.nearest_distance`. The polygons
here are drawn from the same graph search, so they agree with it: every point whose walk
distance is within the cut-off and whose access leg is at most ``buffer_m`` lies inside the
buffered polygon (the buffer is widened by ``1 / cos(π / 4q)`` so that GEOS's polygonal
round joins, whose chords cut inside the true circle, still contain the full ``buffer_m``).

Geometry: the *reached street pieces* — every edge part within the cut-off, including the
partial reach into the last edge (split where walks from both ends meet) — buffered into a
"sausage" (default), or their concave hull (``method="concave"``).

* :func:`facility_isochrones` — one polygon per facility and cut-off, from the bounded
  per-facility searches of :func:`carecircle.coverage.catchment.bounded_search` (spatial
  tiles on crops of the graph: work grows with facilities × reach, not facilities × city).
* :func:`dissolve_isochrones` — one polygon per cut-off for the whole service (the union),
  from a single multi-source search.
* :func:`catchments` — the dissolved reach split by nearest facility (exact on the
  network: an edge reached from two facilities is cut where the walks meet). Neighbouring
  catchment polygons overlap by up to the buffer width along their shared boundary.
* :func:`reach_lines` — the reached pieces themselves as LineStrings.
"""

from __future__ import annotations

import math
import os
from concurrent.futures import ThreadPoolExecutor

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from carecircle.coverage.catchment import bounded_search
from carecircle.coverage.graph import WalkGraph, edge_geom_length, edge_vertices
from carecircle.coverage.reach import Augmented, augment, chain_pieces
from carecircle.coverage.snap import Snapped
from carecircle.errors import InputError

COLUMNS = ["facility_fid", "service", "kind", "cutoff_m", "minutes", "geometry"]
QUAD_SEGS = 4
CONCAVE_RATIO = 0.3
# Groups per union batch (and thread-pool task).
UNION_BATCH = 32
# Groups larger than this are unioned in spatial tiles first.
SPLIT_ABOVE = 20_000


def reach_lines(graph: WalkGraph, sources: Snapped, facility_ids=None, *, cutoffs_m, per: str = "facility") -> gpd.GeoDataFrame:
    """The street pieces reached within each cut-off.

    Parameters
    ----------
    graph : WalkGraph
    sources : Snapped
        Facilities (unsnapped ones are skipped; the caller reports them).
    facility_ids : array-like, optional
        One id per entry of ``sources`` (default: positions).
    cutoffs_m : sequence of float
        Walk distances in metres (the access leg of the facility counts).
    per : {"facility", "nearest"}
        ``"facility"``: the pieces each facility reaches (overlapping between facilities);
        ``"nearest"``: each reached piece once, labelled with its nearest facility.

    Returns
    -------
    geopandas.GeoDataFrame
        ``facility_fid``, ``cutoff_m``, ``edge``, ``start_m``, ``end_m`` (metres from the
        edge's ``u`` along it), ``geometry`` (LineString), in the graph's CRS.
    """
    cutoffs = _cutoffs(cutoffs_m)
    ids = _ids(sources, facility_ids)
    if per not in ("facility", "nearest"):
        raise InputError(f"isochrones: per={per!r}: use 'facility' or 'nearest'")
    frame = _empty_lines(graph)
    if not sources.ok.any() or not len(cutoffs):
        return frame
    aug = augment(graph, sources)
    seg = _Segments(graph, aug)
    if per == "nearest":
        d, owner = aug.nearest_source(cutoffs.max())
        sid = np.arange(seg.n)
        d_a, d_b = d[seg.a], d[seg.b]
        own_a, own_b = owner[seg.a], owner[seg.b]
    else:
        row, node, dist = _per_facility_search(graph, aug, cutoffs.max())
        if not len(row):
            return frame
        row, sid, d_a, d_b = _reached_segments(aug, seg, row, node, dist)
        own_a = own_b = row
    parts = []
    for c in cutoffs:
        for who, k_sid, start, end in _pieces(seg.length[sid], d_a, d_b, own_a, own_b, c):
            parts.append(pd.DataFrame({
                "source": who, "cutoff_m": c, "edge": seg.edge[sid[k_sid]],
                "start_m": seg.off0[sid[k_sid]] + start, "end_m": seg.off0[sid[k_sid]] + end,
            }))
    pieces = pd.concat(parts, ignore_index=True)
    if pieces.empty:
        return frame
    pieces = pieces.sort_values(["cutoff_m", "source", "edge", "start_m"], kind="stable", ignore_index=True)
    geometry = _substrings(graph, pieces["edge"].to_numpy(), pieces["start_m"].to_numpy(), pieces["end_m"].to_numpy())
    out = pd.DataFrame({
        "facility_fid": ids[aug.source_pos[pieces["source"].to_numpy()]],
        "cutoff_m": pieces["cutoff_m"].to_numpy(),
        "edge": pieces["edge"].to_numpy(),
        "start_m": pieces["start_m"].to_numpy(),
        "end_m": pieces["end_m"].to_numpy(),
    })
    return gpd.GeoDataFrame(out, geometry=geometry, crs=graph.crs)


def facility_isochrones(graph: WalkGraph, sources: Snapped, facility_ids, *, cutoffs_m, buffer_m: float = 50.0,
                        method: str = "buffer", service: str = "", speed_kmh: float = 4.0) -> gpd.GeoDataFrame:
    """One isochrone polygon per facility and cut-off (5/10/15-minute rings: several cut-offs).

    Parameters
    ----------
    graph : WalkGraph
    sources : Snapped
        The facilities; unsnapped entries get no polygon (the caller reports them).
    facility_ids : array-like
        Facility ``fid`` per entry of ``sources``.
    cutoffs_m : sequence of float
        Walk distances in metres; convert minutes with ``minutes * speed_kmh * 1000 / 60``.
    buffer_m : float, default 50
        Half-width of the street "sausage": points up to this far from a reached street
        are inside.
    method : {"buffer", "concave"}
        Buffered reached streets, or the concave hull of their vertices (tighter outline;
        it may leave out points whose access leg is long).
    service : str
        Service key stored in the ``service`` column.
    speed_kmh : float, default 4.0
        Walking speed for the ``minutes`` column.

    Returns
    -------
    geopandas.GeoDataFrame
        ``facility_fid``, ``service``, ``kind`` (``"facility"``), ``cutoff_m``,
        ``minutes``, ``geometry``; rings of one facility are nested.
    """
    lines = reach_lines(graph, sources, facility_ids, cutoffs_m=cutoffs_m, per="facility")
    return _polygons(lines, ["facility_fid", "cutoff_m"], "facility", buffer_m, method, service, speed_kmh)


def dissolve_isochrones(graph: WalkGraph, sources: Snapped, *, cutoffs_m, buffer_m: float = 50.0,
                        method: str = "buffer", service: str = "", speed_kmh: float = 4.0) -> gpd.GeoDataFrame:
    """The union of a service's isochrones, one polygon per cut-off, from one multi-source search.

    Parameters are those of :func:`facility_isochrones` (no ``facility_ids``).

    Returns
    -------
    geopandas.GeoDataFrame
        The columns of :func:`facility_isochrones`; ``facility_fid`` is ``-1`` and ``kind``
        is ``"dissolved"``.
    """
    lines = reach_lines(graph, sources, None, cutoffs_m=cutoffs_m, per="nearest")
    lines["facility_fid"] = -1
    return _polygons(lines, ["facility_fid", "cutoff_m"], "dissolved", buffer_m, method, service, speed_kmh)


def catchments(graph: WalkGraph, sources: Snapped, facility_ids, *, cutoffs_m, buffer_m: float = 50.0,
               method: str = "buffer", service: str = "", speed_kmh: float = 4.0) -> gpd.GeoDataFrame:
    """The reach of a service split by nearest facility (``kind="catchment"``).

    Parameters are those of :func:`facility_isochrones`; each reached street piece belongs
    to the facility with the shortest walk to it.

    Returns
    -------
    geopandas.GeoDataFrame
        The columns of :func:`facility_isochrones`, one polygon per reaching facility and
        cut-off; neighbouring catchments overlap by up to the buffer width along their
        shared boundary.
    """
    lines = reach_lines(graph, sources, facility_ids, cutoffs_m=cutoffs_m, per="nearest")
    return _polygons(lines, ["facility_fid", "cutoff_m"], "catchment", buffer_m, method, service, speed_kmh)


# --------------------------------------------------------------------------- internals


def _cutoffs(cutoffs_m) -> np.ndarray:
    c = np.unique(np.asarray(list(np.atleast_1d(cutoffs_m)), dtype=np.float64))
    if len(c) and (not np.isfinite(c).all() or (c < 0).any()):
        raise InputError(f"isochrones: cutoffs_m={list(c)}: cut-offs must be finite and ≥ 0")
    return c


def _ids(sources: Snapped, facility_ids) -> np.ndarray:
    ids = np.arange(len(sources)) if facility_ids is None else np.asarray(facility_ids)
    if len(ids) != len(sources):
        raise InputError(f"isochrones: facility_ids: {len(ids)} ids for {len(sources)} facilities; give one per facility")
    return ids


def _empty_lines(graph) -> gpd.GeoDataFrame:
    cols = {"facility_fid": np.zeros(0, dtype=np.int64), "cutoff_m": np.zeros(0), "edge": np.zeros(0, dtype=np.int64),
            "start_m": np.zeros(0), "end_m": np.zeros(0)}
    return gpd.GeoDataFrame(cols, geometry=gpd.GeoSeries([], crs=graph.crs), crs=graph.crs)


class _Segments:
    """Routing segments: whole unsplit edges plus the chain pieces of split edges.

    Segment ``i`` runs from node ``a[i]`` (at ``off0[i]`` metres along edge ``edge[i]``)
    to node ``b[i]`` (at ``off1[i]``); no source lies strictly inside a segment.
    """

    def __init__(self, graph: WalkGraph, aug: Augmented):
        split = np.zeros(graph.n_edges, dtype=bool)
        split[aug.split_edge] = True
        plain = np.flatnonzero(~split)
        a, b, edge, off0, off1 = chain_pieces(graph, aug.split_edge, aug.split_off, aug.split_node)
        self.a = np.concatenate([graph.edge_u[plain], a])
        self.b = np.concatenate([graph.edge_v[plain], b])
        self.edge = np.concatenate([plain, edge])
        self.off0 = np.concatenate([np.zeros(len(plain)), off0])
        self.off1 = np.concatenate([graph.edge_len[plain], off1])
        self.length = self.off1 - self.off0
        self.n = len(self.a)


def _pieces(length, d_a, d_b, own_a, own_b, c):
    """The reached parts of segments, as (owner, segment row, start, end) groups.

    A point x of a segment is reached if ``min(d_a + x, d_b + length − x) ≤ c``; the walks
    from both ends meet at ``x* = (length + d_b − d_a) / 2``, so end a owns
    ``[0, min(c − d_a, x*)]`` and end b owns ``[max(length − (c − d_b), x*), length]``.
    When both parts touch and have the same owner they are one piece, the whole segment.
    Offsets are relative to the segment start.
    """
    with np.errstate(invalid="ignore"):
        meet = np.clip((length + d_b - d_a) / 2, 0.0, length)
        meet = np.where(np.isfinite(meet), meet, np.where(np.isfinite(d_a), length, 0.0))
        end_a = np.minimum(c - d_a, meet)
        start_b = np.maximum(length - (c - d_b), meet)
        has_a = end_a > 0
        has_b = start_b < length
    whole = has_a & has_b & (end_a >= start_b) & (own_a == own_b)
    only_a = has_a & ~whole
    only_b = has_b & ~whole
    rows = np.arange(len(length))
    return [
        (own_a[whole], rows[whole], np.zeros(whole.sum()), length[whole]),
        (own_a[only_a], rows[only_a], np.zeros(only_a.sum()), end_a[only_a]),
        (own_b[only_b], rows[only_b], start_b[only_b], length[only_b]),
    ]


def _per_facility_search(graph: WalkGraph, aug: Augmented, cmax: float):
    """Bounded search from every facility: arrays (facility row, node, distance) of reached nodes."""
    parts = list(bounded_search(graph, aug, cmax))
    if not parts:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64), np.zeros(0)
    return tuple(np.concatenate(p) for p in zip(*parts))


def _reached_segments(aug: Augmented, seg: _Segments, row, node, dist):
    """For (facility, reached node) pairs: the (facility, segment) pairs touched and end distances."""
    n = aug.n_nodes
    # Node → incident segments.
    ends = np.concatenate([seg.a, seg.b])
    order = np.argsort(ends, kind="stable")
    seg_of = np.concatenate([np.arange(seg.n), np.arange(seg.n)])[order]
    ptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(ends, minlength=n), out=ptr[1:])
    cnt = ptr[node + 1] - ptr[node]
    pair_row = np.repeat(row, cnt)
    pos = np.arange(int(cnt.sum())) - np.repeat(np.cumsum(cnt) - cnt, cnt) + np.repeat(ptr[node], cnt)
    pair_seg = seg_of[pos]
    key = np.unique(pair_row * seg.n + pair_seg)
    r, s = key // seg.n, key % seg.n
    # Distances of both segment ends for that facility (inf if not reached).
    known = row * n + node
    korder = np.argsort(known)
    known, kdist = known[korder], dist[korder]

    def lookup(nodes):
        q = r * n + nodes
        i = np.minimum(np.searchsorted(known, q), len(known) - 1)
        return np.where(known[i] == q, kdist[i], np.inf)

    return r, s, lookup(seg.a[s]), lookup(seg.b[s])


def _substrings(graph: WalkGraph, edge: np.ndarray, start_m: np.ndarray, end_m: np.ndarray) -> np.ndarray:
    """LineStrings of edge parts ``[start_m, end_m]`` (walk metres from u), vectorised."""
    coords, vstart, cum = edge_vertices(graph)
    glen = edge_geom_length(graph)[edge]
    scale = np.divide(glen, graph.edge_len[edge], out=np.zeros(len(edge)), where=graph.edge_len[edge] > 0)
    g0, g1 = start_m * scale, end_m * scale  # in geometry metres
    p0 = shapely.get_coordinates(shapely.line_interpolate_point(graph.edge_geom[edge], g0))
    p1 = shapely.get_coordinates(shapely.line_interpolate_point(graph.edge_geom[edge], g1))
    # Interior vertices strictly between the two ends.
    cnt = vstart[edge + 1] - vstart[edge]
    piece = np.repeat(np.arange(len(edge)), cnt)
    vid = np.arange(int(cnt.sum())) - np.repeat(np.cumsum(cnt) - cnt, cnt) + np.repeat(vstart[edge], cnt)
    inside = (cum[vid] > g0[piece]) & (cum[vid] < g1[piece])
    piece, vid = piece[inside], vid[inside]
    n = len(edge)
    owner = np.concatenate([np.arange(n), piece, np.arange(n)])
    rank = np.concatenate([np.full(n, -1), vid, np.full(n, np.iinfo(np.int64).max)])
    xy = np.concatenate([p0, coords[vid], p1])
    order = np.lexsort((rank, owner))
    return shapely.linestrings(xy[order], indices=owner[order])


def _polygons(lines: gpd.GeoDataFrame, by: list[str], kind: str, buffer_m: float, method: str,
              service: str, speed_kmh: float) -> gpd.GeoDataFrame:
    """One polygon per group of reached lines."""
    if method not in ("buffer", "concave"):
        raise InputError(f"isochrones: method={method!r}: use 'buffer' or 'concave'")
    if not buffer_m >= 0 or not speed_kmh > 0:
        raise InputError(f"isochrones: buffer_m={buffer_m}, speed_kmh={speed_kmh}: need buffer_m ≥ 0 and speed_kmh > 0")
    if lines.empty:
        empty = pd.DataFrame({c: pd.Series(dtype=t) for c, t in
                              zip(COLUMNS[:-1], ["int64", "str", "str", "float64", "float64"])})
        return gpd.GeoDataFrame(empty, geometry=gpd.GeoSeries([], crs=lines.crs), crs=lines.crs)
    group = lines.groupby(by, sort=True).ngroup().to_numpy()
    keys = lines[by].drop_duplicates().sort_values(by).reset_index(drop=True)
    if method == "buffer":
        # Union of the buffered pieces: GEOS's cascaded union of many small polygons is
        # ~15× faster than buffering one MultiLineString of the same pieces.
        widened = buffer_m / math.cos(math.pi / (4 * QUAD_SEGS))
        geom = _union_by_group(shapely.buffer(lines.geometry.values, widened, quad_segs=QUAD_SEGS), group, len(keys))
    else:
        order = np.argsort(group, kind="stable")
        multi = shapely.multilinestrings(lines.geometry.values[order], indices=group[order])
        geom = shapely.concave_hull(multi, ratio=CONCAVE_RATIO)
    out = pd.DataFrame({
        "facility_fid": keys["facility_fid"].to_numpy(),
        "service": service,
        "kind": kind,
        "cutoff_m": keys["cutoff_m"].to_numpy(dtype=np.float64),
        "minutes": keys["cutoff_m"].to_numpy(dtype=np.float64) / (speed_kmh * 1000.0 / 60.0),
    })
    return gpd.GeoDataFrame(out, geometry=geom, crs=lines.crs)


def _union_by_group(geoms: np.ndarray, group: np.ndarray, n_groups: int) -> np.ndarray:
    """Union of ``geoms`` per group id ``0..n_groups-1``, vectorised.

    Groups are sorted by size and unioned in batches with ``shapely.union_all(axis=1)`` on
    a None-padded block (None is ignored), so padding stays small; batches run on a thread
    pool (shapely releases the GIL).
    """
    counts = np.bincount(group, minlength=n_groups)
    if counts.max(initial=0) > SPLIT_ABOVE:
        # A dissolved service is one huge group: union it tile by tile (in parallel),
        # then union the tiles of each group.
        xy = shapely.get_coordinates(shapely.point_on_surface(geoms))
        per_side = math.ceil(math.sqrt(counts.max() / (SPLIT_ABOVE / 4)))
        span = max(np.ptp(xy[:, 0]), np.ptp(xy[:, 1]), 1.0) * (1 + 1e-9)
        cx = ((xy[:, 0] - xy[:, 0].min()) / span * per_side).astype(np.int64)
        cy = ((xy[:, 1] - xy[:, 1].min()) / span * per_side).astype(np.int64)
        sub_key, sub = np.unique((group * per_side + cy) * per_side + cx, return_inverse=True)
        tiles = _union_by_group(geoms, sub, len(sub_key))
        return _union_by_group(tiles, sub_key // (per_side * per_side), n_groups)
    order = np.argsort(group, kind="stable")
    first = np.cumsum(counts) - counts
    rank = np.arange(len(order)) - np.repeat(first, counts)
    by_size = np.argsort(counts, kind="stable")
    batches = [by_size[i:i + UNION_BATCH] for i in range(0, n_groups, UNION_BATCH)]
    pos_in_size = np.empty(n_groups, dtype=np.int64)
    pos_in_size[by_size] = np.arange(n_groups)
    sorted_geoms = geoms[order]
    sorted_group = group[order]

    def union(batch: np.ndarray) -> np.ndarray:
        block = np.full((len(batch), int(counts[batch].max())), None, dtype=object)
        member = np.isin(sorted_group, batch)
        block[pos_in_size[sorted_group[member]] - pos_in_size[batch[0]], rank[member]] = sorted_geoms[member]
        return shapely.union_all(block, axis=1)

    out = np.empty(n_groups, dtype=object)
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        for batch, result in zip(batches, pool.map(union, batches)):
            out[batch] = result
    return out
