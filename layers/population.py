"""Where people live: population rasters, counted points/polygons, or floor area shares.

Three routes to the same output, a GeoDataFrame of points with ``pid``, ``people``,
``elderly`` (and ``households`` when known) in the analysis CRS:

- :func:`read_population_raster` — a WorldPop-style GeoTIFF in any CRS, read through a window
  around the study area; each populated cell becomes a point at its centre.
- :func:`read_population_points` — points (or polygons, placed at a point inside) with a
  count field.
- :func:`distribute_by_buildings` — dasymetric: a known total (e.g. a 街道's census count)
  spread over buildings or grid cells in proportion to a weight such as residential floor area.
"""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import pyproj
import shapely

from carecircle.layers import crs as ccrs
from carecircle.layers.accounting import LayerReport, reject_rows, start_report
from carecircle.layers.columns import find_column, non_negative, to_number
from carecircle.layers.locate import geometry_reason, representative_points, study_zone
from carecircle.layers.readers import read_layer
from carecircle.errors import InputError

COUNT_CANDIDATES = ["常住人口", "人口", "人口数", "总人口", "population", "pop", "people", "count"]
ELDERLY_CANDIDATES = ["老年人口", "60岁以上", "60岁及以上", "老年人", "elderly", "pop60", "aged60"]
HOUSEHOLD_CANDIDATES = ["户数", "总户数", "households", "hh"]


def _share(value, *, what: str) -> float | None:
    if value is None:
        return None
    try:
        v = float(value)
    except (TypeError, ValueError):
        v = np.nan
    if not 0.0 <= v <= 1.0:
        raise InputError(f"{what}: elderly_share {value!r} must be a fraction between 0 and 1 (e.g. 0.2)")
    return v


#: A population point holding more people than this is implausible (a count in the wrong unit?).
MAX_PLAUSIBLE_PEOPLE = 100_000


def _plausible(out: gpd.GeoDataFrame, report: LayerReport, path) -> tuple[gpd.GeoDataFrame, LayerReport]:
    """Stop when no people (or no elderly) are left; note points with implausibly many people."""
    if not out["people"].sum() > 0:
        raise InputError(f"{path}: population: no people left ({report.read:,} read, {len(report.rejected):,} "
                         "rejected, the rest 0 or nodata); check the layer, its nodata value and count_field")
    if not out["elderly"].sum() > 0:
        raise InputError(f"{path}: population: no elderly left (elderly_share 0, or an empty elderly field or "
                         "raster); give the elderly share or count")
    big = out["people"].to_numpy() > MAX_PLAUSIBLE_PEOPLE
    if big.any():
        report.notes.append(f"implausible: {int(big.sum())} point(s) with more than {MAX_PLAUSIBLE_PEOPLE:,} people "
                            f"(largest {out['people'].max():,.0f}); check the count field's unit")
    return out, report


def _output(people, elderly, geoms, crs, households=None) -> gpd.GeoDataFrame:
    data = {"pid": np.arange(len(people), dtype=np.int64), "people": np.asarray(people, float), "elderly": np.asarray(elderly, float)}
    if households is not None:
        data["households"] = np.asarray(households, float)
    return gpd.GeoDataFrame(data, geometry=geoms, crs=crs)


# ------------------------------------------------------------------------ raster


def read_population_raster(
    path, *, target_crs, study_area=None, elderly_share=None, elderly_raster=None, study_buffer_m: float = 0.0
) -> tuple[gpd.GeoDataFrame, LayerReport]:
    """Population grid cells as points at their centres.

    Parameters
    ----------
    path : str or Path
        Single-band raster (GeoTIFF), people per cell, any CRS.
    target_crs : CRS-like
    study_area : geometry, GeoSeries or GeoDataFrame, optional
        In ``target_crs``. Only the window covering its bounds is read; cells whose centre
        lies outside the area (grown by ``study_buffer_m``) are rejected as
        "outside study area".
    elderly_share : float, optional
        Elderly = share × people.
    elderly_raster : str or Path, optional
        A second raster of elderly people per cell, sampled at the same cell centres: read
        cell by cell when it is on the same grid, else sampled at the centres and scaled by
        the ratio of cell areas (it must then share the population raster's CRS).
    study_buffer_m : float
        How far the read window and the kept cell centres may reach beyond the study area
        (default 0).

    Returns
    -------
    tuple
        ``(points, report)``; report rows are populated cells (value ≠ 0) in the window,
        numbered 1.. row-major over the whole raster (``raster_row``/``raster_col`` given too):
        nodata and zero cells are not rows (their counts are in the notes); negative and
        non-finite values, elderly > people and cells outside the study area are rejected.
    """
    import rasterio
    from rasterio.windows import Window

    share = _share(elderly_share, what=str(path))
    if share is None and elderly_raster is None:
        raise InputError(f"{path}: population raster needs elderly_share or elderly_raster to know the elderly")
    report = LayerReport(layer="population", source=str(path))
    try:
        src = rasterio.open(path)
    except rasterio.errors.RasterioIOError as err:
        raise InputError(f"{path}: cannot open as a raster ({str(err).splitlines()[0]}); give a GeoTIFF") from None
    with src:
        if src.crs is None:
            raise InputError(f"{path}: the raster has no CRS; set it (e.g. gdal_edit.py -a_srs EPSG:4326) and retry")
        zone = study_zone(study_area, target_crs, study_buffer_m)
        window = Window(0, 0, src.width, src.height)
        if zone is not None:
            window = _window_for(src, zone, target_crs, path)
        if src.count > 1:
            report.notes.append(f"band 1 of {src.count} read")
        values = src.read(1, window=window, masked=True)
        wtransform = src.window_transform(window)
        r0, c0 = int(window.row_off), int(window.col_off)
        data = np.ma.filled(values.astype(float), np.nan)
        nodata = np.ma.getmaskarray(values)
        report.notes.append(
            f"window rows {r0}–{r0 + data.shape[0] - 1}, cols {c0}–{c0 + data.shape[1] - 1} of {src.height}×{src.width}"
        )
        rr, cc = np.nonzero(~nodata & (data != 0))  # NaN != 0, so NaN cells are rows (rejected)
        value = data[rr, cc]
        report.read = int(rr.size)
        report.notes.append(f"{int(nodata.sum())} nodata and {int((~nodata & (data == 0)).sum())} zero cells skipped")
        xs, ys = _centres(wtransform, rr, cc)
        raster_crs = src.crs
        cell_area = abs(src.transform.determinant)
        grid = (src.crs, src.transform, src.width, src.height)
    rows = pd.DataFrame({"row": (rr + r0) * grid[2] + (cc + c0) + 1, "raster_row": rr + r0, "raster_col": cc + c0, "value": value})
    reason = np.full(rr.size, "", dtype=object)
    reason[~np.isfinite(value)] = "non-finite count"
    reason[(reason == "") & (value < 0)] = "negative count"
    gx, gy = ccrs.transform_xy(xs, ys, raster_crs, target_crs)
    if zone is not None:
        reason[(reason == "") & ~shapely.contains_xy(zone, gx, gy)] = "outside study area"
    if elderly_raster is not None:
        elderly = _sample_elderly(elderly_raster, grid, rr + r0, cc + c0, xs, ys, cell_area, report)
        reason[(reason == "") & (elderly < 0)] = "negative elderly count"
        reason[(reason == "") & (elderly > value * (1 + 1e-9))] = "elderly > people"
        rows["elderly"] = elderly
    else:
        elderly = value * share
    reject_rows(report, rows, reason)
    ok = reason == ""
    people = value[ok]
    elderly = elderly[ok]
    gaps = np.isnan(elderly)
    if gaps.any():
        known = ~gaps
        ratio = elderly[known].sum() / people[known].sum() if known.any() and people[known].sum() > 0 else 0.0
        elderly[gaps] = people[gaps] * ratio
        report.notes.append(f"{int(gaps.sum())} cell(s) with no elderly value: set to the raster-wide share {ratio:.3f}")
    out = _output(people, elderly, gpd.points_from_xy(gx[ok], gy[ok]), target_crs)
    report.notes.append(f"{len(out)} cells, {people.sum():.0f} people, {elderly.sum():.0f} elderly")
    return _plausible(out, report, path)


def _affine(transform, a, b) -> tuple[np.ndarray, np.ndarray]:
    """``transform`` applied to coordinate arrays (vectorised: rotated grids too)."""
    return transform.a * a + transform.b * b + transform.c, transform.d * a + transform.e * b + transform.f


def _centres(transform, rows, cols) -> tuple[np.ndarray, np.ndarray]:
    """Cell-centre coordinates of cells (``rows``, ``cols``) of a raster with ``transform``."""
    return _affine(transform, cols + 0.5, rows + 0.5)


def _window_for(src, zone, target_crs, path) -> Window:
    """The raster window covering the bounds of the study zone (in ``target_crs``)."""
    import rasterio
    from rasterio.windows import Window, from_bounds

    x0, y0, x1, y1 = shapely.bounds(zone)
    # densify the bounds' edges: a straight edge in one CRS is curved in another
    edge = np.linspace(0.0, 1.0, 21)
    bx = np.concatenate([x0 + (x1 - x0) * edge, np.full(21, x1), x1 - (x1 - x0) * edge, np.full(21, x0)])
    by = np.concatenate([np.full(21, y0), y0 + (y1 - y0) * edge, np.full(21, y1), y1 - (y1 - y0) * edge])
    rx, ry = ccrs.transform_xy(bx, by, target_crs, src.crs)
    good = np.isfinite(rx) & np.isfinite(ry)
    if not good.any():
        raise InputError(f"{path}: the study area cannot be expressed in the raster's CRS; check both CRSs")
    win = from_bounds(rx[good].min(), ry[good].min(), rx[good].max(), ry[good].max(), transform=src.transform)
    win = win.round_offsets(op="floor").round_lengths(op="ceil")
    # grow by one cell: cells straddling the edge belong to the window
    win = Window(win.col_off - 1, win.row_off - 1, win.width + 2, win.height + 2)
    try:
        win = win.intersection(Window(0, 0, src.width, src.height))
    except rasterio.errors.WindowError:
        raise InputError(f"{path}: the raster does not overlap the study area; check the raster and the network extent") from None
    return Window(int(win.col_off), int(win.row_off), int(win.width), int(win.height))


def _sample_elderly(path, grid, rows, cols, xs, ys, cell_area, report) -> np.ndarray:
    """Elderly per population cell from a second raster (NaN where it has no data)."""
    import rasterio
    from rasterio.windows import Window

    crs, transform, width, height = grid
    try:
        src = rasterio.open(path)
    except rasterio.errors.RasterioIOError as err:
        raise InputError(f"{path}: cannot open the elderly raster ({str(err).splitlines()[0]})") from None
    with src:
        if src.crs is None or pyproj.CRS.from_user_input(src.crs) != pyproj.CRS.from_user_input(crs):
            raise InputError(f"{path}: the elderly raster must share the population raster's CRS ({crs}); reproject it or give elderly_share")
        same_grid = src.transform.almost_equals(transform) and (src.width, src.height) == (width, height)
        if same_grid:
            er, ec, scale = rows, cols, 1.0
        else:
            fc, fr = _affine(~src.transform, xs, ys)
            er, ec = np.floor(fr).astype(np.int64), np.floor(fc).astype(np.int64)
            scale = cell_area / abs(src.transform.determinant)
            report.notes.append(f"elderly raster on another grid: sampled at cell centres, scaled by cell area ×{scale:.4g}")
        out = np.full(rows.size, np.nan)
        inside = (er >= 0) & (er < src.height) & (ec >= 0) & (ec < src.width)
        if inside.any():
            r0, r1, c0, c1 = er[inside].min(), er[inside].max(), ec[inside].min(), ec[inside].max()
            block = src.read(1, window=Window(c0, r0, c1 - c0 + 1, r1 - r0 + 1), masked=True)
            vals = np.ma.filled(block.astype(float), np.nan)[er[inside] - r0, ec[inside] - c0]
            out[inside] = vals * scale
    return out


# ------------------------------------------------------------------------ points


def read_population_points(
    path,
    *,
    count_field=None,
    elderly_field=None,
    elderly_share=None,
    households_field=None,
    target_crs,
    study_area=None,
    study_buffer_m: float = 0.0,
    layer=None,
) -> tuple[gpd.GeoDataFrame, LayerReport]:
    """Population from points (or polygons, placed at a point inside) with counts.

    Parameters
    ----------
    path : str or Path
        Vector layer with a CRS.
    count_field : str, optional
        People per feature (detected: 常住人口/人口/population/people ... when None).
    elderly_field : str, optional
        Elderly per feature; else ``elderly_share`` × people; one of them is required
        (a field named like 老年人口/60岁以上/elderly is detected).
    elderly_share : float, optional
        Elderly = share × people, when there is no elderly field.
    households_field : str, optional
        Households per feature (output column ``households`` when given or detected).
    target_crs : CRS-like
    study_area : geometry, GeoSeries or GeoDataFrame, optional
        Features farther than ``study_buffer_m`` from it are rejected.
    study_buffer_m : float
        How far outside the study area a feature may lie (default 0: inside it).
    layer : str or int, optional
        Layer of a multi-layer file (default: the first).

    Returns
    -------
    tuple
        ``(points, report)``. Rejected: missing geometry, missing/non-numeric/negative/
        non-finite counts, elderly > people, outside study area.
    """
    share = _share(elderly_share, what=str(path))
    df, meta = read_layer(path, layer=layer, need="population points needs a GIS layer (GPKG, SHP, GeoJSON) with geometry")
    report = start_report("population", df, meta)
    count_col = find_column(df, COUNT_CANDIDATES, key="count_field", path=path, given=count_field)
    eld_col = None
    if elderly_field is not None or share is None:
        eld_col = find_column(df, ELDERLY_CANDIDATES, key="elderly_field", path=path, given=elderly_field)
    hh_col = find_column(df, HOUSEHOLD_CANDIDATES, key="households_field", path=path, required=False, given=households_field)
    reason = geometry_reason(df)
    people = _counts(df[count_col], reason, "count")
    if eld_col is not None:
        elderly = _counts(df[eld_col], reason, "elderly count")
        reason[(reason == "") & (elderly > people)] = "elderly > people"
    else:
        elderly = people * share
    # households only inform the per-100-households standard: unknown is NaN, not a rejection
    households = None if hh_col is None else non_negative(df, hh_col, report=report)

    pts = representative_points(np.where(reason == "", df.geometry.to_numpy(), None))
    if (df.geometry.geom_type[reason == ""] != "Point").any():
        report.notes.append("polygons placed at a point inside each (centroid where inside)")
    pts = gpd.GeoSeries(pts, crs=meta.crs).to_crs(target_crs)
    zone = study_zone(study_area, target_crs, study_buffer_m)
    if zone is not None:
        ok = reason == ""
        inside = np.zeros(len(df), dtype=bool)
        inside[ok] = shapely.contains(zone, pts.to_numpy()[ok])  # the prepared zone first
        reason[ok & ~inside] = "outside study area"
    reject_rows(report, df, reason)
    ok = reason == ""
    report.notes.append(f"people from {count_col!r}, elderly from {eld_col!r}" if eld_col else f"people from {count_col!r}, elderly = {share} × people")
    out = _output(people[ok], elderly[ok], pts.to_numpy()[ok], target_crs, None if households is None else households[ok])
    return _plausible(out, report, path)


def _counts(series, reason: np.ndarray, label: str) -> np.ndarray:
    """Parse a count column, writing reasons for bad values into ``reason`` (in place)."""
    v, bad = to_number(series)
    todo = reason == ""
    reason[todo & np.isnan(v) & ~bad] = f"missing {label}"
    reason[todo & bad] = f"non-numeric {label}"
    reason[todo & np.isinf(v)] = f"non-finite {label}"
    reason[(reason == "") & (v < 0)] = f"negative {label}"
    return v


def distribute_by_buildings(
    path, *, total_population: float, weight_field: str, elderly_share: float, target_crs, layer=None
) -> tuple[gpd.GeoDataFrame, LayerReport]:
    """Spread a known total over buildings or grid cells by a weight (dasymetric mapping).

    ``people_i = total × w_i / Σw``: a feature with weight 0 gets 0 people (and is kept, at
    0); the sum equals ``total_population`` (to floating-point rounding, the last ulp put on
    the largest share).

    Parameters
    ----------
    path : str or Path
        Buildings or grid cells (polygons or points) with a CRS.
    total_population : float
        People to distribute (e.g. the census count of the district or 街道).
    weight_field : str
        Weight per feature, e.g. residential floor area (``area_residential_m2``).
    elderly_share : float
        Elderly = share × people.
    target_crs : CRS-like
    layer : str, optional
        Layer of a multi-layer GPKG.

    Returns
    -------
    tuple
        ``(points, report)``; rejected: missing geometry, missing/non-numeric/negative/
        non-finite weight (their share goes to the others).
    """
    share = _share(elderly_share, what=str(path))
    if share is None:
        raise InputError(f"{path}: distribute_by_buildings needs elderly_share")
    try:
        total = float(total_population)
    except (TypeError, ValueError):
        total = np.nan
    if not np.isfinite(total) or total < 0:
        raise InputError(f"{path}: total_population {total_population!r} must be a non-negative number")
    df, meta = read_layer(path, layer=layer, need="distribute_by_buildings needs a GIS layer (GPKG, SHP, GeoJSON) with geometry")
    report = start_report("population", df, meta)
    col = find_column(df, [], key="weight_field", path=path, given=weight_field)
    reason = geometry_reason(df)
    weight = _counts(df[col], reason, "weight")
    reject_rows(report, df, reason)
    ok = reason == ""
    w = weight[ok]
    wsum = w.sum()
    if not wsum > 0:
        raise InputError(f"{path}: weight field {col!r} sums to 0 over usable features; choose another weight_field")
    people = total * (w / wsum)
    # put the rounding residue on the largest share so the sum is the total
    people[np.argmax(people)] += total - people.sum()
    pts = gpd.GeoSeries(representative_points(df.geometry.to_numpy()[ok]), crs=meta.crs).to_crs(target_crs)
    out = _output(people, people * share, pts.to_numpy(), target_crs)
    report.notes.append(f"{total:.0f} people distributed by {col!r} over {int((w > 0).sum())} of {len(w)} features (weight 0 → 0 people)")
    return _plausible(out, report, path)
