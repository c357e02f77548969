"""Elderly-care facilities: a list from the civil-affairs bureau, an Amap export, a GIS layer.

:func:`read_facilities` reads CSV/XLSX (Chinese or English headers, any common encoding) or
a point/polygon layer, converts GCJ-02/BD-09/any EPSG coordinates to WGS-84 and to the
analysis CRS, sets one boolean flag per service from keywords in the type and name (a
facility may carry several: a day-care centre with a canteen is both ``day_care`` and
``meal``), and accounts for every row: kept, or rejected with a reason.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import geopandas as gpd
import numpy as np
import pandas as pd
import pyproj

from carecircle.layers.accounting import LayerReport, reject_rows, start_report
from carecircle.layers.columns import coordinate_columns, find_column, non_negative, text_column
from carecircle.layers.locate import geometry_reason, locate, parse_crs_option, representative_points
from carecircle.layers.readers import read_table
from carecircle.layers.crs import parse_crs, to_wgs84
from carecircle.errors import InputError

DEFAULT_KEYWORDS: dict[str, list[str]] = {
    "day_care": ["日间照料", "照料中心", "托老", "日托", "day care", "daycare"],
    "meal": ["助餐", "食堂", "餐", "meal", "canteen"],
    "street_centre": ["综合养老服务中心", "区域性养老服务中心", "街道养老服务中心"],
    "institution": ["养老院", "护理院", "福利院", "敬老院", "养老机构", "nursing home"],
}

# Header candidates, most specific first (see columns.find_column).
COLUMN_CANDIDATES: dict[str, list[str]] = {
    "name": ["名称", "机构名称", "设施名称", "单位名称", "name", "title"],
    "type": ["服务类型", "设施类型", "机构类型", "类型", "类别", "category", "type", "kind"],
    "address": ["地址", "详细地址", "address", "addr"],
    "floor_area": ["建筑面积", "面积", "用房面积", "floor_area", "floorarea", "area_m2"],
    "beds": ["床位数", "床位", "beds", "bed"],
    # 护理型床位: the plans' nursing-bed share (KS > 95 %, RG 75 %, WX 70 %, TX 60 %, SJZ ≥ 55 %).
    "nursing_beds": ["护理型床位数", "护理型床位", "护理床位数", "护理床位", "nursing_beds", "nursing beds"],
    # Places per day, any service (coverage/capacity.py reads it).
    "capacity": ["服务能力", "容量", "capacity", "places"],
}
# Places of one service (``capacity_<service>``), for a list with a column per service: a
# day-care centre with a canteen has 托位 and 日供餐量 side by side.
SERVICE_CAPACITY_CANDIDATES: dict[str, list[str]] = {
    "meal": ["日供餐量", "供餐能力", "供餐量", "餐位数", "餐位", "meals", "seats"],
    "day_care": ["托位数", "托位", "日托人数"],
}
COLUMN_KEYS = {"x", "y", "name", "type", "address", "floor_area", "beds", "nursing_beds", "capacity"}

_TRUE = {"1", "true", "yes", "y", "t", "是", "有", "√", "✓", "✔", "对"}
_FALSE = {"0", "false", "no", "n", "f", "否", "无", "没有", "×", "✗"}


def read_facilities(
    path,
    *,
    crs: str = "wgs84",
    columns: dict | None = None,
    keywords: dict[str, list[str]] | None = None,
    target_crs,
    auto_fix: bool = False,
    encoding: str | None = None,
    study_area=None,
    study_buffer_m: float = 1000.0,
    sheet=None,
    layer=None,
    exclude: Mapping[str, list[str]] | None = None,
) -> tuple[gpd.GeoDataFrame, LayerReport]:
    """Read a facility list or layer.

    Parameters
    ----------
    path : str or Path
        CSV, XLSX, GeoJSON, SHP, GPKG ...
    crs : str
        Coordinates' system for tables (and for vector files without a CRS): "wgs84",
        "gcj02" (Amap/Tencent), "bd09" (Baidu), "cgcs2000" or "EPSG:n". For a lon/lat
        layer exported from Amap or Baidu, "gcj02"/"bd09" overrides its declared WGS-84.
    columns : dict, optional
        Column names when not detected: keys ``x``, ``y``, ``name``, ``type``,
        ``floor_area``, ``beds``, ``capacity`` (places, seats or meals per day),
        ``capacity_<service>`` (that service's places, e.g. ``capacity_meal``), ``address``; a service key (``day_care`` ...) names a
        yes/no column that sets that flag explicitly (是/否, 1/0, true/false; blank cells
        fall back to keywords). Columns named exactly like a service key are used too.
    keywords : dict, optional
        Service → keywords matched (case-insensitive substring) in type and name;
        default :data:`DEFAULT_KEYWORDS`. ``exclude`` (service → words) vetoes a match,
        see :func:`keyword_flags`.
    target_crs : CRS-like
        The analysis CRS.
    auto_fix : bool
        Correct lat/lng swapped pairs instead of rejecting them.
    encoding : str, optional
        Text encoding (detected when None).
    study_area : geometry, GeoSeries or GeoDataFrame, optional
        In ``target_crs``; facilities beyond ``study_buffer_m`` of it are rejected
        ("outside study area"). If none is inside, the file cannot belong to the district:
        :class:`InputError`.
    study_buffer_m : float
        How far outside the study area a facility may lie (default 1 km).
    sheet, layer : optional
        XLSX sheet / vector layer.

    Returns
    -------
    tuple
        ``(facilities, report)``: columns ``fid``, ``source_row``, ``name``, ``type``,
        ``address``, ``floor_area_m2``, ``beds``, ``capacity`` (NaN where unknown), ``capacity_<service>`` where such a column is found, one bool per service, ``lon``, ``lat``
        (WGS-84), geometry Point in ``target_crs``.
    """
    columns = {k: v for k, v in (columns or {}).items() if v is not None}
    keywords = DEFAULT_KEYWORDS if keywords is None else keywords
    unknown = set(columns) - COLUMN_KEYS - set(keywords) - {f"capacity_{k}" for k in keywords}
    if unknown:
        raise InputError(f"{path}: facilities columns: unknown key(s) {', '.join(sorted(unknown))}; use {', '.join(sorted(COLUMN_KEYS | set(keywords)))}")
    df, meta = read_table(path, encoding=encoding, sheet=sheet, layer=layer)
    report = start_report("facilities", df, meta)
    kind, src = parse_crs_option(crs, path=path)
    use_geometry = meta.kind == "vector" and not ("x" in columns and "y" in columns)
    if use_geometry:
        x, y, reason, kind, src = _geometry_coordinates(df, meta, kind, src, report)
    else:
        x, y, reason, notes = coordinate_columns(df, path=path, x=columns.get("x"), y=columns.get("y"))
        report.notes.extend(notes)
    loc = locate(
        x, y, source_crs=src, kind=kind, target_crs=target_crs, auto_fix=auto_fix,
        study_area=study_area, study_buffer_m=study_buffer_m, reason=reason,
    )
    report.notes.extend(loc.notes)

    candidates = {**COLUMN_CANDIDATES, **{f"capacity_{k}": SERVICE_CAPACITY_CANDIDATES.get(k, []) for k in keywords}}
    found = {k: find_column(df, cands, key=k, path=path, required=False, given=columns.get(k)) for k, cands in candidates.items()}
    if found["beds"] is not None and found["beds"] == found["nursing_beds"] and "beds" not in columns:
        found["beds"] = None  # 床位 matched inside 护理型床位数: the nursing beds are not all the beds
    detected = [f"{k}={c!r}" for k, c in found.items() if c is not None and k not in columns]
    if detected:
        report.notes.append("columns detected: " + ", ".join(detected))
    n = len(df)
    name = text_column(df, found["name"])
    ftype = text_column(df, found["type"])
    address = text_column(df, found["address"])
    floor_area = non_negative(df, found["floor_area"], report=report, label="floor area")
    beds = non_negative(df, found["beds"], report=report, label="beds")
    nursing_beds = non_negative(df, found["nursing_beds"], report=report, label="nursing beds")
    capacity = non_negative(df, found["capacity"], report=report, label="capacity")
    service_capacity = {k: non_negative(df, found[k], report=report, label=k)
                        for k in candidates if k.startswith("capacity_") and found[k] is not None}

    reason = loc.reason.copy()
    reason[_duplicates(name, loc.x, loc.y, reason == "")] = "duplicate (same name and location as an earlier row)"
    ok = reason == ""
    reject_rows(report, df, reason)
    if study_area is not None and n and not ok.any() and (reason == "outside study area").any():
        raise InputError(
            f"{path}: no facility lies within the study area; check crs (now {crs!r}) and that the file covers the district"
        )

    missing_name = ok & name.isna().to_numpy()
    if missing_name.any():
        report.notes.append(f"{int(missing_name.sum())} facility(ies) without a name: named after their row")
    rows = df["row"].to_numpy()
    name = name.where(~pd.Series(missing_name), pd.Series([f"第{r}行" for r in rows], dtype="string"))
    flags = service_flags(name, ftype, keywords, df, columns, report, exclude)
    out = pd.DataFrame(
        {
            "fid": np.arange(int(ok.sum()), dtype=np.int64),
            "source_row": rows[ok].astype(np.int64),
            "name": name[ok].to_numpy(),
            "type": ftype[ok].fillna("").to_numpy(),
            "address": address[ok].fillna("").to_numpy(),
            "floor_area_m2": floor_area[ok],
            "beds": beds[ok],
            **({"nursing_beds": nursing_beds[ok]} if found["nursing_beds"] is not None else {}),
            "capacity": capacity[ok],
            **{k: v[ok] for k, v in service_capacity.items()},
            **{s: v[ok] for s, v in flags.items()},
            "lon": loc.lon[ok],
            "lat": loc.lat[ok],
        }
    )
    for col in ("name", "type", "address"):
        out[col] = out[col].astype("string")
    gdf = gpd.GeoDataFrame(out, geometry=gpd.points_from_xy(loc.x[ok], loc.y[ok]), crs=target_crs)
    counts = ", ".join(f"{s} {int(v[ok].sum())}" for s, v in flags.items())
    report.notes.append(f"service flags: {counts}")
    unmatched = unmatched_names(gdf, list(flags))
    if unmatched:
        report.notes.append(f"{len(unmatched)} facility(ies) match no service (kept, counted for nothing): "
                            + ", ".join(unmatched[:20]) + (" …" if len(unmatched) > 20 else ""))
    return gdf, report


def _geometry_coordinates(df, meta, kind, src, report):
    """Coordinates from a vector layer's geometry (polygons → a point inside)."""
    reason = geometry_reason(df)
    missing = reason != ""
    pts = representative_points(np.where(missing, None, df.geometry.to_numpy()))
    if (~missing & (df.geometry.geom_type != "Point").to_numpy()).any():
        report.notes.append("non-point facilities placed at a point inside their geometry")
    pts = gpd.GeoSeries(pts)
    x, y = pts.x.to_numpy(), pts.y.to_numpy()  # NaN where missing
    if meta.crs is not None:
        file_crs = pyproj.CRS.from_user_input(meta.crs)
        if kind in ("gcj02", "bd09") and file_crs.is_geographic:
            report.notes.append(f"layer declares {file_crs.name}; coordinates treated as {kind.upper()} as configured")
            return x, y, reason, kind, src
        if kind == "epsg" and not file_crs.equals(src):
            report.notes.append(f"the layer's own CRS {file_crs.name} used (config crs ignored)")
        return x, y, reason, ("wgs84" if file_crs.equals(pyproj.CRS.from_epsg(4326)) else "epsg"), file_crs
    report.notes.append(f"layer has no CRS: coordinates taken as {kind if kind != 'epsg' else src.to_string()}")
    return x, y, reason, kind, src


def _duplicates(name: pd.Series, x, y, ok) -> np.ndarray:
    """Rows repeating an earlier kept row's name and location (to 1 m)."""
    key = pd.DataFrame({"n": name.fillna("").to_numpy(), "x": np.round(x), "y": np.round(y)})
    dup = key.duplicated(keep="first").to_numpy()
    # duplicated() sees rejected rows as all-NaN keys: only kept rows can be duplicates
    return dup & ok


def keyword_flags(name: pd.Series, ftype: pd.Series, keywords: Mapping[str, list[str]],
                  exclude: Mapping[str, list[str]] | None = None) -> dict[str, np.ndarray]:
    """One bool array per service: does any of its keywords occur in type + name (case-insensitive)?

    The one keyword matcher of the toolkit (the loader and the analysis both call it).

    Parameters
    ----------
    name, ftype : pandas.Series
        Facility names and types (NA counts as empty text).
    keywords : mapping
        Service → keywords (substrings); a service without keywords is False throughout.
    exclude : mapping, optional
        Service → words that veto the service even where a keyword matches
        ("社区综合养老服务中心" is not the 街道 centre, "中央厨房" is not a meal point).

    Returns
    -------
    dict
        Service → numpy bool array, in the order of ``keywords``.
    """
    text = (ftype.fillna("").astype(str) + " " + name.fillna("").astype(str)).str.lower()

    def matches(words) -> np.ndarray:
        pattern = "|".join(re.escape(str(w).lower()) for w in words if str(w).strip())
        return text.str.contains(pattern, regex=True).to_numpy(dtype=bool) if pattern else np.zeros(len(text), bool)

    exclude = exclude or {}
    return {service: matches(words) & ~matches(exclude.get(service, [])) for service, words in keywords.items()}


def unmatched_names(facilities: pd.DataFrame, services: list[str]) -> list[str]:
    """Names of the facilities that carry none of ``services`` (listed, never silently ignored)."""
    flags = facilities[[s for s in services if s in facilities.columns]].fillna(False).to_numpy(dtype=bool)
    return facilities.loc[~flags.any(axis=1), "name"].astype(str).tolist() if len(facilities) else []


def service_flags(name: pd.Series, ftype: pd.Series, keywords, df, columns, report, exclude=None) -> dict[str, np.ndarray]:
    """One bool array per service: keywords in type + name, or an explicit yes/no column.

    Parameters
    ----------
    name, ftype : pandas.Series
        Facility names and types, one per row of ``df``.
    keywords : dict
        Service → keywords, see :func:`keyword_flags`.
    df : pandas.DataFrame
        The table as read; a column named exactly like a service key is a yes/no column.
    columns : dict
        The config's column names; a service key there names its yes/no column.
    report : LayerReport
        Gets a note per yes/no column used.

    Returns
    -------
    dict
        Service → numpy bool array: 是/1/true… → True, 否/0/false… → False, anything
        else from the keywords.
    """
    flags = keyword_flags(name, ftype, keywords, exclude)
    for service, flag in flags.items():
        col = columns.get(service)
        if col is None and service in df.columns:
            col = service
        if col is not None:
            col = find_column(df, [service], key=service, path=report.source, given=col)
            raw = df[col].astype("string").str.strip().str.lower()
            yes, no = raw.isin(_TRUE).to_numpy(dtype=bool), raw.isin(_FALSE).to_numpy(dtype=bool)
            flags[service] = np.where(yes, True, np.where(no, False, flag))
            report.notes.append(f"{service} set from column {col!r} ({int((~yes & ~no).sum())} blank/unclear → keywords)")
    return flags


def apply_scenario(facilities: gpd.GeoDataFrame, *, add: pd.DataFrame, remove: list[str],
                   keywords: dict[str, list[str]], target_crs, report: LayerReport,
                   exclude: Mapping[str, list[str]] | None = None) -> gpd.GeoDataFrame:
    """A what-if facility list: remove facilities by name, add planned ones.

    Parameters
    ----------
    facilities : GeoDataFrame
        From :func:`read_facilities`.
    add : DataFrame
        Planned facilities: ``name``, ``type``, ``lon``, ``lat``, ``crs`` (wgs84 / gcj02 /
        bd09), ``floor_area``, ``beds`` and optionally ``capacity``. Service flags come from the same keywords.
    remove : list of str
        Names of facilities to take out; an unknown name is an error.
    keywords : dict
        Service → keywords, as for :func:`read_facilities`.
    target_crs
        The analysis CRS.
    report : LayerReport
        The facilities report; the changes are noted in it.

    Returns
    -------
    GeoDataFrame
        Same columns, ``fid`` renumbered; added rows have ``source_row`` -1.
    """
    missing = sorted(set(remove) - set(facilities["name"]))
    if missing:
        raise InputError(f"scenario.remove: no facility named {missing[0]!r} in {report.source}")
    out = facilities[~facilities["name"].isin(remove)]
    if remove:
        report.notes.append(f"scenario: removed {len(facilities) - len(out)} facilities: {', '.join(remove)}")
    if len(add):
        lon, lat = np.empty(len(add)), np.empty(len(add))
        kinds = add["crs"].map(lambda c: parse_crs(c)[0]).to_numpy()
        if (kinds == "epsg").any():
            raise InputError("scenario.add: give lon/lat in wgs84, gcj02 or bd09")
        for kind in np.unique(kinds):
            sel = kinds == kind
            lon[sel], lat[sel] = to_wgs84(add["lon"].to_numpy(float)[sel], add["lat"].to_numpy(float)[sel], kind)
        names, types = add["name"].astype(str), add["type"].astype(str)
        added = gpd.GeoDataFrame(
            {"source_row": -1, "name": names, "type": types, "address": "（规划）",
             "floor_area_m2": add["floor_area"].astype(float), "beds": add["beds"].astype(float),
             "capacity": add["capacity"].astype(float) if "capacity" in add else np.nan,
             **keyword_flags(names, types, keywords, exclude), "lon": lon, "lat": lat},
            geometry=gpd.points_from_xy(lon, lat), crs="EPSG:4326",
        ).to_crs(target_crs)
        out = pd.concat([out, added.reindex(columns=out.columns)], ignore_index=True)
        report.notes.append(f"scenario: added {len(added)} planned facilities: {', '.join(names)}")
    out = gpd.GeoDataFrame(out.reset_index(drop=True), geometry="geometry", crs=facilities.crs)
    out["fid"] = np.arange(len(out))
    return out
