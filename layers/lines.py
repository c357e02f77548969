"""Road-centreline line layers (SHP, GPKG, GeoJSON ...) as walking networks.

A planning department's centreline layer is noded at shared vertices only (rounded to
1 mm): lines crossing without a common vertex (bridges, tunnels) do not connect. The only
walking rule a line layer allows is by road class.
"""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import pyogrio.errors
import pyproj
import shapely

from carecircle.errors import InputError
from carecircle.layers.accounting import LayerReport
from carecircle.layers.network import EXCLUDED_HIGHWAY, Network, first_line, metric_crs
from carecircle.layers.noding import assemble, run_ends, split_at_shared_vertices, vertex_ids
from carecircle.layers.readers import shapefile_encoding

#: Road classes of a line layer that are not walkable: OSM values (OSM-derived layers,
#: Geofabrik ``fclass``) and 高速公路 (expressway) of Chinese road-class fields.
LINE_EXCLUDED_CLASSES = EXCLUDED_HIGHWAY | {"高速公路"}
#: Columns of a line layer that may hold the road class, in order of preference.
HIGHWAY_COLUMNS = ("highway", "fclass", "type", "道路等级", "道路类型", "等级")
#: Line-layer vertices closer than this (in metres, per axis) are the same node.
LINE_SNAP_M = 0.001


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
        # Only the road-class column is read: centreline layers carry dozens of attributes.
        fields = [str(f) for f in pyogrio.read_info(path, layer=layer, encoding=encoding)["fields"]]
        lower = {f.lower(): f for f in fields}
        class_column = next((lower[name] for name in HIGHWAY_COLUMNS if name in lower), None)
        frame = _read_frame(path, layer, encoding, [class_column] if class_column is not None else [])
    except (pyogrio.errors.DataSourceError, pyogrio.errors.DataLayerError, pyogrio.errors.CRSError) as exc:
        raise InputError(
            f"{path}: cannot read as a line layer ({first_line(exc)}); use a SHP or GPKG"
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
        crs = metric_crs(target_crs, source.to_crs(4326).total_bounds, path)
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

    if (shapely.get_type_id(metric) == 1).all():  # no MultiLineString: the lines are their own parts
        parts, part_feature = metric, np.arange(len(metric))
    else:
        parts, part_feature = shapely.get_parts(metric, return_index=True)
    coords, part = shapely.get_coordinates(parts, return_index=True)
    snapped = np.rint(coords / LINE_SNAP_M).astype(np.int64)
    vertex = vertex_ids(snapped[:, 0], snapped[:, 1])
    take, edge_of_vertex, edge_part = split_at_shared_vertices(part, vertex)
    first, last = run_ends(edge_of_vertex)
    assembly = assemble(snapped[take] * LINE_SNAP_M, edge_of_vertex, snapped[take][np.concatenate([first, last])])
    feature = np.flatnonzero(good)[part_feature[edge_part[assembly.kept]]]

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
    distinct = int(vertex.max() + 1) if len(vertex) else 0
    stats = {
        **assembly.stats,
        "excluded_by_reason": report.rejected_by_reason(),
        # vertices that coincide within 1 mm without being bit-identical
        "merged_duplicate_nodes": int(len(np.unique(coords.view(np.complex128))) - distinct),
    }
    return Network(nodes=assembly.nodes_frame(crs),
                   edges=assembly.edges_frame(crs, road_class[feature], "source_row", rows[feature]),
                   report=report, stats=stats)


def _read_frame(path: Path, layer, encoding: str | None, columns: list[str]) -> gpd.GeoDataFrame:
    """The layer's geometries and ``columns``, through Arrow where GDAL hands over UTF-8 text.

    Arrow cannot take text in another encoding (a shapefile whose DBF is GBK without a
    ``.cpg``); such a layer is read without it.
    """
    try:
        return pyogrio.read_dataframe(path, layer=layer, encoding=encoding, columns=columns,
                                      use_arrow=encoding is None)
    except pyogrio.errors.DataSourceError as exc:
        if encoding is not None or "UTF-8" not in str(exc):
            raise
        return pyogrio.read_dataframe(path, layer=layer, columns=columns)
