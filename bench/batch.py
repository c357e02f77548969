"""Benchmark of `carecircle batch`: a synthetic province on 1 vs 2 workers, and one big region tiled vs untiled.

    .venv/bin/python bench/batch.py [--districts 20] [--large 4] [--region-nodes 40000] [--out out/bench-batch]

* **Province**: sample districts (:func:`carecircle.layers.sample.generate_sample`, one seed
  each, 3 × 3 km, ~200,000 people) plus ``--large`` bigger synthetic districts (grids from
  ``bench/synth.py`` written as ordinary input files: road lines, facility CSV, population
  points, communities), run as one batch on a LocalCluster of 1 and then 2 worker processes.
  Goal: ≥ 1.7× on 2 workers.
* **Tiles**: one grid region of ``--region-nodes`` street nodes, untiled (one task) and in
  grid tiles (``--tile-m``), both on 1 worker so the ratio is the work tiling adds (halo).
  Goal: overhead ≤ 25 %.

Peak memory per worker is the worker process's peak RSS (``ru_maxrss``) after its tasks.
Tables-only outputs (no map, polygons or package): the analysis is what scales.
Prints a Markdown section for bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from datetime import date
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
import yaml

sys.path.insert(0, str(Path(__file__).parent))

from synth import grid_case  # noqa: E402

from carecircle.batch import run_batch  # noqa: E402
from carecircle.layers.sample import generate_sample  # noqa: E402

LEAN = ["population", "communities", "streets", "actions", "facilities"]
#: Synthetic grids sit at a realistic place (UTM 50N, about 117° E, 31.6° N).
OFFSET = np.array([500_000.0, 3_500_000.0])
FACILITY_TYPES = {"day_care": "社区日间照料中心", "meal": "老年助餐点", "street_centre": "街道综合养老服务中心"}


def write_grid_district(folder: Path, n_nodes: int, seed: int) -> Path:
    """A synthetic district as input files: roads.gpkg, facilities.csv, population.gpkg, communities.gpkg."""
    folder.mkdir(parents=True, exist_ok=True)
    case = grid_case(n_nodes, seed=seed)
    crs = case.network.edges.crs
    edges = case.network.edges[["highway", "geometry"]].copy()
    edges["geometry"] = shapely.transform(edges.geometry.values, lambda xy: xy + OFFSET)
    edges.to_file(folder / "roads.gpkg", driver="GPKG")
    rows = [{"名称": f"{FACILITY_TYPES[s]}{i + 1}", "类型": FACILITY_TYPES[s], "x": x + OFFSET[0], "y": y + OFFSET[1]}
            for s, xy in case.facilities.items() for i, (x, y) in enumerate(xy)]
    pd.DataFrame(rows).to_csv(folder / "facilities.csv", index=False, encoding="utf-8-sig")
    pop = gpd.GeoDataFrame({"people": np.full(len(case.people), 25.0)},
                           geometry=shapely.points(case.people + OFFSET), crs=crs)
    pop.to_file(folder / "population.gpkg", driver="GPKG")
    extent = case.people.max() + 1
    block, street = 1000.0, 3
    nb = int(np.ceil(extent / block))
    com = gpd.GeoDataFrame(
        [{"name": f"社区{i:02d}{j:02d}", "street": f"街道{i // street:02d}{j // street:02d}",
          "geometry": shapely.box(*(OFFSET + [i * block, j * block]), *(OFFSET + [(i + 1) * block, (j + 1) * block]))}
         for i in range(nb) for j in range(nb)], geometry="geometry", crs=crs)
    com.to_file(folder / "communities.gpkg", driver="GPKG")
    config = {
        "profile": "national",
        "network": {"lines": "roads.gpkg"},
        "facilities": {"path": "facilities.csv", "crs": crs.to_string(), "x": "x", "y": "y", "name": "名称", "type": "类型"},
        "population": {"points": "population.gpkg", "count_field": "people", "elderly_share": 0.2},
        "communities": {"path": "communities.gpkg", "name_field": "name", "street_field": "street"},
        "output": {"formats": LEAN},
    }
    (folder / "config.yaml").write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    return folder / "config.yaml"


def lean_sample(folder: Path, seed: int) -> Path:
    s = generate_sample(folder, seed=seed)
    text = s.config.read_text(encoding="utf-8").replace(
        "output: {shapefile_crs: auto, shapefile_encoding: UTF-8}", "output: {formats: [" + ", ".join(LEAN) + "]}")
    s.config.write_text(text, encoding="utf-8")
    return s.config


def timed_batch(batch: Path, out: Path, workers: int) -> tuple[float, object]:
    t0 = time.perf_counter()
    result = run_batch(batch, out, workers=workers, log=lambda line: None)
    wall = time.perf_counter() - t0
    if result.failures:
        raise SystemExit(f"bench: failed: {result.failures}")
    return wall, result


def peak_per_worker(result) -> dict[int, float]:
    peaks: dict[int, float] = {}
    for t in result.tasks:
        peaks[t["worker_pid"]] = max(peaks.get(t["worker_pid"], 0.0), t["peak_rss_mb"])
    return peaks


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--districts", type=int, default=20, help="districts in the province (sample + large)")
    ap.add_argument("--large", type=int, default=4, help="of which large synthetic grids")
    ap.add_argument("--large-nodes", type=int, default=25_000)
    ap.add_argument("--region-nodes", type=int, default=40_000)
    ap.add_argument("--tile-m", type=float, default=10_000)
    ap.add_argument("--out", type=Path, default=Path("out/bench-batch"))
    args = ap.parse_args()
    root = args.out.resolve()
    inputs = root / "inputs"
    runs = []
    for k in range(args.districts - args.large):
        runs.append({"name": f"样例区{k + 1:02d}", "config": str(lean_sample(inputs / f"s{k:02d}", seed=100 + k))})
    for k in range(args.large):
        runs.append({"name": f"大区{k + 1}", "config": str(write_grid_district(inputs / f"g{k}", args.large_nodes, seed=k))})
    province = root / "province.yaml"
    province.write_text(yaml.safe_dump({"runs": runs}, allow_unicode=True), encoding="utf-8")

    res = {}
    for w in (1, 2):
        res[w] = timed_batch(province, root / f"province-{w}w", w)
    t1, r1 = res[1]
    t2, r2 = res[2]
    per_task = pd.DataFrame(r1.tasks)
    small = per_task[per_task["name"].str.startswith("样例")]["seconds"]
    large = per_task[per_task["name"].str.startswith("大区")]["seconds"]
    small_cpu = per_task[per_task["name"].str.startswith("样例")]["cpu_s"]
    large_cpu = per_task[per_task["name"].str.startswith("大区")]["cpu_s"]
    cpu1, cpu2 = (sum(t["cpu_s"] for t in r.tasks) for r in (r1, r2))

    region = write_grid_district(inputs / "region", args.region_nodes, seed=99)
    whole_batch = root / "region-whole.yaml"
    whole_batch.write_text(yaml.safe_dump({"runs": [{"name": "whole", "config": str(region)}]}), encoding="utf-8")
    tiled_batch = root / "region-tiled.yaml"
    tiled_batch.write_text(yaml.safe_dump({"config": str(region), "tiles": {"grid_m": args.tile_m}}), encoding="utf-8")
    tw, rw = timed_batch(whole_batch, root / "region-whole", 1)
    tt, rt = timed_batch(tiled_batch, root / "region-tiled", 1)
    tt2, rt2 = timed_batch(tiled_batch, root / "region-tiled-2w", 2)
    task_whole = sum(t["cpu_s"] for t in rw.tasks)
    # The tiled batch reads the region once in a prepare task: its CPU is part of the tiled cost.
    task_tiled = sum(t["cpu_s"] for t in rt.tasks) + rt.timings.get("prepare", {}).get("cpu_s", 0.0)
    tile_rec = [json.loads((root / "region-tiled" / t["name"] / "summary.json").read_text(encoding="utf-8"))["tile"]
                for t in rt.tasks]
    whole_sum = json.loads((root / "region-whole" / "whole" / "summary.json").read_text(encoding="utf-8"))

    load = os.getloadavg()
    lines = [
        f"## Batch runs and tiles (`bench/batch.py`, {date.today().isoformat()})",
        "",
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
        f"load average {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} at the end (a load near the core count or above "
        "disturbs the 2-worker speed-up most).",
        f"Command: `.venv/bin/python bench/batch.py --districts {args.districts} --large {args.large} "
        f"--large-nodes {args.large_nodes} --region-nodes {args.region_nodes} --tile-m {args.tile_m:g}`. "
        "Outputs: tables and GeoPackages (no map, polygons or package).",
        "",
        "| province: " + f"{args.districts} districts ({args.districts - args.large} sample 3×3 km, {args.large} grids of "
        f"{args.large_nodes:,} nodes) | 1 worker | 2 workers | speed-up | goal |",
        "|---|---|---|---|---|",
        f"| whole batch (wall) | {t1:.1f} s | {t2:.1f} s | {t1 / t2:.2f}× | ≥ 1.7× |",
        f"| task phase (wall, all tasks on the cluster) | {r1.timings['tasks_s']:.1f} s | {r2.timings['tasks_s']:.1f} s | "
        f"{r1.timings['tasks_s'] / r2.timings['tasks_s']:.2f}× | |",
        f"| CPU seconds of all tasks | {cpu1:.1f} s | {cpu2:.1f} s | | |",
        f"| cluster start / merge | {r1.timings['cluster_start_s']:.1f} / {r1.timings['merge_s']:.1f} s | "
        f"{r2.timings['cluster_start_s']:.1f} / {r2.timings['merge_s']:.1f} s | | |",
        "",
        f"Per district (1 worker): sample median {small.median():.1f} s wall / {small_cpu.median():.1f} s CPU, "
        f"large median {large.median():.1f} s wall / {large_cpu.median():.1f} s CPU. Peak RSS per worker: 1 worker "
        + ", ".join(f"{v:.0f} MB" for v in peak_per_worker(r1).values())
        + "; 2 workers " + ", ".join(f"{v:.0f} MB" for v in peak_per_worker(r2).values()) + ".",
        "",
        "| region | tasks | 1 worker wall | task CPU s | overhead (CPU) | 2 workers wall | goal |",
        "|---|---|---|---|---|---|---|",
        f"| grid {whole_sum['network']['graph']['nodes']:,} nodes, untiled | 1 | {tw:.1f} s | {task_whole:.1f} s | | | |",
        f"| same, {args.tile_m / 1000:g} km grid tiles | {len(rt.tasks)} | {tt:.1f} s | {task_tiled:.1f} s | "
        f"{task_tiled / task_whole - 1:+.0%} | {tt2:.1f} s | ≤ +25 % |",
        "",
        "Tiles (halo " + f"{tile_rec[0]['halo_m']:,.0f} m): network edges per tile "
        + ", ".join(f"{r['network_edges']:,}" for r in tile_rec)
        + f" of {whole_sum['network']['graph']['edges']:,}; peak RSS per worker untiled "
        + ", ".join(f"{v:.0f} MB" for v in peak_per_worker(rw).values()) + ", tiled "
        + ", ".join(f"{v:.0f} MB" for v in peak_per_worker(rt).values()) + ".",
    ]
    print("\n".join(lines))
    (root / "results.json").write_text(json.dumps({
        "province_1w_s": t1, "province_2w_s": t2, "timings_1w": r1.timings, "timings_2w": r2.timings, "per_task": r1.tasks, "region_whole_s": tw, "region_tiled_s": tt,
        "region_tiled_2w_s": tt2, "task_whole_s": task_whole, "task_tiled_s": task_tiled, "tiles": tile_rec,
        "load": load}, ensure_ascii=False, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
