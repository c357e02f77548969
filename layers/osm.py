"""OSM extracts (``.osm``, ``.osm.pbf``, ``.osm.bz2``, ``.osm.gz``) read with pyosmium.

One streaming pass: node locations are cached in C++, Python sees only ``highway`` ways
and ``barrier`` nodes. The walk rules are those of :mod:`carecircle.layers.network`; the
build is :func:`carecircle.layers.noding.node_lonlat`.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import osmium
import pandas as pd
import pyproj
import shapely

from carecircle.errors import InputError
from carecircle.layers.accounting import LayerReport
from carecircle.layers.network import (Cycleways, Network, bounds_polygon, first_line, metric_crs, node_closure,
                                      walk_exclusion)
from carecircle.layers.noding import isin_keys, node_lonlat, osm_grid, run_ends, vertex_ids

#: OSM file suffixes pyosmium reads.
OSM_SUFFIXES = (".osm.pbf", ".osm.bz2", ".osm.gz", ".osm", ".pbf")
#: How pedestrian areas (``area=yes`` squares) are walked: along the outline and straight
#: across between the points where other ways meet it, along the outline only, or not at all.
AREA_CHOICES = ("across", "outline", "none")
#: Metres per degree of latitude (for growing the bounds by a margin in metres).
METRES_PER_DEGREE = 111_320.0


def read_osm(path, *, target_crs=None, clip_margin_m: float | None = None, include_private: bool = False,
             step_free: bool = False, cycleways: Cycleways = True, pedestrian_areas: str = "across") -> Network:
    """Read the walking network of an OSM extract.

    Ways are split into edges at every node shared by two or more ways (or repeated within
    one way), at way ends and at barrier nodes. Node identity is the node's stored
    location (1e-7°): nodes shared by id share it, and distinct nodes at identical
    coordinates (duplicate nodes) are merged into one. Geometric crossings without a
    shared node (bridges, tunnels) do not connect. A closed barrier (a locked gate, see
    :func:`~carecircle.layers.network.node_closure`) ends the streets that lead up to it:
    each gets a node of its own there.

    Extracts hold whole ways, with their nodes beyond the ``<bounds>``: those nodes are kept
    (a street that leaves the box and comes back still connects), and a way is cut only
    where the file lacks its nodes, never bridged by a straight line.

    Parameters
    ----------
    path : str or Path
        ``.osm``, ``.osm.pbf`` (or ``.pbf``), ``.osm.bz2`` or ``.osm.gz``.
    target_crs : optional
        Projected CRS of the result (anything pyproj accepts). Default: the UTM zone of the
        centre of the file's bounds (of the ways' extent if the file has no bounds).
    clip_margin_m : float, optional
        Clip the edges to the file's bounds grown by this many metres (0: at the bounds);
        edges are cut where they leave the box and the cut points become nodes. Default:
        no clipping. Ignored when the file has no bounds.
    include_private : bool
        Keep ``access=private`` / ``service=private`` ways and open private or locked gates.
    step_free : bool
        No steps without a ramp, no ``wheelchair=no`` ways, stiles and raised kerbs closed.
    cycleways : {True, "foot_yes", False}
        Which cycleways are walked.
    pedestrian_areas : {"across", "outline", "none"}
        How ``area=yes`` ways are walked (see :data:`AREA_CHOICES`).

    Returns
    -------
    Network
        ``report.read`` counts the ways with a ``highway`` tag; non-walkable ways, ways
        entirely outside the clip box and ways without two located nodes are rejected with
        their OSM id and reason. Edges carry ``osm_id`` (the way id).

    Raises
    ------
    InputError
        Unknown extension, missing, empty or unreadable file, no walkable highway ways
        (inside the clip box), or a geographic ``target_crs``.
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
    if pedestrian_areas not in AREA_CHOICES:
        raise InputError(f"network.pedestrian_areas: {pedestrian_areas!r} is not one of {list(AREA_CHOICES)}")
    rules = {"include_private": include_private, "step_free": step_free, "cycleways": cycleways,
             "pedestrian_areas": pedestrian_areas}
    try:
        scan = _scan_osm(path, rules)
    except RuntimeError as exc:  # libosmium: XML/PBF parse errors, decompression errors
        raise InputError(
            f"{path}: not a readable OSM file ({first_line(exc)}); export the extract again"
        ) from None

    report = LayerReport(layer="network", source=str(path), read=len(scan.ways))
    if not len(scan.part_way):
        reasons = scan.ways["reason"].value_counts().to_dict() if len(scan.ways) else {}
        raise InputError(
            f"{path}: no walkable highway ways ({len(scan.ways)} highway ways read, "
            f"excluded: {reasons or 'none'}); is this an OSM extract of the study area?"
        )
    extent = scan.bounds if scan.bounds is not None else (*scan.coords.min(axis=0), *scan.coords.max(axis=0))
    crs = metric_crs(target_crs, extent, path)
    box = _grown(scan.bounds, clip_margin_m) if clip_margin_m is not None and scan.bounds is not None else None

    coords, part, part_way = scan.coords, scan.part, scan.part_way
    n_crossings = 0
    if pedestrian_areas == "across":
        extra, extra_way = _area_crossings(coords, part, part_way, scan.ways["area"].to_numpy())
        n_crossings = len(extra_way)
        if n_crossings:
            coords = np.concatenate([coords, extra.reshape(-1, 2)])
            part = np.concatenate([part, part[-1] + 1 + np.repeat(np.arange(n_crossings), 2)])
            part_way = np.concatenate([part_way, extra_way])
    closed = scan.barriers[scan.barriers["reason"].notna()]
    build = node_lonlat(coords, part, crs, box=box, closed=osm_grid(closed[["lon", "lat"]].to_numpy()))
    if not len(build.edge_part):
        raise InputError(
            f"{path}: no walkable way inside the file's bounds {[round(b, 5) for b in box or ()]}; "
            "export the extract again covering the study area"
        )
    way = part_way[build.edge_part]

    # Every highway way read is kept (it has an edge) or rejected with a reason.
    ways = scan.ways.copy()
    walkable = ways["reason"].isna().to_numpy()
    located, split, has_edge = (np.zeros(len(ways), bool) for _ in range(3))
    located[part_way] = True
    split[part_way[build.split_part]] = True
    has_edge[way] = True
    ways.loc[walkable & ~located, "reason"] = "fewer than 2 located nodes"
    ways.loc[walkable & located & ~has_edge, "reason"] = "zero length"  # all its nodes at one location
    ways.loc[walkable & split & ~has_edge & (box is not None), "reason"] = "outside bounds"
    for reason, rows in ways[ways["reason"].notna()].groupby("reason", sort=True):
        report.reject(rows[["row", "osm_id", "highway"]], str(reason))
    report.rejected = report.rejected.sort_values("row", ignore_index=True)

    used = _used_barriers(scan.barriers, coords)
    beyond, beyond_m = _beyond_bounds(scan.coords, scan.part_way[scan.part], has_edge, scan.bounds, box, crs)
    area_ways = int((ways["area"] & has_edge).sum())
    report.notes += _notes(scan, box, beyond, beyond_m, used, area_ways, n_crossings, rules)
    # Distinct OSM node ids of the ways used vs distinct locations they take: the
    # difference is the duplicate nodes (same coordinates, different ids) merged.
    stats = {
        **build.assembly.stats,
        "excluded_by_reason": report.rejected_by_reason(),
        "merged_duplicate_nodes": int(max(scan.distinct_node_ids - build.locations, 0)),
        "distinct_osm_nodes": int(scan.distinct_node_ids),
        "rules": rules,
        "bounds": None if scan.bounds is None else [float(b) for b in scan.bounds],
        "clip_margin_m": clip_margin_m,
        "clipped_edges": build.clipped_edges,
        "nodes_beyond_bounds": beyond,
        "ways_cut_at_missing_nodes": scan.cut_ways,
        "barriers_closed": used.loc[used["reason"].notna(), "reason"].value_counts().to_dict(),
        "barriers_open": int(used["reason"].isna().sum()),
        "pedestrian_areas": area_ways,
        "area_crossings": n_crossings,
    }
    return Network(
        nodes=build.assembly.nodes_frame(crs),
        edges=build.assembly.edges_frame(crs, ways["highway"].to_numpy()[way], "osm_id",
                                         ways["osm_id"].to_numpy()[way]),
        report=report, stats=stats,
    )


@dataclass
class _OsmScan:
    ways: pd.DataFrame  # one row per highway way: row, osm_id, highway, area, reason (None if walkable)
    coords: np.ndarray  # (N, 2) lon/lat of the walkable ways' nodes, polyline after polyline
    part: np.ndarray  # (N,) polyline number of each coordinate (non-decreasing)
    part_way: np.ndarray  # row position in `ways` of each polyline (a way may give several)
    bounds: tuple[float, float, float, float] | None  # the file's bounds, lon/lat
    distinct_node_ids: int  # distinct node ids referenced by the walkable ways
    barriers: pd.DataFrame  # barrier nodes: osm_id, lon, lat, barrier, reason (None if open)
    cut_ways: int  # walkable ways cut where the file lacks their nodes


def _scan_osm(path: Path, rules: dict) -> _OsmScan:
    """The single pass over the file: tags and WKB of every ``highway`` way, every barrier node.

    Per way, Python only reads a few tags and asks libosmium for the way's WKB; node ids
    are collected in C++ (``IdTracker``) afterwards, coordinates decoded in bulk.
    """
    processor = (
        osmium.FileProcessor(str(path), osmium.osm.NODE | osmium.osm.WAY)
        .with_locations()
        # every node feeds the location cache; Python sees barrier nodes and highway ways only
        .with_filter(osmium.filter.KeyFilter("barrier").enable_for(osmium.osm.NODE))
        .with_filter(osmium.filter.KeyFilter("highway").enable_for(osmium.osm.WAY))
    )
    box = processor.header.box()
    bounds = None
    if box.valid():
        bounds = (box.bottom_left.lon, box.bottom_left.lat, box.top_right.lon, box.top_right.lat)
    wkb_factory = osmium.geom.WKBFactory()
    every_node = osmium.geom.use_nodes.ALL  # keep repeats: the build drops them per way
    tracker = osmium.IdTracker()
    barrier_rows = []
    osm_ids, highways, areas, reasons = [], [], [], []
    wkbs, wkb_way, partial, partial_way = [], [], [], []
    way_rules = {"include_private": rules["include_private"], "step_free": rules["step_free"],
                 "cycleways": rules["cycleways"], "areas": rules["pedestrian_areas"] != "none"}
    cut_ways = 0
    for obj in processor:
        if obj.is_node():
            reason = node_closure(obj.tags, include_private=rules["include_private"], step_free=rules["step_free"])
            barrier_rows.append((obj.id, obj.location.lon, obj.location.lat, obj.tags.get("barrier"), reason))
            continue
        position = len(osm_ids)
        reason = walk_exclusion(obj.tags, **way_rules)
        osm_ids.append(obj.id)
        highways.append(obj.tags.get("highway"))
        areas.append(obj.tags.get("area") == "yes")
        reasons.append(reason)
        if reason is not None:
            continue
        try:
            wkbs.append(wkb_factory.create_linestring(obj.nodes, every_node))
        except osmium.InvalidLocationError:
            # Some nodes are missing from the extract: keep the runs of located nodes,
            # never bridging a gap with a straight line.
            runs = _located_runs(obj.nodes, tracker)
            partial.extend(runs)
            partial_way.extend([position] * len(runs))
            cut_ways += 1
        except RuntimeError:  # a way with fewer than two nodes
            continue
        else:
            wkb_way.append(position)
            tracker.add_way(obj.id)
    # A second, C++-only read adds the node ids of the tracked ways (for the duplicate count).
    tracker.complete_backward_references(str(path), relation_depth=0)
    ways = pd.DataFrame(
        {
            "row": np.arange(1, len(osm_ids) + 1),
            "osm_id": np.asarray(osm_ids, dtype=np.int64),
            "highway": pd.Series(highways, dtype=object).fillna("").astype(str),
            "area": np.asarray(areas, dtype=bool),
            "reason": pd.Series(reasons, dtype=object),
        }
    )
    coords, part = _wkb_coordinates(wkbs)
    if partial:
        extra, extra_part = shapely.get_coordinates(np.asarray(partial, dtype=object), return_index=True)
        coords = np.concatenate([coords, extra])
        part = np.concatenate([part, extra_part + len(wkbs)])
    part_way = np.asarray(wkb_way + partial_way, dtype=np.int64)
    barriers = pd.DataFrame(barrier_rows, columns=["osm_id", "lon", "lat", "barrier", "reason"])
    barriers = barriers.astype({"osm_id": np.int64, "lon": float, "lat": float})
    return _OsmScan(ways, coords, part, part_way, bounds, len(tracker.node_ids()), barriers, cut_ways)


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


def _area_crossings(coords: np.ndarray, part: np.ndarray, part_way: np.ndarray,
                    is_area: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Straight walks across pedestrian areas: between every two points where another way
    meets the area's outline, where the straight line stays inside the area.

    That is how people cross a square (the way osmnx-free routers such as GraphHopper's
    area routing approximate it); the outline itself is walked as an ordinary way.
    A Python loop over the areas (a handful per district), vectorised within each.

    Returns
    -------
    coords : numpy.ndarray
        (k, 2, 2) lon/lat of the k crossing segments.
    way : numpy.ndarray
        (k,) row in the ways table of the area each crossing belongs to.
    """
    if not is_area[part_way].any():
        return np.empty((0, 2, 2)), np.empty(0, np.int64)
    fixed = osm_grid(coords)
    vertex = vertex_ids(fixed[:, 0], fixed[:, 1])
    first, last = run_ends(part)
    closed_ring = (vertex[first] == vertex[last]) & (last - first >= 3)
    area_part = np.flatnonzero(is_area[part_way] & closed_ring)
    if not len(area_part):
        return np.empty((0, 2, 2)), np.empty(0, np.int64)
    # how many polylines use each location (a ring's closing vertex counts once)
    pairs = np.unique(np.column_stack([part, vertex]), axis=0)
    uses = np.bincount(pairs[:, 1], minlength=int(vertex.max()) + 1)
    segments, owner = [], []
    for p in area_part:
        ring = slice(first[p], last[p] + 1)
        polygon = shapely.make_valid(shapely.Polygon(coords[ring]))
        distinct, at = np.unique(vertex[ring], return_index=True)
        at = coords[ring][at[uses[distinct] >= 2]]  # the entrances
        if len(at) < 2:
            continue
        i, j = np.array(list(itertools.combinations(range(len(at)), 2))).T
        lines = shapely.linestrings(np.stack([at[i], at[j]], axis=1))
        inside = shapely.covers(shapely.buffer(polygon, 1e-9), lines)
        segments.append(np.stack([at[i], at[j]], axis=1)[inside])
        owner.append(np.full(int(inside.sum()), part_way[p]))
    if not segments:
        return np.empty((0, 2, 2)), np.empty(0, np.int64)
    return np.concatenate(segments), np.concatenate(owner).astype(np.int64)


def _grown(bounds: tuple[float, float, float, float], margin_m: float) -> tuple[float, float, float, float]:
    """The bounds grown by ``margin_m`` metres on every side."""
    west, south, east, north = bounds
    dlat = margin_m / METRES_PER_DEGREE
    dlon = dlat / max(np.cos(np.radians((south + north) / 2)), 1e-6)
    return west - dlon, south - dlat, east + dlon, north + dlat


def _used_barriers(barriers: pd.DataFrame, coords: np.ndarray) -> pd.DataFrame:
    """The barrier nodes that lie on a walkable way (the others close nothing)."""
    if not len(barriers):
        return barriers
    return barriers[isin_keys(osm_grid(barriers[["lon", "lat"]].to_numpy()), osm_grid(coords))]


def _beyond_bounds(coords, way_of_coord, has_edge, bounds, box, crs) -> tuple[int, float]:
    """Distinct way-node locations kept outside the file's bounds, and the farthest (metres)."""
    if bounds is None or not len(coords):
        return 0, 0.0
    outside = ((coords < bounds[:2]) | (coords > bounds[2:])).any(axis=1) & has_edge[way_of_coord]
    if box is not None:
        outside &= ((coords >= box[:2]) & (coords <= box[2:])).all(axis=1)
    if not outside.any():
        return 0, 0.0
    kept = np.unique(osm_grid(coords[outside]), axis=0) / 1e7
    to_metric = pyproj.Transformer.from_crs("EPSG:4326", crs, always_xy=True)
    points = shapely.points(np.column_stack(to_metric.transform(kept[:, 0], kept[:, 1])))
    return int(len(kept)), float(shapely.distance(points, bounds_polygon(bounds, crs)).max())


def _notes(scan: _OsmScan, box, beyond: int, beyond_m: float, barriers: pd.DataFrame, area_ways: int,
           crossings: int, rules: dict) -> list[str]:
    """What the user should know about how the extract became a walk network."""
    notes = []
    if beyond and box is None:
        notes.append(f"kept {beyond:,} way nodes beyond the file's <bounds> (up to {beyond_m:,.0f} m outside): "
                     "streets that leave the box still connect")
    elif box is not None:
        notes.append("ways clipped to the file's <bounds> grown by the clip margin")
    if scan.cut_ways:
        notes.append(f"{scan.cut_ways:,} ways lack nodes the file does not hold: cut there, not bridged")
    closed = barriers[barriers["reason"].notna()]
    if len(barriers):
        reasons = ", ".join(f"{r}: {n}" for r, n in closed["reason"].value_counts().items()) or "none"
        notes.append(f"barrier nodes on walked ways: {len(barriers) - len(closed):,} open (gates residents pass), "
                     f"{len(closed):,} closed ({reasons})")
    if area_ways:
        how = {"across": f"along the outline and straight across between entrances ({crossings:,} crossings)",
               "outline": "along the outline only"}[rules["pedestrian_areas"]]
        notes.append(f"{area_ways:,} pedestrian areas (area=yes) walked {how}")
    if rules["step_free"]:
        notes.append("step-free network: no steps without a ramp, no wheelchair=no ways, stiles and raised kerbs closed")
    return notes
