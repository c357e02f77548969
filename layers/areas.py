"""Boundaries: 社区 (communities), 街道 (sub-districts) and 小区 (housing estates).

Polygon layers from the civil-affairs bureau or the planning institute, with Chinese field
names more often than not. Fields are taken from the config or detected; numbers that cannot
be read become NaN (unknown) with a note, never a silent zero. Invalid polygons (self-
intersections are common in hand-digitised boundaries) are repaired with
``shapely.make_valid`` and reported; a 社区 without a 街道 field gets the 街道 it overlaps
most when a street layer is given.
"""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from carecircle.layers.accounting import LayerReport, reject_rows, start_report
from carecircle.layers.columns import find_column, non_negative, text_column, to_number
from carecircle.layers.locate import geometry_reason
from carecircle.layers.readers import read_layer
from carecircle.errors import InputError

COMMUNITY_NAME = ["社区名称", "社区", "村居名称", "村社区", "名称", "name", "community"]
STREET_NAME = ["街道名称", "所属街道", "街道", "街镇", "镇街", "乡镇街道", "乡镇", "street", "subdistrict", "town"]
ESTATE_NAME = ["小区名称", "小区", "楼盘名称", "名称", "name", "estate"]
ESTATE_COMMUNITY = ["所属社区", "社区名称", "社区", "community"]
HOUSEHOLDS = ["户数", "总户数", "居民户数", "住户数", "households", "hh"]
POPULATION = ["常住人口", "人口", "总人口", "人口数", "population", "pop"]
ELDERLY = ["老年人口", "60岁以上", "60岁及以上", "60岁以上人口", "老年人", "elderly", "pop60"]
BUILT_YEAR = ["建成年份", "建设年代", "建成年代", "竣工年份", "建成时间", "建设年份", "built_year", "year"]
#: Words of a community kind field (社区 urban, 村 rural); values outside both stay unknown.
URBAN_WORDS = ("社区", "居委会", "居民委员会", "城镇", "城市", "urban")
RURAL_WORDS = ("村", "村委会", "村民委员会", "农村", "行政村", "rural")
SPACE = ["养老服务用房面积", "养老用房面积", "配套用房面积", "用房面积", "养老服务用房", "space_m2", "space"]


def read_communities(
    path,
    *,
    name_field=None,
    street_field=None,
    households_field=None,
    population_field=None,
    elderly_field=None,
    built_year_field=None,
    target_crs,
    streets=None,
    layer=None,
    kind_field=None,
    street_kind_field=None,
) -> tuple[gpd.GeoDataFrame, LayerReport]:
    """Read 社区 polygons.

    Parameters
    ----------
    path : str or Path
        Polygon layer with a CRS.
    name_field, street_field, households_field, population_field, elderly_field, built_year_field : str, optional
        Field names; detected from common Chinese/English names when None (the name is
        required, the others become NaN when absent).
    target_crs : CRS-like
    streets : GeoDataFrame, optional
        街道 polygons with a ``street`` column (:func:`read_streets`); communities without a
        street (no field, or a blank value) get the street they overlap most.
    layer : str or int, optional
        Layer of a multi-layer file (default: the first).
    kind_field, street_kind_field : str, optional
        Fields giving the community's kind (社区 / 村) and its 街道/镇's kind (街道, 镇, 乡,
        主功能区 …) as written locally; without them the kinds are read from the names'
        endings (:func:`community_kind`, :func:`street_kind`).

    Returns
    -------
    tuple
        ``(communities, report)``: ``name``, ``street``, ``households``, ``population``,
        ``elderly``, ``built_year`` (floats, NaN unknown), ``kind`` (``urban`` / ``rural`` /
        NA), ``street_kind`` (NA unless the field gives it), geometry (Multi)Polygon.
    """
    gdf, report, reason = _polygons(path, layer, target_crs, "communities")
    name = _field(gdf, COMMUNITY_NAME, "name_field", name_field, path, report, required=True)
    street = _field(gdf, STREET_NAME, "street_field", street_field, path, report)
    out = gpd.GeoDataFrame(
        {
            "name": _names(gdf, name, reason, "name"),
            "street": text_column(gdf, street),
            "households": _number(gdf, HOUSEHOLDS, "households_field", households_field, path, report),
            "population": _number(gdf, POPULATION, "population_field", population_field, path, report),
            "elderly": _number(gdf, ELDERLY, "elderly_field", elderly_field, path, report),
            "built_year": _year(gdf, built_year_field, path, report),
        },
        geometry=gdf.geometry.to_numpy(),
        crs=target_crs,
    )
    names = out["name"]
    out["kind"] = community_kind(names, text_column(gdf, kind_field) if kind_field else None)
    out["street_kind"] = text_column(gdf, street_kind_field) if street_kind_field else pd.Series(pd.NA, index=out.index, dtype="string")
    out = _keep(out, gdf, reason, report, path, "communities")
    if streets is not None:
        blank = out["street"].isna().to_numpy()
        if blank.any():
            zones = _zones(streets, "street", target_crs)
            joined = assign_by_overlap(out.geometry[blank], zones.geometry, zones["street"])
            out.loc[blank, "street"] = joined.to_numpy()
            report.notes.append(
                f"street of {int(blank.sum())} community(ies) from the street layer by largest overlap"
                f" ({int(joined.isna().sum())} overlap none)"
            )
    dup = out["name"].duplicated(keep=False)
    if dup.any():
        report.notes.append(f"community names used more than once: {', '.join(sorted(set(out.loc[dup, 'name'])))[:200]}")
    return out, report


def read_estates(
    path,
    *,
    name_field=None,
    households_field=None,
    built_year_field=None,
    community_field=None,
    space_field=None,
    target_crs,
    communities=None,
    layer=None,
) -> tuple[gpd.GeoDataFrame, LayerReport]:
    """Read 小区 (housing estates): polygons or points.

    Parameters
    ----------
    path : str or Path
    name_field, households_field, built_year_field, community_field, space_field : str, optional
        Detected when None. ``space_field`` is the floor area (m²) of elderly-service rooms
        provided in the estate.
    target_crs : CRS-like
    communities : GeoDataFrame, optional
        From :func:`read_communities`; estates without a community get the one they overlap
        most (or contain them, for points). With it, every kept estate belongs to a
        community of the layer: an estate naming a community the layer does not have, or
        lying outside every community polygon, is rejected with that reason (its households
        and floor space could be counted nowhere). Without it, ``community`` stays as read.
    layer : str or int, optional
        Layer of a multi-layer file (default: the first).

    Returns
    -------
    tuple
        ``(estates, report)``: ``name``, ``community``, ``households``, ``built_year``,
        ``space_m2``, geometry.
    """
    gdf, report, reason = _polygons(path, layer, target_crs, "estates", points_ok=True)
    name = _field(gdf, ESTATE_NAME, "name_field", name_field, path, report, required=True)
    community = _field(gdf, ESTATE_COMMUNITY, "community_field", community_field, path, report)
    out = gpd.GeoDataFrame(
        {
            "name": _names(gdf, name, reason, "name"),
            "community": text_column(gdf, community),
            "households": _number(gdf, HOUSEHOLDS, "households_field", households_field, path, report),
            "built_year": _year(gdf, built_year_field, path, report),
            "space_m2": _number(gdf, SPACE, "space_field", space_field, path, report),
        },
        geometry=gdf.geometry.to_numpy(),
        crs=target_crs,
    )
    if communities is not None:
        _estate_communities(out, reason, _zones(communities, "name", target_crs), report)
    return _keep(out, gdf, reason, report, path, "estates"), report


def read_streets(path, *, name_field=None, target_crs, layer=None, kind_field=None) -> tuple[gpd.GeoDataFrame, LayerReport]:
    """Read 街道 polygons.

    Parameters
    ----------
    path : str or Path
        Polygon layer with a CRS.
    name_field : str, optional
        Field holding the 街道 name; detected from common Chinese/English names when None.
    target_crs : CRS-like
    layer : str or int, optional
        Layer of a multi-layer file (default: the first).
    kind_field : str, optional
        Field giving the kind as written locally (街道, 镇, 乡, 乡镇, 主功能区 …); without it
        the kind is read from the name's ending (:func:`street_kind`).

    Returns
    -------
    tuple
        ``(streets, report)``: ``street``, ``kind`` (NA when neither field nor name tells),
        geometry (one row per feature; a name may repeat).
    """
    gdf, report, reason = _polygons(path, layer, target_crs, "streets")
    name = _field(gdf, STREET_NAME + ["名称", "name"], "name_field", name_field, path, report, required=True)
    names = _names(gdf, name, reason, "street name")
    out = gpd.GeoDataFrame({"street": names, "kind": street_kind(names, text_column(gdf, kind_field) if kind_field else None)},
                           geometry=gdf.geometry.to_numpy(), crs=target_crs)
    return _keep(out, gdf, reason, report, path, "streets"), report


def community_kind(names: pd.Series, field: pd.Series | None = None) -> pd.Series:
    """``urban`` (社区) or ``rural`` (村) per community: the field's value, else the name's ending.

    Parameters
    ----------
    names : pandas.Series
        Community names (…社区 / …居委会 urban, …村 / …村委会 rural).
    field : pandas.Series, optional
        A kind field as written locally (社区, 村, 居委会, 村委会, urban, rural …); a blank
        or unrecognised value falls back to the name.

    Returns
    -------
    pandas.Series of string
        ``urban``, ``rural`` or NA (neither tells).
    """
    def read(text: pd.Series, ends: bool) -> np.ndarray:
        t = text.fillna("").astype(str).str.strip().str.lower()
        test = t.str.endswith if ends else t.isin
        rural = test(RURAL_WORDS if ends else list(RURAL_WORDS)).to_numpy(dtype=bool)
        urban = test(URBAN_WORDS if ends else list(URBAN_WORDS)).to_numpy(dtype=bool)
        return np.where(rural, "rural", np.where(urban, "urban", ""))

    kind = read(names, True)
    if field is not None:
        given = read(field.reset_index(drop=True), False)
        kind = np.where(given != "", given, kind)
    return pd.Series(np.where(kind == "", pd.NA, kind), index=names.index, dtype="string")


def street_kind(names: pd.Series, field: pd.Series | None = None) -> pd.Series:
    """Kind of each 街道/镇 as written locally: the field's value, else the name's ending.

    Parameters
    ----------
    names : pandas.Series
        Sub-district names (…街道 → 街道, …镇 → 镇, …乡 → 乡).
    field : pandas.Series, optional
        A kind field (街道, 镇, 乡, 乡镇, 主功能区 …); blanks fall back to the name.

    Returns
    -------
    pandas.Series of string
        The kind, NA where neither tells.
    """
    t = names.fillna("").astype(str).str.strip()
    kind = np.select([t.str.endswith("街道"), t.str.endswith("镇"), t.str.endswith("乡")], ["街道", "镇", "乡"], "")
    if field is not None:
        given = field.reset_index(drop=True).fillna("").astype(str).str.strip().to_numpy()
        kind = np.where(given != "", given, kind)
    return pd.Series(np.where(kind == "", pd.NA, kind), index=names.index, dtype="string")


# ------------------------------------------------------------------------ helpers


def assign_by_overlap(geoms, zone_geoms, zone_names) -> pd.Series:
    """For each geometry, the name of the zone it overlaps most (points: the zone containing it).

    Parameters
    ----------
    geoms : GeoSeries or array of geometries
    zone_geoms : GeoSeries or array of geometries, same CRS
    zone_names : array-like

    Returns
    -------
    pandas.Series
        One name per geometry (NA where it meets no zone), in the order of ``geoms``.
    """
    g = np.asarray(getattr(geoms, "values", geoms))
    z = np.asarray(getattr(zone_geoms, "values", zone_geoms))
    names = pd.Series(np.asarray(zone_names, dtype=object))
    tree = shapely.STRtree(z)
    left, right = tree.query(g, predicate="intersects")
    # polygons: area of overlap; points/lines meeting a zone get 0 and keep the first zone
    area = shapely.area(shapely.intersection(g[left], z[right])) if left.size else np.array([])
    best = pd.DataFrame({"i": left, "z": right, "a": area}).sort_values(["i", "a"], ascending=[True, False]).drop_duplicates("i")
    out = pd.Series(pd.NA, index=range(len(g)), dtype="string")
    out.iloc[best["i"].to_numpy()] = names.iloc[best["z"].to_numpy()].astype(str).to_numpy()
    return out


def _keep(out: gpd.GeoDataFrame, gdf: gpd.GeoDataFrame, reason: np.ndarray, report: LayerReport,
          path, what: str) -> gpd.GeoDataFrame:
    """The rows of ``out`` without a reason; the others (rows of ``gdf``) go to ``report``.

    A layer the user gave but none of whose features is usable stops the run: running on
    without it would report a district with no 社区 (or ignore the estates' floor space) as
    if that were the data; the reasons say what to fix.
    """
    reject_rows(report, gdf, reason)
    if len(reason) and (reason != "").all():
        counts = pd.Series(reason).value_counts()
        why = ", ".join(f"{r}: {c}" for r, c in counts.items())
        raise InputError(f"{path}: no usable {what}: all {len(reason)} features rejected ({why}); fix the layer or the field names")
    return out[reason == ""].reset_index(drop=True)


def _estate_communities(estates: gpd.GeoDataFrame, reason: np.ndarray, zones: gpd.GeoDataFrame,
                        report: LayerReport) -> None:
    """Give every estate still without a reason a community of ``zones``, or a reason.

    A named community must be in the layer: a name it does not have is a typo or a
    boundary change the planner has to settle, so it is rejected rather than silently moved
    to whatever polygon the estate happens to lie in. A blank community is filled by
    location (largest overlap); outside every polygon, the estate is rejected.
    """
    todo = reason == ""
    named = todo & estates["community"].notna().to_numpy()
    unknown = named & ~estates["community"].isin(set(zones["name"])).to_numpy()
    reason[unknown] = "community not in the communities layer"
    if unknown.any():
        names = ", ".join(sorted(set(estates.loc[unknown, "community"])))
        report.notes.append(f"{int(unknown.sum())} estate(s) name a community the communities layer does not have: {names[:200]}")
    blank = todo & ~named
    if blank.any():
        joined = assign_by_overlap(estates.geometry.to_numpy()[blank], zones.geometry, zones["name"])
        estates.loc[blank, "community"] = joined.to_numpy()
        outside = np.zeros(len(estates), dtype=bool)
        outside[np.flatnonzero(blank)[joined.isna().to_numpy()]] = True
        reason[outside] = "outside every community polygon"
        report.notes.append(f"community of {int(blank.sum() - outside.sum())} estate(s) by largest overlap")


def _zones(zones, column, target_crs) -> gpd.GeoDataFrame:
    if column not in zones.columns:
        raise InputError(f"zone layer for the spatial join has no {column!r} column; read it with the matching loader")
    if zones.crs is not None and target_crs is not None:
        zones = zones.to_crs(target_crs)
    return zones[zones[column].notna()]


def _polygons(path, layer, target_crs, what: str, *, points_ok: bool = False):
    """Read a boundary layer: CRS required, geometry repaired, reasons per feature."""
    df, meta = read_layer(path, layer=layer, need=f"{what} need a polygon layer (GPKG, SHP, GeoJSON), not a table")
    report = start_report(what, df, meta)
    geom = df.geometry.to_numpy()
    reason = geometry_reason(df)
    missing = reason != ""
    kinds = shapely.get_type_id(geom)
    polygonal = np.isin(kinds, [3, 6])  # Polygon, MultiPolygon
    allowed = polygonal | (np.isin(kinds, [0, 4]) if points_ok else False)
    reason[~missing & ~allowed] = "not a polygon" if not points_ok else "not a polygon or point"
    invalid = (reason == "") & polygonal & ~shapely.is_valid(geom)
    if invalid.any():
        fixed = np.array([_polygonal(g) for g in shapely.make_valid(geom[invalid])], dtype=object)
        geom = geom.copy()
        geom[invalid] = fixed
        lost = np.zeros(len(df), dtype=bool)
        lost[invalid] = shapely.is_empty(fixed) | shapely.is_missing(fixed)
        reason[lost] = "invalid geometry (nothing left after repair)"
        report.notes.append(f"{int(invalid.sum() - lost.sum())} invalid polygon(s) repaired with make_valid (rows {_rows(df, invalid & ~lost)})")
    gdf = gpd.GeoDataFrame(df.drop(columns=df.geometry.name), geometry=geom, crs=meta.crs).to_crs(target_crs)
    return gdf, report, reason


def _polygonal(g):
    """The polygonal part of a repaired geometry (make_valid may add stray lines/points)."""
    if g is None or shapely.get_type_id(g) in (3, 6):
        return g
    parts = shapely.get_parts(g)
    parts = parts[np.isin(shapely.get_type_id(parts), [3, 6])]
    return shapely.union_all(parts) if parts.size else shapely.Polygon()


def _rows(df, mask) -> str:
    rows = df["row"].to_numpy()[mask]
    return ", ".join(map(str, rows[:10])) + (" ..." if rows.size > 10 else "")


def _field(gdf, candidates, key, given, path, report, *, required=False):
    """:func:`columns.find_column`, noting a detected (not configured) column in ``report``."""
    col = find_column(gdf, candidates, key=key, path=path, required=required, given=given)
    if col is not None and given is None:
        report.notes.append(f"{key} detected: {col!r}")
    return col


def _names(gdf, col, reason, label) -> pd.Series:
    """Names; a blank name rejects the feature (a 社区 nobody can name cannot be reported)."""
    s = text_column(gdf, col)
    reason[(reason == "") & s.isna().to_numpy()] = f"missing {label}"
    return s


def _number(gdf, candidates, key, given, path, report) -> np.ndarray:
    return non_negative(gdf, _field(gdf, candidates, key, given, path, report), report=report)


def _year(gdf, given, path, report) -> np.ndarray:
    col = _field(gdf, BUILT_YEAR, "built_year_field", given, path, report)
    if col is None:
        return np.full(len(gdf), np.nan)
    v, _ = to_number(gdf[col], lenient=True)
    wrong = ~np.isnan(v) & ((v < 1800) | (v > 2100))
    if wrong.any():
        report.notes.append(f"{col}: {int(wrong.sum())} value(s) not a year (1800–2100) left unknown (NaN)")
    v[wrong] = np.nan
    return np.floor(v)
