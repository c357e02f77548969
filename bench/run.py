"""Coverage and isochrone benchmark: carecircle against the methods planners use today.

Run ``make bench`` (or ``.venv/bin/python bench/run.py [--quick] [--sizes 10000 100000]``).
Every (case, method) runs in its own subprocess, so each peak memory figure
(``ru_maxrss``) belongs to one method alone; the case (network + points) is regenerated in
each subprocess from a fixed seed, and its generation time is not counted.

Methods, all on the same network, population points, facilities and 1,000 m cut-off:

* ``carecircle``   — build_graph + snap all points to edges + one multi-source search per
  service (3 services), exact edge-snapped distances for every population point;
* ``cc_iso``       — carecircle per-facility isochrone polygons (sausage and concave hull)
  and the dissolved polygon per service;
* ``osmnx_example``— the OSMnx isochrone example: networkx ``ego_graph`` per facility +
  convex hull of the reached nodes + point-in-polygon for the population. It is run on a
  sample of facilities per service and extrapolated to all of them (marked "extrapolated");
* ``networkx``     — ``multi_source_dijkstra_path_length`` with the cut-off, one per service,
  population read off its nearest node (nearest-node snapping);
* ``pandana``      — ``pandana.Network`` (contraction-hierarchy preprocessing) +
  ``nearest_pois`` per service, population by ``get_node_ids`` (nearest node), total time
  including the preprocessing.

Writes ``bench/RESULTS.md`` (machine, date, table, ratios) next to this file.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

CUTOFF_M = 1000.0
SERVICES = ("day_care", "meal", "street_centre")
OSMNX_SAMPLE = 10  # facilities per service timed with the OSMnx-example method
#: The end-to-end case of issue 10: ``carecircle run`` on a 300 × 300 jittered grid.
RUN_CASE = {"nodes": 90_000, "people": 40_000, "facilities": 3_000}
XINWU = HERE.parents[1] / "shared" / "data" / "wuxi_xinwu" / "xinwu_road_centerlines.gpkg"


# --------------------------------------------------------------------------- cases


def load_case(name: str):
    """The named case: ``grid:<nodes>``, ``run`` (:data:`RUN_CASE`) or ``xinwu``."""
    if name == "run":
        from synth import grid_case

        return grid_case(RUN_CASE["nodes"], n_people=RUN_CASE["people"], n_facilities=RUN_CASE["facilities"])
    if name.startswith("grid:"):
        from synth import grid_case

        return grid_case(int(name.split(":")[1]))
    from synth import DENSITY, Case

    from carecircle.layers.lines import read_lines

    net = read_lines(XINWU)
    x0, y0, x1, y1 = net.edges.total_bounds
    rng = np.random.default_rng(0)
    gx, gy = np.meshgrid(np.arange(x0, x1, 100.0) + 50, np.arange(y0, y1, 100.0) + 50)
    people = np.column_stack([gx.ravel(), gy.ravel()])
    km2 = (x1 - x0) * (y1 - y0) / 1e6
    # Same densities per km² as the 100 m grids (1 node per 0.01 km²).
    facilities = {s: np.column_stack([rng.uniform(x0, x1, n), rng.uniform(y0, y1, n)])
                  for s, n in ((s, max(1, round(km2 * 100 * d))) for s, d in DENSITY.items())}
    return Case("Xinwu (Wuxi)", net, people, facilities)


# --------------------------------------------------------------------------- methods


def run_carecircle(case) -> dict:
    import shapely

    from carecircle.coverage.graph import build_graph
    from carecircle.coverage.reach import nearest_distance
    from carecircle.coverage.snap import snap_points

    t = {}
    s = time.perf_counter()
    graph = build_graph(case.network)
    t["graph"] = time.perf_counter() - s
    s = time.perf_counter()
    people = snap_points(graph, shapely.points(case.people))
    fac = {k: snap_points(graph, shapely.points(v)) for k, v in case.facilities.items()}
    t["snap"] = time.perf_counter() - s
    s = time.perf_counter()
    covered = {}
    for k in SERVICES:
        dist, _ = nearest_distance(graph, fac[k], people, cutoff_m=CUTOFF_M)
        covered[k] = float(np.isfinite(dist).mean())
    t["reach"] = time.perf_counter() - s
    return {"time": sum(t.values()), "parts": t, "covered": covered, "unsnapped": int((~people.ok).sum()),
            "nodes": graph.n_nodes, "edges": graph.n_edges, "people": len(case.people),
            "facilities": {k: len(v) for k, v in case.facilities.items()}}


def run_cc_iso(case, services: list[str]) -> dict:
    import shapely

    from carecircle.coverage.graph import build_graph
    from carecircle.coverage.isochrones import dissolve_isochrones, facility_isochrones
    from carecircle.coverage.snap import snap_points

    graph = build_graph(case.network)
    out = {"services": services}
    fac = {k: snap_points(graph, shapely.points(case.facilities[k])) for k in services}
    out["facilities"] = int(sum(len(f) for f in fac.values()))
    for method in ("buffer", "concave"):
        s = time.perf_counter()
        for k in services:
            facility_isochrones(graph, fac[k], np.arange(len(fac[k])), cutoffs_m=[CUTOFF_M], method=method, service=k)
        out[method] = time.perf_counter() - s
    s = time.perf_counter()
    for k in services:
        dissolve_isochrones(graph, fac[k], cutoffs_m=[CUTOFF_M], service=k)
    out["dissolved"] = time.perf_counter() - s
    return out


def _nx_graph(case):
    import networkx as nx

    e = case.network.edges
    g = nx.Graph()
    g.add_nodes_from(range(len(case.network.nodes)))
    # Shortest of parallel edges, as every router would.
    best = e.groupby(["u", "v"], sort=False)["length_m"].min()
    g.add_weighted_edges_from(zip(best.index.get_level_values(0), best.index.get_level_values(1), best.to_numpy()),
                              weight="length")
    return g


def _nearest_nodes(case, xy):
    from scipy.spatial import cKDTree

    nodes = case.network.nodes
    return cKDTree(np.column_stack([nodes["x"], nodes["y"]])).query(xy, workers=-1)[1]


def run_osmnx_example(case) -> dict:
    import networkx as nx
    import shapely

    s, cpu0 = time.perf_counter(), time.process_time()
    g = _nx_graph(case)
    build, build_cpu = time.perf_counter() - s, time.process_time() - cpu0
    nodes = case.network.nodes
    nx_, ny_ = nodes["x"].to_numpy(), nodes["y"].to_numpy()
    tree = shapely.STRtree(shapely.points(case.people))
    per, per_cpu, n_total, timed = [], [], 0, 0
    for k in SERVICES:
        pts = case.facilities[k]
        n_total += len(pts)
        sample = pts[:OSMNX_SAMPLE]
        s, cpu0 = time.perf_counter(), time.process_time()
        centre = _nearest_nodes(case, sample)
        covered = set()
        for c in centre:
            sub = nx.ego_graph(g, int(c), radius=CUTOFF_M, distance="length")
            ids = np.fromiter(sub.nodes, dtype=np.int64)
            hull = shapely.MultiPoint(np.column_stack([nx_[ids], ny_[ids]])).convex_hull
            covered.update(tree.query(hull, predicate="contains").tolist())
        per.append((time.perf_counter() - s) / len(sample))
        per_cpu.append((time.process_time() - cpu0) / len(sample))
        timed += len(sample)
    weights = [min(len(case.facilities[k]), OSMNX_SAMPLE) for k in SERVICES]
    per_fac = float(np.average(per, weights=weights))
    # CPU seconds too: on a shared machine they do not count the time spent waiting for a core.
    cpu = build_cpu + float(np.average(per_cpu, weights=weights)) * n_total
    return {"time": build + per_fac * n_total, "cpu": cpu, "graph": build, "per_facility": per_fac,
            "extrapolated": timed < n_total, "timed_facilities": timed, "facilities": n_total}


def run_networkx(case) -> dict:
    import networkx as nx

    s = time.perf_counter()
    g = _nx_graph(case)
    build = time.perf_counter() - s
    s = time.perf_counter()
    people_node = _nearest_nodes(case, case.people)
    covered = {}
    for k in SERVICES:
        src = set(_nearest_nodes(case, case.facilities[k]).tolist())
        d = nx.multi_source_dijkstra_path_length(g, src, cutoff=CUTOFF_M, weight="length")
        reached = np.zeros(len(case.network.nodes), dtype=bool)
        reached[np.fromiter(d.keys(), dtype=np.int64)] = True
        covered[k] = float(reached[people_node].mean())
    search = time.perf_counter() - s
    return {"time": build + search, "graph": build, "search": search, "covered": covered}


def run_pandana(case) -> dict:
    import pandana
    import pandas as pd

    nodes, e = case.network.nodes, case.network.edges
    s = time.perf_counter()
    net = pandana.Network(nodes["x"], nodes["y"], e["u"], e["v"], pd.DataFrame({"length": e["length_m"].to_numpy()}),
                          twoway=True)
    prep = time.perf_counter() - s
    s = time.perf_counter()
    people_node = net.get_node_ids(pd.Series(case.people[:, 0]), pd.Series(case.people[:, 1]))
    covered = {}
    for k in SERVICES:
        f = case.facilities[k]
        net.set_pois(k, CUTOFF_M, 1, pd.Series(f[:, 0]), pd.Series(f[:, 1]))
        near = net.nearest_pois(CUTOFF_M, k, num_pois=1)
        d = near[1].reindex(people_node.to_numpy()).to_numpy()
        covered[k] = float((d < CUTOFF_M).mean())
    return {"time": prep + time.perf_counter() - s, "preprocess": prep, "covered": covered}


METHODS = {
    "carecircle": run_carecircle,
    "networkx": run_networkx,
    "osmnx_example": run_osmnx_example,
    "pandana": run_pandana,
}


def worker(method: str, case_name: str, extra: str) -> None:
    case = load_case(case_name)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if method == "cc_iso":
        out = run_cc_iso(case, extra.split(","))
    else:
        out = METHODS[method](case)
    out["peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out["case_mb"] = base
    print("RESULT " + json.dumps(out))


def best_of(method: str, case_name: str, extra: str = "", repeats: int = 3, quick_s: float = 30.0) -> dict | None:
    """The fastest of up to ``repeats`` runs (runs after the first only if it took < quick_s).

    The machine may be shared: the minimum is the least disturbed measurement.
    """
    best = spawn(method, case_name, extra)
    for _ in range(repeats - 1):
        if not best or "error" in best or _seconds(best) >= quick_s:
            break
        again = spawn(method, case_name, extra)
        if again and "error" not in again and _seconds(again) < _seconds(best):
            best = again
    return best


def _seconds(r: dict) -> float:
    return r["time"] if "time" in r else r.get("buffer", 0.0) + r.get("concave", 0.0) + r.get("dissolved", 0.0)


def spawn(method: str, case_name: str, extra: str = "", timeout: float = 1800) -> dict | None:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", method, "--case", case_name, "--extra", extra]
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timeout {timeout:.0f} s"}
    for line in p.stdout.splitlines():
        if "RESULT " in line:  # pandana prints progress without a newline
            return json.loads(line.split("RESULT ", 1)[1])
    tail = (p.stderr.strip().splitlines() or ["no output"])[-1]
    return {"error": tail[:200]}



# --------------------------------------------------------------------------- issue 10 goals


def _timed(cmd: list[str]) -> tuple[float, float]:
    """Wall and CPU seconds (user + system, of the child and its threads) of one command."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    s = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True)
    wall = time.perf_counter() - s
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


#: carecircle's source folders (the package and its stages).
PACKAGE_DIRS = ("carecircle", "coverage", "layers", "maps")
#: The least any geopandas-based tool does on the run case: start Python, import geopandas,
#: read the four input files (no graph, no analysis, no output).
FLOOR_CODE = """
import sys
import geopandas as gpd
import pandas as pd
for name in ("roads.gpkg", "population.gpkg", "communities.gpkg"):
    gpd.read_file(f"{sys.argv[1]}/{name}", engine="pyogrio")
pd.read_csv(f"{sys.argv[1]}/facilities.csv")
"""


def run_goals(repeats: int = 5) -> dict:
    """Issue 10's goals, measured in one run, interleaved so that both sides see the same load.

    ``carecircle run`` with table outputs only (a fresh process: start-up, reading the
    files, analysis, writing) on :data:`RUN_CASE` against the OSMnx example on the same
    network, facilities and people; and ``carecircle --help``. Medians of ``repeats`` runs.
    """
    import tempfile

    from synth import write_run_inputs

    exe = str(Path(sys.executable).with_name("carecircle"))
    runs, osmnx, helps, floors = [], [], [], []
    # An installed carecircle has its bytecode compiled (pip does it); this checkout may run
    # with PYTHONDONTWRITEBYTECODE set, which would compile ~50 modules afresh in every run.
    subprocess.run([sys.executable, "-m", "compileall", "-q", *(str(HERE.parent / d) for d in PACKAGE_DIRS)],
                   check=True)
    with tempfile.TemporaryDirectory(prefix="cc-bench-") as tmp:
        config = write_run_inputs(load_case("run"), Path(tmp) / "input")
        for i in range(repeats):
            print(f"  run case: repeat {i + 1} of {repeats} ...", flush=True)
            runs.append(_timed([exe, "run", str(config), "--out", str(Path(tmp) / f"out{i}")]))
            osmnx.append(spawn("osmnx_example", "run"))
            helps += [_timed([exe, "--help"]) for _ in range(2)]
            floors.append(_timed([sys.executable, "-c", FLOOR_CODE, str(config.parent)]))
        summary = json.loads((Path(tmp) / "out0" / "summary.json").read_text(encoding="utf-8"))
    ok = [r for r in osmnx if r and "time" in r]
    med = lambda xs: float(np.median(xs))  # noqa: E731
    return {
        "run_wall": med([w for w, _ in runs]), "run_cpu": med([c for _, c in runs]),
        "run_all": [round(w, 2) for w, _ in runs],
        "help_wall": med([w for w, _ in helps]), "help_cpu": med([c for _, c in helps]),
        "help_all": [round(w, 3) for w, _ in helps],
        "run_cpu_all": [round(c, 2) for _, c in runs],
        "osmnx": med([r["time"] for r in ok]) if ok else None, "osmnx_all": [round(r["time"], 1) for r in ok],
        "osmnx_cpu": med([r["cpu"] for r in ok]) if ok else None,
        "osmnx_per_facility": med([r["per_facility"] for r in ok]) if ok else None,
        "floor_wall": med([w for w, _ in floors]), "floor_all": [round(w, 2) for w, _ in floors],
        "nodes": summary["network"]["nodes"], "edges": summary["network"]["edges"],
        "facilities": summary["inputs"]["facilities"]["kept"], "people_points": summary["population"]["points"],
        "outputs": summary["outputs"], "repeats": repeats,
    }


def goals_report(g: dict, load: str) -> list[str]:
    """The RESULTS.md section for :func:`run_goals`."""
    ratio = g["osmnx"] / g["run_wall"] if g["osmnx"] else None
    ratio_cpu = g["osmnx_cpu"] / g["run_cpu"] if g["osmnx"] else None
    lines = [
        GOALS_HEADING, "",
        f"`carecircle run` end to end (a fresh process: start-up, reading the files, analysis, writing "
        f"{', '.join(o for o in g['outputs'] if o != 'summary.json')} and summary.json) on a "
        f"300 × 300 jittered grid ({g['nodes']:,} nodes, {g['edges']:,} edges; streets as a GeoPackage line layer), "
        f"{g['facilities']:,} facilities (CSV), {g['people_points']:,} population points (GeoPackage), 100 社区; "
        f"against the OSMnx example (networkx `ego_graph` + convex hull per facility + point-in-polygon, timed on "
        f"{OSMNX_SAMPLE} facilities per service and extrapolated to all {g['facilities']:,}; in-process, its file "
        "reading not counted; carecircle's bytecode compiled beforehand, as an installed package has it). "
        "Each side measured "
        f"{g['repeats']} times, interleaved, median shown; 1-minute load average {load}.", "",
        "| measure | median | all runs | goal | |",
        "|---|---|---|---|---|",
        f"| `carecircle run` (tables only), wall | **{g['run_wall']:.2f} s** (CPU {g['run_cpu']:.2f} s) "
        f"| {', '.join(f'{x:.2f}' for x in g['run_all'])} (CPU {', '.join(f'{x:.2f}' for x in g['run_cpu_all'])}) | | |",
        f"| OSMnx example, same case, wall | {g['osmnx']:.1f} s ({g['osmnx_per_facility'] * 1000:.0f} ms per facility; "
        f"CPU {g['osmnx_cpu']:.1f} s) "
        f"| {', '.join(f'{x:.1f}' for x in g['osmnx_all'])} | | |" if g["osmnx"] else "| OSMnx example | failed | | | |",
        f"| ratio, wall | **{ratio:.1f}×** | | ≥ 30× | {'met' if ratio >= 30 else '**missed**'} |" if ratio else "| ratio | — | | ≥ 30× | |",
        f"| ratio, CPU seconds | **{ratio_cpu:.1f}×** | | ≥ 30× | {'met' if ratio_cpu >= 30 else '**missed**'} |" if ratio else "",
        f"| floor: import geopandas and read the four input files, nothing else, wall | {g['floor_wall']:.2f} s "
        f"| {', '.join(f'{x:.2f}' for x in g['floor_all'])} | | |",
        f"| the OSMnx example ÷ the floor: the most any geopandas-based tool could reach | "
        f"**{g['osmnx'] / g['floor_wall']:.1f}×** | | | |" if g["osmnx"] else "",
        f"| `carecircle --help`, wall | **{g['help_wall']:.2f} s** "
        f"| {', '.join(f'{x:.2f}' for x in g['help_all'])} | < 0.5 s | {'met' if g['help_wall'] < 0.5 else '**missed**'} |",
        f"| `carecircle --help`, CPU seconds | **{g['help_cpu']:.2f} s** | | < 0.5 s | "
        f"{'met' if g['help_cpu'] < 0.5 else '**missed**'} |",
        "",
        "Command: `.venv/bin/python bench/run.py --goals` (this section only; `make bench` runs everything).",
    ]
    return lines


GOALS_HEADING = "## End-to-end run and start-up (issue 10)"


def goals_section(repeats: int) -> list[str]:
    """:func:`run_goals` measured now, as its RESULTS.md section with the machine and date."""
    mach = machine()
    load_start = os.getloadavg()
    g = run_goals(repeats)
    section = goals_report(g, f"{load_start[0]:.1f} at the start, {os.getloadavg()[0]:.1f} at the end")
    # The load averages in the section say how quiet the machine was.
    section[2:2] = [f"Machine: {mach['nproc']} cores, {mach['cpu']}, {mach['ram_gb']} GB RAM. Date: {mach['date']}.", ""]
    return section


def splice_goals(text: str, section: list[str]) -> str:
    """``text`` (RESULTS.md) with its issue-10 section replaced, or added before the notes."""
    block = "\n".join(section) + "\n\n"
    if GOALS_HEADING in text:
        head, rest = text.split(GOALS_HEADING, 1)
        tail = rest[rest.index("\n## "):].lstrip("\n") if "\n## " in rest else ""
        return head + block + tail
    return text.replace("## Notes", block + "## Notes", 1)


# --------------------------------------------------------------------------- report


def machine() -> dict:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        mem_kb = int(next(line.split()[1] for line in Path("/proc/meminfo").read_text().splitlines()
                          if line.startswith("MemTotal")))
    except (OSError, StopIteration):
        mem_kb = 0
    import networkx
    import scipy
    import shapely

    versions = {"python": platform.python_version(), "numpy": np.__version__, "scipy": scipy.__version__,
                "shapely": shapely.__version__, "networkx": networkx.__version__}
    try:
        import pandana

        versions["pandana"] = pandana.__version__
    except ImportError:
        versions["pandana"] = "not installed"
    return {"nproc": os.cpu_count(), "cpu": cpu, "ram_gb": round(mem_kb / 1024 / 1024, 1),
            "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "versions": versions}


def fmt_t(r: dict | None, key: str = "time") -> str:
    if not r:
        return "—"
    if "error" in r:
        return f"failed ({r['error']})"
    return f"{r[key]:.2f} s" + (" (extrap.)" if r.get("extrapolated") else "")


def ratio(a: dict | None, b: dict | None) -> str:
    if not a or not b or "error" in a or "error" in b:
        return "—"
    return f"{b['time'] / a['time']:.1f}×"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="10k-node grid only")
    ap.add_argument("--sizes", type=int, nargs="*", default=[10_000, 100_000, 1_000_000])
    ap.add_argument("--no-write", action="store_true", help="do not write bench/RESULTS.md")
    ap.add_argument("--goals", action="store_true", help="issue 10's end-to-end and start-up goals only "
                    "(their section of bench/RESULTS.md is replaced)")
    ap.add_argument("--repeats", type=int, default=5, help="repeats of each --goals measurement")
    ap.add_argument("--worker")
    ap.add_argument("--case")
    ap.add_argument("--extra", default="")
    args = ap.parse_args()
    if args.worker:
        worker(args.worker, args.case, args.extra)
        return

    if args.goals:
        print(f"machine: {machine()['cpu']}; {machine()['date']}")
        section = goals_section(args.repeats)
        print("\n".join(section))
        results = HERE / "RESULTS.md"
        if not args.no_write:
            results.write_text(splice_goals(results.read_text(encoding="utf-8"), section), encoding="utf-8")
            print(f"wrote {results}")
        return
    sizes = [10_000] if args.quick else args.sizes
    cases = [f"grid:{n}" for n in sizes]
    if not args.quick and XINWU.exists():
        cases.append("xinwu")
    mach = machine()
    load_start = os.getloadavg()
    print(f"machine: {mach['nproc']} × {mach['cpu']}, {mach['ram_gb']} GB RAM; {mach['date']}")
    rows = []
    for name in cases:
        res = {}
        big = name == "grid:1000000"
        for method in ("carecircle", "networkx", "pandana", "osmnx_example"):
            if big and method == "pandana":
                # Its contraction-hierarchy build grows steeply on these grids (see the
                # 10k and 100k rows); at 1M nodes it would run for most of an hour.
                res[method] = {"error": "not run at 1M nodes: CH build " + ", ".join(
                    f"{r[1]['pandana']['preprocess']:.0f} s at {r[0]}" for r in rows
                    if r[1].get("pandana") and "preprocess" in r[1]["pandana"])}
                continue
            print(f"  {name}: {method} ...", flush=True)
            res[method] = best_of(method, name)
        # Isochrone polygons: every service on the small cases, the meal service (1,000
        # facilities on the 100k grid) on the larger ones; the 1M sausage run is skipped
        # (see RESULTS.md: polygon union cost, not search, bounds it).
        services = ",".join(SERVICES) if name in ("grid:10000", "xinwu") else "meal"
        if not big:
            print(f"  {name}: isochrones ({services}) ...", flush=True)
            res["cc_iso"] = best_of("cc_iso", name, services, repeats=2, quick_s=60.0)
        rows.append((name, res))
        print_case(name, res)
    mach["load"] = f"{load_start[0]:.1f} at the start, {os.getloadavg()[0]:.1f} at the end"
    text = report(mach, rows, args)
    if not args.quick:
        text = splice_goals(text, goals_section(args.repeats))
    print(text)
    if not args.no_write and not args.quick:
        (HERE / "RESULTS.md").write_text(text, encoding="utf-8")
        print(f"wrote {HERE / 'RESULTS.md'}")


def print_case(name: str, res: dict) -> None:
    cc = res.get("carecircle") or {}
    print(f"  {name}: " + json.dumps({k: (v if not isinstance(v, dict) else {kk: (round(vv, 3) if isinstance(vv, float) else vv) for kk, vv in v.items()}) for k, v in cc.items()}, ensure_ascii=False))


def report(mach: dict, rows, args) -> str:
    lines = [
        "# carecircle benchmark: walking coverage and isochrones",
        "",
        f"Machine: {mach['nproc']} cores, {mach['cpu']}, {mach['ram_gb']} GB RAM. Date: {mach['date']}. "
        f"1-minute load average {mach['load']} (a shared machine: other jobs ran alongside; every "
        "method that takes under 30 s is run up to 3 times and its fastest run kept).",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in mach["versions"].items()) + ".",
        f"Command: `.venv/bin/python bench/run.py{' --quick' if args.quick else ''}` (`make bench`).",
        "",
        f"Cut-off {CUTOFF_M:.0f} m (15 min at 4 km/h), three services. Synthetic grids: 100 m blocks, one "
        "population point per node, facilities per km²: day care 0.71, meal 1, street centre 0.1 "
        "(bench/synth.py). Times are wall-clock seconds, each method in its own process; peak = "
        "`ru_maxrss` of that process (includes the generated case, shown as 'case').",
        "",
        "## Coverage: distance to the nearest facility for every population point, 3 services",
        "",
        "| case | nodes | edges | people | facilities | carecircle (graph + snap + reach) | peak / case MB "
        "| networkx multi-source | pandana incl. CH | OSMnx example | vs networkx | vs pandana | vs OSMnx example |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, r in rows:
        cc = r.get("carecircle") or {}
        if "error" in cc or not cc:
            lines.append(f"| {name} | | | | | {fmt_t(cc)} | | | | | | | |")
            continue
        p = cc["parts"]
        lines.append(
            f"| {name} | {cc['nodes']:,} | {cc['edges']:,} | {cc['people']:,} | {sum(cc['facilities'].values()):,} "
            f"| **{cc['time']:.2f} s** ({p['graph']:.2f} + {p['snap']:.2f} + {p['reach']:.2f}) "
            f"| {cc['peak_mb']:.0f} / {cc['case_mb']:.0f} "
            f"| {fmt_t(r.get('networkx'))} | {fmt_t(r.get('pandana'))} | {fmt_t(r.get('osmnx_example'))} "
            f"| {ratio(cc, r.get('networkx'))} | {ratio(cc, r.get('pandana'))} | {ratio(cc, r.get('osmnx_example'))} |"
        )
    lines += ["", "Search part only (carecircle: the three multi-source searches on snapped points; networkx: "
              "nearest-node lookup + the three searches, without building its graph): " + "; ".join(
        f"{name}: carecircle {r['carecircle']['parts']['reach']:.2f} s, networkx {r['networkx']['search']:.2f} s "
        f"({r['networkx']['search'] / r['carecircle']['parts']['reach']:.0f}×)"
        for name, r in rows if "parts" in (r.get("carecircle") or {}) and "search" in (r.get("networkx") or {})) + "."]
    lines += ["", "Population points beyond the 300 m snap limit (unreachable, reported, counted as not covered "
              "by carecircle; the nearest-node baselines attach them to some node however far): " + "; ".join(
        f"{name}: {r['carecircle']['unsnapped']:,} of {r['carecircle']['people']:,}"
        for name, r in rows if "unsnapped" in (r.get("carecircle") or {})) + "."]
    lines += ["", "Peak memory of the baselines (MB): " + "; ".join(
        f"{name}: " + ", ".join(f"{m} {r[m]['peak_mb']:.0f}" for m in ("networkx", "pandana", "osmnx_example")
                                if r.get(m) and "peak_mb" in r[m]) for name, r in rows) + "."]
    lines += ["", "Covered share (carecircle exact edge snapping vs nearest-node baselines), day care / meal / street centre:", ""]
    for name, r in rows:
        parts = []
        for m in ("carecircle", "networkx", "pandana"):
            if r.get(m) and "covered" in r[m]:
                parts.append(f"{m} " + "/".join(f"{r[m]['covered'][k]:.3f}" for k in SERVICES))
        lines.append(f"- {name}: " + "; ".join(parts))
    lines += ["", "OSMnx example: " + "; ".join(
        f"{name}: {r['osmnx_example']['per_facility'] * 1000:.0f} ms per facility, timed on "
        f"{r['osmnx_example']['timed_facilities']} of {r['osmnx_example']['facilities']} facilities"
        + (" and extrapolated" if r['osmnx_example']['extrapolated'] else "")
        for name, r in rows if r.get("osmnx_example") and "per_facility" in r["osmnx_example"]) + "."]
    lines += ["", "## Isochrone polygons (carecircle, cut-off 1,000 m, 50 m sausage)", "",
              "| case | services | facilities | per-facility sausage | per-facility concave hull | dissolved per service | peak MB |",
              "|---|---|---|---|---|---|---|"]
    for name, r in rows:
        iso = r.get("cc_iso")
        if not iso:
            continue
        if "error" in iso:
            lines.append(f"| {name} | | | {fmt_t(iso)} | | | |")
            continue
        lines.append(f"| {name} | {', '.join(iso['services'])} | {iso['facilities']:,} | {iso['buffer']:.2f} s "
                     f"| {iso['concave']:.2f} s | {iso['dissolved']:.2f} s | {iso['peak_mb']:.0f} |")
    lines += ["", "## Targets (issue 3)", ""] + targets(rows) + ["", NOTES]
    return "\n".join(lines) + "\n"


def targets(rows) -> list[str]:
    """The issue's targets, checked against this run's numbers."""
    res = dict(rows)
    out = []

    def ok(flag: bool) -> str:
        return "met" if flag else "**missed**"

    for name, r in rows:
        cc = r.get("carecircle") or {}
        if "time" not in cc:
            continue
        for m, want in (("osmnx_example", 100), ("networkx", 10), ("pandana", 1)):
            b = r.get(m) or {}
            if "time" in b:
                x = b["time"] / cc["time"]
                out.append(f"- {name}: {x:.1f}× faster than {m} (target ≥ {want}×): {ok(x >= want)}")
    big = (res.get("grid:1000000") or {}).get("carecircle") or {}
    if "time" in big:
        out.append(f"- 1M nodes, 3 services: {big['time']:.1f} s (target ≤ 10 s): {ok(big['time'] <= 10)}; "
                   f"peak {big['peak_mb'] / 1024:.2f} GB of which the generated case {big['case_mb'] / 1024:.2f} GB "
                   f"(target ≤ 3 GB): {ok(big['peak_mb'] <= 3 * 1024)}")
    small = (res.get("grid:10000") or {}).get("carecircle") or {}
    if "time" in big and "time" in small:
        grow = big["time"] / small["time"]
        nlogn = big["nodes"] * np.log(big["nodes"]) / (small["nodes"] * np.log(small["nodes"]))
        out.append(f"- growth 10k → 1M nodes: time × {grow:.0f} against n log n × {nlogn:.0f}: {ok(grow <= nlogn)}")
    iso = (res.get("grid:100000") or {}).get("cc_iso") or {}
    if "buffer" in iso:
        out.append(f"- isochrone polygons for {iso['facilities']:,} facilities on the 100k grid: sausage {iso['buffer']:.1f} s, "
                   f"concave hull {iso['concave']:.1f} s (target ≤ 10 s): sausage {ok(iso['buffer'] <= 10)}, "
                   f"concave {ok(iso['concave'] <= 10)}")
    return out


NOTES = """## Notes

- carecircle's figure is end to end: CSR build, snapping every point to the nearest point on
  the nearest edge (k-d tree over ≤ 70 m edge pieces, exact), and one multi-source
  `scipy.sparse.csgraph.dijkstra(min_only=True, limit=cutoff)` per service. Snapping a
  million points dominates the 1M case; the searches themselves are ~0.5 s per service.
- The baselines are *less exact*: networkx and pandana snap to the nearest node (no access
  leg, no partial edges), which is why their covered shares are a few points higher.
- OSMnx example: ego_graph per facility is local work (~300 nodes within 1 km on a 100 m
  grid), so its cost is per facility and the ratio to carecircle stays roughly constant
  with city size; on real OSM networks (node spacing 20–50 m) each ego graph is 5–20×
  larger.
- End to end, carecircle's time is mostly *exact snapping* (nearest point on the nearest
  edge for every population point), which the networkx baseline does not do (it looks up
  the nearest node). The search part alone is compared above; the end-to-end ratio to
  networkx is bounded by snapping (~5 µs per point on 2 cores: k-d tree query over edge
  pieces plus the exact point-segment distances).
- Per-facility sausage polygons are bounded by the GEOS union of the buffered street
  pieces (~390k pieces for 1,000 facilities × 1 km on the 100k grid, ~25 µs each on 2
  threads), not by the searches (the tiled batched dijkstra and piece extraction take
  ~1.6 s of it). Measured separately: with 2 instead of 4 segments per quarter circle the
  union takes 8.4 s (10.0 s in all). The concave-hull option meets the target. A faster
  sausage would fill whole street blocks (faces of the planar network) whose boundary is
  reached instead of unioning their street buffers. The dissolved polygon of a service
  is one union of all reached pieces (tiled over both cores), bounded the same way.
- pandana's preprocessing here is its contraction-hierarchy build (`pandana.Network`),
  which is what `nearest_pois` needs; no `precompute` aggregation buffer is built.
"""


if __name__ == "__main__":
    main()
