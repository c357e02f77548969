"""Synthetic analysis results for the maps stage, following CONTRACT.md column for column.

Small inputs (:func:`small_inputs`) have values chosen by hand so tests can state what must
appear; :func:`district_inputs` builds a whole district's worth of layers (size budget).
The metric CRS is UTM 51N around Wuxi (120.30° E, 31.55° N).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import geopandas as gpd
import shapely
from shapely.geometry import Point, box

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
    actions = pd.DataFrame({
        "rank": [1, 2, 3, 4],
        "community": ["南星社区", "湘江社区", "锡梅社区", "春潮社区"],
        "street": ["梅村街道", "旺庄街道", "梅村街道", "旺庄街道"],
        "check": ["no_day_care", "no_day_care", "no_meal", "space"],
        "check_label": ["步行圈内无日间照料中心", "步行圈内无日间照料中心", "步行圈内无助餐点", "养老服务用房面积不足"],
        "value": [1450.0, 1450.0, 1450.0, 200.0],
        "required": [1000.0, 1000.0, 1000.0, 400.0],
        "shortfall": [450.0, 450.0, 450.0, 200.0],
        "unit": ["m", "m", "m", "m²"],
        "elderly_affected": [900.0, 700.0, 500.0, 0.0],
        "standard": ["15分钟步行圈", "15分钟步行圈", "15分钟步行圈", "每百户20平方米"],
        "source": ["无锡市养老服务设施布局规划", "无锡市养老服务设施布局规划", "无锡市养老服务设施布局规划", "无锡市养老服务设施布局规划"],
        "nearest_facility": ["梅村日间照料中心", EVIL, "锡梅助餐点", ""],
        "nearest_facility_m": [1300.0, 1300.0, 1300.0, np.nan],
    })
    summary = {
        "title": "无锡市新吴区养老服务设施步行覆盖评估",
        "profile": {"name": "wuxi", "title": "无锡市"},
        "parameters": {"walk_distance_m": CUTOFF_M, "walk_minutes": 15, "speed_kmh": 4.0},
        "services": {s: {"population_covered_share": 0.8, "elderly_covered_share": 0.78} for s in CIRCLE},
    }
    return {
        "facilities": facilities, "communities": communities, "streets": streets_gdf, "isochrones": isochrones,
        "population": population, "actions": actions, "summary": summary, "services": SERVICES, "cutoff_m": CUTOFF_M,
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
        "population": population, "services": SERVICES, "cutoff_m": CUTOFF_M,
    }


# ----------------------------------------------------------------------------- reading a map page

def overlay_vars(page: str) -> dict[str, str]:
    """Layer-control name (unescaped) -> JS variable of the layer, from a rendered folium page."""
    import html as _html
    import json as _json
    import re as _re

    block = _re.search(r"overlays :\s*\{(.*?)\},\s*\};", page, _re.S)
    pairs = _re.findall(r'^\s*("(?:[^"\\]|\\.)*")\s*:\s*(\w+),', block.group(1), _re.M) if block else []
    return {_html.unescape(_json.loads(name)): var for name, var in pairs}


def layer_features(page: str) -> dict[str, list[dict]]:
    """Layer-control name -> GeoJSON features drawn by that layer (through marker clusters too)."""
    import json as _json
    import re as _re

    data = {var: _json.loads(blob) for var, blob in _re.findall(r"(geo_json_\w+)_add\((\{.*?\})\);\n", page)}
    out = {}
    for name, var in overlay_vars(page).items():
        if var.startswith("geo_json_"):
            out[name] = data[var]["features"]
        elif var.startswith("marker_cluster_"):
            members = _re.findall(rf"(geo_json_\w+)\.addTo\({var}\)", page)
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
