"""Synthetic analysis results for the maps stage, following CONTRACT.md column for column.

Small inputs (:func:`small_inputs`) have values chosen by hand so tests can state what must
appear; :func:`district_inputs` builds a whole district's worth of layers (size budget).
The metric CRS is UTM 51N around Wuxi (120.30° E, 31.55° N).
"""

from __future__ import annotations

import html
import json
import re
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import geopandas as gpd
import shapely
from shapely.geometry import Point, box

from carecircle.coverage.profile import load_profile
from carecircle.maps import labels as L
from carecircle.maps.planning_report import HEADLESS_ARGS, find_chromium

CRS = "EPSG:32651"
ORIGIN_LONLAT = (120.30, 31.55)
EVIL = "<img src=x onerror=alert(1)>"
SERVICES = {
    "day_care": {"label_zh": "日间照料中心", "label_en": "day care"},
    "meal": {"label_zh": "助餐点", "label_en": "meal point"},
    "street_centre": {"label_zh": "街道综合养老服务中心", "label_en": "sub-district centre"},
    "institution": {"label_zh": "养老机构", "label_en": "care institution"},
}
CIRCLE = ("day_care", "meal")
CUTOFF_M = 1000.0
#: The analysis labels of a run with the national profile (the writers have no default profile).
LABELS = L.analysis_labels(load_profile("national"), CUTOFF_M)
# The inputs of small_inputs()/district_inputs() that build_map takes.
MAP_KEYS = ("facilities", "communities", "streets", "isochrones", "population", "services", "cutoff_m", "labels")


def origin_xy() -> tuple[float, float]:
    pt = gpd.GeoSeries([Point(*ORIGIN_LONLAT)], crs=4326).to_crs(CRS).iloc[0]
    return pt.x, pt.y


def _communities(cells: list[tuple[float, float, float, float]], streets: list[str], names: list[str],
                 worst: list[str], rng: np.random.Generator) -> gpd.GeoDataFrame:
    n = len(cells)
    elderly = rng.integers(300, 2000, n).astype(float)
    no_dc = np.array([w == "no_day_care" for w in worst])
    no_meal = np.array([w == "no_meal" for w in worst])
    space = np.array([w == "space" for w in worst])
    required = rng.integers(200, 900, n).astype(float)
    provided = np.where(space, required * 0.5, required * 1.2)
    df = {
        "name": names,
        "street": streets,
        "households": rng.integers(1000, 5000, n).astype(float),
        "population": elderly * 5,
        "elderly": elderly,
        "built_year": rng.integers(1980, 2022, n).astype(float),
    }
    for s in CIRCLE:
        flag = no_dc if s == "day_care" else no_meal
        df[f"dist_{s}_mean_m"] = np.where(flag, 1450.0, 520.0)
        df[f"dist_{s}_p90_m"] = np.where(flag, 1900.0, 870.0)
        df[f"elderly_covered_share_{s}"] = np.where(flag, 0.25, 0.95)
        df[f"population_covered_share_{s}"] = np.where(flag, 0.3, 0.96)
        df[f"nearest_{s}"] = [f"{SERVICES[s]['label_zh']}{i % 5}" for i in range(n)]
        df[f"nearest_{s}_m"] = np.where(flag, 1300.0, 300.0)
    df.update({
        "flag_no_day_care": no_dc,
        "flag_no_meal": no_meal,
        "space_required_m2": required,
        "space_provided_m2": provided,
        "space_shortfall_m2": np.maximum(required - provided, 0.0),
        "flag_space": space,
    })
    df["n_flags"] = (no_dc.astype(int) + no_meal.astype(int) + space.astype(int))
    df["worst_check"] = worst
    labels = {"no_day_care": "步行圈内无日间照料中心", "no_meal": "步行圈内无助餐点", "space": "养老服务用房面积不足"}
    df["flags"] = [labels.get(w, "") for w in worst]
    return gpd.GeoDataFrame(df, geometry=[box(*c) for c in cells], crs=CRS)


def _wiggle(geom, amplitude: float):
    """Displace vertices by a smooth function of their position (rings stay closed)."""
    return shapely.transform(geom, lambda c: c + amplitude * np.sin(c[:, ::-1] / 7.3)).buffer(0)


def _streets(communities: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    g = communities.dissolve("street", as_index=False)
    rows = []
    for i, street in enumerate(g["street"]):
        sub = communities[communities["street"] == street]
        row = {"street": street, "communities": len(sub), "communities_flagged": int((sub["n_flags"] > 0).sum())}
        for s in CIRCLE:
            row[f"communities_covered_{s}"] = int((~sub[f"flag_no_{s}"]).sum())
            row[f"elderly_covered_share_{s}"] = float((sub[f"elderly_covered_share_{s}"] * sub["elderly"]).sum() / sub["elderly"].sum())
        row["has_street_centre"] = i % 2 == 0
        row["space_shortfall_m2"] = float(sub["space_shortfall_m2"].sum())
        row["score"] = 100.0 - 10 * row["communities_flagged"]
        rows.append(row)
    out = gpd.GeoDataFrame(rows, geometry=g.geometry.values, crs=CRS)
    out["rank"] = out["score"].rank(ascending=False, method="min").astype(int)
    return out


def _facilities(xy: np.ndarray, names: list[str], flags: dict[str, np.ndarray], rng: np.random.Generator) -> gpd.GeoDataFrame:
    n = len(xy)
    geom = gpd.GeoSeries(shapely.points(xy), crs=CRS)
    ll = geom.to_crs(4326)
    df = {
        "fid": np.arange(n),
        "source_row": np.arange(2, n + 2),
        "name": names,
        "type": ["日间照料中心" if flags["day_care"][i] else "助餐点" for i in range(n)],
        "address": [f"无锡市新吴区长江路{i + 1}号" for i in range(n)],
        "floor_area_m2": np.where(np.arange(n) % 4 == 3, np.nan, rng.integers(200, 900, n).astype(float)),
        "beds": np.where(np.arange(n) % 3 == 0, 20.0, np.nan),
    }
    df.update({k: flags[k] for k in SERVICES})
    df["lon"], df["lat"] = ll.x.to_numpy(), ll.y.to_numpy()
    return gpd.GeoDataFrame(df, geometry=geom.values, crs=CRS)


def _isochrones(facilities: gpd.GeoDataFrame, resolution: int = 16, jitter: float = 0.0,
                rng: np.random.Generator | None = None) -> gpd.GeoDataFrame:
    rows, geoms = [], []
    for s in CIRCLE:
        sub = facilities[facilities[s]]
        circles = sub.geometry.buffer(CUTOFF_M * 0.8, quad_segs=resolution)
        if jitter and rng is not None:
            # A ragged outline like a real network isochrone (thousands of vertices).
            circles = circles.segmentize(10.0).map(lambda g: _wiggle(g, jitter))
        for fid, g in zip(sub["fid"], circles):
            rows.append({"facility_fid": int(fid), "service": s, "kind": "facility", "cutoff_m": CUTOFF_M, "minutes": 15.0})
            geoms.append(g)
        rows.append({"facility_fid": -1, "service": s, "kind": "dissolved", "cutoff_m": CUTOFF_M, "minutes": 15.0})
        geoms.append(shapely.union_all(np.asarray(circles.values)))
    return gpd.GeoDataFrame(rows, geometry=geoms, crs=CRS)


def _population(bounds: tuple[float, float, float, float], cell: float, facilities: gpd.GeoDataFrame,
                rng: np.random.Generator) -> gpd.GeoDataFrame:
    x0, y0, x1, y1 = bounds
    xs, ys = np.meshgrid(np.arange(x0 + cell / 2, x1, cell), np.arange(y0 + cell / 2, y1, cell))
    xy = np.column_stack([xs.ravel(), ys.ravel()])
    people = rng.integers(0, 400, len(xy)).astype(float)
    df = {"pid": np.arange(len(xy)), "people": people, "elderly": np.round(people * 0.22)}
    for s in CIRCLE:
        fac = facilities[facilities[s]]
        fxy = np.column_stack([fac.geometry.x, fac.geometry.y])
        d = np.sqrt(((xy[:, None, :] - fxy[None, :, :]) ** 2).sum(-1)).min(1) * 1.3 if len(fxy) else np.full(len(xy), np.nan)
        d[::37] = np.nan  # some cells unreachable
        df[f"dist_{s}_m"] = d
    return gpd.GeoDataFrame(df, geometry=shapely.points(xy), crs=CRS)


def small_inputs() -> dict:
    """Six 500 m communities in two streets, five facilities (one with a hostile name)."""
    rng = np.random.default_rng(5)
    x0, y0 = origin_xy()
    cells = [(x0 + i * 500, y0 + j * 500, x0 + (i + 1) * 500, y0 + (j + 1) * 500) for j in range(2) for i in range(3)]
    streets = ["梅村街道", "梅村街道", "梅村街道", "旺庄街道", "旺庄街道", "旺庄街道"]
    names = ["新华社区", "南星社区", "锡梅社区", "春潮社区", "长江社区", "湘江社区"]
    worst = ["", "no_day_care", "no_meal", "space", "", "no_day_care"]
    communities = _communities(cells, streets, names, worst, rng)
    fxy = np.array([[x0 + 250, y0 + 250], [x0 + 1250, y0 + 750], [x0 + 750, y0 + 250], [x0 + 250, y0 + 750], [x0 + 1400, y0 + 200]])
    flags = {
        "day_care": np.array([True, True, False, False, False]),
        "meal": np.array([True, False, True, True, False]),
        "street_centre": np.array([False, False, False, False, True]),
        "institution": np.array([False, False, False, False, False]),
    }
    fac_names = ["梅村日间照料中心", EVIL, "锡梅助餐点", "春潮老年食堂", "梅村街道综合养老服务中心"]
    facilities = _facilities(fxy, fac_names, flags, rng)
    isochrones = _isochrones(facilities)
    population = _population((x0, y0, x0 + 1500, y0 + 1000), 100.0, facilities, rng)
    streets_gdf = _streets(communities)
    # The last row is a sub-district's own check (no community).
    actions = pd.DataFrame({
        "rank": [1, 2, 3, 4, 5],
        "community": ["南星社区", "湘江社区", "锡梅社区", "春潮社区", None],
        "street": ["梅村街道", "旺庄街道", "梅村街道", "旺庄街道", "旺庄街道"],
        "check": ["no_day_care", "no_day_care", "no_meal", "space", "no_street_centre"],
        "check_label": ["步行圈内无日间照料中心", "步行圈内无日间照料中心", "步行圈内无助餐点", "养老服务用房面积不足",
                        "街道无综合养老服务中心"],
        "value": [25.0, 25.0, 25.0, 200.0, 0.0],
        "required": [50.0, 50.0, 50.0, 400.5, 1.0],
        "shortfall": [25.0, 25.0, 25.0, 200.5, 1.0],
        "unit": ["%", "%", "%", "m²", "处"],
        "elderly_affected": [900.0, 700.0, 500.0, 0.0, 2400.0],
        "standard": ["步行1000米内老年人占比 ≥ 50%", "步行1000米内老年人占比 ≥ 50%", "步行1000米内老年人占比 ≥ 50%",
                     "每百户20平方米", "每个街道 ≥ 1 处"],
        "source": ["无锡市养老服务设施布局规划", "无锡市养老服务设施布局规划", "无锡市养老服务设施布局规划",
                   "无锡市养老服务设施布局规划", "《无锡市“十四五”养老服务发展规划》"],
        "nearest_facility": ["梅村日间照料中心", EVIL, "锡梅助餐点", "", "梅村街道综合养老服务中心"],
        "nearest_facility_m": [1300.0, 1300.0, 1300.0, np.nan, 900.0],
    })
    summary = {
        "title": "无锡市新吴区养老服务设施步行覆盖评估",
        "profile": {"name": "wuxi", "title": "无锡市"},
        "parameters": {"walk_distance_m": CUTOFF_M, "walk_minutes": 15, "speed_kmh": 4.0},
        "services": {s: {"population_covered_share": 0.8, "elderly_covered_share": 0.78} for s in CIRCLE},
    }
    return {
        "facilities": facilities, "communities": communities, "streets": streets_gdf, "isochrones": isochrones,
        "population": population, "actions": actions, "summary": summary, "services": SERVICES, "cutoff_m": CUTOFF_M, "labels": LABELS,
    }


def district_inputs(seed: int = 11) -> dict:
    """A whole district: 15 × 15 km, 195 communities with ragged outlines, 8 streets,
    600 facilities, 22,500 population cells (100 m), per-facility walking circles."""
    rng = np.random.default_rng(seed)
    x0, y0 = origin_xy()
    nx, ny, size = 15, 13, 1000.0
    cells = [(x0 + i * size, y0 + j * size * 15 / 13, x0 + (i + 1) * size, y0 + (j + 1) * size * 15 / 13)
             for j in range(ny) for i in range(nx)]
    n = len(cells)
    streets = [f"第{(i % nx) // 4 + 4 * (j // 7) + 1}街道" for j in range(ny) for i in range(nx)]
    names = [f"社区{k:03d}" for k in range(n)]
    worst = rng.choice(["", "no_day_care", "no_meal", "space"], n).tolist()
    communities = _communities(cells, streets, names, worst, rng)
    # Ragged boundaries: 400 vertices per community, as digitised 社区 outlines have.
    communities["geometry"] = communities.geometry.segmentize(10.0).map(lambda g: _wiggle(g, 3.0))
    nf = 600
    fxy = np.column_stack([rng.uniform(x0, x0 + 15000, nf), rng.uniform(y0, y0 + 15000, nf)])
    flags = {
        "day_care": rng.random(nf) < 0.45,
        "meal": rng.random(nf) < 0.6,
        "street_centre": rng.random(nf) < 0.02,
        "institution": rng.random(nf) < 0.05,
    }
    facilities = _facilities(fxy, [f"设施{k}" for k in range(nf)], flags, rng)
    isochrones = _isochrones(facilities, resolution=32, jitter=15.0, rng=rng)
    population = _population((x0, y0, x0 + 15000, y0 + 15000), 100.0, facilities, rng)
    return {
        "facilities": facilities, "communities": communities, "streets": _streets(communities), "isochrones": isochrones,
        "population": population, "services": SERVICES, "cutoff_m": CUTOFF_M, "labels": LABELS,
    }


def map_args(inputs: dict, **overrides) -> dict:
    """Keyword arguments of ``build_map`` from :func:`small_inputs` / :func:`district_inputs`,
    ``overrides`` replacing or adding to them."""
    return {**{k: inputs[k] for k in MAP_KEYS}, **overrides}


# ----------------------------------------------------------------------------- reading a map page

def _layer_control(page: str) -> tuple[dict[str, str], dict[str, str]]:
    """Base layers and overlays of the layer control of a rendered folium page, each as
    entry name (unescaped) -> JS variable of the layer, in the control's order."""
    block = re.search(r"_layers = \{\s*base_layers : \{(.*?)\},\s*overlays :\s*\{(.*?)\},\s*\};", page, re.S)

    def entries(text: str) -> dict[str, str]:
        pairs = re.findall(r'^\s*("(?:[^"\\]|\\.)*")\s*:\s*(\w+),', text, re.M)
        return {html.unescape(json.loads(name)): var for name, var in pairs}

    return (entries(block.group(1)), entries(block.group(2))) if block else ({}, {})


def overlay_vars(page: str) -> dict[str, str]:
    """Layer-control name (unescaped) -> JS variable of the layer, from a rendered folium page."""
    return _layer_control(page)[1]


def layer_names(page: str) -> list[str]:
    """Layer-control entries (base layers then overlays) of a rendered map page, unescaped."""
    base, overlays = _layer_control(page)
    return [*base, *overlays]


def layer_features(page: str) -> dict[str, list[dict]]:
    """Layer-control name -> GeoJSON features drawn by that layer (through marker clusters and
    feature groups too)."""
    data = {var: json.loads(blob) for var, blob in re.findall(r"(geo_json_\w+)_add\((\{.*?\})\);\n", page)}
    out = {}
    for name, var in overlay_vars(page).items():
        if var.startswith("geo_json_"):
            out[name] = data[var]["features"]
        elif var.startswith(("marker_cluster_", "feature_group_")):
            members = re.findall(rf"(geo_json_\w+)\.addTo\({var}\)", page)
            out[name] = [f for g in members for f in data[g]["features"]]
    return out


def web_mercator_pixel(lon: float, lat: float, zoom: int) -> tuple[float, float]:
    """Global pixel of a lon/lat on 256-px web-mercator tiles (the slippy-map formula)."""
    import math

    n = 256 * 2**zoom
    x = (lon + 180.0) / 360.0 * n
    y = (1.0 - math.log(math.tan(math.radians(lat)) + 1.0 / math.cos(math.radians(lat))) / math.pi) / 2.0 * n
    return x, y


def gcj02_reference(lon: float, lat: float) -> tuple[float, float]:
    """WGS-84 -> GCJ-02 by the published algorithm (Krasovsky ellipsoid), written out here
    independently of coordTransform so the map's shift is checked against a second source."""
    import math

    a, ee = 6378245.0, 0.00669342162296594323
    x, y = lon - 105.0, lat - 35.0
    dlat = (-100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * math.sqrt(abs(x))
            + (20.0 * math.sin(6.0 * x * math.pi) + 20.0 * math.sin(2.0 * x * math.pi)) * 2.0 / 3.0
            + (20.0 * math.sin(y * math.pi) + 40.0 * math.sin(y / 3.0 * math.pi)) * 2.0 / 3.0
            + (160.0 * math.sin(y / 12.0 * math.pi) + 320 * math.sin(y * math.pi / 30.0)) * 2.0 / 3.0)
    dlon = (300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * math.sqrt(abs(x))
            + (20.0 * math.sin(6.0 * x * math.pi) + 20.0 * math.sin(2.0 * x * math.pi)) * 2.0 / 3.0
            + (20.0 * math.sin(x * math.pi) + 40.0 * math.sin(x / 3.0 * math.pi)) * 2.0 / 3.0
            + (150.0 * math.sin(x / 12.0 * math.pi) + 300.0 * math.sin(x / 30.0 * math.pi)) * 2.0 / 3.0)
    radlat = lat / 180.0 * math.pi
    magic = 1 - ee * math.sin(radlat) ** 2
    sqrtmagic = math.sqrt(magic)
    dlat = (dlat * 180.0) / ((a * (1 - ee)) / (magic * sqrtmagic) * math.pi)
    dlon = (dlon * 180.0) / (a / sqrtmagic * math.cos(radlat) * math.pi)
    return lon + dlon, lat + dlat


# ----------------------------------------------------------------------------- a real browser

CHROMIUM = find_chromium()

# Collects errors before any other script runs; alert() counts as one (an injected handler firing).
COLLECT = """<script>window.__errors=[];
window.onerror=function(m,s,l){window.__errors.push(String(m)+' line '+l);};
window.addEventListener('unhandledrejection',function(e){window.__errors.push('rejection '+e.reason);});
window.alert=function(x){window.__errors.push('alert '+x);};</script>"""
# After load: the layer control's entries, the screen centre of every facility marker by its
# tooltip, then open the popup and tooltip of the marker whose name is hostile, and write
# everything into the DOM for --dump-dom.
REPORT = """<script>window.addEventListener('load',function(){setTimeout(function(){
var r={leaflet:typeof L,sites:{}};
try{
 r.layers=Array.prototype.map.call(document.querySelectorAll('.leaflet-control-layers-list label > span > span'),
   function(s){return s.textContent.trim();});
 var evil=null;
 Object.keys(window).filter(function(k){return k.indexOf('geo_json_')===0;}).forEach(function(k){
   var g=window[k]; if(!g||!g.eachLayer)return;
   g.eachLayer(function(l){var p=l.feature&&l.feature.properties;
     if(l._icon&&p&&p._tip){var b=l._icon.getBoundingClientRect();
       (r.sites[p._tip]=r.sites[p._tip]||[]).push([b.left+b.width/2,b.top+b.height/2]);}
     if(!evil&&l.getLatLng&&p&&p._popup&&p._tip.indexOf('onerror')>=0){evil=l;}});});
 if(evil){
   evil.fire('click',{latlng:evil.getLatLng()},true);
   var pc=document.querySelector('.leaflet-popup-content');
   r.popup_text=pc&&pc.textContent; r.popup_imgs=pc?pc.querySelectorAll('img').length:-1;
   evil.fire('mouseover',{latlng:evil.getLatLng()},true);
   var tc=document.querySelector('.leaflet-tooltip:not(.cc-name)');
   r.tip_text=tc&&tc.textContent; r.tip_imgs=tc?tc.querySelectorAll('img').length:-1;}
 r.paths=document.querySelectorAll('.leaflet-overlay-pane canvas, .leaflet-overlay-pane path').length;
 r.markers=document.querySelectorAll('.leaflet-marker-pane .cc-icon').length;
}catch(e){r.exception=String(e);}
r.errors=window.__errors;
var o=document.createElement('pre');o.id='cc-result';o.textContent=JSON.stringify(r);document.body.appendChild(o);
},800);});</script>"""


def chromium(tmp_path: Path, url: str, *extra: str) -> subprocess.CompletedProcess:
    """Headless chromium on ``url`` with the network cut (the offline map must not need it)."""
    cmd = [
        CHROMIUM, *HEADLESS_ARGS, "--disable-quic", f"--user-data-dir={tmp_path / 'profile'}",
        "--host-resolver-rules=MAP * ~NOTFOUND",
        "--virtual-time-budget=5000", "--window-size=1200,900", *extra, url,
    ]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=180)


def browser_probe(map_file: Path, tmp_path: Path) -> dict:
    """Open ``map_file`` in chromium with the COLLECT/REPORT probes and return what it reported:
    ``errors``, ``layers``, ``sites`` (tooltip -> marker screen centres), popup/tooltip text."""
    page = map_file.read_text(encoding="utf-8")
    probe = tmp_path / "probe.html"
    probe.write_text(page.replace("<head>", "<head>" + COLLECT, 1).replace("</body>", REPORT + "</body>", 1), encoding="utf-8")
    run = chromium(tmp_path, probe.as_uri(), "--dump-dom")
    found = re.search(r'<pre id="cc-result">(.*?)</pre>', run.stdout, re.S)
    assert found, f"the page did not report back; chromium stderr: {run.stderr[-2000:]}"
    return json.loads(html.unescape(found.group(1)))
