"""Noding: polylines into nodes and edges at shared vertices, the build every network reader shares.

Polylines are split into edges at every vertex they share with another polyline (or repeat
within themselves), at their ends and at vertices the caller forces (barrier nodes);
vertices with equal integer location keys are one node (duplicate nodes merge); zero-length
self-loops are dropped; connected components and dangles are counted. Topology comes from
*shared vertices only*, never from geometric crossings: a bridge or a tunnel that passes
over a street without a common vertex does not connect to it.
"""

from __future__ import annotations

from typing import NamedTuple

import geopandas as gpd
import numpy as np
import pyproj
import shapely
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

#: Fixed-point scale of OSM coordinates (libosmium stores 1e-7 degrees as integers):
#: rounding lon/lat to it recovers each node's stored location exactly.
OSM_COORDINATE_SCALE = 1e7
#: Self-loops shorter than this are artefacts of coordinate rounding, not streets.
ZERO_LENGTH_M = 0.05


class Assembly(NamedTuple):
    """Nodes, edges and topology statistics of split polylines (no attributes yet).

    ``kept`` holds the input edge numbers kept (zero-length self-loops dropped), in network
    order, so that a reader can give each edge its attributes when it builds the Network.
    """

    node_xy: np.ndarray
    u: np.ndarray
    v: np.ndarray
    lines: np.ndarray
    length: np.ndarray
    kept: np.ndarray
    stats: dict

    def nodes_frame(self, crs: pyproj.CRS) -> gpd.GeoDataFrame:
        """Nodes as the Network contract has them: RangeIndex, ``x``, ``y``, Point geometry."""
        return gpd.GeoDataFrame({"x": self.node_xy[:, 0], "y": self.node_xy[:, 1]},
                                geometry=shapely.points(self.node_xy), crs=crs)

    def edges_frame(self, crs: pyproj.CRS, highway: np.ndarray, id_column: str, ids: np.ndarray) -> gpd.GeoDataFrame:
        """Edges with their road class and source id (``osm_id`` or ``source_row``), aligned to ``kept``."""
        return gpd.GeoDataFrame(
            {"u": self.u, "v": self.v, "length_m": self.length,
             "highway": np.asarray(highway, dtype=object).astype(str), id_column: ids},
            geometry=self.lines, crs=crs,
        )


def vertex_ids(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Dense ids 0..k-1 for integer coordinate pairs; equal pairs get equal ids.

    The pair is packed into one int64 key (one sort) when the extent allows — always for
    1e-7° lon/lat, and for millimetres over up to ~3,000 km — else ranked per axis first.
    """
    if not len(x):
        return np.empty(0, np.int64)
    x, y = x - x.min(), y - y.min()
    span_y = int(y.max()) + 1
    if (int(x.max()) + 1) * span_y >= 2**63:
        x = np.unique(x, return_inverse=True)[1]
        y = np.unique(y, return_inverse=True)[1]
        span_y = int(y.max()) + 1
    return np.unique(x.astype(np.int64) * span_y + y, return_inverse=True)[1]


def osm_grid(lonlat: np.ndarray) -> np.ndarray:
    """(N, 2) lon/lat as integers on libosmium's 1e-7° grid: equal keys, equal OSM location."""
    return np.rint(lonlat * OSM_COORDINATE_SCALE).astype(np.int64)


def run_ends(group: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Positions of the first and last element of each run of equal values in ``group``."""
    change = np.flatnonzero(group[1:] != group[:-1])
    first = np.concatenate([[0], change + 1]) if len(group) else np.empty(0, np.int64)
    last = np.concatenate([change, [len(group) - 1]]) if len(group) else np.empty(0, np.int64)
    return first, last


def split_at_shared_vertices(
    part: np.ndarray, vertex: np.ndarray, force_cut: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Split polylines into edges at shared vertices and at their ends.

    Parameters
    ----------
    part : numpy.ndarray
        Non-decreasing polyline number of each vertex (as from ``get_coordinates``).
    vertex : numpy.ndarray
        Vertex id of each vertex (equal ids = the same location).
    force_cut : numpy.ndarray, optional
        Bool per vertex id: also cut there (a barrier node on a single way).

    Returns
    -------
    take : numpy.ndarray
        Positions into the input vertex arrays, edge after edge (a cut vertex appears as
        the end of one edge and the start of the next).
    edge_of_vertex : numpy.ndarray
        Edge number of each element of ``take``.
    edge_part : numpy.ndarray
        Polyline number of each edge.
    """
    # Drop immediate repeats of a vertex within a polyline: they are zero-length segments.
    repeat = np.zeros(len(part), bool)
    repeat[1:] = (part[1:] == part[:-1]) & (vertex[1:] == vertex[:-1])
    position = np.flatnonzero(~repeat)
    part, vertex = part[position], vertex[position]
    start = np.ones(len(part), bool)
    start[1:] = part[1:] != part[:-1]
    end = np.ones(len(part), bool)
    end[:-1] = part[1:] != part[:-1]
    single = start & end  # a polyline collapsed to one vertex has no edge
    uses = np.bincount(vertex[~single], minlength=int(vertex.max()) + 1 if len(vertex) else 0)
    cut = start | end | (uses[vertex] >= 2)
    if force_cut is not None:
        cut |= force_cut[vertex]
    cut = np.flatnonzero(cut & ~single)
    # Consecutive cuts within one polyline bound an edge.
    begin, finish = cut[:-1], cut[1:]
    same = part[begin] == part[finish]
    begin, finish = begin[same], finish[same]
    count = finish - begin + 1
    offset = np.cumsum(count) - count
    edge_of_vertex = np.repeat(np.arange(len(begin)), count)
    take = np.repeat(begin - offset, count) + np.arange(int(count.sum()))
    return position[take], edge_of_vertex, part[begin]


def assemble(xy: np.ndarray, edge_of_vertex: np.ndarray, end_keys: np.ndarray,
             detached: np.ndarray | None = None) -> Assembly:
    """Nodes, edges and topology statistics from split polylines in the metric CRS.

    Parameters
    ----------
    xy : numpy.ndarray
        (N, 2) metric coordinates, edge after edge.
    edge_of_vertex : numpy.ndarray
        Non-decreasing edge number of each coordinate.
    end_keys : numpy.ndarray
        (2m, 2) integer location keys of the m edges' first, then last, vertices: equal
        keys are the same node.
    detached : numpy.ndarray, optional
        Bool per edge end (2m, first then last): the end gets a node of its own, so no walk
        passes through that location (a closed barrier: the streets lead up to it and stop).

    Returns
    -------
    Assembly
    """
    m = len(end_keys) // 2
    node_key = vertex_ids(end_keys[:, 0], end_keys[:, 1])
    if detached is not None and detached.any():
        node_key = node_key.copy()
        node_key[detached] = node_key.max() + 1 + np.arange(int(detached.sum()))
    lines = shapely.linestrings(xy, indices=edge_of_vertex)
    length = shapely.length(lines)
    loop = node_key[:m] == node_key[m:]
    keep = ~(loop & (length < ZERO_LENGTH_M))
    kept = np.flatnonzero(keep)

    # Renumber the nodes of the kept edges 0..n-1; a node sits at its first edge end.
    first, last = run_ends(edge_of_vertex)
    ends_xy = xy[np.concatenate([first[keep], last[keep]])]
    key = node_key[np.concatenate([kept, kept + m])]
    used = np.zeros(int(node_key.max()) + 1 if m else 0, bool)
    used[key] = True
    node = (np.cumsum(used) - 1)[key]
    n, k = int(used.sum()), len(kept)
    first_seen = np.empty(n, np.int64)
    first_seen[node[::-1]] = np.arange(len(node))[::-1]  # the last write of a repeated index wins
    u, v = node[:k].astype(np.int64), node[k:].astype(np.int64)

    adjacency = coo_matrix((np.ones(k), (u, v)), shape=(n, n))
    components, label = connected_components(adjacency, directed=False)
    size = np.bincount(label, minlength=components)
    largest = int(size.argmax()) if n else 0
    degree = np.bincount(u, minlength=n) + np.bincount(v, minlength=n)  # a self-loop counts twice
    kept_length = length[keep]
    total = float(kept_length.sum())
    stats = {
        "nodes": int(n),
        "edges": int(k),
        "components": int(components),
        "largest_component_nodes": int(size.max()) if n else 0,
        "largest_component_share": float(size.max() / n) if n else 0.0,
        "largest_component_length_share": float(kept_length[label[u] == largest].sum() / total) if n else 0.0,
        "dangles": int((degree == 1).sum()),
        "total_length_km": total / 1000.0,
        "zero_length_loops_dropped": int(m - k),
    }
    return Assembly(ends_xy[first_seen], u, v, lines[keep], kept_length, kept, stats)


class LonLatBuild(NamedTuple):
    """:func:`node_lonlat`'s result: the assembly and where each piece came from."""

    assembly: Assembly
    edge_part: np.ndarray  # polyline number of each kept edge
    split_part: np.ndarray  # polyline number of each edge before clipping
    locations: int  # distinct locations among the input coordinates
    clipped_edges: int  # edges that ran past the box (trimmed or dropped)
    detached_ends: int  # edge ends given a node of their own at a closed location


def node_lonlat(coords: np.ndarray, part: np.ndarray, crs: pyproj.CRS, *, box=None,
                closed: np.ndarray | None = None) -> LonLatBuild:
    """Split lon/lat polylines at shared OSM locations, optionally clip to ``box``, project.

    Parameters
    ----------
    coords, part : numpy.ndarray
        (N, 2) lon/lat and (N,) non-decreasing polyline number, as from
        ``shapely.get_coordinates(..., return_index=True)``.
    crs : pyproj.CRS
        The metric CRS of the result.
    box : tuple of float, optional
        ``(west, south, east, north)``: edges are cut where they leave it, parts outside
        dropped, and the cut points become nodes.
    closed : numpy.ndarray, optional
        (k, 2) :func:`osm_grid` keys of closed barrier locations: polylines are cut there and
        every edge end there gets a node of its own.

    Returns
    -------
    LonLatBuild
    """
    fixed = osm_grid(coords)
    vertex = vertex_ids(fixed[:, 0], fixed[:, 1])
    closed_vertex = None
    if closed is not None and len(closed):
        closed_vertex = np.zeros(int(vertex.max()) + 1 if len(vertex) else 0, bool)
        closed_vertex[vertex[isin_keys(fixed, closed)]] = True
    take, edge_of_vertex, edge_part = split_at_shared_vertices(part, vertex, closed_vertex)
    coords = coords[take]
    n_edges = len(edge_part)

    # Pieces of edges: an edge inside the box is one piece with its exact coordinates;
    # only the edges leaving the box become geometries and are clipped (clipping can
    # leave several line parts, or nothing).
    outside = np.zeros(n_edges, bool)
    if box is not None:
        beyond = ((coords < box[:2]) | (coords > box[2:])).any(axis=1)
        outside = np.bincount(edge_of_vertex, weights=beyond, minlength=n_edges) > 0
    inside_vertex = ~outside[edge_of_vertex]
    inside_rank = np.cumsum(~outside) - 1
    piece_coords, piece, piece_edge = [coords[inside_vertex]], [inside_rank[edge_of_vertex[inside_vertex]]], \
        [np.flatnonzero(~outside)]
    if outside.any():
        outside_rank = np.cumsum(outside) - 1
        lines = shapely.linestrings(coords[~inside_vertex], indices=outside_rank[edge_of_vertex[~inside_vertex]])
        parts, part_line = shapely.get_parts(shapely.clip_by_rect(lines, *box), return_index=True)
        is_line = (shapely.get_type_id(parts) == 1) & (shapely.get_num_coordinates(parts) >= 2)
        clipped, clipped_part = shapely.get_coordinates(parts[is_line], return_index=True)
        piece_coords.append(clipped)
        piece.append(clipped_part + (n_edges - outside.sum()))
        piece_edge.append(np.flatnonzero(outside)[part_line[is_line]])
    coords, piece, piece_edge = (np.concatenate(a) for a in (piece_coords, piece, piece_edge))

    first, last = run_ends(piece)
    # Cut points at the boundary get a location on the same 1e-7° grid as OSM nodes.
    ends = osm_grid(coords[np.concatenate([first, last])])
    detached = isin_keys(ends, closed) if closed_vertex is not None else None
    transformer = pyproj.Transformer.from_crs("EPSG:4326", crs, always_xy=True)
    x, y = transformer.transform(coords[:, 0], coords[:, 1])
    assembly = assemble(np.column_stack([x, y]), piece, ends, detached)
    return LonLatBuild(assembly, edge_part[piece_edge[assembly.kept]], edge_part,
                       int(vertex.max() + 1) if len(vertex) else 0, int(outside.sum()),
                       int(detached.sum()) if detached is not None else 0)


def isin_keys(keys: np.ndarray, among: np.ndarray) -> np.ndarray:
    """Bool per row of ``keys`` (N, 2 ints on the 1e-7° grid): the pair is a row of ``among``."""
    def pack(k):  # lon in ±1.8e9, lat in ±9e8: one int64 holds both
        return (k[:, 0] + 1_800_000_000) * 1_800_000_001 + (k[:, 1] + 900_000_000)
    return np.isin(pack(keys), pack(np.asarray(among, dtype=np.int64).reshape(-1, 2)))
