"""The interactive map (folium / Leaflet): facilities, walking circles, communities by their
worst failed check, elderly density, uncovered population and sub-district scorecards.

Design choices, and why:

- **Basemaps and China's coordinate systems.** OSM tiles (default) and Tianditu (天地图,
  CGCS2000 ≈ WGS-84 at map scale) take overlays as they are. Amap (高德) tiles are drawn in
  GCJ-02, so with ``basemap="amap"`` — and only then — every overlay coordinate is shifted
  WGS-84 → GCJ-02 with :func:`carecircle.layers.crs.from_wgs84` (one vectorised
  ``shapely.transform`` per layer). One basemap per map: offering OSM and Amap in the same
  layer control would leave the overlays a few hundred metres off on one of them.
- **Readable without tiles.** An intranet has no tile server, or its own
  (``tiles={url, attribution}``): the walk network the analysis loaded is drawn as a light
  vector basemap (simplified, two MultiLineStrings), and community and failing-小区 names are
  written on the map, so the page reads on a blank background.
- **One colour, one meaning.** Services are cool colours (markers, their circles); what fails is
  warm — a community's worst check, the elderly a service misses (the dots take their check's
  colour), a 小区 short of space (the space check's yellow); the sub-district without its centre
  alone is magenta; network and boundaries are greys; the density ramp is grey too.
- **One site, several services.** A 日间照料中心（含助餐点） is in the day-care layer and in
  the meal layer; its markers sit side by side (:func:`marker_offsets`, a pixel offset in the
  icon's anchor, so they stay apart at every zoom) instead of one hiding the other, and each
  service layer still toggles on its own.
- **What failed, by which standard.** Given the action list, a community's or sub-district's
  popup lists its failed checks with the value against the standard, the standard's text and
  its source document, as the action list states them.
- **Untrusted text.** Facility names and addresses come from user CSVs. folium's
  ``GeoJsonPopup``/``GeoJsonTooltip`` and Leaflet's layer control insert strings as HTML, so
  every text is escaped in Python (``html.escape``) before it reaches the page; the data itself
  is embedded by folium as JSON with ``<``, ``>``, ``&``, ``'`` escaped, so nothing can close the
  ``<script>``.
- **Size.** Features go into one ``L.geoJson`` per layer (not one JS block per marker),
  coordinates are rounded to 1e-6° (0.1 m), polygons are simplified by ``simplify_m`` metres
  before display, facility markers cluster above ``cluster_threshold`` per service, and the
  elderly density is one PNG image (a web-mercator grid of the population points), not
  thousands of squares. Budget: :data:`SIZE_BUDGET_BYTES` for a whole district
  (tests/test_map_html.py measures a synthetic district against it).
- **Assets.** Only Leaflet (and Leaflet.markercluster when clustering) is loaded: markers are
  inline-SVG ``DivIcon`` s and the legend is plain HTML, so jQuery, Bootstrap and Font Awesome
  (folium's defaults) are not needed. ``write_map(..., offline=True)`` inlines those few files
  from the ``folium-offline`` package, which ships folium's CDN files keyed by their URLs.
"""

from __future__ import annotations

import html
import os
import re
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from scipy.spatial import cKDTree

from carecircle.coverage.analysis import covered
from carecircle.layers import crs as ccrs
from carecircle.errors import InputError
from carecircle.maps import labels as L

BASEMAPS = ("osm", "amap", "tianditu")
# Facility markers of one service cluster above this count (a district has a few hundred).
CLUSTER_THRESHOLD = 200
# Display simplification of polygons, metres: below a pixel at zoom 16 (2.4 m/px) × 2.
SIMPLIFY_M = 5.0
# map.html budget for a whole district (~200 communities, ~600 facilities, ~22,500
# population cells, per-facility walking circles): measured 6.5 MiB in tests/test_map_html.py,
# most of it the per-facility circles (hidden until ticked).
SIZE_BUDGET_BYTES = 10 * 2**20
# Density image: at most this many cells along a side (a 100 m grid covers 100 km).
MAX_DENSITY_CELLS = 1500
COORD_DECIMALS = 6
# Markers of one facility's services side by side, this many pixels apart (markers are 18 px).
MARKER_SPACING_PX = 15
POPUP_MAX_WIDTH_PX = 380
# The expanded layer control covers ~300 px on the right: fit the data beside it.
FIT_PADDING_RIGHT_PX = 300

# One colour, one meaning. Services (markers, their circles) are cool colours; what fails
# (communities by check, the elderly a service misses, 小区 short of space) warm ones; the
# network and boundaries greys; the sub-district without its centre alone is magenta.
SERVICE_COLOURS = ["#1565c0", "#6a1b9a", "#00838f", "#5d4037", "#283593", "#455a64"]
SERVICE_SHAPES = ["circle", "square", "triangle", "diamond", "hexagon", "star"]
CHECK_COLOURS = {"": "#81c784", "no_day_care": "#e53935", "no_meal": "#fb8c00", "space": "#fdd835"}
OTHER_CHECK_COLOURS = ["#f06292", "#a1887f", "#ff8a65", "#ffb300", "#bcaaa4", "#ef9a9a"]
NETWORK_COLOURS = ("#9e9e9e", "#757575")  # minor ways, main roads
STREET_COLOUR = "#263238"
NO_CENTRE_COLOUR = "#d81b60"
# Road classes drawn heavier on the vector basemap.
MAIN_ROADS = frozenset({"motorway", "trunk", "primary", "secondary", "tertiary", "motorway_link", "trunk_link",
                        "primary_link", "secondary_link", "tertiary_link"})
# Network display simplification, metres: the basemap is context, not data.
NETWORK_SIMPLIFY_M = 8.0
AMAP_TILES = "https://webrd0{s}.is.autonavi.com/appmaptile?lang=zh_cn&size=1&scale=1&style=8&x={x}&y={y}&z={z}"
TIANDITU_TILES = (
    "https://t{{s}}.tianditu.gov.cn/{layer}_w/wmts?SERVICE=WMTS&REQUEST=GetTile&VERSION=1.0.0"
    "&LAYER={layer}&STYLE=default&TILEMATRIXSET=w&FORMAT=tiles&TILEMATRIX={{z}}&TILEROW={{y}}"
    "&TILECOL={{x}}&tk={token}"
)
TIANDITU_TOKEN_ENV = "TIANDITU_TOKEN"


# ----------------------------------------------------------------------------- geometry


def display_geometries(gdf: gpd.GeoDataFrame, *, basemap: str = "osm", simplify_m: float = 0.0) -> np.ndarray:
    """Geometries of ``gdf`` as drawn on ``basemap``: lon/lat, GCJ-02 for Amap, rounded.

    Parameters
    ----------
    gdf : geopandas.GeoDataFrame
        A layer in the analysis CRS (projected, metres).
    basemap : str
        "osm", "amap" or "tianditu"; only "amap" shifts coordinates to GCJ-02.
    simplify_m : float
        Douglas-Peucker tolerance applied in the metric CRS before reprojection (0: none).

    Returns
    -------
    numpy.ndarray of shapely geometries
        Longitude/latitude coordinates rounded to 1e-6°.
    """
    if gdf.crs is None:
        raise InputError("map: a layer has no CRS; pass layers in the analysis CRS (metres)")
    geoms = gdf.geometry
    if simplify_m > 0 and gdf.crs.is_projected:
        geoms = geoms.simplify(simplify_m, preserve_topology=True)
    lonlat = np.asarray(geoms.to_crs(4326).values, dtype=object)
    gcj = basemap == "amap"

    def to_map(coords: np.ndarray) -> np.ndarray:
        if gcj:
            lon, lat = ccrs.from_wgs84(coords[:, 0], coords[:, 1], "gcj02")
            coords = np.column_stack([lon, lat])
        return np.round(coords, COORD_DECIMALS)

    return shapely.transform(lonlat, to_map)


def _add_geojson(parent, data: dict, **kwargs) -> None:
    """Add a GeoJson layer unless it has no features (folium cannot render an empty one with
    popups, and an empty entry in the layer control only confuses)."""
    import folium

    if data["features"]:
        folium.GeoJson(data, **kwargs).add_to(parent)


def _features(geoms: np.ndarray, props: Mapping[str, list]) -> dict:
    """A GeoJSON FeatureCollection; ``props`` are column lists aligned with ``geoms``."""
    keys = list(props)
    columns = [props[k] for k in keys]
    feats = []
    for i, geom in enumerate(geoms):
        if geom is None or geom.is_empty:
            continue
        feats.append({
            "type": "Feature",
            "id": i,
            "geometry": shapely.geometry.mapping(geom),
            "properties": {k: col[i] for k, col in zip(keys, columns)},
        })
    return {"type": "FeatureCollection", "features": feats}


# ----------------------------------------------------------------------------- text


def _esc(value) -> str:
    return html.escape("" if value is None or (isinstance(value, float) and np.isnan(value)) else str(value))


def _fmt_number(value, unit: str = "", digits: int = 0) -> str:
    if value is None or pd.isna(value):
        return "—"
    if isinstance(value, float) and np.isinf(value):
        return "∞"
    return f"{float(value):,.{digits}f}{unit}"


def _fmt_text(value) -> str:
    """Formatter for text cells: ``_tables`` escapes, so only missing values are handled here."""
    return "—" if value is None or (not isinstance(value, str) and pd.isna(value)) else str(value)


def _fmt_area(value) -> str:
    return _fmt_number(value, " m²")


def _fmt_share(value) -> str:
    return "—" if value is None or pd.isna(value) else f"{float(value):.0%}"


def _fmt_bool(lab: L.Labels) -> Callable:
    return lambda v: "—" if v is None or pd.isna(v) else lab.text("yes" if bool(v) else "no")


def _fmt_distance(lab: L.Labels) -> Callable:
    unreachable = lab.text("unreachable")
    return lambda v: unreachable if v is None or pd.isna(v) or np.isinf(float(v)) else _fmt_number(v, " m")


def fmt_measure(value, unit) -> str:
    """An action-list quantity with its unit: ``0%``, ``448.5 m²``, ``1 处``; "—" when missing.

    Whole numbers and values of 1,000 or more are shown without decimals, others with one.

    Parameters
    ----------
    value : float or None
        An action's ``value``, ``required`` or ``shortfall``; inf shows as "∞".
    unit : str or None
        The action's ``unit``; "%" follows the number directly, any other unit after a space.

    Returns
    -------
    str
    """
    if value is None or pd.isna(value):
        return "—"
    v = float(value)
    if np.isinf(v):
        return "∞"
    digits = 0 if abs(v) >= 1000 or v == round(v) else 1
    unit = "" if unit is None or pd.isna(unit) else str(unit)
    return f"{v:,.{digits}f}{unit}" if unit == "%" else f"{v:,.{digits}f} {unit}".rstrip()


def _tables(df: pd.DataFrame, fields: list[tuple[str, str, Callable]], heading: str | None = None) -> list[str]:
    """One escaped HTML table per row of ``df``: ``fields`` are (column, label, formatter).

    Columns missing from ``df`` are left out, so one field list serves inputs of different
    completeness. Every value and label is escaped here, once.
    """
    present = [(col, label, fmt) for col, label, fmt in fields if col in df.columns]
    cells = [
        [f"<tr><th>{html.escape(label)}</th><td>{html.escape(fmt(v))}</td></tr>" for v in df[col].tolist()]
        for col, label, fmt in present
    ]
    heads = [f"<b>{_esc(v)}</b>" for v in df[heading].tolist()] if heading in df.columns else [""] * len(df)
    rows = zip(*cells) if cells else [()] * len(df)
    return [f'{h}<table class="cc">{"".join(r)}</table>' for h, r in zip(heads, rows)]


def _fields(lab: L.Labels, spec: list[tuple[str, Callable]], own_first: bool = False) -> list[tuple[str, str, Callable]]:
    """(column, label, formatter) triples from (column, formatter) pairs."""
    return [(col, lab.column(col, own_first=own_first), fmt) for col, fmt in spec]


def _check_blocks(actions: pd.DataFrame | None, keys: pd.DataFrame, lab: L.Labels) -> list[str]:
    """Per row of ``keys`` (columns ``street``, ``community``), its failed checks as escaped
    HTML: label, value against the standard, the standard's text and its source.

    ``community`` NaN/"" matches the sub-district's own checks (no community in the action
    list). Empty strings where nothing failed or no action list was given.
    """
    if actions is None or len(actions) == 0 or not {"street", "check_label"} <= set(actions.columns):
        return [""] * len(keys)
    # The contract's columns, NaN where an action list lacks one.
    acts = actions.reindex(columns=["street", "community", "check", "check_label", "value", "required", "shortfall",
                                    "unit", "standard", "source"])
    acts["_street"], acts["_community"] = acts["street"].fillna("").astype(str), acts["community"].fillna("").astype(str)
    items: dict[tuple[str, str], list[str]] = {}
    # One action per failed check: a district has tens to hundreds, not a hot path.
    for _, a in acts.iterrows():
        unit = a["unit"]
        parts = [f'{lab.text("now")} {fmt_measure(a["value"], unit)}']
        if pd.notna(a["required"]):
            parts.append(f'{lab.text("required")} {fmt_measure(a["required"], unit)}')
        if pd.notna(a["shortfall"]) and float(a["shortfall"]) > 0:
            parts.append(f'{lab.text("short")} {fmt_measure(a["shortfall"], unit)}')
        measure = (", " if lab.lang == "en" else "，").join(parts)
        detail = "".join(
            f'<div class="cc-std">{html.escape(lab.titled(lab.text(k), a[k]))}</div>'
            for k in ("standard", "source") if isinstance(a[k], str) and a[k]
        )
        items.setdefault((a["_street"], a["_community"]), []).append(
            f"<li><b>{_esc(check_label(a, lab))}</b><br>{html.escape(measure)}{detail}</li>")
    street = keys["street"].fillna("").astype(str).tolist() if "street" in keys.columns else [""] * len(keys)
    community = keys["community"].fillna("").astype(str).tolist()
    head = html.escape(lab.text("failed_checks"))
    return [f'<div class="cc-checks"><b>{head}</b><ol>{"".join(items[k])}</ol></div>' if k in items else ""
            for k in zip(street, community)]


def check_label(action: pd.Series, lab: L.Labels) -> str:
    """An action's check in ``lab``'s language: the analysis' label of its ``check`` key, else
    the action list's own ``check_label`` (written in the run's language).

    Parameters
    ----------
    action : pandas.Series
        One row of the action list, with ``check`` and ``check_label`` (either may be NaN).
    lab : Labels

    Returns
    -------
    str
        "" when the row names no check at all.
    """
    own = action["check_label"] if isinstance(action["check_label"], str) else ""
    return lab.check(action["check"], own) if isinstance(action["check"], str) and action["check"] else own


# ----------------------------------------------------------------------------- symbols


def _shape_svg(shape: str, colour: str, size: int = 18) -> str:
    """An inline SVG marker: shape and colour tell the services apart without an icon font."""
    h = size / 2
    paths = {
        "circle": f'<circle cx="{h}" cy="{h}" r="{h - 2}"/>',
        "square": f'<rect x="2.5" y="2.5" width="{size - 5}" height="{size - 5}"/>',
        "triangle": f'<polygon points="{h},1.5 {size - 1.5},{size - 2} 1.5,{size - 2}"/>',
        "diamond": f'<polygon points="{h},1 {size - 1},{h} {h},{size - 1} 1,{h}"/>',
        "hexagon": f'<polygon points="5,2 {size - 5},2 {size - 1},{h} {size - 5},{size - 2} 5,{size - 2} 1,{h}"/>',
        "star": f'<polygon points="{h},1 11.2,6.6 17,7 12.5,10.8 14,17 {h},13.6 4,17 5.5,10.8 1,7 6.8,6.6"/>',
    }
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{size}" height="{size}" viewBox="0 0 {size} {size}" '
            f'fill="{colour}" stroke="#ffffff" stroke-width="1.5">{paths[shape]}</svg>')


def _service_styles(services: Mapping, facilities: pd.DataFrame) -> dict[str, tuple[str, str]]:
    """Colour and shape per service; the services some facility offers come first, so that
    up to six of them on one map never share a symbol however long the profile's list is."""
    offered = [k for k in services if k in facilities.columns and facilities[k].fillna(False).astype(bool).any()]
    keys = offered + [k for k in services if k not in offered]
    return {k: (SERVICE_COLOURS[i % len(SERVICE_COLOURS)], SERVICE_SHAPES[i % len(SERVICE_SHAPES)]) for i, k in enumerate(keys)}


def check_styles(worst: pd.Series, lab: L.Labels) -> tuple[pd.Series, list[tuple[str, str]]]:
    """Colours of communities by their worst failed check, and the legend of the checks present.

    The contract's checks have fixed colours; any other check takes the next colour of a
    palette in key order, so the map and the report colour a check alike.

    Parameters
    ----------
    worst : pandas.Series of str
        ``worst_check`` per community, "" where all checks pass.
    lab : Labels
        Names the checks in the legend.

    Returns
    -------
    colours : pandas.Series of str
        Fill colour per community, aligned with ``worst``.
    legend : list of (label, colour)
        One row per check present, compliant first, in colour-table order.
    """
    present = set(worst)
    colours = dict(CHECK_COLOURS)
    extra = sorted(present - set(colours))
    colours.update({c: OTHER_CHECK_COLOURS[i % len(OTHER_CHECK_COLOURS)] for i, c in enumerate(extra)})
    return worst.map(colours), [(lab.check(c), colour) for c, colour in colours.items() if c in present]


def marker_offsets(offered: np.ndarray, spacing: float = MARKER_SPACING_PX) -> np.ndarray:
    """Horizontal pixel offset of each facility's marker in each service layer.

    A facility offering several services (日间照料中心（含助餐点）) gets one marker per service
    layer; they sit side by side, centred on the facility, in the order of the services, so
    none hides another and each layer still toggles on its own. A facility with one service
    sits exactly on its point.

    Parameters
    ----------
    offered : numpy.ndarray of bool, shape (facilities, services)
    spacing : float
        Pixels between neighbouring markers' centres.

    Returns
    -------
    numpy.ndarray of float, same shape
        Offset in pixels (east positive); meaningful where ``offered`` is True.
    """
    offered = np.asarray(offered, dtype=bool)
    slot = np.cumsum(offered, axis=1) - 1
    count = offered.sum(axis=1, keepdims=True)
    return (slot - (count - 1) / 2) * spacing


# ----------------------------------------------------------------------------- layers


def _require(gdf: pd.DataFrame, layer: str, columns: list[str]) -> None:
    missing = [c for c in columns if c not in gdf.columns]
    if missing:
        raise InputError(f"map: {layer}: missing column(s) {', '.join(missing)}; pass the layer as the analysis stage writes it")


def tianditu_key(token: str | None = None) -> str:
    """The Tianditu browser key: ``token``, else ``$TIANDITU_TOKEN``.

    Tianditu serves tiles only with a key (``tk=``) of type 浏览器端 (browser), bound to the
    domains the map is opened from; the key ends up in map.html as in every Tianditu web map.

    Raises
    ------
    InputError
        When there is none, or it is not the 32 hexadecimal characters Tianditu issues.
    """
    key = (token or os.environ.get(TIANDITU_TOKEN_ENV, "")).strip()
    if not key:
        raise InputError(f"map: basemap tianditu needs a browser key (浏览器端 key from console.tianditu.gov.cn): set "
                         f"{TIANDITU_TOKEN_ENV} or output.tianditu_key; it is written into map.html")
    if not re.fullmatch(r"[0-9a-fA-F]{32}", key):
        raise InputError(f"map: tianditu key {key[:6]}…: a Tianditu key is 32 hexadecimal characters; "
                         f"copy the 浏览器端 key from console.tianditu.gov.cn into {TIANDITU_TOKEN_ENV} or output.tianditu_key")
    return key


def check_basemap(basemap: str, *, tianditu_token: str | None = None, tiles: Mapping | None = None) -> None:
    """Check the basemap choice before any analysis runs (a missing key fails in a second, not after it).

    Parameters
    ----------
    basemap : {"osm", "amap", "tianditu"}
    tianditu_token : str, optional
    tiles : mapping, optional
        An intranet tile server ``{url, attribution}``; it replaces ``basemap``'s tiles.

    Raises
    ------
    InputError
    """
    if basemap not in BASEMAPS:
        raise InputError(f"map: basemap {basemap!r} is not one of {', '.join(BASEMAPS)}")
    if basemap == "tianditu" and not tiles:
        tianditu_key(tianditu_token)


def _basemap(m: folium.Map, basemap: str, lang: str, tianditu_token: str | None, tiles: Mapping | None = None) -> None:
    import folium
    if tiles:
        # An intranet tile server: the overlays are drawn as they are (WGS-84 unless basemap="amap").
        folium.TileLayer(tiles["url"], attr=html.escape(str(tiles["attribution"])), name=html.escape(str(tiles.get("name") or "底图")),
                         max_zoom=int(tiles.get("max_zoom") or 19)).add_to(m)
    elif basemap == "osm":
        folium.TileLayer("OpenStreetMap", name="OpenStreetMap", max_zoom=19).add_to(m)
    elif basemap == "amap":
        folium.TileLayer(AMAP_TILES, attr="&copy; 高德地图 AutoNavi", name="高德地图" if lang != "en" else "Amap",
                         subdomains="1234", max_zoom=18).add_to(m)
    else:
        token = tianditu_key(tianditu_token)
        attr = "&copy; 天地图 Tianditu"
        folium.TileLayer(TIANDITU_TILES.format(layer="vec", token=token), attr=attr,
                         name="天地图" if lang != "en" else "Tianditu", subdomains="01234567", max_zoom=18).add_to(m)
        # The annotation layer holds the place names; it belongs to the basemap, not the overlays.
        folium.TileLayer(TIANDITU_TILES.format(layer="cva" if lang != "en" else "eva", token=token), attr=attr,
                         name="天地图注记", subdomains="01234567", max_zoom=18, overlay=True, control=False).add_to(m)


def _popup() -> folium.GeoJsonPopup:
    import folium

    return folium.GeoJsonPopup(["_popup"], labels=False, max_width=POPUP_MAX_WIDTH_PX)


def _facility_layers(m, facilities, lab, styles, basemap, cluster_threshold) -> tuple[list[tuple[str, str, str]], bool]:
    """One layer per service; returns legend rows (label, colour, shape) and whether some
    facility offers several services (its markers then sit side by side)."""
    import folium
    from folium.plugins import MarkerCluster

    _require(facilities, "facilities", ["name"])
    fields = _fields(lab, [("type", _fmt_text), ("floor_area_m2", _fmt_area), ("beds", _fmt_number), ("address", _fmt_text)],
                     own_first=True)
    present = [k for k in lab.services if k in facilities.columns]
    offered = (facilities[present].fillna(False).astype(bool) if present else pd.DataFrame(index=facilities.index)).to_numpy()
    # "日间照料中心、助餐点": the services a facility offers, built column by column.
    sep = ", " if lab.lang == "en" else "、"
    listed = np.full(len(facilities), "", dtype=object)
    for j, k in enumerate(present):
        listed = listed + np.where(offered[:, j], lab.service(k) + sep, "")
    table = facilities.assign(_services=pd.Series(listed, index=facilities.index).str.removesuffix(sep))
    fields.append(("_services", lab.text("services"), _fmt_text))
    popups = np.array(_tables(table, fields, heading="name"), dtype=object)
    tips = np.array([_esc(v) for v in facilities["name"].tolist()], dtype=object)
    geoms = display_geometries(facilities, basemap=basemap)
    offsets = marker_offsets(offered)
    legend = []
    for j, key in enumerate(present):
        mask = offered[:, j]
        if not mask.any():
            continue  # a service nobody offers gets no (empty) layer
        colour, shape = styles[key]
        label = lab.service(key)
        name = html.escape(lab.bracketed(label, str(int(mask.sum()))))
        if mask.sum() > cluster_threshold:
            group = MarkerCluster(name=name, options={"disableClusteringAtZoom": 17, "chunkedLoading": True}).add_to(m)
        else:
            group = folium.FeatureGroup(name=name).add_to(m)
        # One GeoJson per offset: the icon's anchor carries the offset for all its markers.
        for dx in np.unique(offsets[mask, j]):
            sel = mask & (offsets[:, j] == dx)
            data = _features(geoms[sel], {"_popup": popups[sel].tolist(), "_tip": tips[sel].tolist()})
            icon = folium.DivIcon(html=_shape_svg(shape, colour), icon_size=(18, 18), icon_anchor=(9 - float(dx), 9),
                                  class_name="cc-icon")
            # A folium element has one parent: every GeoJson gets its own popup and tooltip.
            _add_geojson(group, data, marker=folium.Marker(icon=icon), control=False, popup=_popup(),
                         tooltip=folium.GeoJsonTooltip(["_tip"], labels=False))
        legend.append((label, colour, shape))
    return legend, bool((offered.sum(axis=1) > 1).any())


SITE_COLOUR = "#d6336c"


def _sites_layer(m, sites, lab, basemap) -> None:
    """建议选址: one numbered star per recommended site, its effect in the popup."""
    import folium
    from carecircle.maps.sites import SITE_LABELS

    i = 0 if lab.lang == "zh" else 1
    spec = [("rank", _fmt_number), ("service", lambda v: lab.service(v)), ("elderly_new", _fmt_number),
            ("people_new", _fmt_number), ("communities_new", _fmt_text), ("community", _fmt_text),
            ("street", _fmt_text), ("nearest_facility", _fmt_text), ("nearest_facility_m", lambda v: _fmt_number(v, " m"))]
    popups = _tables(sites, [(c, SITE_LABELS[c][i], f) for c, f in spec], heading="name")
    tips = [f"{int(r)}. {_esc(n)}" for r, n in zip(sites["rank"].tolist(), sites["name"].tolist())]
    group = folium.FeatureGroup(name=html.escape("建议选址" if lab.lang == "zh" else "Recommended sites")).add_to(m)
    icon = folium.DivIcon(html=_shape_svg("star", SITE_COLOUR, 22), icon_size=(22, 22), icon_anchor=(11, 11), class_name="cc-icon")
    _add_geojson(group, _features(display_geometries(sites, basemap=basemap), {"_popup": popups, "_tip": tips}),
                 marker=folium.Marker(icon=icon), popup=_popup(), tooltip=folium.GeoJsonTooltip(["_tip"], labels=False))


def _isochrone_layers(m, isochrones, facilities, lab, styles, basemap, simplify_m) -> list[tuple[str, str]]:
    """Walking-circle layers; returns legend rows (label, colour) of the dissolved circles."""
    import folium

    _require(isochrones, "isochrones", ["service", "kind", "cutoff_m"])
    names = facilities.set_index("fid")["name"] if {"fid", "name"} <= set(facilities.columns) else pd.Series(dtype=object)
    minutes = isochrones["minutes"] if "minutes" in isochrones.columns else pd.Series(np.nan, index=isochrones.index)
    unit = lab.text("minutes")
    tip_time = [
        f"{_fmt_number(mi)} {unit} / {_fmt_number(c, ' m')}" if pd.notna(mi) else _fmt_number(c, " m")
        for mi, c in zip(minutes.tolist(), isochrones["cutoff_m"].tolist())
    ]
    if "facility_fid" in isochrones.columns:
        fac_names = isochrones["facility_fid"].map(names)
        tips = [f"{_esc(n)} · {t}" if isinstance(n, str) else t for n, t in zip(fac_names.tolist(), tip_time)]
    else:
        tips = tip_time
    tips = np.array(tips, dtype=object)
    # Larger circles first so the smaller ones stay clickable on top.
    order = np.argsort(-isochrones["cutoff_m"].to_numpy(dtype=float), kind="stable")
    geoms = display_geometries(isochrones, basemap=basemap, simplify_m=simplify_m)
    legend = []
    # Light fills: the communities' colours underneath are the map's message.
    for kind, opacity, show in (("dissolved", 0.04, True), ("facility", 0.04, False), ("catchment", 0.12, False)):
        for key in lab.services:
            sel = order[((isochrones["kind"] == kind) & (isochrones["service"] == key)).to_numpy()[order]]
            if len(sel) == 0:
                continue
            colour = styles[key][0]
            name = html.escape(lab.titled(lab.text("isochrone_" + kind), lab.service(key)))
            style = {"color": colour, "weight": 1.5 if kind == "dissolved" else 1, "fillColor": colour, "fillOpacity": opacity}
            _add_geojson(m, _features(geoms[sel], {"_tip": tips[sel].tolist()}), name=name, show=show,
                         style_function=lambda _f, s=style: s,
                         tooltip=folium.GeoJsonTooltip(["_tip"], labels=False))
            if kind == "dissolved":
                widest = minutes.iloc[sel[0]]
                circle = (lab.text("walking_circle", minutes=f"{widest:g}") if pd.notna(widest)
                          else lab.text("walking_circle_m", metres=f"{isochrones['cutoff_m'].iloc[sel[0]]:,.0f}"))
                legend.append((lab.titled(circle, lab.service(key)), colour))
    return legend


def _community_layer(m, communities, actions, lab, basemap, simplify_m) -> list[tuple[str, str]]:
    import folium

    _require(communities, "communities", ["name", "worst_check"])
    worst = communities["worst_check"].fillna("").astype(str)
    fill, legend = check_styles(worst, lab)
    circle = [k for k in lab.services if f"elderly_covered_share_{k}" in communities.columns]
    spec = [("street", _fmt_text), ("households", _fmt_number), ("elderly", _fmt_number)]
    for key in circle:
        spec += [(f"elderly_covered_share_{key}", _fmt_share), (f"nearest_{key}", _fmt_text),
                 (f"nearest_{key}_m", _fmt_distance(lab))]
    spec += [("space_required_m2", _fmt_area), ("space_provided_m2", _fmt_area), ("space_shortfall_m2", _fmt_area)]
    tables = _tables(communities, _fields(lab, spec), heading="name")
    checks = _check_blocks(actions, communities.rename(columns={"name": "community"}), lab)
    # Without an action list, the flags column (Chinese) or the worst check's label says what failed.
    fallback = (communities["flags"].fillna("").astype(str) if "flags" in communities.columns and lab.lang != "en"
                else worst.map(lambda c: lab.check(c) if c else ""))
    compliant = html.escape(lab.text("compliant"))
    popups = [t + (c or (f'<div class="cc-checks"><b>{html.escape(lab.column("flags"))}</b>: {_esc(f)}</div>' if f
                         else f'<div class="cc-ok">{compliant}</div>'))
              for t, c, f in zip(tables, checks, fallback.tolist())]
    tips = [f"{_esc(n)} · {html.escape(lab.check(c))}" for n, c in zip(communities["name"].tolist(), worst.tolist())]
    geoms = display_geometries(communities, basemap=basemap, simplify_m=simplify_m)
    data = _features(geoms, {"_popup": popups, "_tip": tips, "_colour": fill.tolist(),
                             "_ok": (worst == "").tolist()})
    _add_geojson(
        m, data, name=html.escape(lab.text("communities_by_check")),
        # Compliant communities paler than failing ones: the eye goes to what needs action.
        style_function=lambda f: {"color": "#555555", "weight": 1, "fillColor": f["properties"]["_colour"],
                                  "fillOpacity": 0.3 if f["properties"]["_ok"] else 0.6},
        popup=_popup(), tooltip=folium.GeoJsonTooltip(["_tip"], labels=False),
    )
    return legend


def _density_layer(m, population, pts, lab) -> tuple[str, float, list[str]] | None:
    """Elderly (or people) per hectare as one PNG on a web-mercator grid; legend (label, max, colours).

    ``pts`` are the population points as drawn (:func:`display_geometries`).
    """
    import folium
    from matplotlib import colormaps

    weight_col = "elderly" if "elderly" in population.columns and population["elderly"].fillna(0).sum() > 0 else "people"
    if weight_col not in population.columns:
        return None
    weights = population[weight_col].fillna(0).to_numpy(dtype=float)
    lon, lat = shapely.get_x(pts), shapely.get_y(pts)
    # The cell size is the spacing of the population points (a raster's cell, ~100 m), so the
    # image shows the grid the analysis used rather than inventing a finer one.
    metric = np.column_stack([shapely.get_x(population.geometry.values), shapely.get_y(population.geometry.values)])
    if len(metric) > 1 and population.crs.is_projected:
        d, _ = cKDTree(metric).query(metric, k=2)
        cell_m = float(np.clip(np.median(d[:, 1]), 20.0, 1000.0))
    else:
        cell_m = 100.0
    r = 6378137.0
    x = np.radians(lon) * r
    y = np.log(np.tan(np.pi / 4 + np.radians(lat) / 2)) * r
    cell = cell_m / np.cos(np.radians(np.mean(lat)))
    span = max(x.max() - x.min(), y.max() - y.min())
    cell = max(cell, span / MAX_DENSITY_CELLS)
    x0, y0 = x.min() - cell / 2, y.min() - cell / 2
    nx = int(np.floor((x.max() - x0) / cell)) + 1
    ny = int(np.floor((y.max() - y0) / cell)) + 1
    grid, _, _ = np.histogram2d(y, x, bins=[ny, nx], range=[[y0, y0 + ny * cell], [x0, x0 + nx * cell]], weights=weights)
    per_ha = grid / (cell_m * cell_m / 1e4)
    vmax = float(np.quantile(per_ha[per_ha > 0], 0.98)) if (per_ha > 0).any() else 1.0
    cmap = colormaps["Greys"]  # warm colours mean "fails" on this map
    rgba = (cmap(np.clip(per_ha / vmax, 0, 1)) * 255).astype(np.uint8)
    rgba[..., 3] = np.where(per_ha > 0, 170, 0)
    rgba = rgba[::-1]  # row 0 is the northern edge of the image
    lon_w, lon_e = np.degrees(x0 / r), np.degrees((x0 + nx * cell) / r)
    lat_s = np.degrees(2 * np.arctan(np.exp(y0 / r)) - np.pi / 2)
    lat_n = np.degrees(2 * np.arctan(np.exp((y0 + ny * cell) / r)) - np.pi / 2)
    label = lab.text("elderly_density" if weight_col == "elderly" else "population_density")
    folium.raster_layers.ImageOverlay(rgba, bounds=[[lat_s, lon_w], [lat_n, lon_e]], name=html.escape(label),
                                      show=False, mercator_project=False, pixelated=True).add_to(m)
    ramp = [_hex(cmap(v)) for v in np.linspace(0, 1, 6)]
    return label, vmax, ramp


def _hex(rgba) -> str:
    return "#{:02x}{:02x}{:02x}".format(*(int(round(c * 255)) for c in rgba[:3]))


def _uncovered_layers(m, population, geoms, lab, cutoff_m) -> list[tuple[str, str]]:
    """Per service, the population points outside its circle; ``geoms`` are the points as drawn.

    Whether a point is covered is read from the analysis' ``covered_<service>`` column
    (:func:`carecircle.coverage.analysis.covered`), never re-tested here. The dots take the colour
    of the check they fail ("no day care within the circle" red), so a colour keeps one meaning.
    Returns legend rows (label, colour).
    """
    import folium
    weight_col = "elderly" if "elderly" in population.columns else "people"
    weight = population[weight_col].fillna(0).to_numpy(dtype=float) if weight_col in population.columns else np.ones(len(population))
    who, fmt_dist = html.escape(lab.column(weight_col, own_first=True)), _fmt_distance(lab)
    legend = []
    for i, key in enumerate(lab.services):
        col = f"dist_{key}_m"
        if f"covered_{key}" not in population.columns and col not in population.columns:
            continue
        mask = ~covered(population, key, cutoff_m) & (weight > 0)
        if not mask.any():
            continue
        colour = CHECK_COLOURS.get(f"no_{key}", OTHER_CHECK_COLOURS[i % len(OTHER_CHECK_COLOURS)])
        # Labels once per service; only the numbers vary from point to point.
        if col in population.columns:
            to = html.escape(lab.column(col))
            tips = [f"{who} {_fmt_number(w, digits=0)} · {to} {html.escape(fmt_dist(d))}"
                    for w, d in zip(weight[mask], population[col].to_numpy(dtype=float)[mask])]
        else:
            tips = [f"{who} {_fmt_number(w, digits=0)}" for w in weight[mask]]
        base = lab.text("uncovered" if weight_col == "elderly" else "uncovered_people")
        label = lab.titled(base, lab.service(key))
        marker = folium.CircleMarker(radius=3, color="#424242", weight=0.5, fill=True, fill_color=colour, fill_opacity=0.9)
        # On by default: who is missed is the map's first message.
        _add_geojson(m, _features(geoms[mask], {"_tip": tips}), name=html.escape(label), show=True, marker=marker,
                     tooltip=folium.GeoJsonTooltip(["_tip"], labels=False))
        legend.append((label, colour))
    return legend


def _network_layer(m, edges: gpd.GeoDataFrame, lab, basemap: str) -> bool:
    """The walk network as a light vector basemap (two MultiLineStrings: main roads, other ways).

    An intranet map without tiles still shows its streets. Not interactive: clicks go to the
    layers above. Returns whether anything was drawn.
    """
    import folium
    if edges is None or len(edges) == 0:
        return False
    highway = edges["highway"].fillna("").astype(str).to_numpy() if "highway" in edges.columns else np.full(len(edges), "")
    main = np.isin(highway, list(MAIN_ROADS))
    geoms = display_geometries(edges[["geometry"]], basemap=basemap, simplify_m=NETWORK_SIMPLIFY_M)
    group = folium.FeatureGroup(name=html.escape(lab.text("network")), show=True).add_to(m)
    for sel, colour, weight in ((~main, NETWORK_COLOURS[0], 1.0), (main, NETWORK_COLOURS[1], 2.2)):
        lines = [g for g in geoms[sel] if g is not None and not g.is_empty]
        if not lines:
            continue
        merged = shapely.multilinestrings(lines) if all(g.geom_type == "LineString" for g in lines) else shapely.union_all(lines)
        _add_geojson(group, _features(np.array([merged], dtype=object), {}), control=False, interactive=False,
                     style_function=lambda _f, c=colour, w=weight: {"color": c, "weight": w, "opacity": 0.9})
    return True


def _name_layer(m, gdf: gpd.GeoDataFrame, names: list, layer_name: str, basemap: str, css_class: str) -> None:
    """Names written on the map (a permanent tooltip per feature at its polygon's inner point), one toggle.

    Bound feature by feature: a tooltip bound to the whole layer would show only once.
    """
    import folium
    if len(gdf) == 0:
        return
    pts = gpd.GeoDataFrame(geometry=gdf.geometry.representative_point().values, crs=gdf.crs)
    marker = folium.CircleMarker(radius=1, opacity=0, fill_opacity=0, interactive=False)
    # ``_name`` is escaped in Python; the class is ours.
    bind = folium.JsCode("function(f, layer){layer.bindTooltip(f.properties._name, "
                         f"{{permanent: true, direction: 'center', className: '{css_class}', opacity: 1}});}}")
    _add_geojson(m, _features(display_geometries(pts, basemap=basemap), {"_name": [_esc(n) for n in names]}),
                 name=html.escape(layer_name), marker=marker, on_each_feature=bind)


def _estate_layer(m, estates: gpd.GeoDataFrame, lab, basemap, simplify_m) -> int:
    """小区 outlines; those short of floor space on their own filled in the space check's colour and named.

    Returns the number of failing 小区 drawn.
    """
    import folium
    if estates is None or len(estates) == 0 or "geometry" not in estates.columns:
        return 0
    est = estates[estates.geometry.notna() & ~estates.geometry.is_empty]
    if len(est) == 0:
        return 0
    failing = est["flag_space"].fillna(False).astype(bool).to_numpy() if "flag_space" in est.columns else np.zeros(len(est), bool)
    spec = [("community", _fmt_text), ("street", _fmt_text), ("households", _fmt_number), ("built_year", _fmt_number),
            ("space_required_m2", _fmt_area), ("space_provided_m2", _fmt_area), ("space_shortfall_m2", _fmt_area)]
    popups = _tables(est, _fields(lab, spec), heading="estate")
    names = est["estate"].astype(str).tolist() if "estate" in est.columns else [""] * len(est)
    short = est["space_shortfall_m2"].to_numpy(dtype=float) if "space_shortfall_m2" in est.columns else np.full(len(est), np.nan)
    tips = [f"{_esc(n)} · {html.escape(lab.text('estate_short', m2=_fmt_number(v)))}" if f else _esc(n)
            for n, f, v in zip(names, failing, short)]
    geoms = display_geometries(est, basemap=basemap, simplify_m=simplify_m)
    space = CHECK_COLOURS["space"]
    props = {"_popup": popups, "_tip": tips}
    # Those short of space shown when the map opens; every 小区 (context, a district has
    # hundreds) one tick away.
    for sel, name, show, style in (
        (~failing, lab.text("estates"), False, {"color": "#757575", "weight": 0.8, "fill": False, "dashArray": "2 2"}),
        (failing, lab.text("estates_failing", n=int(failing.sum())), True,
         {"color": "#f57f17", "weight": 2, "fillColor": space, "fillOpacity": 0.75}),
    ):
        if sel.any():
            _add_geojson(m, _features(geoms[sel], {k: np.asarray(v, dtype=object)[sel].tolist() for k, v in props.items()}),
                         name=html.escape(name), show=show, style_function=lambda _f, st=style: st,
                         popup=_popup(), tooltip=folium.GeoJsonTooltip(["_tip"], labels=False))
    if failing.any():
        _name_layer(m, est[failing], [t for t, f in zip(names, failing) if f], lab.text("estate_names"), basemap, "cc-name cc-name-estate")
    return int(failing.sum())


def _street_layer(m, streets, actions, lab, basemap, simplify_m) -> bool:
    """Sub-district outlines and scorecards; returns whether one lacks its centre."""
    import folium
    _require(streets, "streets", ["street"])
    spec = [("rank", _fmt_number), ("score", lambda v: _fmt_number(v, digits=1)), ("communities", _fmt_number),
            ("communities_flagged", _fmt_number)]
    for key in lab.services:
        spec += [(f"communities_covered_{key}", _fmt_number), (f"elderly_covered_share_{key}", _fmt_share)]
    spec += [("has_street_centre", _fmt_bool(lab)), ("space_shortfall_m2", _fmt_area)]
    tables = _tables(streets, _fields(lab, spec), heading="street")
    # The sub-district's own failed checks (no community): the standard and its source with them.
    checks = _check_blocks(actions, streets[["street"]].assign(community=""), lab)
    popups = [t + c for t, c in zip(tables, checks)]
    # A sub-district without its comprehensive centre (街道综合养老服务中心) is outlined in its own colour.
    no_centre = (~streets["has_street_centre"].fillna(True).astype(bool)).tolist() if "has_street_centre" in streets.columns \
        else [False] * len(streets)
    warn = html.escape(lab.text("no_street_centre"))
    tips = [f"{_esc(s)} · {warn}" if nc else _esc(s) for s, nc in zip(streets["street"].tolist(), no_centre)]
    geoms = display_geometries(streets, basemap=basemap, simplify_m=simplify_m)
    _add_geojson(
        m, _features(geoms, {"_popup": popups, "_tip": tips, "_nc": no_centre}), name=html.escape(lab.text("streets")),
        style_function=lambda f: ({"color": NO_CENTRE_COLOUR, "weight": 4, "dashArray": "10 5", "fill": False}
                                  if f["properties"]["_nc"] else
                                  {"color": STREET_COLOUR, "weight": 3, "dashArray": "8 4", "fill": False}),
        popup=_popup(), tooltip=folium.GeoJsonTooltip(["_tip"], labels=False),
    )
    return any(no_centre)


# 供需比 classes (coverage.capacity.CLASSES): red short, blue surplus, pale balanced.
BALANCE_COLOURS = {"under": "#d7301f", "balanced": "#fdd49e", "over": "#2b8cbe", "": "#bdbdbd"}


def _balance_layers(m, streets, lab, basemap, simplify_m) -> list[tuple[str, str]]:
    """One choropleth per service of the sub-districts' 供需比 class (hidden until ticked)."""
    import folium
    keys = [k for k in lab.services if f"supply_demand_class_{k}" in streets.columns]
    if not keys:
        return []
    geoms = display_geometries(streets, basemap=basemap, simplify_m=simplify_m)
    for key in keys:
        cls = streets[f"supply_demand_class_{key}"].fillna("").astype(str)
        value = streets[f"supply_per_1000_elderly_{key}"].tolist()
        words = cls.map(lambda c: lab.text(f"balance_{c or 'none'}"))
        tips = [f"{_esc(n)} · {html.escape(w)} · {html.escape(lab.column(f'supply_per_1000_elderly_{key}'))} {_fmt_number(v, digits=1)}"
                for n, w, v in zip(streets["street"].tolist(), words.tolist(), value)]
        _add_geojson(
            m, _features(geoms, {"_tip": tips, "_colour": cls.map(BALANCE_COLOURS).tolist()}),
            name=html.escape(lab.text("balance_layer", service=lab.service(key))), show=False,
            style_function=lambda f: {"color": "#555555", "weight": 1, "fillColor": f["properties"]["_colour"], "fillOpacity": 0.6},
            tooltip=folium.GeoJsonTooltip(["_tip"], labels=False),
        )
    return [(lab.titled(lab.text("balance"), lab.text(f"balance_{c}")), BALANCE_COLOURS[c]) for c in ("under", "balanced", "over")]


def _legend_html(lab, service_rows, shared, check_rows, circle_rows, street_row, uncovered_rows, density, *,
                 network: bool = False, no_centre: bool = False, estates_failing: int = 0) -> str:
    """The legend: one row per layer drawn, in the colours the layers use."""
    parts = [f'<div class="cc-legend"><b>{html.escape(lab.text("legend"))}</b>']
    for label, colour, shape in service_rows:
        parts.append(f'<div>{_shape_svg(shape, colour, 14)} {html.escape(label)}</div>')
    if shared:
        parts.append(f'<div class="cc-note">{html.escape(lab.text("shared_site"))}</div>')
    for label, colour in uncovered_rows:
        parts.append(f'<div><span class="cc-dot" style="background:{colour}"></span>{html.escape(label)}</div>')
    for label, colour in check_rows:
        parts.append(f'<div><span class="cc-sw" style="background:{colour}"></span>{html.escape(label)}</div>')
    if estates_failing:
        parts.append(f'<div><span class="cc-sw" style="background:{CHECK_COLOURS["space"]};border:2px solid #f57f17"></span>'
                     f'{html.escape(lab.text("estates_failing", n=estates_failing))}</div>')
    for label, colour in circle_rows:
        parts.append(f'<div><span class="cc-sw" style="background:{colour}22;border-color:{colour}"></span>{html.escape(label)}</div>')
    if street_row:
        parts.append(f'<div><span class="cc-line"></span>{html.escape(lab.text("street_boundary"))}</div>')
    if no_centre:
        parts.append(f'<div><span class="cc-line" style="border-top-color:{NO_CENTRE_COLOUR};border-top-width:4px"></span>'
                     f'{html.escape(lab.text("no_street_centre"))}</div>')
    if network:
        parts.append(f'<div><span class="cc-line" style="border-top:2px solid {NETWORK_COLOURS[1]}"></span>'
                     f'{html.escape(lab.text("network"))}</div>')
    if density is not None:
        label, vmax, ramp = density
        parts.append(f'<div>{html.escape(label)}<div class="cc-ramp" style="background:linear-gradient(to right,{",".join(ramp)})">'
                     f'</div><span>0</span><span style="float:right">≥ {vmax:,.0f}</span></div>')
    parts.append("</div>")
    return "".join(parts)


_CSS = """
<style>
.cc-icon{background:none;border:none}
.cc-legend{position:absolute;bottom:24px;right:10px;z-index:1000;background:rgba(255,255,255,.92);padding:6px 10px;
 border-radius:4px;box-shadow:0 1px 4px rgba(0,0,0,.3);font:12px/1.5 "Noto Sans CJK SC","Microsoft YaHei",sans-serif;
 width:max-content;max-width:280px;max-height:calc(100vh - 380px);min-height:80px;overflow-y:auto}
.cc-legend svg{vertical-align:middle}
.cc-sw{display:inline-block;width:14px;height:10px;margin-right:4px;border:1px solid #555;vertical-align:middle}
.cc-dot{display:inline-block;width:8px;height:8px;border-radius:4px;margin:0 6px 0 3px;vertical-align:middle}
.cc-line{display:inline-block;width:16px;height:0;border-top:3px dashed #263238;margin-right:4px;vertical-align:middle}
.cc-ramp{height:8px;width:160px;border:1px solid #999}
.cc-note{color:#666;font-size:11px;margin:0 0 2px 18px}
.cc-title{position:absolute;top:10px;left:50%;transform:translateX(-50%);z-index:1000;background:rgba(255,255,255,.92);
 padding:4px 12px;border-radius:4px;box-shadow:0 1px 4px rgba(0,0,0,.3);font:bold 16px "Noto Sans CJK SC","Microsoft YaHei",sans-serif}
.leaflet-control-layers{font:12px/1.4 "Noto Sans CJK SC","Microsoft YaHei",sans-serif}
.leaflet-container .leaflet-popup-content{font:12px/1.45 "Noto Sans CJK SC","Microsoft YaHei",sans-serif}
.leaflet-popup-content b{font-size:13px}
table.cc{font-size:12px;border-collapse:collapse;width:100%}
table.cc th{text-align:left;padding:1px 10px 1px 0;font-weight:normal;color:#555;white-space:nowrap}
table.cc td{text-align:right;padding:1px 0}
.cc-checks{margin-top:6px;border-top:1px solid #ddd;padding-top:4px;font-size:12px}
.cc-checks ol{margin:2px 0 0;padding-left:18px}
.cc-std{color:#666;font-size:11px}
.cc-ok{margin-top:6px;color:#2e7d32}
.leaflet-tooltip.cc-name{background:transparent;border:none;box-shadow:none;padding:0;color:#212121;font:12px
 "Noto Sans CJK SC","Microsoft YaHei",sans-serif;text-shadow:0 0 3px #fff,0 0 3px #fff,0 0 2px #fff}
.leaflet-tooltip.cc-name:before{display:none}
.leaflet-tooltip.cc-name-estate{color:#bf360c;font-weight:bold;font-size:11px}
</style>
"""


def map_title(place: str, *, lang: str = "zh", minutes: float | None = None, distance_m: float | None = None) -> str:
    """The map's heading: "无锡市15分钟养老服务圈" / "无锡市 15-minute elderly-care circles".

    Parameters
    ----------
    place : str
        The profile's place (``profile.title``).
    lang : {"zh", "en"}
    minutes, distance_m : float, optional
        The walking circle as time (preferred) or as a network distance; one of them is needed.

    Returns
    -------
    str
        Plain text (``build_map`` escapes it).
    """
    if minutes is not None:
        circle = f"{minutes:g}分钟" if lang != "en" else f"{minutes:g}-minute"
    else:
        circle = f"{distance_m:,.0f}米" if lang != "en" else f"{distance_m:,.0f} m"
    return L.text("map_title", lang, place=place, circle=circle)


def build_map(
    *,
    facilities: gpd.GeoDataFrame,
    communities: gpd.GeoDataFrame,
    streets: gpd.GeoDataFrame | None = None,
    isochrones: gpd.GeoDataFrame | None = None,
    population: gpd.GeoDataFrame | None = None,
    actions: pd.DataFrame | None = None,
    services: Mapping[str, Mapping[str, str]],
    cutoff_m: float,
    labels: Mapping[str, tuple[str, str]] | None = None,
    lang: str = "zh",
    basemap: str = "osm",
    title: str | None = None,
    tianditu_token: str | None = None,
    network: gpd.GeoDataFrame | None = None,
    estates: gpd.GeoDataFrame | None = None,
    tiles: Mapping | None = None,
    cluster_threshold: int = CLUSTER_THRESHOLD,
    simplify_m: float = SIMPLIFY_M,
    sites: gpd.GeoDataFrame | None = None,
) -> folium.Map:
    """The interactive map of a run.

    Parameters
    ----------
    facilities, communities, streets, isochrones, population : geopandas.GeoDataFrame
        The analysis results in the metric analysis CRS, with the contract's columns
        (CONTRACT.md). ``streets``, ``isochrones`` and ``population`` are optional layers.
    actions : pandas.DataFrame, optional
        The action list (问题清单): each community's and sub-district's popup lists its failed
        checks with the value, the standard's text and its source.
    services : mapping
        Service key -> ``{"label_zh": ..., "label_en": ...}`` (the profile's services).
    cutoff_m : float
        The walking-circle distance: a population point is uncovered for a service when its
        ``dist_<service>_m`` is not ``<= cutoff_m`` (NaN / inf count as uncovered).
    labels : mapping, optional
        ``{column: (中文, English)}`` of the analysis columns,
        :func:`carecircle.maps.labels.analysis_labels` of the run's profile (the national
        profile's when omitted).
    lang : {"zh", "en"}
        Language of layer names, popups and legend.
    basemap : {"osm", "amap", "tianditu"}
        Tiles. "amap" shifts all overlays to GCJ-02; "tianditu" needs a browser key
        (``tianditu_token`` or the ``TIANDITU_TOKEN`` environment variable), which ends up in
        the HTML as every Tianditu web map's key does.
    title : str, optional
        Shown at the top of the map (escaped); see :func:`map_title`.
    network : geopandas.GeoDataFrame, optional
        The walk network's edges (``highway``, lines): drawn as a light vector basemap, so the
        map shows its streets with no tiles (an intranet).
    estates : geopandas.GeoDataFrame, optional
        The 小区 table (``estate``, ``flag_space``, polygons): those short of floor space are
        filled and named.
    tiles : mapping, optional
        ``{"url": ".../{z}/{x}/{y}.png", "attribution": ...}``: an (intranet) tile server
        instead of ``basemap``'s tiles.
    cluster_threshold : int
        Facility markers of a service cluster above this count.
    simplify_m : float
        Display simplification of polygons, metres.
    sites : geopandas.GeoDataFrame, optional
        Recommended sites (``carecircle.maps.sites.sites_table``): a 建议选址 layer, each
        site's effect in its popup.

    Returns
    -------
    folium.Map
        Save it with :func:`write_map`.
    """
    import folium
    from branca.element import Element

    check_basemap(basemap, tianditu_token=tianditu_token, tiles=tiles)
    if lang not in ("zh", "en"):
        raise InputError(f"map: lang {lang!r} is not one of zh, en")
    lab = L.Labels(lang, labels, dict(services))
    styles = _service_styles(lab.services, facilities)
    frame = communities if len(communities) else facilities
    bounds = display_geometries(frame, basemap=basemap)
    west, south, east, north = shapely.total_bounds(bounds) if len(bounds) else (73.0, 18.0, 135.0, 54.0)
    # Quarter zoom steps: the district fills the window instead of the next whole zoom out.
    m = folium.Map(location=[(south + north) / 2, (west + east) / 2], zoom_start=14, tiles=None,
                   control_scale=True, prefer_canvas=True, zoom_snap=0.25)
    # Leaflet alone: markers are inline SVG and the legend plain HTML (see module docstring).
    m.default_js = [("leaflet", folium.Map.default_js[0][1])]
    m.default_css = [("leaflet_css", folium.Map.default_css[0][1])]
    _basemap(m, basemap, lang, tianditu_token, tiles)
    has_network = _network_layer(m, network, lab, basemap)

    density = None
    circle_rows: list[tuple[str, str]] = []
    uncovered_rows: list[tuple[str, str]] = []
    has_population = population is not None and len(population) > 0
    if has_population:
        # Reprojected once for both population layers (a district has tens of thousands of points).
        population_geoms = display_geometries(population, basemap=basemap)
        density = _density_layer(m, population, population_geoms, lab)
    if isochrones is not None and len(isochrones):
        circle_rows = _isochrone_layers(m, isochrones, facilities, lab, styles, basemap, simplify_m)
    check_rows = _community_layer(m, communities, actions, lab, basemap, simplify_m)
    estates_failing = _estate_layer(m, estates, lab, basemap, simplify_m)
    has_streets = streets is not None and len(streets) > 0
    no_centre = _street_layer(m, streets, actions, lab, basemap, simplify_m) if has_streets else False
    if has_streets:
        # 供需比 classes share the check swatches' legend block.
        check_rows = check_rows + _balance_layers(m, streets, lab, basemap, simplify_m)
    if has_population:
        uncovered_rows = _uncovered_layers(m, population, population_geoms, lab, cutoff_m)
    _name_layer(m, communities, communities["name"].tolist(), lab.text("community_names"), basemap, "cc-name")
    service_rows, shared = _facility_layers(m, facilities, lab, styles, basemap, cluster_threshold)
    if sites is not None and len(sites):
        _sites_layer(m, sites, lab, basemap)

    folium.LayerControl(collapsed=False).add_to(m)
    root = m.get_root()
    root.header.add_child(Element(_CSS), name="cc_css")
    legend = _legend_html(lab, service_rows, shared, check_rows, circle_rows, has_streets, uncovered_rows, density,
                          network=has_network, no_centre=no_centre, estates_failing=estates_failing)
    root.html.add_child(Element(legend), name="cc_legend")
    if title:
        root.html.add_child(Element(f'<div class="cc-title">{html.escape(title)}</div>'), name="cc_title")
    root.title = html.escape(title or L.text("report_title", lang))
    # Room for the title above and the layer control on the right.
    m.fit_bounds([[south, west], [north, east]], padding_top_left=(10, 50), padding_bottom_right=(FIT_PADDING_RIGHT_PX, 10))
    return m


# ----------------------------------------------------------------------------- writing

_SCRIPT_RE = re.compile(r'<script src="(https?://[^"]+)"></script>')
_LINK_RE = re.compile(r'<link rel="stylesheet" href="(https?://[^"]+)"\s*/?>')


def _offline_assets() -> Mapping[str, str]:
    """folium's CDN files keyed by URL, from the ``folium-offline`` package."""
    try:
        from offlinefolium.elements import _res  # folium's CDN URLs -> file contents
    except ImportError as exc:  # pragma: no cover - the dependency is declared
        raise InputError("map: offline map needs the folium-offline package (pip install folium-offline)") from exc
    return _res


def inline_assets(page: str) -> str:
    """Replace every external ``<script src>`` / stylesheet ``<link>`` with the file's content.

    Parameters
    ----------
    page : str
        A rendered map page.

    Returns
    -------
    str
        The page with no external script or stylesheet left.

    Raises
    ------
    InputError
        When an asset is not available offline (it would silently need the internet).
    """
    assets = _offline_assets()

    def content(url: str) -> str:
        if url not in assets:
            raise InputError(f"map: {url} is not available offline; drop the layer that needs it or write an online map")
        return assets[url]

    page = _SCRIPT_RE.sub(lambda mt: "<script>" + content(mt.group(1)).replace("</script", "<\\/script") + "</script>", page)
    return _LINK_RE.sub(lambda mt: "<style>" + content(mt.group(1)) + "</style>", page)


def write_map(m: folium.Map, path: str | os.PathLike, *, offline: bool = False) -> Path:
    """Write ``m`` as one HTML file.

    Parameters
    ----------
    m : folium.Map
        From :func:`build_map`.
    path : path-like
        Output file (``map.html``).
    offline : bool
        Inline Leaflet's JS and CSS so the page opens with no internet (tiles aside: point an
        intranet tile server at the basemap, or the overlays show on a blank background).

    Returns
    -------
    pathlib.Path
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    page = m.get_root().render()
    if offline:
        page = inline_assets(page)
    path.write_text(page, encoding="utf-8")
    size = path.stat().st_size
    if size > SIZE_BUDGET_BYTES:
        warnings.warn(f"map: {path} is {size / 2**20:.1f} MiB, over the {SIZE_BUDGET_BYTES / 2**20:.0f} MiB budget; "
                      "browsers on older PCs will be slow (raise simplify_m or leave per-facility circles out)", stacklevel=2)
    return path
