"""Chinese coordinate systems and the metric CRS of an analysis.

GCJ-02 (Amap, Tencent) and BD-09 (Baidu) are obfuscated WGS-84 variants with no EPSG code;
the forward transforms come from the maintained ``coordTransform`` package (vectorised C
implementation). Its GCJ-02 → WGS-84 inverse is a one-step approximation with metre-level
error, so :func:`to_wgs84` refines it by fixed-point iteration on the forward transform
until it round-trips to within a millimetre.
"""

from __future__ import annotations

import numpy as np
import pyproj
import coordTransform as ct

# Names accepted for the obfuscated systems (config `crs:` values), lower-cased.
GCJ02_NAMES = {"gcj02", "gcj-02", "gcj", "amap", "gaode", "tencent", "高德", "腾讯", "火星"}
BD09_NAMES = {"bd09", "bd-09", "baidu", "百度"}
WGS84_NAMES = {"wgs84", "wgs-84", "epsg:4326", "4326", "gps"}
CGCS2000_NAMES = {"cgcs2000", "epsg:4490", "4490"}


def _arrays(lon, lat) -> tuple[np.ndarray, np.ndarray]:
    return np.ascontiguousarray(lon, dtype=float), np.ascontiguousarray(lat, dtype=float)


def _forward(kind: str, lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    fn = {"gcj02": ct.wgs84_to_gcj02, "bd09": ct.wgs84_to_bd09}[kind]
    if lon.size == 0:
        return lon.copy(), lat.copy()
    out_lon, out_lat = fn(lon, lat)
    return np.asarray(out_lon, dtype=float), np.asarray(out_lat, dtype=float)


def from_wgs84(lon, lat, kind: str) -> tuple[np.ndarray, np.ndarray]:
    """Convert WGS-84 longitude/latitude arrays to ``kind`` ("gcj02" or "bd09").

    Parameters
    ----------
    lon, lat : array-like
        WGS-84 degrees.
    kind : str
        "gcj02" or "bd09" (or "wgs84", a no-op).

    Returns
    -------
    tuple of numpy.ndarray
        Longitudes and latitudes in ``kind``. Points outside China are returned unchanged,
        as Amap and Baidu do.
    """
    lon, lat = _arrays(lon, lat)
    kind = normalise_obfuscated(kind)
    if kind == "wgs84":
        return lon.copy(), lat.copy()
    return _forward(kind, lon, lat)


def to_wgs84(lon, lat, kind: str, *, tol_deg: float = 1e-9, max_iter: int = 30) -> tuple[np.ndarray, np.ndarray]:
    """Convert GCJ-02 / BD-09 longitude/latitude arrays back to WGS-84.

    Solves ``forward(w) = g`` for ``w`` by fixed-point iteration (``w += g - forward(w)``);
    the forward offset varies slowly, so a handful of iterations reach ``tol_deg``
    (1e-9° ≈ 0.1 mm).

    Parameters
    ----------
    lon, lat : array-like
        Degrees in ``kind``.
    kind : str
        "gcj02", "bd09" or "wgs84".

    Returns
    -------
    tuple of numpy.ndarray
        WGS-84 longitudes and latitudes; NaN stays NaN.
    """
    lon, lat = _arrays(lon, lat)
    kind = normalise_obfuscated(kind)
    if kind == "wgs84":
        return lon.copy(), lat.copy()
    finite = np.isfinite(lon) & np.isfinite(lat)
    w_lon, w_lat = lon.copy(), lat.copy()
    g_lon, g_lat = lon[finite], lat[finite]
    x, y = g_lon.copy(), g_lat.copy()
    for _ in range(max_iter):
        f_lon, f_lat = _forward(kind, x, y)
        d_lon, d_lat = g_lon - f_lon, g_lat - f_lat
        x += d_lon
        y += d_lat
        if d_lon.size == 0 or max(np.abs(d_lon).max(), np.abs(d_lat).max()) < tol_deg:
            break
    w_lon[finite], w_lat[finite] = x, y
    return w_lon, w_lat


def normalise_obfuscated(name: str) -> str:
    """Map a user's name for WGS-84/GCJ-02/BD-09 to "wgs84", "gcj02" or "bd09"."""
    key = str(name).strip().lower()
    if key in GCJ02_NAMES:
        return "gcj02"
    if key in BD09_NAMES:
        return "bd09"
    if key in WGS84_NAMES:
        return "wgs84"
    raise ValueError(f"not one of wgs84, gcj02, bd09: {name!r}")


def parse_crs(name: str) -> tuple[str, pyproj.CRS]:
    """Parse a config ``crs:`` value.

    Parameters
    ----------
    name : str
        wgs84 / gcj02 / bd09 (or their aliases, :data:`GCJ02_NAMES` ...), cgcs2000, or
        anything pyproj accepts ("EPSG:4549").

    Returns
    -------
    tuple
        ``(kind, crs)``: ``kind`` is "wgs84", "gcj02", "bd09" (lon/lat that need
        :func:`to_wgs84`, with ``crs`` = EPSG:4326) or "epsg" (any other CRS, used as is).
    """
    key = str(name).strip().lower()
    try:
        kind = normalise_obfuscated(key)
        return kind, pyproj.CRS.from_epsg(4326)
    except ValueError:
        pass
    if key in CGCS2000_NAMES:
        return "epsg", pyproj.CRS.from_epsg(4490)
    return "epsg", pyproj.CRS.from_user_input(name)


def utm_crs(lon: float, lat: float) -> pyproj.CRS:
    """The WGS-84 UTM zone CRS containing a point.

    Parameters
    ----------
    lon, lat : float
        Degrees.

    Returns
    -------
    pyproj.CRS
        EPSG:326xx (north) or EPSG:327xx (south).
    """
    zone = int(np.floor((lon + 180.0) / 6.0)) % 60 + 1
    return pyproj.CRS.from_epsg((32600 if lat >= 0 else 32700) + zone)


def gk3_crs(lon: float) -> pyproj.CRS:
    """CGCS2000 / 3-degree Gauss-Krüger CM zone for ``lon`` (EPSG:4534–4554, no zone prefix).

    EPSG:4549 is central meridian 120° E (Wuxi, Shanghai, Kunshan, Suzhou).

    Parameters
    ----------
    lon : float
        Degrees east.

    Returns
    -------
    pyproj.CRS

    Raises
    ------
    ValueError
        ``lon`` is outside the zones (central meridians 75–135° E).
    """
    cm = int(round(lon / 3.0)) * 3
    if not 75 <= cm <= 135:
        raise ValueError(f"longitude {lon:.3f} is outside China's 3-degree Gauss-Krüger zones (75–135° E)")
    return pyproj.CRS.from_epsg(4534 + (cm - 75) // 3)


# Mainland China, Hainan and Taiwan with a margin: the envelope GCJ-02 / BD-09 apply in and
# a cheap first check that a coordinate column holds Chinese lon/lat at all. It is a box,
# so it also admits neighbouring countries and open sea: a study-area check is the real test.
CHINA_BBOX = (73.4, 3.8, 135.1, 53.6)  # lon_min, lat_min, lon_max, lat_max


def in_china(lon, lat) -> np.ndarray:
    """True where ``lon``, ``lat`` (degrees) fall inside :data:`CHINA_BBOX`; NaN gives False."""
    lon, lat = _arrays(lon, lat)
    x0, y0, x1, y1 = CHINA_BBOX
    with np.errstate(invalid="ignore"):
        return (lon >= x0) & (lon <= x1) & (lat >= y0) & (lat <= y1)


def lonlat_sanity(lon, lat) -> np.ndarray:
    """Classify lon/lat pairs: one short, stable reason per pair ("" when plausible).

    Reasons: ``"missing coordinates"`` (NaN), ``"non-finite coordinates"`` (±inf),
    ``"lat/lng swapped"`` (outside China as given, inside once swapped),
    ``"coordinates out of range"`` (|lat| > 90 or |lon| > 180), ``"outside China"``.

    Parameters
    ----------
    lon, lat : array-like
        Degrees as read from the file (any of WGS-84, GCJ-02, BD-09: the offsets are far
        smaller than the China envelope's margin).

    Returns
    -------
    numpy.ndarray of str
    """
    lon, lat = _arrays(lon, lat)
    out = np.full(lon.shape, "", dtype=object)
    nan = np.isnan(lon) | np.isnan(lat)
    inf = ~nan & (np.isinf(lon) | np.isinf(lat))
    inside = in_china(lon, lat)
    swapped = ~nan & ~inf & ~inside & in_china(lat, lon)
    with np.errstate(invalid="ignore"):
        out_of_range = ~nan & ~inf & ~swapped & ((np.abs(lat) > 90) | (np.abs(lon) > 180))
    out[~nan & ~inf & ~inside] = "outside China"
    out[out_of_range] = "coordinates out of range"
    out[swapped] = "lat/lng swapped"
    out[inf] = "non-finite coordinates"
    out[nan] = "missing coordinates"
    return out


def transform_xy(x, y, src, dst) -> tuple[np.ndarray, np.ndarray]:
    """Transform coordinate arrays from CRS ``src`` to ``dst`` in (x=east/lon, y=north/lat) order.

    Points the projection cannot represent come back as ±inf (pyproj's convention), which
    callers treat as out of range.

    Parameters
    ----------
    x, y : array-like
    src, dst : CRS-like
        Anything pyproj accepts.

    Returns
    -------
    tuple of numpy.ndarray
        Transformed copies (plain copies when ``src`` equals ``dst``).
    """
    x, y = _arrays(x, y)
    src, dst = pyproj.CRS.from_user_input(src), pyproj.CRS.from_user_input(dst)
    if src == dst or x.size == 0:
        return x.copy(), y.copy()
    tx, ty = pyproj.Transformer.from_crs(src, dst, always_xy=True).transform(x, y, errcheck=False)
    return np.asarray(tx, dtype=float), np.asarray(ty, dtype=float)
