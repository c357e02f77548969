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

import geopandas as gpd
import numpy as np
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


def grid_case(n_nodes: int, seed: int = 0) -> Case:
    """A synthetic city with about ``n_nodes`` street nodes."""
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
    people = rng.uniform(0, extent, (n, 2))
    facilities = {s: rng.uniform(0, extent, (max(1, round(n * d)), 2)) for s, d in DENSITY.items()}
    return Case(f"grid {n // 1000}k" if n < 1_000_000 else f"grid {n / 1e6:.1f}M", network, people, facilities)
