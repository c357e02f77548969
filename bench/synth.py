"""Synthetic street grids for the benchmark, generated directly as a ``Network`` (numpy, fast).

A jittered square grid of ``side × side`` nodes 100 m apart (a city of ``side²/100`` km²),
about 8 % of the street links missing (blocks of irregular size), every fifth street bent
through an interior vertex (so geometries are not all straight), population points spread
uniformly at one per node (the density of a 100 m population grid), and three services of
facilities at planning-like densities: day care one per 1.4 km², meal points one per km²,
street centres one per 10 km².
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from carecircle.layers.network import Network
from carecircle.layers.accounting import LayerReport

STEP_M = 100.0
CRS = "EPSG:32650"
#: Facilities per node, by service.
DENSITY = {"day_care": 1 / 140, "meal": 1 / 100, "street_centre": 1 / 1000}


@dataclass
class Case:
    name: str
    network: Network
    people: np.ndarray  # (n, 2) coordinates
    facilities: dict[str, np.ndarray]  # service -> (k, 2) coordinates


def grid_case(n_nodes: int, seed: int = 0, *, n_people: int | None = None, n_facilities: int | None = None) -> Case:
    """A synthetic city with about ``n_nodes`` street nodes.

    ``n_people`` population points (default one per node) and ``n_facilities`` facilities
    split over the services in the proportions of :data:`DENSITY` (default: at those densities).
    """
    rng = np.random.default_rng(seed)
    side = int(round(np.sqrt(n_nodes)))
    n = side * side
    gx, gy = np.meshgrid(np.arange(side), np.arange(side))
    xy = np.column_stack([gx.ravel(), gy.ravel()]) * STEP_M + rng.uniform(-10, 10, (n, 2))
    idx = np.arange(n).reshape(side, side)
    u = np.concatenate([idx[:, :-1].ravel(), idx[:-1, :].ravel()])
    v = np.concatenate([idx[:, 1:].ravel(), idx[1:, :].ravel()])
    keep = rng.random(len(u)) > 0.08
    u, v = u[keep], v[keep]
    m = len(u)
    bent = np.arange(m) % 5 == 0
    mid = (xy[u] + xy[v]) / 2 + rng.uniform(-15, 15, (m, 2))
    nv = np.where(bent, 3, 2)
    pts = np.empty((int(nv.sum()), 2))
    first = np.cumsum(nv) - nv
    pts[first] = xy[u]
    pts[first[bent] + 1] = mid[bent]
    pts[first + nv - 1] = xy[v]
    lines = shapely.linestrings(pts, indices=np.repeat(np.arange(m), nv))
    nodes = gpd.GeoDataFrame({"x": xy[:, 0], "y": xy[:, 1]}, geometry=shapely.points(xy), crs=CRS)
    edges = gpd.GeoDataFrame(
        {"u": u, "v": v, "length_m": shapely.length(lines), "highway": "residential"}, geometry=lines, crs=CRS
    )
    report = LayerReport("network", f"synthetic grid {side}x{side}", read=m)
    network = Network(nodes=nodes, edges=edges, report=report, stats={"nodes": n, "edges": m})
    extent = (side - 1) * STEP_M
    people = rng.uniform(0, extent, (n if n_people is None else n_people, 2))
    share = {s: d / sum(DENSITY.values()) for s, d in DENSITY.items()}
    count = {s: max(1, round(n * d if n_facilities is None else n_facilities * share[s])) for s, d in DENSITY.items()}
    facilities = {s: rng.uniform(0, extent, (count[s], 2)) for s in DENSITY}
    return Case(f"grid {n // 1000}k" if n < 1_000_000 else f"grid {n / 1e6:.1f}M", network, people, facilities)


#: Where :func:`write_run_inputs` puts the grid: UTM 50N near 117° E, 31.6° N (inside China,
#: so the facility and population checks keep every point).
RUN_ORIGIN = (500_000.0, 3_500_000.0)
#: Facility type per service, as a facility list names them (matched by the profile's keywords).
RUN_TYPES = {"day_care": "日间照料中心", "meal": "助餐点", "street_centre": "街道综合养老服务中心"}


def write_run_inputs(case: Case, folder, *, communities_per_side: int = 10) -> Path:
    """Write ``case`` as the files of a ``carecircle run`` and return its config.

    Streets as a GeoPackage line layer (noded on shared vertices by ``read_lines``),
    facilities as a CSV in EPSG:32650 metres, population as points with a count, and a
    ``communities_per_side``² grid of 社区 in ten 街道. Table outputs only.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    ox, oy = RUN_ORIGIN
    shift = lambda g: shapely.transform(g, lambda xy: xy + (ox, oy))  # noqa: E731
    edges = case.network.edges
    gpd.GeoDataFrame({"highway": edges["highway"].to_numpy()}, geometry=shift(edges.geometry.values),
                     crs=CRS).to_file(folder / "roads.gpkg")
    rows = [(f"{RUN_TYPES[s]}{i + 1}", RUN_TYPES[s], x + ox, y + oy)
            for s, xy in case.facilities.items() for i, (x, y) in enumerate(xy)]
    pd.DataFrame(rows, columns=["名称", "类型", "x", "y"]).to_csv(folder / "facilities.csv", index=False, encoding="utf-8-sig")
    people = np.full(len(case.people), 25.0)
    gpd.GeoDataFrame({"people": people}, geometry=shapely.points(case.people + (ox, oy)),
                     crs=CRS).to_file(folder / "population.gpkg")
    x0, y0, x1, y1 = shapely.total_bounds(case.network.nodes.geometry.values)
    xs, ys = np.linspace(x0, x1, communities_per_side + 1), np.linspace(y0, y1, communities_per_side + 1)
    cells = [(i, j) for j in range(communities_per_side) for i in range(communities_per_side)]
    gpd.GeoDataFrame(
        {"name": [f"社区{i}-{j}" for i, j in cells], "street": [f"街道{j}" for _, j in cells]},
        geometry=[shapely.box(xs[i] + ox, ys[j] + oy, xs[i + 1] + ox, ys[j + 1] + oy) for i, j in cells], crs=CRS,
    ).to_file(folder / "communities.gpkg")
    config = folder / "config.yaml"
    config.write_text(
        "profile: national\n"
        "network: {lines: roads.gpkg}\n"
        f"facilities: {{path: facilities.csv, crs: '{CRS}', x: x, y: y, name: 名称, type: 类型}}\n"
        "population: {points: population.gpkg, count_field: people, elderly_share: 0.2}\n"
        "communities: {path: communities.gpkg, name_field: name, street_field: street}\n"
        "walk: {distance_m: 1000}\n"
        "output: {formats: [communities, streets, actions]}\n",
        encoding="utf-8",
    )
    return config
