"""Walking street networks: OSM extracts, road-centreline line layers, osmnx downloads.

Every reader returns a :class:`Network` — nodes and edges in one metric CRS — built the same
way: polylines are split into edges at every vertex they share with another polyline (or
repeat within themselves) and at their ends, duplicate nodes (same coordinates) are merged,
zero-length self-loops dropped, and the connected components and dangles counted. Topology
comes from *shared vertices only*, never from geometric crossings: a bridge or a tunnel
that passes over a street without a common vertex does not connect to it.

- :func:`read_osm`: an OSM extract (``.osm``, ``.osm.pbf``, ``.osm.bz2``, ``.osm.gz``)
  read with pyosmium in a single pass, walking ways only, clipped to the file's bounds.
- :func:`read_lines`: any road-centreline line layer (SHP, GPKG, ...) in any CRS.
- :func:`download_place`: an OSM place downloaded with osmnx (needs internet).
- :func:`network_from_graph`: an osmnx graph already in memory.

The walking filter is :func:`walk_exclusion` (osmnx's ``walk`` network type, keeping
cycleways, plus ``motorroad=yes``); one-way tags are ignored because walking is two-way.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from collections.abc import Mapping
from typing import Any

import geopandas as gpd
import numpy as np
import osmium
import pandas as pd
import pyogrio.errors
import pyproj
import shapely
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from carecircle.layers.crs import utm_crs
from carecircle.errors import InputError
from carecircle.layers.accounting import LayerReport
from carecircle.layers.readers import shapefile_encoding

#: ``highway`` values that are never walking ways: the osmnx 2.1 ``walk`` filter
#: (``abandoned|bus_guideway|construction|cycleway|motor|no|planned|platform|proposed|
#: raceway|razed|rest_area|services``) plus ``busway`` and ``disused``, but *without*
#: ``cycleway``: in Chinese cities separately mapped cycle tracks (非机动车道) are routinely
#: walked on and are often the only mapped path along that side of a road; a cycleway that
#: pedestrians may not use carries ``foot=no`` and is excluded by that tag.
EXCLUDED_HIGHWAY = frozenset(
    {
        "abandoned", "bus_guideway", "busway", "construction", "disused", "motorway",
        "motorway_link", "motorway_junction", "no", "planned", "platform", "proposed",
        "raceway", "razed", "rest_area", "services",
    }
)
#: ``foot`` values that explicitly allow walking and override access/motorroad tags.
FOOT_ALLOWED = frozenset({"yes", "designated", "permissive", "official"})
#: Tags saying the sidewalks are mapped as their own ways (which then carry the walking).
SEPARATE_SIDEWALK_KEYS = ("sidewalk", "sidewalk:both", "sidewalk:left", "sidewalk:right")
#: Road classes of a line layer that are not walkable: OSM values (OSM-derived layers,
#: Geofabrik ``fclass``) and 高速公路 (expressway) of Chinese road-class fields.
LINE_EXCLUDED_CLASSES = EXCLUDED_HIGHWAY | {"高速公路"}
#: Columns of a line layer that may hold the road class, in order of preference.
HIGHWAY_COLUMNS = ("highway", "fclass", "type", "道路等级", "道路类型", "等级")
#: OSM file suffixes pyosmium reads, and the format libosmium should assume.
OSM_SUFFIXES = (".osm.pbf", ".osm.bz2", ".osm.gz", ".osm", ".pbf")
#: Fixed-point scale of OSM coordinates (libosmium stores 1e-7 degrees as integers):
#: rounding lon/lat to it recovers each node's stored location exactly.
OSM_COORDINATE_SCALE = 1e7
#: Line-layer vertices closer than this (in metres, per axis) are the same node.
LINE_SNAP_M = 0.001
#: Self-loops shorter than this are artefacts of coordinate rounding, not streets.
ZERO_LENGTH_M = 0.05


@dataclass
class Network:
    """A walking street network in a metric CRS.

    Attributes
    ----------
    nodes : geopandas.GeoDataFrame
        Index 0..n-1 (RangeIndex); columns ``x``, ``y`` (metres), geometry Point.
    edges : geopandas.GeoDataFrame
        Columns ``u``, ``v`` (int node positions), ``length_m`` (float, planar length of
        the geometry in the network CRS), ``highway`` (str, "" if unknown), geometry
        LineString running from node ``u`` to node ``v``; plus ``osm_id`` (OSM way id)
        for OSM input or ``source_row`` (1-based feature number) for a line layer.
    report : LayerReport
        ``layer="network"``; ``read`` = ways (OSM: ways with a ``highway`` tag) or line
        features read; ``rejected`` = one row per excluded way/feature with ``row``
        (1-based number among the ways/features read), ``osm_id`` for OSM input, and
        ``reason``.
    stats : dict
        ``nodes``, ``edges``, ``components``, ``largest_component_nodes``,
        ``largest_component_share``, ``largest_component_length_share``, ``dangles``
        (degree-1 nodes), ``total_length_km``, ``excluded_by_reason``,
        ``merged_duplicate_nodes``, ``zero_length_loops_dropped`` and, for OSM input,
        ``clipped_edges`` (edges that ran past the bounds: trimmed or dropped), ``bounds``
        (lon/lat) and ``distinct_osm_nodes``.
    """

    nodes: gpd.GeoDataFrame
    edges: gpd.GeoDataFrame
    report: LayerReport
    stats: dict

    @property
    def crs(self) -> pyproj.CRS:
        """The metric CRS of nodes and edges."""
        return self.edges.crs


# --------------------------------------------------------------------------- walking filter


def walk_exclusion(tags: Mapping[str, str], *, include_private: bool = False) -> str | None:
    """Why a way is not part of the walking network, or None if it is.

    Parameters
    ----------
    tags : mapping
        The way's OSM tags (a dict or a pyosmium ``TagList``; only ``.get`` is used).
    include_private : bool
        Keep ``access=private`` / ``service=private`` ways, e.g. the internal paths of gated
        residential compounds whose residents walk through the gates.

    Returns
    -------
    str or None
        A short stable reason (``"highway=motorway"``, ``"foot=no"``, ``"access=private"``,
        ``"service=private"``, ``"access=no"``, ``"motorroad=yes"``, ``"area=yes"``,
        ``"sidewalk mapped separately"``, ``"no highway tag"``) or None.
    """
    highway = tags.get("highway")
    if highway is None:
        return "no highway tag"
    if tags.get("area") == "yes":  # pedestrian squares etc. are polygons, not centrelines
        return "area=yes"
    if highway in EXCLUDED_HIGHWAY:
        return f"highway={highway}"
    foot = tags.get("foot")
    if foot == "no":
        return "foot=no"
    if foot in FOOT_ALLOWED:  # an explicit foot permission overrides access and motorroad
        return None
    if foot == "use_sidepath" or "separate" in [tags.get(key) for key in SEPARATE_SIDEWALK_KEYS]:
        return "sidewalk mapped separately"
    if not include_private:
        if "private" in (tags.get("access"), foot):
            return "access=private"
        if tags.get("service") == "private":
            return "service=private"
    if tags.get("access") == "no":
        return "access=no"
    if tags.get("motorroad") == "yes":  # 快速路 main carriageways: motor vehicles only
        return "motorroad=yes"
    return None


# --------------------------------------------------------------------------- OSM extracts


def read_osm(path, *, target_crs=None, clip: bool = True, include_private: bool = False) -> Network:
    """Read the walking network of an OSM extract.

    One streaming pass with pyosmium (node locations cached in C++, only ``highway`` ways
    handed to Python, each as WKB), then a vectorised build: ways are split into edges at
    every node shared by two or more ways (or repeated within one way) and at way ends.
    Node identity is the node's stored location (1e-7°): nodes shared by id share it, and
    distinct nodes at identical coordinates (duplicate nodes) are merged into one.
    Geometric crossings without a shared node (bridges, tunnels) do not connect.

    Parameters
    ----------
    path : str or Path
        ``.osm``, ``.osm.pbf`` (or ``.pbf``), ``.osm.bz2`` or ``.osm.gz``.
    target_crs : optional
        Projected CRS of the result (anything pyproj accepts). Default: the UTM zone of the
        centre of the file's bounds (of the ways' extent if the file has no bounds).
    clip : bool
        Trim edges to the file's ``<bounds>`` (extracts contain whole ways that run past
        them); edges are cut where they leave the box, parts outside are dropped, and the
        cut points become nodes. Ignored when the file has no bounds.
    include_private : bool
        Keep ``access=private`` / ``service=private`` ways (see :func:`walk_exclusion`).

    Returns
    -------
    Network
        ``report.read`` counts the ways with a ``highway`` tag; non-walkable ways, ways
        entirely outside the bounds and ways without two located nodes are rejected with
        their OSM id and reason. Edges carry ``osm_id`` (the way id).

    Raises
    ------
    InputError
        Unknown extension, missing, empty or unreadable file, no walkable highway ways
        (inside the bounds), or a geographic ``target_crs``.
    """
    path = Path(path)
    if not path.name.lower().endswith(OSM_SUFFIXES):
        raise InputError(
            f"{path}: unknown OSM file type; use an .osm, .osm.pbf or .osm.bz2 extract "
            "(or network: {lines: file} for a road-centreline layer)"
        )
    if not path.is_file():
        raise InputError(f"{path}: file not found; check the network path in the config")
    if path.stat().st_size == 0:
        raise InputError(f"{path}: the file is empty; export the extract again")
    try:
        scan = _scan_osm(path, include_private)
    except RuntimeError as exc:  # libosmium: XML/PBF parse errors, decompression errors
        raise InputError(
            f"{path}: not a readable OSM file ({_first_line(exc)}); export the extract again"
        ) from None

    report = LayerReport(layer="network", source=str(path), read=len(scan.ways))
    if not len(scan.part_way):
        reasons = scan.ways["reason"].value_counts().to_dict() if len(scan.ways) else {}
        raise InputError(
            f"{path}: no walkable highway ways ({len(scan.ways)} highway ways read, "
            f"excluded: {reasons or 'none'}); is this an OSM extract of the study area?"
        )
    box = scan.bounds if clip else None
    extent = scan.bounds if scan.bounds is not None else (*scan.coords.min(axis=0), *scan.coords.max(axis=0))
    crs = _metric_crs(target_crs, extent, path)
    network, edge_part, split_part, used_locations = _network_from_lonlat(scan.coords, scan.part, box, crs)
    if not len(edge_part):
        raise InputError(
            f"{path}: no walkable way inside the file's bounds {[round(b, 5) for b in box or ()]}; "
            "export the extract again covering the study area"
        )
    way = scan.part_way[edge_part]
    _label_edges(network, scan.ways["highway"].to_numpy()[way], "osm_id", scan.ways["osm_id"].to_numpy()[way])

    # Every highway way read is kept (it has an edge) or rejected with a reason.
    ways = scan.ways.copy()
    walkable = ways["reason"].isna().to_numpy()
    located, split, has_edge = (np.zeros(len(ways), bool) for _ in range(3))
    located[scan.part_way] = True
    split[scan.part_way[split_part]] = True
    has_edge[way] = True
    ways.loc[walkable & ~located, "reason"] = "fewer than 2 located nodes"
    ways.loc[walkable & located & ~has_edge, "reason"] = "zero length"  # all its nodes at one location
    ways.loc[walkable & split & ~has_edge & (box is not None), "reason"] = "outside bounds"
    for reason, rows in ways[ways["reason"].notna()].groupby("reason", sort=True):
        report.reject(rows[["row", "osm_id", "highway"]], str(reason))
    report.rejected = report.rejected.sort_values("row", ignore_index=True)
    network.report = report

    # Distinct OSM node ids of the ways used vs distinct locations they take: the
    # difference is the duplicate nodes (same coordinates, different ids) merged.
    network.stats.update(
        excluded_by_reason=report.rejected_by_reason(),
        merged_duplicate_nodes=int(max(scan.distinct_node_ids - used_locations, 0)),
        distinct_osm_nodes=int(scan.distinct_node_ids),
        bounds=None if scan.bounds is None else [float(b) for b in scan.bounds],
    )
    return network


@dataclass
class _OsmScan:
    ways: pd.DataFrame  # one row per highway way: row, osm_id, highway, reason (None if walkable)
    coords: np.ndarray  # (N, 2) lon/lat of the walkable ways' nodes, polyline after polyline
    part: np.ndarray  # (N,) polyline number of each coordinate (non-decreasing)
    part_way: np.ndarray  # row position in `ways` of each polyline (a way may give several)
    bounds: tuple[float, float, float, float] | None  # the file's bounds, lon/lat
    distinct_node_ids: int  # distinct node ids referenced by the walkable ways


def _scan_osm(path: Path, include_private: bool) -> _OsmScan:
    """The single pass over the file: tags and WKB of every ``highway`` way.

    Per way, Python only reads a few tags and asks libosmium for the way's WKB; node ids
    are collected in C++ (``IdTracker``) afterwards, coordinates decoded in bulk.
    """
    processor = (
        osmium.FileProcessor(str(path), osmium.osm.NODE | osmium.osm.WAY)
        .with_locations()
        # nodes only feed the location cache; Python sees highway ways only
        .with_filter(osmium.filter.EntityFilter(osmium.osm.WAY))
        .with_filter(osmium.filter.KeyFilter("highway"))
    )
    box = processor.header.box()
    bounds = None
    if box.valid():
        bounds = (box.bottom_left.lon, box.bottom_left.lat, box.top_right.lon, box.top_right.lat)
    wkb_factory = osmium.geom.WKBFactory()
    every_node = osmium.geom.use_nodes.ALL  # keep repeats: the build drops them per way
    tracker = osmium.IdTracker()
    osm_ids, highways, reasons = [], [], []
    wkbs, wkb_way, partial, partial_way = [], [], [], []
    for way in processor:
        position = len(osm_ids)
        reason = walk_exclusion(way.tags, include_private=include_private)
        osm_ids.append(way.id)
        highways.append(way.tags.get("highway"))
        reasons.append(reason)
        if reason is not None:
            continue
        try:
            wkbs.append(wkb_factory.create_linestring(way.nodes, every_node))
        except osmium.InvalidLocationError:
            # Some nodes are missing from the extract: keep the runs of located nodes,
            # never bridging a gap with a straight line.
            runs = _located_runs(way.nodes, tracker)
            partial.extend(runs)
            partial_way.extend([position] * len(runs))
        except RuntimeError:  # a way with fewer than two nodes
            continue
        else:
            wkb_way.append(position)
            tracker.add_way(way.id)
    # A second, C++-only read adds the node ids of the tracked ways (for the duplicate count).
    tracker.complete_backward_references(str(path), relation_depth=0)
    ways = pd.DataFrame(
        {
            "row": np.arange(1, len(osm_ids) + 1),
            "osm_id": np.asarray(osm_ids, dtype=np.int64),
            "highway": pd.Series(highways, dtype=object).fillna("").astype(str),
            "reason": pd.Series(reasons, dtype=object),
        }
    )
    coords, part = _wkb_coordinates(wkbs)
    if partial:
        extra, extra_part = shapely.get_coordinates(np.asarray(partial, dtype=object), return_index=True)
        coords = np.concatenate([coords, extra])
        part = np.concatenate([part, extra_part + len(wkbs)])
    part_way = np.asarray(wkb_way + partial_way, dtype=np.int64)
    return _OsmScan(ways, coords, part, part_way, bounds, len(tracker.node_ids()))


def _wkb_coordinates(wkbs: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Coordinates and line number of hex-WKB 2-D LineStrings, decoded in bulk with numpy.

    A WKB LineString is a byte-order byte, a uint32 type (2), a uint32 point count and the
    points as doubles: dropping the 9 header bytes of each record from the concatenated
    bytes leaves the coordinate array. About ten times faster than ``shapely.from_wkb``
    followed by ``get_coordinates`` on the ways of a large extract.
    """
    if not wkbs:
        return np.empty((0, 2)), np.empty(0, np.int64)
    size = np.fromiter(map(len, wkbs), dtype=np.int64, count=len(wkbs)) // 2
    raw = np.frombuffer(bytes.fromhex("".join(wkbs)), dtype=np.uint8)
    start = np.cumsum(size) - size
    header = (start[:, None] + np.arange(9)).ravel()
    little_endian_linestring = np.array([1, 2, 0, 0, 0], np.uint8)
    if not (raw[start[:, None] + np.arange(5)] == little_endian_linestring).all():
        # not the layout libosmium writes on every platform we know: let GEOS parse it
        return shapely.get_coordinates(shapely.from_wkb(wkbs), return_index=True)
    body = np.ones(len(raw), bool)
    body[header] = False
    coords = raw[body].view("<f8").reshape(-1, 2)
    return coords, np.repeat(np.arange(len(wkbs)), (size - 9) // 16)


def _located_runs(way_nodes, node_ids: osmium.IdTracker) -> list[shapely.LineString]:
    """LineStrings of the runs of two or more consecutive located nodes of a way.

    The located nodes are added to ``node_ids``. A Python loop over nodes, but only for
    the rare ways cut by the extract without their nodes.
    """
    runs, run = [], []
    for ref in way_nodes:
        if ref.location.valid():
            run.append((ref.lon, ref.lat))
            node_ids.add_node(ref.ref)
            continue
        if len(run) >= 2:
            runs.append(shapely.LineString(run))
        run = []
    if len(run) >= 2:
        runs.append(shapely.LineString(run))
    return runs


def _network_from_lonlat(
    coords: np.ndarray, part: np.ndarray, box, crs: pyproj.CRS
) -> tuple[Network, np.ndarray, np.ndarray, int]:
    """Split lon/lat polylines at shared OSM locations, clip to ``box``, project.

    ``coords`` (N, 2) lon/lat and ``part`` (N,) polyline number as from
    ``shapely.get_coordinates(..., return_index=True)``. Returns the network (report still
    empty), the polyline number of each of its edges, the polyline number of each edge
    before clipping (to tell "outside the bounds" from "zero length"), and the number of
    distinct locations among the input coordinates.
    """
    fixed = _osm_grid(coords)
    vertex = _vertex_ids(fixed[:, 0], fixed[:, 1])
    take, edge_of_vertex, edge_part = _split_at_shared_vertices(part, vertex)
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
        lines = shapely.linestrings(
            coords[~inside_vertex], indices=outside_rank[edge_of_vertex[~inside_vertex]]
        )
        parts, part_line = shapely.get_parts(shapely.clip_by_rect(lines, *box), return_index=True)
        is_line = (shapely.get_type_id(parts) == 1) & (shapely.get_num_coordinates(parts) >= 2)
        clipped, clipped_part = shapely.get_coordinates(parts[is_line], return_index=True)
        piece_coords.append(clipped)
        piece.append(clipped_part + (n_edges - outside.sum()))
        piece_edge.append(np.flatnonzero(outside)[part_line[is_line]])
    coords, piece, piece_edge = (np.concatenate(a) for a in (piece_coords, piece, piece_edge))

    first, last = _run_ends(piece)
    # Cut points at the boundary get a location on the same 1e-7° grid as OSM nodes.
    ends = _osm_grid(coords[np.concatenate([first, last])])
    transformer = pyproj.Transformer.from_crs("EPSG:4326", crs, always_xy=True)
    x, y = transformer.transform(coords[:, 0], coords[:, 1])
    network, keep = _assemble(np.column_stack([x, y]), piece, ends, crs)
    network.stats["clipped_edges"] = int(outside.sum())
    return network, edge_part[piece_edge[keep]], edge_part, int(vertex.max() + 1) if len(vertex) else 0


# --------------------------------------------------------------------------- line layers


def read_lines(path, *, target_crs=None, layer=None, exclude_classes=LINE_EXCLUDED_CLASSES) -> Network:
    """Read any road-centreline line layer (SHP, GPKG, GeoJSON ...) as a walking network.

    Lines are noded **at shared vertices only**: after rounding coordinates to 1 mm in the
    network CRS, every vertex that two lines share (or one line repeats) becomes a node and
    the lines are split there; line ends are nodes too. Lines that cross without a shared
    vertex — bridges, flyovers, tunnels, or a layer digitised without noding — do **not**
    intersect. MultiLineStrings are exploded into their parts. The only walking filter a
    line layer allows is by road class: lines whose class is in ``exclude_classes``
    (motorways and the other non-walkable OSM ``highway`` values, 高速公路) are rejected.

    Parameters
    ----------
    path : str or Path
        Any vector file pyogrio reads (a shapefile without ``.cpg`` has its DBF text
        encoding detected: UTF-8 or GB18030).
    target_crs : optional
        Projected CRS of the result. Default: the layer's own CRS if projected, else the
        UTM zone of the layer's centre.
    layer : str or int, optional
        Layer name or index in a multi-layer file (default: the first layer).
    exclude_classes : collection of str
        Road classes that are not walkable; ``()`` keeps every line.

    Returns
    -------
    Network
        ``highway`` comes from the first of the columns ``highway``, ``fclass``, ``type``,
        ``道路等级``, ``道路类型``, ``等级`` present (else ""); edges carry ``source_row``
        (1-based feature number). Null, empty, non-line and invalid geometries and
        excluded road classes are rejected with their feature number and reason.

    Raises
    ------
    InputError
        Missing or unreadable file, a layer without CRS, no usable line features, or a
        geographic ``target_crs``.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: file not found; check the network path in the config")
    encoding = shapefile_encoding(path)
    try:
        frame = gpd.read_file(path, layer=layer, encoding=encoding)
    except (pyogrio.errors.DataSourceError, pyogrio.errors.DataLayerError, pyogrio.errors.CRSError) as exc:
        raise InputError(
            f"{path}: cannot read as a line layer ({_first_line(exc)}); use a SHP or GPKG"
        ) from None
    if frame.crs is None:
        raise InputError(
            f"{path}: the line layer has no CRS (missing .prj?); "
            "define it in GIS or give the file with its .prj"
        )
    report = LayerReport(layer="network", source=str(path), read=len(frame))
    if encoding:
        report.notes.append(f"no .cpg: attribute text detected as {encoding}")
    rows = np.arange(1, len(frame) + 1)
    geoms = np.asarray(frame.geometry.array, dtype=object)
    lower = {str(c).lower(): c for c in frame.columns if c != frame.geometry.name}
    class_column = next((lower[name] for name in HIGHWAY_COLUMNS if name in lower), None)
    road_class = np.full(len(frame), "", dtype=object)
    if class_column is not None:
        values = frame[class_column].astype(object)
        road_class = values.where(values.notna(), "").astype(str).str.strip().to_numpy()

    # Reject row by row: null/empty, not a line, invalid (a line needs two distinct finite points).
    empty = shapely.is_missing(geoms) | shapely.is_empty(geoms)
    lineal = np.isin(shapely.get_type_id(geoms), (1, 2, 5))  # LineString, LinearRing, MultiLineString
    not_line = ~empty & ~lineal
    invalid = ~empty & ~not_line & ~shapely.is_valid(geoms)
    for mask, reason in (
        (empty, "empty geometry"),
        (not_line, "not a line geometry"),
        (invalid, "invalid line (fewer than 2 distinct points or non-finite coordinates)"),
    ):
        report.reject(pd.DataFrame({"row": rows[mask]}), reason)
    good = ~(empty | not_line | invalid)
    excluded = good & np.isin(road_class, list(exclude_classes))
    for value in np.unique(road_class[excluded]):
        rows_of_class = rows[excluded & (road_class == value)]
        report.reject(pd.DataFrame({"row": rows_of_class}), f"{class_column}={value}")
    good &= ~excluded
    if not good.any():
        reasons = report.rejected_by_reason() or "the layer is empty"
        raise InputError(f"{path}: no usable line features ({reasons}); give a road-centreline line layer")

    source = gpd.GeoSeries(geoms[good], crs=frame.crs)
    if target_crs is None and frame.crs.is_projected:
        crs = pyproj.CRS(frame.crs)
    else:
        crs = _metric_crs(target_crs, source.to_crs(4326).total_bounds, path)
    metric = np.asarray(source.to_crs(crs).array, dtype=object)
    # A transformation that fails (outside the CRS's domain) gives non-finite coordinates.
    projected, feature_of = shapely.get_coordinates(metric, return_index=True)
    non_finite = ~np.isfinite(projected).all(axis=1)
    unprojectable = np.bincount(feature_of, weights=non_finite, minlength=len(metric)) > 0
    report.reject(pd.DataFrame({"row": rows[good][unprojectable]}), f"cannot be projected to {crs.name}")
    good[np.flatnonzero(good)[unprojectable]] = False
    metric = metric[~unprojectable]
    if not len(metric):
        raise InputError(f"{path}: no line can be projected to {crs.name}; check the layer's CRS")

    parts, part_feature = shapely.get_parts(metric, return_index=True)
    coords, part = shapely.get_coordinates(parts, return_index=True)
    snapped = np.rint(coords / LINE_SNAP_M).astype(np.int64)
    vertex = _vertex_ids(snapped[:, 0], snapped[:, 1])
    take, edge_of_vertex, edge_part = _split_at_shared_vertices(part, vertex)
    first, last = _run_ends(edge_of_vertex)
    network, keep = _assemble(snapped[take] * LINE_SNAP_M, edge_of_vertex,
                              snapped[take][np.concatenate([first, last])], crs)

    feature = np.flatnonzero(good)[part_feature[edge_part[keep]]]
    _label_edges(network, road_class[feature], "source_row", rows[feature])

    used = np.zeros(len(frame), bool)
    used[feature] = True
    # Valid lines can still vanish: every part shorter than the 1 mm noding grid.
    report.reject(pd.DataFrame({"row": rows[good & ~used]}), "zero length at 1 mm precision")
    report.rejected = report.rejected.sort_values("row", ignore_index=True)
    report.notes.append(
        f"noded at shared vertices only (coordinates rounded to {LINE_SNAP_M * 1000:g} mm): "
        "lines crossing without a shared vertex (bridges, tunnels) are not connected"
    )
    if class_column is not None:
        report.notes.append(f"road class from column {class_column!r}")
    network.report = report
    distinct = int(vertex.max() + 1) if len(vertex) else 0
    network.stats.update(
        excluded_by_reason=report.rejected_by_reason(),
        # vertices that coincide within 1 mm without being bit-identical
        merged_duplicate_nodes=int(len(np.unique(coords, axis=0)) - distinct),
    )
    return network


# --------------------------------------------------------------------------- osmnx


def download_place(query: str, *, target_crs=None) -> Network:
    """Download the walking network of an OSM place with osmnx (needs internet).

    Parameters
    ----------
    query : str
        A place name Nominatim can geocode to a polygon, e.g. "新吴区, 无锡市, 中国".
    target_crs : optional
        Projected CRS of the result; default the UTM zone of the network's centre.

    Returns
    -------
    Network
        See :func:`network_from_graph`. osmnx's own ``walk`` filter selects the ways.

    Raises
    ------
    InputError
        The download or geocoding failed (offline, unknown place, no network there).
    """
    import osmnx as ox  # heavy import, only for the online path

    return _download(lambda: ox.graph_from_place(query, network_type="walk", retain_all=True),
                     key="network.place", what=repr(query), source=f"place:{query}", target_crs=target_crs)


def download_bbox(bbox: tuple[float, float, float, float], *, target_crs=None) -> Network:
    """Download the walking network inside a WGS-84 bounding box with osmnx (needs internet).

    Parameters
    ----------
    bbox : tuple of float
        ``(west, south, east, north)`` in degrees, WGS-84.
    target_crs : optional
        Projected CRS of the result; default the UTM zone of the network's centre.

    Returns
    -------
    Network

    Raises
    ------
    InputError
        A malformed box, or the download failed (offline, no network there).
    """
    west, south, east, north = (float(v) for v in bbox)
    if not (-180 <= west < east <= 180 and -90 <= south < north <= 90):
        raise InputError(f"network.bbox: {list(bbox)} is not [west, south, east, north] in degrees")
    import osmnx as ox  # heavy import, only for the online path

    return _download(lambda: ox.graph_from_bbox((west, south, east, north), network_type="walk", retain_all=True),
                     key="network.bbox", what=str([west, south, east, north]),
                     source=f"bbox:{west},{south},{east},{north}", target_crs=target_crs)


def _download(fetch, *, key: str, what: str, source: str, target_crs) -> Network:
    """Run an osmnx download; any failure becomes one line telling the user to use an extract."""
    try:
        graph = fetch()
    except (OSError, ValueError, TypeError) as exc:
        # requests' connection errors are OSErrors; osmnx raises ValueError/TypeError
        # subclasses for unknown places, non-polygon geocodes and empty responses.
        raise InputError(
            f"{key}: could not download {what} from OpenStreetMap "
            f"({type(exc).__name__}: {_first_line(exc)[:120]}; offline?): "
            "use network: {osm: file} with an extract instead"
        ) from None
    return network_from_graph(graph, target_crs=target_crs, source=source)


def network_from_graph(graph, *, target_crs=None, source: str = "osmnx graph") -> Network:
    """Convert an unprojected osmnx graph (e.g. from ``ox.graph_from_place``) to a Network.

    Edges present in both directions (osmnx adds the reverse of every two-way street, and
    of every street in a walking graph) are kept once. The graph's nodes become the
    network's nodes (pass a simplified graph: an unsimplified one gives a node at every
    vertex).

    Parameters
    ----------
    graph : networkx.MultiDiGraph
        osmnx graph in EPSG:4326.
    target_crs : optional
        Projected CRS of the result; default the UTM zone of the graph's centre.
    source : str
        Recorded as ``report.source``.

    Returns
    -------
    Network
        Edges carry ``osm_id`` (the first OSM way id of the edge); ``report.read`` counts
        the distinct undirected edges of the graph.
    """
    import osmnx as ox

    if graph.number_of_edges() == 0:
        raise InputError(f"{source}: the graph has no edges; choose a larger area")
    nodes, edges = ox.graph_to_gdfs(graph, fill_edge_geometry=True)
    if edges.crs is None or not pyproj.CRS(edges.crs).is_geographic:
        raise InputError(f"{source}: give the graph unprojected (EPSG:4326), before ox.project_graph")
    # The two directions of one street have the same normalised geometry.
    key = shapely.to_wkb(shapely.normalize(np.asarray(edges.geometry.array, dtype=object)))
    edges = edges[~pd.Series(key).duplicated().to_numpy()]
    coords, part = shapely.get_coordinates(np.asarray(edges.geometry.array, dtype=object), return_index=True)
    crs = _metric_crs(target_crs, (*coords.min(axis=0), *coords.max(axis=0)), source)
    network, edge_part, _, _ = _network_from_lonlat(coords, part, None, crs)

    def first(value: Any) -> Any:  # osmnx merges tags of simplified edges into lists
        return value[0] if isinstance(value, list) else value

    highway = edges["highway"].map(first).fillna("").astype(str).to_numpy() if "highway" in edges else \
        np.full(len(edges), "")
    _label_edges(network, highway[edge_part], "osm_id", edges["osmid"].map(first).astype(np.int64).to_numpy()[edge_part])
    network.report = LayerReport(layer="network", source=source, read=len(edges))
    network.report.notes.append("ways selected by osmnx's walk filter")
    # graph nodes at one location (duplicate OSM nodes) became one network node
    used = nodes.loc[np.unique(np.concatenate([edges.index.get_level_values(i) for i in (0, 1)])), ["x", "y"]]
    fixed = _osm_grid(used.to_numpy())
    network.stats.update(
        excluded_by_reason={},
        merged_duplicate_nodes=int(len(used) - (_vertex_ids(fixed[:, 0], fixed[:, 1]).max() + 1)),
    )
    return network


# --------------------------------------------------------------------------- shared build


def _vertex_ids(x: np.ndarray, y: np.ndarray) -> np.ndarray:
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


def _osm_grid(lonlat: np.ndarray) -> np.ndarray:
    """(N, 2) lon/lat as integers on libosmium's 1e-7° grid: equal keys, equal OSM location."""
    return np.rint(lonlat * OSM_COORDINATE_SCALE).astype(np.int64)


def _run_ends(group: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Positions of the first and last element of each run of equal values in ``group``."""
    change = np.flatnonzero(group[1:] != group[:-1])
    first = np.concatenate([[0], change + 1]) if len(group) else np.empty(0, np.int64)
    last = np.concatenate([change, [len(group) - 1]]) if len(group) else np.empty(0, np.int64)
    return first, last


def _split_at_shared_vertices(
    part: np.ndarray, vertex: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Split polylines into edges at shared vertices and at their ends.

    Parameters
    ----------
    part : numpy.ndarray
        Non-decreasing polyline number of each vertex (as from ``get_coordinates``).
    vertex : numpy.ndarray
        Vertex id of each vertex (equal ids = the same location).

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
    cut = np.flatnonzero((start | end | (uses[vertex] >= 2)) & ~single)
    # Consecutive cuts within one polyline bound an edge.
    begin, finish = cut[:-1], cut[1:]
    same = part[begin] == part[finish]
    begin, finish = begin[same], finish[same]
    count = finish - begin + 1
    offset = np.cumsum(count) - count
    edge_of_vertex = np.repeat(np.arange(len(begin)), count)
    take = np.repeat(begin - offset, count) + np.arange(int(count.sum()))
    return position[take], edge_of_vertex, part[begin]


def _assemble(
    xy: np.ndarray, edge_of_vertex: np.ndarray, end_keys: np.ndarray, crs: pyproj.CRS
) -> tuple[Network, np.ndarray]:
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

    Returns
    -------
    network : Network
        With an empty report and ``highway`` "" (the caller maps attributes).
    kept : numpy.ndarray
        The input edge numbers kept (zero-length self-loops dropped), in network order.
    """
    m = len(end_keys) // 2
    node_key = _vertex_ids(end_keys[:, 0], end_keys[:, 1])
    lines = shapely.linestrings(xy, indices=edge_of_vertex)
    length = shapely.length(lines)
    loop = node_key[:m] == node_key[m:]
    keep = ~(loop & (length < ZERO_LENGTH_M))
    kept_pieces = np.flatnonzero(keep)

    # Renumber the nodes of the kept edges 0..n-1; a node sits at its first edge end.
    first, last = _run_ends(edge_of_vertex)
    ends_xy = xy[np.concatenate([first[keep], last[keep]])]
    key = node_key[np.concatenate([kept_pieces, kept_pieces + m])]
    used = np.zeros(int(node_key.max()) + 1 if m else 0, bool)
    used[key] = True
    node = (np.cumsum(used) - 1)[key]
    n, k = int(used.sum()), len(kept_pieces)
    first_seen = np.empty(n, np.int64)
    first_seen[node[::-1]] = np.arange(len(node))[::-1]  # the last write of a repeated index wins
    node_xy = ends_xy[first_seen]
    u, v = node[:k], node[k:]

    nodes = gpd.GeoDataFrame(
        {"x": node_xy[:, 0], "y": node_xy[:, 1]},
        geometry=shapely.points(node_xy), crs=crs,
    )
    edges = gpd.GeoDataFrame(
        {"u": u.astype(np.int64), "v": v.astype(np.int64), "length_m": length[keep],
         "highway": np.full(k, "", dtype=object)},
        geometry=lines[keep], crs=crs,
    )
    edges["highway"] = edges["highway"].astype(str)

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
    network = Network(nodes=nodes, edges=edges, report=LayerReport(layer="network", source=""), stats=stats)
    return network, kept_pieces


def _label_edges(network: Network, highway: np.ndarray, id_column: str, ids: np.ndarray) -> None:
    """Give the assembled edges their road class and source id (``osm_id`` or
    ``source_row``), the id right after ``highway``."""
    network.edges["highway"] = highway
    network.edges.insert(network.edges.columns.get_loc("highway") + 1, id_column, ids)


def _metric_crs(target_crs, extent, source) -> pyproj.CRS:
    """``target_crs`` as a projected pyproj CRS, or the UTM zone of the centre of ``extent``
    (west, south, east, north in degrees)."""
    if target_crs is None:
        west, south, east, north = extent
        return utm_crs((west + east) / 2, (south + north) / 2)
    try:
        crs = pyproj.CRS.from_user_input(target_crs)
    except pyproj.exceptions.CRSError:
        raise InputError(
            f"{source}: unknown target CRS {target_crs!r}; give an EPSG code such as EPSG:4549"
        ) from None
    if not crs.is_projected:
        raise InputError(f"{source}: target CRS {target_crs!r} is not projected; network lengths need metres")
    return crs


def _first_line(exc: BaseException) -> str:
    """The first line of an exception message (InputError messages are one line)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
