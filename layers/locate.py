"""Where features are: coordinate validation and conversion, geometry checks.

- :func:`locate` validates coordinate arrays (swapped, out of range, outside China or the
  study area), converts GCJ-02/BD-09/any EPSG to WGS-84 and to the analysis CRS.
- :func:`study_zone`, :func:`parse_crs_option`, :func:`geometry_reason` and
  :func:`representative_points` serve the loaders of point and polygon layers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyproj
import shapely

from carecircle.errors import InputError
from carecircle.layers import crs as ccrs

SWAPPED = "lat/lng swapped (set auto_fix: true to correct)"


@dataclass
class Located:
    """Result of :func:`locate`: per input point a rejection reason ("" = kept) and coordinates."""

    reason: np.ndarray  # object array of str
    lon: np.ndarray  # WGS-84 (NaN where rejected)
    lat: np.ndarray
    x: np.ndarray  # target CRS
    y: np.ndarray
    notes: list[str]


def study_zone(study_area, target_crs, buffer_m: float = 0.0):
    """The zone points must fall in: the study area grown by ``buffer_m``, prepared.

    Parameters
    ----------
    study_area : geometry, GeoSeries, GeoDataFrame or None
        A bare geometry is taken to be in ``target_crs``; a GeoSeries/GeoDataFrame with a
        CRS is reprojected to it. Several features are unioned.
    target_crs : CRS-like
    buffer_m : float
        Grow the area by this much (0: the area itself).

    Returns
    -------
    shapely.Geometry or None
        None when ``study_area`` is None.
    """
    if study_area is None:
        return None
    if isinstance(study_area, shapely.Geometry):
        area = study_area
    else:
        geo = getattr(study_area, "geometry", study_area)
        if getattr(geo, "crs", None) is not None and target_crs is not None:
            geo = geo.to_crs(target_crs)
        area = shapely.union_all(np.asarray(geo.values if hasattr(geo, "values") else geo))
    zone = shapely.buffer(area, buffer_m) if buffer_m else area
    shapely.prepare(zone)
    return zone


def locate(x, y, *, source_crs, kind: str, target_crs, auto_fix: bool = False, study_area=None, study_buffer_m: float = 1000.0, reason=None) -> Located:
    """Validate and convert coordinate arrays to WGS-84 and the analysis CRS.

    Parameters
    ----------
    x, y : array-like
        Easting/longitude and northing/latitude as read (NaN = missing).
    source_crs : pyproj.CRS
        CRS of ``x``, ``y`` (EPSG:4326 for the obfuscated kinds).
    kind : str
        "wgs84", "gcj02", "bd09" (lon/lat that need :func:`crs.to_wgs84`) or "epsg".
    target_crs : CRS-like
        The analysis CRS.
    auto_fix : bool
        Swap pairs that are lat/lng swapped (else reject them with :data:`SWAPPED`).
    study_area : geometry, GeoSeries or GeoDataFrame, optional
        In ``target_crs``; points farther than ``study_buffer_m`` from it are rejected.
    study_buffer_m : float
        See ``study_area``.
    reason : array of str, optional
        Reasons already found (e.g. "non-numeric coordinates"); kept, and those rows skipped.

    Returns
    -------
    Located
    """
    x = np.asarray(x, dtype=float).copy()
    y = np.asarray(y, dtype=float).copy()
    n = x.size
    why = np.full(n, "", dtype=object) if reason is None else np.asarray(reason, dtype=object).copy()
    notes: list[str] = []
    src = pyproj.CRS.from_user_input(source_crs)
    geographic = kind in ("wgs84", "gcj02", "bd09") or src.is_geographic

    def to_lonlat(a, b):
        # the obfuscated kinds stay in their own lon/lat until to_wgs84 below
        return (a, b) if kind != "epsg" else ccrs.transform_xy(a, b, src, 4326)

    if geographic:
        # degrees as read: datum shifts (CGCS2000 vs WGS-84) are irrelevant to these checks
        sanity = ccrs.lonlat_sanity(x, y)
    else:
        lon, lat = to_lonlat(x, y)
        sanity = ccrs.lonlat_sanity(lon, lat)
        sanity[sanity == "non-finite coordinates"] = "coordinates out of range"
        sanity[np.isnan(x) | np.isnan(y)] = "missing coordinates"
        sanity[np.isinf(x) | np.isinf(y)] = "non-finite coordinates"
        swap_lon, swap_lat = to_lonlat(y, x)
        wrong = ~np.isin(sanity, ["", "missing coordinates", "non-finite coordinates"])
        sanity[wrong & ccrs.in_china(swap_lon, swap_lat)] = "lat/lng swapped"
    todo = why == ""
    swapped = todo & (sanity == "lat/lng swapped")
    if swapped.any():
        if auto_fix:
            x[swapped], y[swapped] = y[swapped].copy(), x[swapped].copy()
            notes.append(f"{int(swapped.sum())} lat/lng swapped pair(s) corrected (auto_fix)")
            sanity[swapped] = ""
        else:
            sanity[swapped] = SWAPPED
    lon, lat = to_lonlat(x, y)
    why[todo] = sanity[todo]
    ok = why == ""
    lon, lat = np.where(ok, lon, np.nan), np.where(ok, lat, np.nan)
    if kind in ("gcj02", "bd09") and ok.any():
        lon[ok], lat[ok] = ccrs.to_wgs84(lon[ok], lat[ok], kind)
        notes.append(f"{int(ok.sum())} point(s) converted from {kind.upper()} to WGS-84")
    gx, gy = ccrs.transform_xy(lon, lat, 4326, target_crs)
    if study_area is not None and ok.any():
        zone = study_zone(study_area, target_crs, study_buffer_m)
        inside = np.zeros(n, dtype=bool)
        inside[ok] = shapely.contains_xy(zone, gx[ok], gy[ok])
        why[ok & ~inside] = "outside study area"
    ok = why == ""
    if n and (why == "outside China").sum() > n / 2:
        notes.append("most coordinates fall outside China: check the crs setting and the x/y columns")
    return Located(
        reason=why,
        lon=np.where(ok, lon, np.nan),
        lat=np.where(ok, lat, np.nan),
        x=np.where(ok, gx, np.nan),
        y=np.where(ok, gy, np.nan),
        notes=notes,
    )


def parse_crs_option(value, *, path) -> tuple[str, pyproj.CRS]:
    """:func:`crs.parse_crs` with a one-line :class:`InputError` for unknown names.

    Parameters
    ----------
    value : str
        The config's ``crs:`` value.
    path : str or Path
        The file it applies to, for the error message.

    Returns
    -------
    tuple
        ``(kind, pyproj.CRS)`` as from :func:`crs.parse_crs`.
    """
    try:
        return ccrs.parse_crs(value)
    except (pyproj.exceptions.CRSError, ValueError, TypeError):
        raise InputError(f"{path}: crs {value!r} is not a known coordinate system; use wgs84, gcj02, bd09 or EPSG:<code>") from None


def geometry_reason(df) -> np.ndarray:
    """Reject features without a geometry.

    Parameters
    ----------
    df : geopandas.GeoDataFrame

    Returns
    -------
    numpy.ndarray
        Object array: "missing geometry" where the geometry is null or empty, else "".
    """
    geom = df.geometry.to_numpy()
    return np.where(shapely.is_missing(geom) | shapely.is_empty(geom), "missing geometry", "").astype(object)


def representative_points(geoms) -> np.ndarray:
    """Centroids, or a point on the surface where the centroid falls outside (L-shapes, rings).

    Parameters
    ----------
    geoms : array of shapely geometries
        None stays None.

    Returns
    -------
    numpy.ndarray
        One Point per geometry, inside it (on it, for lines).
    """
    geoms = np.asarray(geoms)
    out = geoms.copy()
    # Points are their own centre; the surface point is computed only where the centroid
    # falls outside (population layers are mostly points: this keeps them cheap).
    todo = np.flatnonzero(~shapely.is_missing(geoms) & (shapely.get_type_id(geoms) != 0))
    cent = shapely.centroid(geoms[todo])
    inside = shapely.is_empty(geoms[todo]) | shapely.within(cent, geoms[todo])
    out[todo[inside]] = cent[inside]
    out[todo[~inside]] = shapely.point_on_surface(geoms[todo[~inside]])
    return out
