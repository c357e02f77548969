"""What each walk rule changes on the three real OSM extracts (issue 12's numbers).

Not a timing: a measurement of coverage under each rule, one rule switched off at a time.
Setup (the layout of tests/test_shared_inputs.py): two day-care centres at the centroids
of the south-west and north-east of four 2 × 2 communities over the middle of the extract;
population points on a regular grid over the extract's <bounds> (``--grid`` metres, one
person each); snapped within 300 m onto components of ≥ 50 nodes; covered = walk ≤ 1000 m.

    .venv/bin/python bench/walk_rules.py [--grid 50]
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from unittest import mock

import geopandas as gpd
import numpy as np
from shapely.geometry import box

from carecircle.coverage.graph import build_graph
from carecircle.coverage.reach import nearest_distance
from carecircle.coverage.snap import snap_points
from carecircle.layers import osm

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "osm"
CIRCLE_M = 1000.0


def bounds(path: Path) -> tuple[float, float, float, float]:
    head = path.read_text(encoding="utf-8")[:2000]
    attrs = dict(re.findall(r'(min\w+|max\w+)="([-\d.]+)"', re.search(r"<bounds[^>]*>", head).group(0)))
    return tuple(float(attrs[k]) for k in ("minlon", "minlat", "maxlon", "maxlat"))


def layout(path: Path, grid_m: float, crs):
    lon0, lat0, lon1, lat1 = bounds(path)
    dx, dy = (lon1 - lon0) / 5, (lat1 - lat0) / 5
    x = [lon0 + dx, lon0 + 2.5 * dx, lon0 + 4 * dx]
    y = [lat0 + dy, lat0 + 2.5 * dy, lat0 + 4 * dy]
    com = gpd.GeoSeries([box(x[i], y[j], x[i + 1], y[j + 1]) for j in (0, 1) for i in (0, 1)], crs=4326)
    centres = com.to_crs(crs).centroid.iloc[[0, 3]]
    west, south, east, north = gpd.GeoSeries([box(lon0, lat0, lon1, lat1)], crs=4326).to_crs(crs).total_bounds
    gx, gy = np.meshgrid(np.arange(west, east, grid_m), np.arange(south, north, grid_m))
    return centres.values, gpd.points_from_xy(gx.ravel(), gy.ravel())


def distances(net, facilities, points) -> np.ndarray:
    graph = build_graph(net, min_component_nodes=50)
    dist, _ = nearest_distance(graph, snap_points(graph, facilities, max_snap_m=300),
                               snap_points(graph, points, max_snap_m=300), cutoff_m=3 * CIRCLE_M)
    return dist


VARIANTS = {
    "all rules (default)": {},
    "no barrier closing": {"barriers": False},
    "clipped at <bounds>": {"clip_margin_m": 0},
    "no pedestrian areas": {"pedestrian_areas": "none"},
    "step-free": {"step_free": True},
}


def read(path: Path, options: dict):
    options = dict(options)
    if options.pop("barriers", True):
        return osm.read_osm(path, **options)
    with mock.patch.object(osm, "node_closure", lambda tags, **kw: None):
        return osm.read_osm(path, **options)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--grid", type=float, default=50.0, help="population grid spacing, metres")
    args = parser.parse_args()
    print(f"Population grid {args.grid:g} m over each extract's <bounds>; covered = walk ≤ {CIRCLE_M:g} m.\n")
    print("| extract | variant | points | covered | Δ vs default | largest change of one point |")
    print("|---|---|---|---|---|---|")
    for path in sorted(DATA.glob("*.osm")):
        nets = {name: read(path, options) for name, options in VARIANTS.items()}
        fac, pts = layout(path, args.grid, nets["all rules (default)"].crs)
        base = None
        for name, net in nets.items():
            d = distances(net, fac, pts)
            share = float(np.mean(d <= CIRCLE_M))
            if base is None:
                base, base_share, change = d, share, ""
            else:
                both = np.isfinite(d) & np.isfinite(base)
                gap = np.abs(np.where(both, d, 0.0) - np.where(both, base, 0.0))
                i = int(np.argmax(gap))
                change = f"point {i}: {base[i]:,.0f} m → {d[i]:,.0f} m" if gap[i] > 0 else "none"
            delta = "" if name == "all rules (default)" else f"{100 * (share - base_share):+.1f} pt"
            print(f"| {path.stem} | {name} | {len(pts):,} | {100 * share:.1f} % | {delta} | {change} |")


if __name__ == "__main__":
    main()
