"""Candidate sites for new facilities: a planner's parcel list, or points along the walk network.

A candidate file is read exactly like a facility list (:func:`carecircle.layers.facilities.read_facilities`:
CSV/XLSX with x/y columns in any supported CRS, or a point/polygon layer — polygons are
placed at a point inside them), so every row is kept or rejected with a reason and the
same CRS rules apply. Without a file, :func:`generate_candidates` spreads points along the
street edges every ``spacing_m`` metres.
"""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from carecircle.layers import facilities as facilities_layer
from carecircle.layers.network import Network
from carecircle.errors import InputError
from carecircle.layers.accounting import LayerReport

COLUMNS = ["cid", "source_row", "name", "lon", "lat", "geometry"]


def read_candidates(path, *, target_crs, name_field: str | None = None, x: str | None = None, y: str | None = None,
                    crs: str = "wgs84", encoding: str | None = None, sheet=None, layer=None,
                    study_area=None) -> tuple[gpd.GeoDataFrame, LayerReport]:
    """Read a candidate-site file (parcels, vacant buildings, community rooms on offer ...).

    Parameters
    ----------
    path : str or Path
        CSV, XLSX, GeoPackage, Shapefile, GeoJSON ...
    target_crs : CRS-like
        The analysis CRS.
    name_field, x, y : str, optional
        Column names (detected when not given, as for facilities).
    crs : str
        Coordinates' system of a table, or of a layer without one (``wgs84``, ``gcj02``,
        ``bd09``, ``cgcs2000``, ``EPSG:n``).
    encoding, sheet, layer : optional
        Text encoding, XLSX sheet, vector layer.
    study_area : geometry, optional
        Candidates farther than 1 km from it are rejected ("outside study area").

    Returns
    -------
    tuple
        ``(candidates, report)``: columns ``cid``, ``source_row``, ``name``, ``lon``,
        ``lat`` (WGS-84), geometry Point in ``target_crs``; the report's layer is
        ``candidates``.
    """
    columns = {"name": name_field, "x": x, "y": y}
    fac, report = facilities_layer.read_facilities(
        path, crs=crs, columns=columns, keywords={}, target_crs=target_crs, encoding=encoding,
        sheet=sheet, layer=layer, study_area=study_area,
    )
    report.layer = "candidates"
    report.notes = [n for n in report.notes if not n.startswith("service flags")]
    out = fac.rename(columns={"fid": "cid"})[COLUMNS]
    return gpd.GeoDataFrame(out, geometry="geometry", crs=target_crs), report


def generate_candidates(network: Network, *, spacing_m: float) -> tuple[gpd.GeoDataFrame, LayerReport]:
    """Points along every street edge, about ``spacing_m`` apart.

    An edge of length L gets ``ceil(L / spacing_m)`` points at the middles of equal parts
    (a short edge its midpoint), so no point sits on a junction twice.

    Parameters
    ----------
    network : Network
    spacing_m : float
        Spacing in metres along the edges (> 0).

    Returns
    -------
    tuple
        ``(candidates, report)`` with the columns of :func:`read_candidates`; names are
        ``路网候选点<n>``, ``source_row`` is the edge row.
    """
    if not spacing_m > 0:
        raise InputError(f"siting.candidates.generate.spacing_m: {spacing_m}: must be > 0")
    edges = network.edges
    geom = edges.geometry.to_numpy()
    glen = shapely.length(geom)
    n = np.where(glen > 0, np.ceil(glen / spacing_m), 0).astype(np.int64)
    edge = np.repeat(np.arange(len(edges)), n)
    k = np.arange(int(n.sum())) - np.repeat(np.cumsum(n) - n, n)
    pts = shapely.line_interpolate_point(geom[edge], (k + 0.5) * glen[edge] / n[edge])
    crs = network.crs
    lonlat = gpd.GeoSeries(pts, crs=crs).to_crs("EPSG:4326")
    out = gpd.GeoDataFrame({
        "cid": np.arange(len(pts), dtype=np.int64),
        "source_row": edge + 1,
        "name": "路网候选点" + pd.Series(np.arange(1, len(pts) + 1)).astype("string"),
        "lon": lonlat.x.to_numpy(),
        "lat": lonlat.y.to_numpy(),
    }, geometry=pts, crs=crs)
    report = LayerReport("candidates", f"generated every {spacing_m:g} m along the walk network", read=len(out))
    report.notes.append(f"{len(out):,} points along {len(edges):,} street edges")
    return out, report
