"""The sample district (示例街区): a deterministic, realistic input set for demos and tests.

:func:`generate_sample` writes ordinary input files — an OSM XML street network, a facility
CSV in GCJ-02 with Chinese headers, a population GeoTIFF, 社区 / 小区 / 街道 polygons and a
run config — which the normal loaders then read, so ``carecircle demo`` exercises exactly the
path a planner's own data takes.

The district
------------
A 3 × 3 km piece of 新吴区 (Xinwu district), 无锡市 (Wuxi), south-west corner near
120.334° E, 31.536° N, so the ``wuxi`` standards profile applies and EPSG:4549
(CGCS2000 / 3-degree Gauss-Krüger CM 120° E) is the natural planning CRS. Local metric
coordinates (x east, y north, 0–3000 m) are EPSG:4549 shifted by a 100 m-aligned origin.

* **Roads (道路)** — an arterial grid of 6 × 6 blocks of about 500 m (lines jittered by
  up to ±20 m with the seed): 主干路 ``primary`` and 次干路 ``secondary`` alternating,
  named 新华路, 锡士路, 长江路 … (north–south) and 湘江路, 汉江路, 珠江路 … (east–west). Each
  block is cut into four quadrants by a cross of local streets (支路, ``residential``).
* **Land use per quadrant** — gated compounds (门禁小区, ``C``), open 1980s–90s 新村 (``O``),
  parks (公园, ``P``), schools (学校, ``S``, closed campus), commercial lots (商业, ``M``,
  a ``service`` drive) and industrial / tech parks (产业园, ``I``). A gated compound is a
  fenced rectangle 25 m inside its streets with a ring of interior ``footway`` s 15 m inside
  the fence and a cross of footways; it reaches the street **only through its gates**: a
  short footway from the street through a ``barrier=gate`` node on the fence to the ring,
  on three or four sides. Open 新村 connect to the street on all four sides without gates.
* **Exclusions** — the 沪宁高速 (``highway=motorway``, G2) runs just south of the district
  with a ``motorway_link`` to 长江路, and a factory drive in 产业园 is tagged ``foot=no``:
  both must be dropped by the walk filter.
* **街道 (sub-districts)** — three vertical stripes of 1 km: 旺庄街道 (Wangzhuang, west),
  硕放街道 (Shuofang, centre), 梅村街道 (Meicun, east).
* **社区 (communities)** — 12 rectangles of 2 or 4 blocks bounded by arterials, south to
  north: 春潮 Chunchao, 旺庄 Wangzhuang, 长江 Changjiang, 新光 Xinguang (旺庄街道);
  南星 Nanxing, 硕放 Shuofang, 香楠 Xiangnan, 新城 Xincheng (硕放街道); 梅村 Meicun,
  泰伯 Taibo, 锡梅 Ximei, 丽景 Lijing (梅村街道). Fields ``name``, ``street``,
  ``households``, ``population``, ``elderly`` (sums over the estates) and ``built_year``
  (that of the community's largest estate).
* **小区 (estates)** — one per ``C`` / ``O`` quadrant, with households, build year (open
  新村 1985–1996; compounds 1998–2012 = existing, or 2015–2023 = new under the Wuxi cut-off
  2014) and ``space_m2``, the elderly-service room floor area the estate provides: 10–25 %
  above the Wuxi minimum (20 m² per 100 households new, 15 existing). Extra fields:
  ``population``, ``elderly``, ``gated`` and ``kind`` (门禁小区 / 开放式老新村).
* **Population** — everybody lives in an estate; each estate's people (households × a
  household size of 2.3–2.8) are spread over the 100 m cells whose centres fall inside it,
  in whole persons, so every community's cells sum exactly to its ``population``; the
  elderly (60+) raster does the same with an age-dependent share (older estates are older),
  so the config names ``elderly_raster`` rather than one ``elderly_share``. The wetland
  pond's four cells are nodata. With the default seed: 104 estates (98 gated), 75,260
  households, 198,583 people, 22 % of them aged 60+.
* **Facilities** — day-care centres with meal points (日间照料中心（含助餐点）) on a
  checkerboard of block centres, separate meal points (老年助餐点) and day-care centres where
  the layout needs them, two 街道综合养老服务中心 and one 护理院 (nursing home).

The deliberate gaps (documented; :attr:`SampleDistrict.gaps` says the same, machine-readably)
------------------------------------------------------------------------------------------
1. **丽景社区 (Lijing community, 梅村街道) has no meal point in reach.** Its ~3,000
   residents live in two new compounds in the district's north-east corner; the rest of the
   community is a wetland park (湿地公园), a school and a tech park. Its own 丽景社区日间照料中心 gives day
   care but serves no meals, and every meal point lies at least 1,150 m away in straight
   east–west + north–south distance (a lower bound of the walk on this axis-aligned
   network; 1,350 m with the default seed, about 1,430 m walked): nobody in 丽景社区 is
   within 1,000 m of a meal, while every resident of every other community is within
   about 700 m (at most 800 m) of both a meal point and a day-care centre. The 街道
   comprehensive centres, which serve meals too, are kept as far away.
2. **锦绣华庭 (Jinxiu Huating, a new high-rise estate in 春潮社区, 旺庄街道, built 2023) is
   short of elderly-service space**: about 1,200 households (1,260 with the default seed)
   need 20 m² per 100 households under the Wuxi minimum (≈ 250 m²), but the developer
   handed over one 40 m² room. The shortfall (≈ 210 m²) is larger than the surplus of
   春潮社区's two other estates, so the community total is short as well.
3. **硕放街道 has no 街道综合养老服务中心**; 旺庄街道 and 梅村街道 each have one.

Everything else passes with margin.
"""

from __future__ import annotations

import csv
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

import geopandas as gpd
import numpy as np
import pyogrio
import pyproj
import rasterio
import shapely
from rasterio.transform import from_origin

from carecircle.layers import crs as cccrs

#: The default seed of the sample district (the date it was first generated).
DEFAULT_SEED = 20261122

PLANNING_CRS = "EPSG:4549"  # CGCS2000 / 3-degree Gauss-Krüger CM 120° E
#: South-west corner of the district (WGS-84); snapped to the 100 m raster grid in EPSG:4549.
SW_CORNER_LONLAT = (120.334, 31.536)
SIZE_M = 3000.0
N_BLOCKS = 6
BLOCK_M = SIZE_M / N_BLOCKS
ARTERIAL_JITTER_M = 20.0
CELL_M = 100.0
NODATA = -99999.0
FENCE_INSET_M = 25.0  # compound fence behind the street centreline
RING_INSET_M = 15.0  # interior ring path inside the fence
FACILITY_SETBACK_M = 12.0  # facility buildings sit beside the street
MAX_SEGMENT_M = 50.0  # OSM shape nodes at most this far apart
FIXED_DATE = "2026-11-22T00:00:00Z"  # GeoPackage timestamps, for byte-identical files

# Land use per block quadrant, in the order SW, SE, NW, NE; rows listed north (j = 5) to south.
# C gated compound · O open 新村 · P park · S school · M commercial · I industrial / tech park
LAND_USE_ROWS = (
    ("CCSC", "CSCC", "CCCM", "CCCC", "SPPP", "SCMC"),
    ("OCCC", "CCPC", "CMCC", "CCSC", "PPPP", "IIII"),
    ("CCCC", "OOCS", "CCCC", "MCCC", "CCPP", "CCIM"),
    ("CSCC", "CCCC", "OOCC", "CCMC", "CCCS", "CCCC"),
    ("CCCC", "CPCC", "CCCC", "SCCC", "COCC", "CCMC"),
    ("MSCM", "CPPC", "CCCI", "CCCC", "CCSC", "CMCC"),
)
QUADRANTS = ("SW", "SE", "NW", "NE")

NS_ROADS = ("新华路", "锡士路", "长江路", "新锡路", "和风路", "菱湖大道", "锡贤路")  # x = X[k]
EW_ROADS = ("湘江路", "汉江路", "珠江路", "旺庄路", "春晖路", "清源路", "泰山路")  # y = Y[k]
LOCAL_BASES = ("春笋", "梅园", "香楠", "净慧", "震泽", "欣园")  # per block column
CN_NUM = "一二三四五六七八九十"

STREETS = ("旺庄街道", "硕放街道", "梅村街道")
# Community: name, street, block columns (i0, i1), block rows (j0, j1), inclusive.
COMMUNITIES = (
    ("春潮社区", "旺庄街道", (0, 1), (0, 0)),
    ("旺庄社区", "旺庄街道", (0, 1), (1, 1)),
    ("长江社区", "旺庄街道", (0, 1), (2, 3)),
    ("新光社区", "旺庄街道", (0, 1), (4, 5)),
    ("南星社区", "硕放街道", (2, 3), (0, 1)),
    ("硕放社区", "硕放街道", (2, 3), (2, 2)),
    ("香楠社区", "硕放街道", (2, 3), (3, 3)),
    ("新城社区", "硕放街道", (2, 3), (4, 5)),
    ("梅村社区", "梅村街道", (4, 5), (0, 0)),
    ("泰伯社区", "梅村街道", (4, 5), (1, 1)),
    ("锡梅社区", "梅村街道", (4, 5), (2, 3)),
    ("丽景社区", "梅村街道", (4, 5), (4, 5)),
)

GAP_NO_MEAL_COMMUNITY = "丽景社区"
GAP_SPACE_ESTATE = "锦绣华庭"
GAP_SPACE_BLOCK = (1, 0, "NE")  # the new estate short of space: block (1, 0), NE quadrant
GAP_SPACE_M2 = 40.0  # one converted property-management room instead of 20 m² per 100 households
GAP_STREET = "硕放街道"
#: Every meal point keeps at least this Manhattan distance from 丽景社区's residents.
GAP_MEAL_MIN_L1_M = 1150.0

ESTATE_PREFIXES = ("金色", "阳光", "翠竹", "春江", "香樟", "梧桐", "东方", "天一", "书香", "蓝湾",
                   "御景", "枫林", "丽都", "清扬", "盛世", "湖畔", "云庭", "星河", "凤凰", "悦澜",
                   "橡树", "银杏", "紫薇", "荷塘", "水岸", "长乐", "吉祥", "康宁", "绿洲", "南山",
                   "瑞景", "融创", "万科", "华润", "保利", "中海")
ESTATE_SUFFIXES = ("花园", "家园", "苑", "雅苑", "名邸", "公寓", "佳苑", "华庭", "府", "花苑", "嘉园", "新苑")

# Facilities: (block i, j, anchor, kind). The anchor is the local-street cross of the block
# moved ``along`` metres on the east–west ("h") or north–south ("v") local street, set back
# beside it on ``side`` (+1 north/east, −1 south/west).
#   both = 日间照料中心（含助餐点）, day = 日间照料中心, meal = 老年助餐点,
#   centre = 街道综合养老服务中心, nursing = 护理院.
FACILITY_PLAN = (
    # the checkerboard of block centres: day care with meals
    (0, 0, ("h", 0.0, 1), "both"), (2, 0, ("h", 0.0, 1), "both"), (4, 0, ("h", 0.0, 1), "both"),
    (1, 1, ("v", 0.0, -1), "both"), (3, 1, ("v", 0.0, -1), "both"), (5, 1, ("v", 0.0, -1), "both"),
    (0, 2, ("h", 0.0, -1), "both"), (2, 2, ("h", 0.0, -1), "both"), (4, 2, ("h", 0.0, -1), "both"),
    (1, 3, ("v", 0.0, 1), "both"), (3, 3, ("v", 0.0, 1), "both"),
    (0, 4, ("h", 0.0, 1), "both"), (2, 4, ("h", 0.0, 1), "both"), (1, 5, ("v", 0.0, -1), "both"),
    # 新城社区's northern centre moved 150 m west, away from 丽景社区
    (3, 5, ("h", -150.0, -1), "both"),
    # next to 丽景社区: day care only in 锡梅社区's north-east block, meals south and west of it
    (5, 3, ("h", 0.0, -1), "day"), (5, 2, ("v", 0.0, 1), "meal"), (4, 3, ("v", -60.0, -1), "meal"),
    # 丽景社区: day care only (gap 1)
    (5, 5, ("v", 0.0, -1), "day"),
    # further meal points in the odd blocks (Wuxi has far more meal points than day-care centres)
    (0, 3, ("v", -80.0, 1), "meal"), (2, 3, ("h", 90.0, 1), "meal"), (1, 4, ("v", 40.0, 1), "meal"),
    (4, 1, ("v", 120.0, -1), "meal"), (2, 5, ("v", 30.0, -1), "meal"),
    # second centres where compounds' gates face away from the nearest one
    (0, 1, ("h", -60.0, -1), "both"), (1, 0, ("h", 60.0, -1), "both"), (3, 0, ("h", -70.0, 1), "both"),
    (3, 4, ("v", 0.0, 1), "both"),
    # 街道 comprehensive centres (none in 硕放街道: gap 3) and the nursing home
    (1, 2, ("h", 110.0, 1), "centre"), (4, 1, ("h", -120.0, 1), "centre"),
    (2, 1, ("v", -100.0, 1), "nursing"),
)
FACILITY_TYPES = {
    "both": "日间照料中心（含助餐点）",
    "day": "日间照料中心",
    "meal": "老年助餐点",
    "centre": "街道综合养老服务中心",
    "nursing": "护理院",
}
FACILITY_HEADERS = ("名称", "类型", "地址", "经度", "纬度", "建筑面积", "床位")


@dataclass(frozen=True)
class Gap:
    """One deliberate, documented gap in the sample district.

    Attributes
    ----------
    check : str
        ``no_meal`` (community outside every meal point's walking circle), ``space``
        (estate short of elderly-service floor space) or ``no_street_centre``
        (街道 without a comprehensive centre).
    street, community, estate : str or None
        Where the gap is.
    value, required : float or None
        What is there and what the Wuxi profile asks (metres for ``no_meal``: the shortest
        Manhattan distance from a resident to a meal point, a lower bound of the walk,
        against the 1,000 m circle; m² for ``space``).
    description : str
        One line, Chinese.
    """

    check: str
    street: str
    community: str | None = None
    estate: str | None = None
    value: float | None = None
    required: float | None = None
    description: str = ""


@dataclass(frozen=True)
class SampleDistrict:
    """What :func:`generate_sample` wrote.

    Attributes
    ----------
    out_dir, config, osm, facilities, facilities_gbk, population, elderly, communities,
    estates, streets : pathlib.Path
        The files (``facilities_gbk`` is the same list GBK-encoded, for encoding tests).
    crs : str
        The planning CRS of the raster and the 社区 / 小区 layers (EPSG:4549); the 街道
        layer is in EPSG:4326, the OSM file and the facility list in WGS-84 / GCJ-02.
    seed : int
    gaps : tuple of Gap
        The deliberate gaps; nothing else fails a check.
    facility_wgs84 : dict
        Facility name → intended (lon, lat) in WGS-84 (the CSV holds them in GCJ-02).
    """

    out_dir: Path
    config: Path
    osm: Path
    facilities: Path
    facilities_gbk: Path
    population: Path
    elderly: Path
    communities: Path
    estates: Path
    streets: Path
    crs: str
    seed: int
    gaps: tuple[Gap, ...]
    facility_wgs84: dict[str, tuple[float, float]] = field(default_factory=dict)

    def gaps_of(self, check: str) -> list[Gap]:
        """The gaps of one check (``no_meal``, ``space``, ``no_street_centre``)."""
        return [g for g in self.gaps if g.check == check]


# ----------------------------------------------------------------------------- layout


@dataclass
class _Layout:
    origin: tuple[float, float]  # EPSG:4549 of local (0, 0)
    X: np.ndarray  # arterial x positions (7)
    Y: np.ndarray  # arterial y positions (7)
    xl: np.ndarray  # local north–south street x per block (6 × 6, [i, j])
    yl: np.ndarray  # local east–west street y per block


def _layout(rng: np.random.Generator) -> _Layout:
    to_pc = pyproj.Transformer.from_crs("EPSG:4326", PLANNING_CRS, always_xy=True)
    ox, oy = to_pc.transform(*SW_CORNER_LONLAT)
    origin = (float(np.round(ox / CELL_M) * CELL_M), float(np.round(oy / CELL_M) * CELL_M))
    base = np.arange(N_BLOCKS + 1) * BLOCK_M
    jitter = np.round(rng.uniform(-ARTERIAL_JITTER_M, ARTERIAL_JITTER_M, size=(2, N_BLOCKS + 1)), 1)
    jitter[:, [0, -1]] = 0.0  # the district edges stay on the raster grid
    X, Y = base + jitter[0], base + jitter[1]
    u = np.round(rng.uniform(0.45, 0.55, size=(2, N_BLOCKS, N_BLOCKS)), 3)
    xl = np.round(X[:-1, None] + u[0] * np.diff(X)[:, None], 1)
    yl = np.round(Y[None, :-1] + u[1] * np.diff(Y)[None, :], 1)
    return _Layout(origin, X, Y, xl, yl)


def _land_use(i: int, j: int) -> str:
    return LAND_USE_ROWS[N_BLOCKS - 1 - j][i]


def _community_of_block(i: int, j: int) -> tuple[str, str]:
    for name, street, (i0, i1), (j0, j1) in COMMUNITIES:
        if i0 <= i <= i1 and j0 <= j <= j1:
            return name, street
    raise AssertionError(f"block {(i, j)} belongs to no community")


def _quadrant_box(lay: _Layout, i: int, j: int, q: str) -> tuple[float, float, float, float]:
    """(x0, y0, x1, y1) between the street centrelines around quadrant ``q`` of block (i, j)."""
    west = q.endswith("W")
    south = q.startswith("S")
    x0, x1 = (lay.X[i], lay.xl[i, j]) if west else (lay.xl[i, j], lay.X[i + 1])
    y0, y1 = (lay.Y[j], lay.yl[i, j]) if south else (lay.yl[i, j], lay.Y[j + 1])
    return float(x0), float(y0), float(x1), float(y1)


# ----------------------------------------------------------------------------- network


class _Osm:
    """Nodes keyed by local coordinates (shared points are one node) and straight lines that
    collect stops, written as OSM ways once every attachment is known."""

    def __init__(self) -> None:
        self.node_ids: dict[tuple[float, float], int] = {}
        self.node_tags: dict[int, dict[str, str]] = {}
        self.lines: dict[tuple, dict] = {}
        self.ways: list[tuple[list[int], dict[str, str]]] = []

    def node(self, x: float, y: float, tags: dict[str, str] | None = None) -> int:
        key = (round(float(x), 2), round(float(y), 2))
        nid = self.node_ids.setdefault(key, len(self.node_ids) + 1)
        if tags:
            self.node_tags.setdefault(nid, {}).update(tags)
        return nid

    def line(self, key: tuple, p0: tuple[float, float], p1: tuple[float, float], tags: dict[str, str]) -> None:
        """An axis-parallel line from ``p0`` to ``p1``; stops are positions along its axis."""
        vertical = p0[0] == p1[0]
        lo, hi = sorted(round(float(v), 2) for v in ((p0[1], p1[1]) if vertical else (p0[0], p1[0])))
        self.lines[key] = {"vertical": vertical, "fixed": p0[0] if vertical else p0[1],
                           "stops": {lo, hi}, "tags": tags}

    def attach(self, key: tuple, at: float) -> tuple[float, float]:
        """Add a stop on line ``key`` at position ``at``; return the point."""
        line = self.lines[key]
        at = round(float(at), 2)
        line["stops"].add(at)
        return (line["fixed"], at) if line["vertical"] else (at, line["fixed"])

    def way(self, points: list[tuple[float, float]], tags: dict[str, str], node_tags=None) -> None:
        """A way through ``points`` (node tags by position index), densified."""
        node_tags = node_tags or {}
        refs = []
        for k, (p, q) in enumerate(zip(points[:-1], points[1:])):
            n = max(1, int(np.ceil(np.hypot(q[0] - p[0], q[1] - p[1]) / MAX_SEGMENT_M)))
            for t in range(n):
                x, y = p[0] + (q[0] - p[0]) * t / n, p[1] + (q[1] - p[1]) * t / n
                refs.append(self.node(x, y, node_tags.get(k) if t == 0 else None))
        refs.append(self.node(*points[-1], node_tags.get(len(points) - 1)))
        self.ways.append((refs, tags))

    def close_lines(self) -> None:
        """Turn every line into a way through its sorted stops, densified."""
        for line in self.lines.values():
            stops = sorted(line["stops"])
            dense = [stops[0]]
            for a, b in zip(stops[:-1], stops[1:]):
                n = max(1, int(np.ceil((b - a) / MAX_SEGMENT_M)))
                dense += [round(a + (b - a) * t / n, 2) for t in range(1, n)] + [b]
            pts = [(line["fixed"], s) if line["vertical"] else (s, line["fixed"]) for s in dense]
            self.ways.append(([self.node(*p) for p in pts], line["tags"]))


def _local_name(i: int, j: int, vertical: bool) -> str:
    return f"{LOCAL_BASES[i]}{CN_NUM[j]}{'路' if vertical else '街'}"


def _build_streets(osm: _Osm, lay: _Layout) -> None:
    for k in range(N_BLOCKS + 1):
        kind = "primary" if k % 2 == 0 else "secondary"
        osm.line(("v", k), (lay.X[k], 0.0), (lay.X[k], SIZE_M), {"highway": kind, "name": NS_ROADS[k]})
        osm.line(("h", k), (0.0, lay.Y[k]), (SIZE_M, lay.Y[k]), {"highway": kind, "name": EW_ROADS[k]})
    for a in range(N_BLOCKS + 1):
        for b in range(N_BLOCKS + 1):
            osm.attach(("v", a), lay.Y[b])
            osm.attach(("h", b), lay.X[a])
    for i in range(N_BLOCKS):
        for j in range(N_BLOCKS):
            x, y = lay.xl[i, j], lay.yl[i, j]
            osm.line(("lv", i, j), (x, lay.Y[j]), (x, lay.Y[j + 1]),
                     {"highway": "residential", "name": _local_name(i, j, True)})
            osm.line(("lh", i, j), (lay.X[i], y), (lay.X[i + 1], y),
                     {"highway": "residential", "name": _local_name(i, j, False)})
            osm.attach(("lv", i, j), y)
            osm.attach(("lh", i, j), x)
            osm.attach(("h", j), x)
            osm.attach(("h", j + 1), x)
            osm.attach(("v", i), y)
            osm.attach(("v", i + 1), y)


def _side_lines(i: int, j: int, q: str) -> dict[str, tuple]:
    """The street line bounding quadrant ``q`` of block (i, j) on each side (W, E, S, N)."""
    west, south = q.endswith("W"), q.startswith("S")
    return {
        "W": ("v", i) if west else ("lv", i, j),
        "E": ("lv", i, j) if west else ("v", i + 1),
        "S": ("h", j) if south else ("lh", i, j),
        "N": ("lh", i, j) if south else ("h", j + 1),
    }


GATE_NAMES = {"N": "北门", "S": "南门", "E": "东门", "W": "西门"}


def _inner_paths(osm: _Osm, key: tuple, box: tuple[float, float, float, float], inset: float) -> dict:
    """Ring + cross of footways ``inset`` inside ``box``; returns the ring lines and cross points."""
    x0, y0, x1, y1 = box[0] + inset, box[1] + inset, box[2] - inset, box[3] - inset
    cx, cy = round((x0 + x1) / 2, 2), round((y0 + y1) / 2, 2)
    foot = {"highway": "footway"}
    ring = {"S": key + ("S",), "N": key + ("N",), "W": key + ("W",), "E": key + ("E",)}
    osm.line(ring["S"], (x0, y0), (x1, y0), foot)
    osm.line(ring["N"], (x0, y1), (x1, y1), foot)
    osm.line(ring["W"], (x0, y0), (x0, y1), foot)
    osm.line(ring["E"], (x1, y0), (x1, y1), foot)
    osm.line(key + ("cv",), (cx, y0), (cx, y1), foot)
    osm.line(key + ("ch",), (x0, cy), (x1, cy), foot)
    for side in ("S", "N"):
        osm.attach(ring[side], cx)
    for side in ("W", "E"):
        osm.attach(ring[side], cy)
    osm.attach(key + ("cv",), cy)
    osm.attach(key + ("ch",), cx)
    return {"ring": ring, "inner": (x0, y0, x1, y1)}


def _connect(osm: _Osm, street: tuple, ring: tuple, side: str, at: float, box, fence: float | None,
             tags: dict[str, str]) -> None:
    """A footway from ``street`` to ``ring`` perpendicular to ``side`` at position ``at``,
    through a gate node on the fence (``fence`` inset) when given."""
    p_street = osm.attach(street, at)
    p_ring = osm.attach(ring, at)
    points = [p_street]
    node_tags = {}
    if fence is not None:
        x0, y0, x1, y1 = box
        fixed = {"W": x0 + fence, "E": x1 - fence, "S": y0 + fence, "N": y1 - fence}[side]
        points.append((fixed, at) if side in "WE" else (at, fixed))
        node_tags[1] = {"barrier": "gate", "name": GATE_NAMES[side]}
    points.append(p_ring)
    osm.way(points, tags, node_tags)


def _build_quadrant(osm: _Osm, lay: _Layout, rng: np.random.Generator, i: int, j: int, q: str,
                    use: str) -> tuple[float, float, float, float] | None:
    """Paths of one quadrant; returns the estate rectangle (fence) for ``C`` / ``O``."""
    box = _quadrant_box(lay, i, j, q)
    sides = _side_lines(i, j, q)
    key = ("q", i, j, q)
    mid = {s: (box[1] + box[3]) / 2 if s in "WE" else (box[0] + box[2]) / 2 for s in "WENS"}
    if use in "CO":
        paths = _inner_paths(osm, key, box, FENCE_INSET_M + RING_INSET_M)
        x0, y0, x1, y1 = paths["inner"]
        if use == "C":
            # Gates on three or four sides, off-centre, as real main and side gates are.
            n_gates = int(rng.integers(3, 5))
            chosen = sorted(rng.choice(4, size=n_gates, replace=False))
            for c in chosen:
                s = "WESN"[c]
                lo, hi = (y0, y1) if s in "WE" else (x0, x1)
                # off-centre: a quarter to two fifths along, from either end
                frac = rng.uniform(0.25, 0.4)
                at = round(lo + (hi - lo) * (frac if rng.random() < 0.5 else 1 - frac), 1)
                _connect(osm, sides[s], paths["ring"][s], s, at, box, FENCE_INSET_M, {"highway": "footway"})
        else:
            # Open 新村: the lanes of the cross run straight out onto the street on every side.
            for s in "WESN":
                _connect(osm, sides[s], paths["ring"][s], s, mid[s], box, None, {"highway": "footway"})
        return (box[0] + FENCE_INSET_M, box[1] + FENCE_INSET_M, box[2] - FENCE_INSET_M, box[3] - FENCE_INSET_M)
    if use == "P":
        paths = _inner_paths(osm, key, box, FENCE_INSET_M)
        for s in ("W", "N") if (i + j) % 2 else ("E", "S"):
            _connect(osm, sides[s], paths["ring"][s], s, mid[s], box, None, {"highway": "footway"})
    elif use == "M":
        s = "S" if q.startswith("N") else "N"  # the drive comes in from the local street
        p = osm.attach(sides[s], mid[s])
        depth = (box[3] - box[1]) * 0.6 * (1 if s == "S" else -1)
        osm.way([p, (p[0], p[1] + depth)], {"highway": "service", "service": "parking_aisle"})
    elif use == "I":
        a, b = osm.attach(sides["W"], mid["W"]), osm.attach(sides["E"], mid["E"])
        tags = {"highway": "service", "name": "厂区道路"}
        if (i, j, q) == (2, 0, "NE"):
            tags["foot"] = "no"  # a factory drive closed to pedestrians: the walk filter drops it
        osm.way([a, b], tags)
    return None


def _build_motorway(osm: _Osm, lay: _Layout) -> None:
    """沪宁高速 south of the district, with a link onto 长江路 (both unwalkable)."""
    y = -60.0
    xs = [-150.0, lay.X[2] - 200.0, lay.X[2] + 200.0, SIZE_M + 150.0]
    osm.way([(x, y) for x in xs], {"highway": "motorway", "name": "沪宁高速", "ref": "G2", "oneway": "yes"})
    p = osm.attach(("v", 2), 0.0)
    osm.way([(lay.X[2] + 200.0, y), (lay.X[2] + 40.0, -20.0), p], {"highway": "motorway_link", "oneway": "yes"})


# ----------------------------------------------------------------------------- estates


def _estate_names(rng: np.random.Generator, n: int) -> list[str]:
    combos = [p + s for p in ESTATE_PREFIXES for s in ESTATE_SUFFIXES if p + s != GAP_SPACE_ESTATE]
    return [combos[k] for k in rng.permutation(len(combos))[:n]]


def _estates(osm: _Osm, lay: _Layout, rng: np.random.Generator) -> list[dict]:
    """Build every quadrant's paths; return the estates with their attributes."""
    estates = []
    for j in range(N_BLOCKS):
        for i in range(N_BLOCKS):
            for q, use in zip(QUADRANTS, _land_use(i, j)):
                rect = _build_quadrant(osm, lay, rng, i, j, q, use)
                if rect is None:
                    continue
                community, street = _community_of_block(i, j)
                estates.append({"block": (i, j, q), "use": use, "rect": rect, "community": community,
                                "street": street})
    names = iter(_estate_names(rng, len(estates)))
    old_count: dict[str, int] = {}
    for e in estates:
        area_ha = (e["rect"][2] - e["rect"][0]) * (e["rect"][3] - e["rect"][1]) / 1e4
        if e["use"] == "O":
            old_count[e["community"]] = old_count.get(e["community"], 0) + 1
            e["name"] = f"{e['community'][:-2]}{CN_NUM[old_count[e['community']] - 1]}村"
            year, density, size = rng.integers(1985, 1997), rng.uniform(170, 210), rng.uniform(2.3, 2.5)
        else:
            e["name"] = next(names)
            year = rng.integers(2015, 2024) if rng.random() < 0.4 else rng.integers(1998, 2013)
            density, size = rng.uniform(130, 230), rng.uniform(2.5, 2.8)
        if e["block"] == GAP_SPACE_BLOCK:
            e["name"], year, density = GAP_SPACE_ESTATE, 2023, 300.0  # a dense new high-rise estate
        # Older estates house older people: the 60+ share falls with the build year.
        low, high = (0.32, 0.38) if year < 1997 else (0.22, 0.30) if year < 2014 else (0.12, 0.18)
        elderly_share = rng.uniform(low, high)
        e["built_year"] = int(year)
        e["households"] = int(round(area_ha * density / 10) * 10)
        e["household_size"] = float(size)
        e["elderly_share"] = float(elderly_share)
        e["gated"] = e["use"] == "C"
    _assign_space(estates, rng)
    return estates


def _assign_space(estates: list[dict], rng: np.random.Generator) -> None:
    """Wuxi minimum × 1.10–1.25 for every estate; the gap estate has one 40 m² room."""
    for e in estates:
        rate = 20.0 if e["built_year"] >= 2014 else 15.0
        if e["name"] == GAP_SPACE_ESTATE:
            e["space_m2"] = GAP_SPACE_M2
        else:
            e["space_m2"] = float(np.ceil(e["households"] * rate / 100 * rng.uniform(1.10, 1.25) / 10) * 10)
        e["space_required_m2"] = e["households"] * rate / 100
    gap = next(e for e in estates if e["name"] == GAP_SPACE_ESTATE)
    same = [e for e in estates if e["community"] == gap["community"]]
    short = sum(e["space_required_m2"] - e["space_m2"] for e in same)
    if short < 50:  # the gap must show in the community total too (sums, not per estate)
        raise AssertionError(f"{gap['community']}: community space short by only {short:.0f} m²")


# ----------------------------------------------------------------------------- population


def _cell_centres() -> tuple[np.ndarray, np.ndarray]:
    """Local x, y of the raster cells' centres, in raster order (row 0 is the north edge)."""
    n = int(SIZE_M / CELL_M)
    centres = (np.arange(n) + 0.5) * CELL_M
    return np.meshgrid(centres, centres[::-1])


def _cells_in(cx: np.ndarray, cy: np.ndarray, rect: tuple[float, float, float, float]) -> np.ndarray:
    """Cells whose centre lies strictly inside ``rect`` (x0, y0, x1, y1)."""
    x0, y0, x1, y1 = rect
    return (cx > x0) & (cx < x1) & (cy > y0) & (cy < y1)


def _split_whole(total: int, n: int, rng: np.random.Generator) -> np.ndarray:
    """``total`` whole persons over ``n`` cells, roughly even (multinomial around equal shares)."""
    return rng.multinomial(total, np.full(n, 1.0 / n))


def _rasters(lay: _Layout, estates: list[dict], rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    cx, cy = _cell_centres()
    people = np.zeros(cx.shape, dtype=np.float32)
    elderly = np.zeros(cx.shape, dtype=np.float32)
    for e in estates:
        inside = _cells_in(cx, cy, e["rect"])
        e["population"] = int(round(e["households"] * e["household_size"]))
        counts = _split_whole(e["population"], int(inside.sum()), rng)
        old = np.floor(counts * e["elderly_share"] + rng.random(counts.size))
        people[inside] = counts
        elderly[inside] = old
        e["elderly"] = int(old.sum())
    # The wetland pond in block (4, 4): cells with no data, as WorldPop leaves water.
    pond = (np.abs(cx - (lay.X[4] + lay.X[5]) / 2) < 100) & (np.abs(cy - (lay.Y[4] + lay.Y[5]) / 2) < 100)
    people[pond] = NODATA
    elderly[pond] = NODATA
    return people, elderly


# ----------------------------------------------------------------------------- facilities


def _facilities(lay: _Layout, rng: np.random.Generator) -> list[dict]:
    rows, seen = [], {}
    for i, j, (axis, along, side), kind in FACILITY_PLAN:
        community, street = _community_of_block(i, j)
        x, y = float(lay.xl[i, j]), float(lay.yl[i, j])
        if axis == "h":
            x, y, road = x + along, y + side * FACILITY_SETBACK_M, _local_name(i, j, False)
            pos = x - lay.X[i]
        else:
            x, y, road = x + side * FACILITY_SETBACK_M, y + along, _local_name(i, j, True)
            pos = y - lay.Y[j]
        owner = street if kind == "centre" else community
        stem = {"both": "日间照料中心", "day": "日间照料中心", "meal": "老年助餐点",
                "centre": "综合养老服务中心", "nursing": ""}[kind]
        name = "新吴区康乐护理院" if kind == "nursing" else f"{owner}{stem}"
        seen[name] = seen.get(name, 0) + 1
        if seen[name] > 1:
            name = f"{name}（{road}分中心）"
        number = 2 * int(round(pos / 20.0)) + (1 if side < 0 else 2)
        area = {"both": rng.uniform(450, 800), "day": rng.uniform(350, 600), "meal": rng.uniform(90, 200),
                "centre": rng.uniform(1600, 2400), "nursing": 6800.0}[kind]
        beds = {"both": rng.integers(6, 16), "day": rng.integers(4, 12), "meal": None,
                "centre": rng.integers(20, 40), "nursing": 180}[kind]
        rows.append({"name": name, "type": FACILITY_TYPES[kind], "kind": kind, "x": x, "y": y,
                     "community": community, "street": street,
                     "address": f"无锡市新吴区{road}{number}号", "floor_area": float(round(area / 10) * 10),
                     "beds": None if beds is None else int(beds)})
    return rows


# ----------------------------------------------------------------------------- writers


def _to_lonlat(lay: _Layout, x, y) -> tuple[np.ndarray, np.ndarray]:
    to_wgs = pyproj.Transformer.from_crs(PLANNING_CRS, "EPSG:4326", always_xy=True)
    lon, lat = to_wgs.transform(np.asarray(x, float) + lay.origin[0], np.asarray(y, float) + lay.origin[1])
    return np.asarray(lon), np.asarray(lat)


def _write_osm(path: Path, osm: _Osm, lay: _Layout) -> None:
    coords = np.array(list(osm.node_ids.keys()))
    ids = np.array(list(osm.node_ids.values()))
    lon, lat = _to_lonlat(lay, coords[:, 0], coords[:, 1])
    pad = 0.0015
    root = ET.Element("osm", version="0.6", generator="carecircle sample district")
    ET.SubElement(root, "bounds", minlat=f"{lat.min() - pad:.7f}", minlon=f"{lon.min() - pad:.7f}",
                  maxlat=f"{lat.max() + pad:.7f}", maxlon=f"{lon.max() + pad:.7f}")
    for nid, lo, la in zip(ids, lon, lat):
        el = ET.SubElement(root, "node", id=str(nid), version="1", lat=f"{la:.7f}", lon=f"{lo:.7f}")
        for k, v in osm.node_tags.get(int(nid), {}).items():
            ET.SubElement(el, "tag", k=k, v=v)
    for wid, (refs, tags) in enumerate(osm.ways, start=1):
        el = ET.SubElement(root, "way", id=str(wid), version="1")
        for r in refs:
            ET.SubElement(el, "nd", ref=str(r))
        for k, v in tags.items():
            ET.SubElement(el, "tag", k=k, v=v)
    ET.indent(root, space="  ")
    ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)


def _write_gpkg(gdf: gpd.GeoDataFrame, path: Path) -> None:
    path.unlink(missing_ok=True)
    old = pyogrio.get_gdal_config_option("OGR_CURRENT_DATE")
    pyogrio.set_gdal_config_options({"OGR_CURRENT_DATE": FIXED_DATE})
    try:
        gdf.to_file(path, driver="GPKG", engine="pyogrio")
    finally:
        pyogrio.set_gdal_config_options({"OGR_CURRENT_DATE": old})


def _write_raster(path: Path, data: np.ndarray, lay: _Layout) -> None:
    profile = {"driver": "GTiff", "height": data.shape[0], "width": data.shape[1], "count": 1,
               "dtype": "float32", "crs": PLANNING_CRS, "nodata": NODATA, "compress": "deflate",
               "transform": from_origin(lay.origin[0], lay.origin[1] + SIZE_M, CELL_M, CELL_M)}
    with rasterio.Env(GDAL_PAM_ENABLED="NO"):
        with rasterio.open(path, "w", **profile) as dst:
            dst.write(data, 1)


def _write_facilities(out: Path, rows: list[dict], lay: _Layout) -> dict[str, tuple[float, float]]:
    lon, lat = _to_lonlat(lay, [r["x"] for r in rows], [r["y"] for r in rows])
    glon, glat = cccrs.from_wgs84(lon, lat, "gcj02")
    table = [list(FACILITY_HEADERS)]
    for r, a, b in zip(rows, glon, glat):
        table.append([r["name"], r["type"], r["address"], f"{a:.8f}", f"{b:.8f}",
                      f"{r['floor_area']:.0f}", "" if r["beds"] is None else str(r["beds"])])
    for name, enc in (("facilities.csv", "utf-8-sig"), ("facilities_gbk.csv", "gbk")):
        with open(out / name, "w", encoding=enc, newline="") as fh:
            csv.writer(fh, lineterminator="\r\n").writerows(table)
    return {r["name"]: (float(a), float(b)) for r, a, b in zip(rows, lon, lat)}


def _rect(lay: _Layout, x0, y0, x1, y1):
    ox, oy = lay.origin
    return shapely.box(x0 + ox, y0 + oy, x1 + ox, y1 + oy)


CONFIG_TEMPLATE = """\
# carecircle run config for the sample district (示例街区, 无锡市新吴区), written by
# carecircle.layers.sample.generate_sample — paths are relative to this file.
profile: wuxi
network: {osm: district.osm}
facilities: {path: facilities.csv, crs: gcj02, x: 经度, y: 纬度, name: 名称, type: 类型, floor_area: 建筑面积, beds: 床位, address: 地址}
population: {raster: population.tif, elderly_raster: elderly.tif}
communities: {path: communities.gpkg, name_field: name, street_field: street, households_field: households, population_field: population, elderly_field: elderly, built_year_field: built_year}
estates: {path: estates.gpkg, name_field: name, community_field: community, households_field: households, built_year_field: built_year, space_field: space_m2}
streets: {path: streets.gpkg, name_field: name}
walk: {minutes: 15, speed_kmh: 4.0}
output: {shapefile_crs: auto, shapefile_encoding: UTF-8}
"""


def generate_sample(out_dir: str | Path, *, seed: int = DEFAULT_SEED) -> SampleDistrict:
    """Write the sample district's input files into ``out_dir``.

    Parameters
    ----------
    out_dir : str or pathlib.Path
        Folder to write into (created if missing; files of the same names are replaced).
    seed : int
        Seed of the numpy Generator behind every random choice (street jitter, gates, build
        years, households, facility sizes). The same seed gives byte-identical files.

    Returns
    -------
    SampleDistrict
        Paths of the files, the config, and the documented gaps.

    Notes
    -----
    Files: ``district.osm`` (OSM XML, WGS-84), ``facilities.csv`` (UTF-8 with BOM, GCJ-02,
    headers 名称,类型,地址,经度,纬度,建筑面积,床位) and ``facilities_gbk.csv`` (the same, GBK),
    ``population.tif`` and ``elderly.tif`` (100 m, EPSG:4549, float32 persons, nodata
    −99999), ``communities.gpkg`` and ``estates.gpkg`` (EPSG:4549), ``streets.gpkg``
    (EPSG:4326), ``config.yaml``.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    lay = _layout(rng)

    osm = _Osm()
    _build_streets(osm, lay)
    estates = _estates(osm, lay, rng)
    _build_motorway(osm, lay)
    osm.close_lines()
    _write_osm(out / "district.osm", osm, lay)

    people, elderly = _rasters(lay, estates, rng)
    _write_raster(out / "population.tif", people, lay)
    _write_raster(out / "elderly.tif", elderly, lay)

    est = gpd.GeoDataFrame(
        {
            "name": [e["name"] for e in estates],
            "community": [e["community"] for e in estates],
            "households": [e["households"] for e in estates],
            "population": [e["population"] for e in estates],
            "elderly": [e["elderly"] for e in estates],
            "built_year": [e["built_year"] for e in estates],
            "space_m2": [e["space_m2"] for e in estates],
            "gated": [e["gated"] for e in estates],
            "kind": ["门禁小区" if e["gated"] else "开放式老新村" for e in estates],
        },
        geometry=[_rect(lay, *e["rect"]) for e in estates],
        crs=PLANNING_CRS,
    )
    _write_gpkg(est, out / "estates.gpkg")

    com_rows = []
    for name, street, (i0, i1), (j0, j1) in COMMUNITIES:
        mine = [e for e in estates if e["community"] == name]
        dominant = max(mine, key=lambda e: e["households"])
        com_rows.append({
            "name": name, "street": street,
            "households": sum(e["households"] for e in mine),
            "population": sum(e["population"] for e in mine),
            "elderly": sum(e["elderly"] for e in mine),
            "built_year": dominant["built_year"],
            "geometry": _rect(lay, lay.X[i0], lay.Y[j0], lay.X[i1 + 1], lay.Y[j1 + 1]),
        })
    com = gpd.GeoDataFrame(com_rows, geometry="geometry", crs=PLANNING_CRS)
    _write_gpkg(com, out / "communities.gpkg")

    street_geoms = [shapely.segmentize(shapely.union_all(com.geometry[com["street"] == s].values), 50.0)
                    for s in STREETS]
    streets = gpd.GeoDataFrame({"name": list(STREETS)}, geometry=street_geoms, crs=PLANNING_CRS).to_crs("EPSG:4326")
    _write_gpkg(streets, out / "streets.gpkg")

    fac_rows = _facilities(lay, rng)
    facility_wgs84 = _write_facilities(out, fac_rows, lay)
    (out / "config.yaml").write_text(CONFIG_TEMPLATE, encoding="utf-8")

    gaps = _gaps(estates, fac_rows, people)
    return SampleDistrict(
        out_dir=out, config=out / "config.yaml", osm=out / "district.osm", facilities=out / "facilities.csv",
        facilities_gbk=out / "facilities_gbk.csv", population=out / "population.tif", elderly=out / "elderly.tif",
        communities=out / "communities.gpkg", estates=out / "estates.gpkg", streets=out / "streets.gpkg",
        crs=PLANNING_CRS, seed=seed, gaps=gaps, facility_wgs84=facility_wgs84,
    )


def _gaps(estates: list[dict], fac_rows: list[dict], people: np.ndarray) -> tuple[Gap, ...]:
    """The documented gaps, with their numbers; asserts the layout keeps them apart."""
    cx, cy = _cell_centres()
    homes = np.zeros(cx.shape, dtype=bool)
    for e in estates:
        if e["community"] == GAP_NO_MEAL_COMMUNITY:
            homes |= _cells_in(cx, cy, e["rect"])
    homes &= people > 0
    meals = np.array([(r["x"], r["y"]) for r in fac_rows if r["kind"] in ("both", "meal", "centre")])
    l1 = np.abs(cx[homes][:, None] - meals[:, 0]) + np.abs(cy[homes][:, None] - meals[:, 1])
    nearest = float(l1.min())
    if nearest < GAP_MEAL_MIN_L1_M:
        raise AssertionError(f"a meal point is {nearest:.0f} m (Manhattan) from {GAP_NO_MEAL_COMMUNITY}")
    gap_estate = next(e for e in estates if e["name"] == GAP_SPACE_ESTATE)
    street_of = {c[0]: c[1] for c in COMMUNITIES}
    return (
        Gap("no_meal", street_of[GAP_NO_MEAL_COMMUNITY], community=GAP_NO_MEAL_COMMUNITY,
            value=round(nearest, 1), required=1000.0,
            description=f"{GAP_NO_MEAL_COMMUNITY}：步行1000米内无助餐点（日间照料已覆盖）"),
        Gap("space", gap_estate["street"], community=gap_estate["community"], estate=GAP_SPACE_ESTATE,
            value=gap_estate["space_m2"], required=gap_estate["space_required_m2"],
            description=f"{GAP_SPACE_ESTATE}（{gap_estate['built_year']}年建成，{gap_estate['households']}户）"
                        f"养老服务用房不足每百户20平方米"),
        Gap("no_street_centre", GAP_STREET, description=f"{GAP_STREET}：无街道综合养老服务中心"),
    )
