"""Siting benchmark: a Xinwu-scale location-allocation instance, carecircle against spopt.

Run ``.venv/bin/python bench/siting.py`` (needs ../shared/data/wuxi_xinwu; spopt from the
``test`` extra). The instance is the real district, built as ``tests/test_xinwu_run.py``
builds it: the road-centreline network, 600,000 people spread over the 250 m building grid
by residential floor area (20 % elderly), 2 km-square communities, existing day-care centres
in every third community and meal points in every second (at the network node nearest the
community's centre); candidates every ``--spacing`` metres along the whole network (≥ 10,000).

Per service (day care, meal), ``k = 10`` new sites:

* carecircle: the coverage sets (``catchment_matrix``, candidates × population points and
  community centres, exact edge-snapped walk ≤ 1,000 m), then ``max_coverage`` by elderly
  (the MCLP spopt solves too) and by communities (the majority rule, carecircle only), and
  ``min_sites`` for ``MIN_SITES_SHARE`` of the communities, each solved by HiGHS to proven
  optimality;
* spopt: ``MCLP.from_cost_matrix`` on the *same* coverage relation (the dense clients ×
  facilities cost matrix spopt takes, with the existing facilities as
  ``predefined_facilities_arr``), its own PuLP model build and CBC solve; run in its own
  process so its peak memory is its own, with a time limit (``--spopt-timeout``); then the
  same on carecircle's reduced instance (lossless reductions, the same optimum), which
  spopt can finish.

Both objectives are checked equal. Results are appended to ``bench/RESULTS.md`` with the
machine and date.
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
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
XINWU = HERE.parents[1] / "shared" / "data" / "wuxi_xinwu"
ROADS = XINWU / "xinwu_road_centerlines.gpkg"
GRID = XINWU / "xinwu_built_env_250m.gpkg"
CIRCLE_M = 1000.0
CELL_M = 2000.0
K = 10
#: min_sites: the share of communities to reach.
MIN_SITES_SHARE = 0.8
#: Address-space cap of the spopt child process.
MEMORY_CAP_GB = 8.0


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def build(spacing_m: float):
    """The Xinwu instance: graph, snapped targets and candidates, existing facilities per service."""
    import geopandas as gpd
    import shapely
    from scipy.spatial import cKDTree
    from shapely.geometry import box

    from carecircle.coverage import indicators, snap
    from carecircle.coverage.graph import build_graph
    from carecircle.layers.candidates import generate_candidates
    from carecircle.layers.lines import read_lines
    from carecircle.layers.population import distribute_by_buildings

    net = read_lines(ROADS)
    graph = build_graph(net, min_component_nodes=50)
    pop, _ = distribute_by_buildings(GRID, total_population=600_000, weight_field="area_residential_m2",
                                     elderly_share=0.2, target_crs=net.crs, layer="built_env_250m")
    hull = shapely.convex_hull(shapely.multipoints(net.nodes[["x", "y"]].to_numpy()))
    x0, y0, x1, y1 = hull.bounds
    cells, ij = [], []
    for i in range(int(np.ceil((x1 - x0) / CELL_M))):
        for j in range(int(np.ceil((y1 - y0) / CELL_M))):
            part = box(x0 + i * CELL_M, y0 + j * CELL_M, x0 + (i + 1) * CELL_M, y0 + (j + 1) * CELL_M).intersection(hull)
            if part.area >= 0.25 * CELL_M**2:
                cells.append(part)
                ij.append((i, j))
    ij = np.array(ij)
    com = gpd.GeoDataFrame({"name": [f"社区{i}-{j}" for i, j in ij],
                            "street": np.array(["西", "中", "东"])[np.minimum((3 * (ij[:, 0] * CELL_M) / (x1 - x0)).astype(int), 2)]},
                           geometry=cells, crs=net.crs)
    centres = com.geometry.representative_point().values
    targets = snap.snap_points(graph, np.concatenate([pop.geometry.values, centres]), max_snap_m=300.0)
    tree = cKDTree(net.nodes[["x", "y"]].to_numpy())
    _, node = tree.query(shapely.get_coordinates(centres))
    at_node = shapely.points(net.nodes[["x", "y"]].to_numpy()[node])
    existing = {"day_care": (ij[:, 0] + 2 * ij[:, 1]) % 3 == 0, "meal": (ij[:, 0] + ij[:, 1]) % 2 == 0}
    existing = {k: snap.snap_points(graph, at_node[m], max_snap_m=300.0) for k, m in existing.items()}
    cand, _ = generate_candidates(net, spacing_m=spacing_m)
    cand_snap = snap.snap_points(graph, cand.geometry.values, max_snap_m=300.0)
    cand_snap = cand_snap.take(np.flatnonzero(cand_snap.ok))
    cid = indicators.community_of_points(pop, com).to_numpy()
    return {"graph": graph, "net": net, "pop": pop, "com": com, "targets": targets, "existing": existing,
            "candidates": cand_snap, "cid": cid}


def carecircle_case(case: dict, service: str, weights=("elderly", "communities")) -> dict:
    """Coverage sets and both optimal plans for one service; what spopt needs is returned too."""
    from carecircle.coverage.catchment import catchment_matrix
    from carecircle.coverage.reach import nearest_distance
    from scipy.sparse import csr_array

    from carecircle.coverage.siting import _reduce, evaluate, siting_demand, solve

    graph, targets, existing, cands = case["graph"], case["targets"], case["existing"][service], case["candidates"]
    n_pop = len(case["pop"])
    t0 = time.perf_counter()
    cover = catchment_matrix(graph, cands, targets, cutoff_m=CIRCLE_M)
    t_cover = time.perf_counter() - t0
    dist, _ = nearest_distance(graph, existing, targets, cutoff_m=CIRCLE_M)
    covered = np.isfinite(dist)
    people, elderly = case["pop"]["people"].to_numpy(float), case["pop"]["elderly"].to_numpy(float)
    out = {"service": service, "candidates": int(cover.shape[0]), "targets": int(cover.shape[1]),
           "existing": int(existing.ok.sum()), "pairs": int(cover.nnz), "coverage_s": t_cover}
    for weight in weights:
        demand = siting_demand(people=people, elderly=elderly, point_community=case["cid"], covered=covered[:n_pop],
                               centre_covered=covered[n_pop:], weight=weight, min_share=0.5)
        t0 = time.perf_counter()
        sol = solve(cover, demand, objective="max_coverage", new_sites=K, time_limit_s=300)
        out[weight] = {"value": sol.value, "optimal": sol.optimal, "gap": sol.gap, "solve_s": time.perf_counter() - t0,
                       "greedy": sol.greedy_value, "sites": int(len(sol.chosen)), "model": sol.model,
                       "elderly_gain": float(demand.value[evaluate(cover, demand, sol.chosen)[0] & ~demand.covered].sum()),
                       "covered_before": float(demand.value[demand.covered].sum())}
        if weight == "elderly":
            # carecircle's reduced instance (lossless: same optimum), for spopt too.
            reduced = _reduce(cover, demand)
        else:
            # The other question: the fewest sites for MIN_SITES_SHARE of the communities.
            t0 = time.perf_counter()
            least = solve(cover, demand, objective="min_sites", target=MIN_SITES_SHARE, time_limit_s=300)
            out["min_sites"] = {"value": least.value, "optimal": least.optimal, "solve_s": time.perf_counter() - t0,
                                "target": least.target, "reachable": least.target_reachable, "model": least.model}
    out["peak_mb"] = _peak_mb()
    # The same instance for spopt: the candidates' coverage plus the existing facilities' own.
    old = catchment_matrix(graph, existing, targets, cutoff_m=CIRCLE_M)
    value = np.concatenate([elderly, np.zeros(len(targets) - n_pop)])
    return out, (cover, old, value), (reduced.a.astype(float), csr_array((0, reduced.n_pts)), reduced.value)


def spopt_child(path: str) -> None:
    """Child process: spopt MCLP on the dense cost matrix of the given coverage relation."""
    import pulp
    from scipy.sparse import load_npz
    from spopt.locate import MCLP

    d = np.load(path + ".npz")
    # Clients without elderly add nothing to the MCLP objective: left out, to spare spopt's
    # dense matrix (the optimum is unchanged).
    clients = np.flatnonzero(d["value"] > 0)
    cover = load_npz(path + ".cover.npz").tocsc()[:, clients].tocsr()
    old = load_npz(path + ".old.npz").tocsc()[:, clients].tocsr()
    t0 = time.perf_counter()
    # spopt takes clients × facilities costs: walk metres where within reach, else beyond it.
    facilities = __import__("scipy.sparse", fromlist=["vstack"]).vstack([cover, old]).tocsr()
    cost = np.full((facilities.shape[1], facilities.shape[0]), 2 * CIRCLE_M)
    r, c = np.repeat(np.arange(facilities.shape[0]), np.diff(facilities.indptr)), facilities.indices
    cost[c, r] = facilities.data
    predefined = np.zeros(facilities.shape[0], dtype=int)
    predefined[cover.shape[0]:] = 1
    t1 = time.perf_counter()
    # With no existing facilities (the reduced instance: their points are gone) none is predefined.
    model = MCLP.from_cost_matrix(cost, d["value"][clients], CIRCLE_M, p_facilities=K + old.shape[0],
                                  predefined_facilities_arr=predefined if old.shape[0] else None)
    t2 = time.perf_counter()
    model.solve(pulp.PULP_CBC_CMD(msg=False))
    t3 = time.perf_counter()
    print(json.dumps({"objective": pulp.value(model.problem.objective), "status": pulp.LpStatus[model.problem.status],
                      "matrix_s": t1 - t0, "build_s": t2 - t1, "solve_s": t3 - t2, "total_s": t3 - t0,
                      "peak_mb": _peak_mb()}))


def run_spopt(cover, old, value, timeout_s: float) -> dict:
    from scipy.sparse import save_npz

    with tempfile.TemporaryDirectory() as tmp:
        base = os.path.join(tmp, "case")
        np.savez(base + ".npz", value=value)
        save_npz(base + ".cover.npz", cover.tocsr())
        save_npz(base + ".old.npz", old.tocsr())
        t0 = time.perf_counter()
        try:
            # A memory cap: on a shared machine spopt's dense model must fail, not swap.
            cap = int(MEMORY_CAP_GB * 2**30)
            proc = subprocess.run([sys.executable, __file__, "--spopt-child", base], capture_output=True, text=True,
                                  timeout=timeout_s,
                                  preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_AS, (cap, cap)))
        except subprocess.TimeoutExpired:
            return {"failed": f"did not finish within {timeout_s:.0f} s", "total_s": time.perf_counter() - t0}
        if proc.returncode != 0:
            return {"failed": (proc.stderr.strip().splitlines() or ["?"])[-1][:200], "total_s": time.perf_counter() - t0}
        return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--spacing", type=float, default=100.0, help="candidate spacing along the network, m")
    ap.add_argument("--spopt-timeout", type=float, default=600.0, help="seconds spopt may take per service")
    ap.add_argument("--no-spopt", action="store_true")
    ap.add_argument("--elderly-only", action="store_true", help="skip the majority-rule (communities) solve")
    ap.add_argument("--spopt-child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.spopt_child:
        spopt_child(args.spopt_child)
        return
    if not (ROADS.exists() and GRID.exists()):
        sys.exit(f"bench/siting.py: {XINWU} not found (Xinwu centrelines and building grid)")
    load0 = os.getloadavg()[0]
    t0 = time.perf_counter()
    case = build(args.spacing)
    t_build = time.perf_counter() - t0
    rows = []
    for service in ("day_care", "meal"):
        ours, whole, reduced = carecircle_case(case, service, ("elderly",) if args.elderly_only else
                                               ("elderly", "communities"))
        skip = {"failed": "not run (--no-spopt)"}
        theirs = skip if args.no_spopt else run_spopt(*whole, args.spopt_timeout)
        small = skip if args.no_spopt else run_spopt(*reduced, args.spopt_timeout)
        rows.append((ours, theirs, small))
        print(json.dumps({"carecircle": ours, "spopt": theirs, "spopt_reduced": small}, ensure_ascii=False,
                         default=float), flush=True)
    write_results(case, rows, t_build, args, load0, os.getloadavg()[0])


def goals_line(rows) -> str:
    """Issue 13's goals on this run: optimal in ≤ 30 s, ≥ 10× spopt at the same objective, ≤ 2 GB."""
    def total(o, w):
        return o["coverage_s"] + o[w]["solve_s"] if w in o else None

    worst = max(t for o, _, _ in rows for t in (total(o, "elderly"), total(o, "communities"), total(o, "min_sites"))
                if t is not None)
    proven = all(o[w]["optimal"] for o, _, _ in rows for w in ("elderly", "communities", "min_sites") if w in o)
    speed = []
    for o, whole, _ in rows:
        if "failed" in whole:
            speed.append(None)
        else:
            same = abs(whole["objective"] - o["elderly"]["covered_before"] - o["elderly"]["value"]) \
                <= 1e-6 * max(1.0, whole["objective"])
            speed.append(whole["total_s"] / total(o, "elderly") if same else 0.0)
    peak = max(o["peak_mb"] for o, _, _ in rows)
    fast = "not compared (spopt did not finish)" if None in speed else (
        f"{min(speed):.0f}× at the least on the whole instance — {'met' if min(speed) >= 10 else '**missed**'}")
    return (f"Goals (issue 13) on this run: **optimal in ≤ 30 s** (coverage sets + solve, every service, weight and objective) — "
            f"{worst:.1f} s at the most, {'all proven optimal' if proven else 'NOT all proven'} — "
            f"{'met' if worst <= 30 and proven else '**missed**'}; **≥ 10× faster than spopt at the same objective** — "
            f"{fast}; **memory ≤ 2 GB** — {peak:.0f} MB peak — {'met' if peak <= 2048 else '**missed**'}.")


def write_results(case, rows, t_build, args, load0, load1) -> None:
    import highspy  # noqa: F401  (version below)
    from importlib.metadata import version

    import scipy

    when = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    lines = [
        "", "## Siting: k = 10 new sites on Xinwu (max coverage, HiGHS vs spopt/CBC)", "",
        f"Machine: {os.cpu_count()} cores, {platform.processor() or platform.machine()}, {mem:.1f} GB RAM. Date: {when}. "
        f"1-minute load average {load0:.1f} at the start, {load1:.1f} at the end.",
        f"Versions: python {platform.python_version()}, scipy {scipy.__version__}, highspy {version('highspy')}, "
        f"spopt {version('spopt')}, pulp {version('pulp')}.",
        f"Command: `.venv/bin/python bench/siting.py --spacing {args.spacing:g} --spopt-timeout {args.spopt_timeout:g}"
        f"{' --elderly-only' if args.elderly_only else ''}`.", "",
        f"Instance: Xinwu road centrelines ({case['graph'].n_nodes:,} nodes), {len(case['pop']):,} population points "
        f"(250 m grid, 600,000 people, 20 % elderly) + {len(case['com'])} community centres, "
        f"{len(case['candidates']):,} candidates every {args.spacing:g} m along the network, circle 1,000 m; "
        f"building it took {t_build:.1f} s (not counted below).", "",
        "| service | existing | pairs ≤ 1 km | coverage sets | MCLP elderly: value, solve | optimal | sets + MCLP | "
        "majority rule: communities (elderly), solve | optimal | sets + majority rule | "
        f"min_sites, {MIN_SITES_SHARE:.0%} of communities: sites, solve | optimal | peak MB |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for ours, _, _ in rows:
        e = ours["elderly"]
        c = ours.get("communities")
        maj = (f"{c['value']:.0f} new ({c['elderly_gain']:,.1f} elderly new), {c['solve_s']:.2f} s | {c['optimal']} | "
               f"**{ours['coverage_s'] + c['solve_s']:.2f} s**") if c else "not run | — | —"
        ms = ours.get("min_sites")
        least = (f"{ms['value']:.0f} ({ms['target']:.0f} communities to add), {ms['solve_s']:.2f} s | {ms['optimal']}"
                 if ms else "not run | —")
        lines.append(
            f"| {ours['service']} | {ours['existing']} | {ours['pairs']:,} | {ours['coverage_s']:.2f} s | "
            f"{e['value'] + e['covered_before']:,.1f} ({e['value']:,.1f} new), {e['solve_s']:.2f} s | {e['optimal']} | "
            f"**{ours['coverage_s'] + e['solve_s']:.2f} s** | {maj} | {least} | {ours['peak_mb']:.0f} |")
    lines += ["", "The same MCLP by elderly in spopt (`MCLP.from_cost_matrix`, its PuLP build and CBC solve, in a child "
              "process under an 8 GB address-space cap), on the whole instance and on carecircle's reduced one "
              "(covered points dropped, points with equal covering sets merged, equal and dominated candidates "
              "dropped — lossless, the same optimum), against carecircle's sets + MCLP:", "",
              "| service | instance | spopt clients × facilities | spopt (matrix + build + CBC) | spopt new elderly | "
              "carecircle new elderly | speed-up | spopt peak MB |",
              "|---|---|---|---|---|---|---|---|"]
    for ours, whole, small in rows:
        e = ours["elderly"]
        total = ours["coverage_s"] + e["solve_s"]
        m = e["model"]
        for label, size, theirs, base in (("whole", f"{ours['targets']:,} × {ours['candidates'] + ours['existing']:,}",
                                           whole, e["covered_before"]),
                                          ("reduced", f"{m['points']:,} × {m['candidates']:,}", small, 0.0)):
            if "failed" in theirs:
                t = theirs["failed"]
                speed = f"> {theirs['total_s'] / total:.0f}×" if "within" in theirs["failed"] else "—"
                lines.append(f"| {ours['service']} | {label} | {size} | {t} | — | {e['value']:,.1f} | {speed} | — |")
                continue
            new = theirs["objective"] - base
            same = abs(new - e["value"]) <= 1e-6 * max(1.0, theirs["objective"])
            lines.append(
                f"| {ours['service']} | {label} | {size} | {theirs['total_s']:.1f} s ({theirs['matrix_s']:.1f} + "
                f"{theirs['build_s']:.1f} + {theirs['solve_s']:.1f}) | {new:,.1f} ({'same' if same else 'DIFFERENT'}) | "
                f"{e['value']:,.1f} | {theirs['total_s'] / total:.1f}× | {theirs['peak_mb']:.0f} |")
    lines += ["", "Value = elderly within the circle after the plan (existing facilities fixed); the majority rule's "
              "value is the communities newly passing, then (the lexicographic tie-break) the elderly newly within "
              "the circle. Model after carecircle's reductions: " + "; ".join(
                  f"{o['service']}: by elderly {o['elderly']['model']['candidates']:,} candidates × "
                  f"{o['elderly']['model']['points']:,} points"
                  + (f", by communities {o['communities']['model']['candidates']:,} × "
                     f"{o['communities']['model']['points']:,}" if "communities" in o else "")
                  for o, _, _ in rows) + ". Peak = `ru_maxrss` of the process (carecircle: the whole run incl. the "
              "instance; spopt: its own child process)."]
    lines += ["", goals_line(rows)]
    with open(HERE / "RESULTS.md", "a", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
