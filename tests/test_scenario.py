"""Scenario comparison end to end on the sample district: plan, run, compare.

The sample district (``carecircle.layers.sample``) has three documented gaps: 丽景社区 has no
meal point within the walking circle, 锦绣华庭 (春潮社区) is short of space and 硕放街道 has no
comprehensive centre. The shipped example ``configs/examples/scenario.yaml`` adds a meal point
between 丽景社区's two compounds and a centre in 硕放街道. What the comparison must report is
reasoned here from the layout and from the two runs' own files, not from the comparison:

* 丽景社区 turns covered for meals (its flag clears) and nothing else changes a verdict;
  硕放街道 gains its centre;
* every per-street and city delta is the difference of the two runs' ``streets.csv`` /
  ``summary.json`` values, and every value that differs is reported;
* with the meal point built (in the facility list) and then closed by ``scenario.remove``,
  丽景社区 is uncovered again exactly as in the baseline: it was the only meal point
  serving the community;
* removing a name that is not in the facility list stops the run (exit 2) naming it.
"""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
import yaml

from carecircle.config import load_config
from carecircle.compare import compare_runs
from carecircle.layers import crs as cccrs
from carecircle.pipeline import run as run_pipeline

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "configs" / "examples" / "scenario.yaml"
MEAL_POINT = "丽景社区助餐点（规划）"
CENTRE = "硕放街道综合养老服务中心（规划）"
# Only what compare reads and what this test checks: the map and report are not needed.
FORMATS = ["communities", "streets", "actions", "population"]
CIRCLE_M = 1000.0


def _cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONIOENCODING": "utf-8", "COLUMNS": "400"}
    return subprocess.run([sys.executable, "-m", "carecircle", *args], capture_output=True, text=True,
                          encoding="utf-8", cwd=REPO, env=env, timeout=300)


def _write_config(folder: Path, name: str, data: dict) -> Path:
    path = folder / name
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


def _flatten(d, prefix: str = "") -> dict[str, float]:
    """Numeric leaves of a summary.json (bools as 0/1), dotted keys; lists are not compared."""
    out = {}
    for k, v in d.items():
        key = f"{prefix}.{k}" if prefix else k
        if isinstance(v, dict):
            out.update(_flatten(v, key))
        elif isinstance(v, (bool, int, float)) and not isinstance(v, str):
            out[key] = float(v)
    return out


@pytest.fixture(scope="module")
def runs(tmp_path_factory, sample_district):
    """Baseline, plan (the shipped example) and 'built then closed' runs of the sample district."""
    root = tmp_path_factory.mktemp("scenario")
    sample = sample_district
    plan = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    plan["output"]["formats"] = FORMATS
    base = {k: v for k, v in plan.items() if k != "scenario"}
    # The meal point built: the facility list with the two planned facilities as ordinary rows
    # (GCJ-02, like the rest of the file), then the meal point closed by the scenario.
    added = {a["name"]: a for a in plan["scenario"]["add"]}
    built = sample.out_dir / "facilities_built.csv"
    with open(sample.facilities, encoding="utf-8-sig", newline="") as f:
        rows = list(csv.reader(f))
    header = rows[0]
    for a in added.values():
        lon, lat = (a["lon"], a["lat"]) if a["crs"] == "gcj02" else (
            float(v[0]) for v in cccrs.from_wgs84(a["lon"], a["lat"], "gcj02"))
        row = {"名称": a["name"], "类型": a["type"], "地址": "", "经度": f"{lon:.7f}", "纬度": f"{lat:.7f}",
               "建筑面积": a.get("floor_area", ""), "床位": a.get("beds", "")}
        rows.append([str(row[h]) if row[h] is not None else "" for h in header])
    with open(built, "w", encoding="utf-8-sig", newline="") as f:
        csv.writer(f).writerows(rows)
    closed = {**base, "facilities": {**base["facilities"], "path": built.name}, "scenario": {"remove": [MEAL_POINT]}}

    out = {}
    for name, data in (("base", base), ("plan", plan), ("closed", closed)):
        cfg = load_config(_write_config(sample.out_dir, f"{name}.yaml", data))
        out[name] = root / name
        run_pipeline(cfg, out[name], log=lambda line: None)
    return {"root": root, "sample": sample, "plan_config": plan, **out}


def _read(run: Path):
    com = pd.read_csv(run / "communities.csv", encoding="utf-8-sig").set_index("name")
    streets = pd.read_csv(run / "streets.csv", encoding="utf-8-sig").set_index("street")
    summary = json.loads((run / "summary.json").read_text(encoding="utf-8"))
    return com, streets, summary


def _elderly_share_within(run: Path, polygon: gpd.GeoSeries) -> float:
    """Share of a polygon's elderly whose walk to a meal is within the circle, from the raw points."""
    pop = gpd.read_file(run / "population.gpkg")
    inside = pop[shapely.within(pop.geometry.values, polygon.to_crs(pop.crs).iloc[0])]
    d = inside["dist_meal_m"].to_numpy(dtype=float)
    w = inside["elderly"].to_numpy(dtype=float)
    assert w.sum() > 0
    return float(w[np.nan_to_num(d, nan=np.inf) <= CIRCLE_M].sum() / w.sum())


def test_planned_facilities_lie_where_the_plan_says(runs):
    """Independent of the pipeline: the meal point is inside 丽景社区, the centre inside 硕放街道."""
    sample, plan = runs["sample"], runs["plan_config"]
    added = {a["name"]: a for a in plan["scenario"]["add"]}
    com = gpd.read_file(sample.communities).set_index("name")
    streets = gpd.read_file(sample.streets).to_crs(com.crs).set_index("name")
    lon, lat = cccrs.to_wgs84(added[MEAL_POINT]["lon"], added[MEAL_POINT]["lat"], "gcj02")
    meal = gpd.GeoSeries(gpd.points_from_xy(lon, lat), crs="EPSG:4326").to_crs(com.crs).iloc[0]
    assert com.geometry["丽景社区"].contains(meal)
    centre = gpd.GeoSeries(gpd.points_from_xy([added[CENTRE]["lon"]], [added[CENTRE]["lat"]]), crs="EPSG:4326").to_crs(com.crs).iloc[0]
    assert streets.geometry["硕放街道"].contains(centre)


def test_meal_point_covers_lijing_from_the_raw_walk_distances(runs):
    com = gpd.read_file(runs["sample"].communities)
    polygon = com.geometry[com["name"] == "丽景社区"]
    # The documented gap: nobody in 丽景社区 walks to a meal within 1,000 m …
    assert _elderly_share_within(runs["base"], polygon) == 0.0
    # … and with the planned point between its two compounds most (here all) of them do.
    assert _elderly_share_within(runs["plan"], polygon) >= 0.5


def test_only_lijing_meal_and_shuofang_centre_change_verdict(runs):
    ca, sa, _ = _read(runs["base"])
    cb, sb, _ = _read(runs["plan"])
    flags = [c for c in ca.columns if c.startswith("flag_")]
    changed = {(name, f) for f in flags for name in ca.index if bool(ca.loc[name, f]) != bool(cb.loc[name, f])}
    assert changed == {("丽景社区", "flag_no_meal")}
    assert bool(ca.loc["丽景社区", "flag_no_meal"]) and not bool(cb.loc["丽景社区", "flag_no_meal"])
    street_flags = [c for c in sa.columns if c.startswith("flag_")] + ["has_street_centre"]
    changed = {(s, f) for f in street_flags for s in sa.index if bool(sa.loc[s, f]) != bool(sb.loc[s, f])}
    assert changed == {("硕放街道", "flag_no_street_centre"), ("硕放街道", "has_street_centre")}
    assert bool(sb.loc["硕放街道", "has_street_centre"]) and sb.loc["硕放街道", "n_street_centres"] == 1
    # The other documented gap is untouched: 春潮社区 is still short of space, by as much.
    assert ca.loc["春潮社区", "space_shortfall_m2"] > 0
    assert cb.loc["春潮社区", "space_shortfall_m2"] == pytest.approx(ca.loc["春潮社区", "space_shortfall_m2"])


def test_compare_cli_reports_the_differences_of_the_two_runs(runs):
    cmp_dir = runs["root"] / "cmp"
    done = _cli("compare", str(runs["base"]), str(runs["plan"]), "--out", str(cmp_dir))
    assert done.returncode == 0, done.stderr
    data = json.loads((cmp_dir / "compare.json").read_text(encoding="utf-8"))
    ca, sa, ja = _read(runs["base"])
    cb, sb, jb = _read(runs["plan"])

    # Communities: exactly one change, 丽景社区 newly covered for meals, with the runs' shares.
    assert [(r["community"], r["item"], r["change"]) for r in data["communities"]] == [("丽景社区", "meal", "newly_covered")]
    row = data["communities"][0]
    assert (row["a"], row["b"]) == pytest.approx((ca.loc["丽景社区", "elderly_covered_share_meal"],
                                                   cb.loc["丽景社区", "elderly_covered_share_meal"]))
    assert data["counts"]["services"]["meal"] == {"newly_covered": 1, "newly_uncovered": 0}
    assert data["counts"]["space"]["delta_m2"] == pytest.approx(0.0)

    # Streets: every numeric scorecard value that differs, and only those, with b − a.
    numeric = [c for c in sa.columns if pd.api.types.is_numeric_dtype(sa[c]) or pd.api.types.is_bool_dtype(sa[c])]
    expect = {}
    for street in sa.index:
        for col in numeric:
            a, b = float(sa.loc[street, col]), float(sb.loc[street, col])
            if not (np.isnan(a) and np.isnan(b)) and not abs(b - a) <= 1e-6:
                expect[(street, col)] = (a, b)
    got = {(r["street"], r["item"]): (r["a"], r["b"], r["delta"]) for r in data["streets"]}
    assert set(got) == set(expect)
    for key, (a, b) in expect.items():
        assert got[key] == pytest.approx((a, b, b - a)), key
    assert got[("硕放街道", "has_street_centre")] == (0, 1, 1)
    assert got[("梅村街道", "communities_covered_meal")] == (3, 4, 1)

    # City: every numeric summary.json value that differs (run time and versions aside), b − a.
    fa, fb = _flatten(ja), _flatten(jb)
    noise = ("runtime_s",)
    expect = {k: (fa.get(k, np.nan), fb.get(k, np.nan)) for k in set(fa) | set(fb)
              if not k.startswith("versions.") and k not in noise
              and not (k in fa and k in fb and abs(fa[k] - fb[k]) <= 1e-6)}
    got = {r["item"]: (r["a"], r["b"], r["delta"]) for r in data["city"]}
    assert set(got) == set(expect)
    for key, (a, b) in expect.items():
        assert got[key] == pytest.approx((a, b, b - a)), key
    for s in ("meal", "day_care"):
        for share in ("elderly_covered_share", "population_covered_share"):
            key = f"services.{s}.{share}"
            delta = jb["services"][s][share] - ja["services"][s][share]
            assert (got[key][2] if key in got else 0.0) == pytest.approx(delta, abs=1e-12)
    assert got["city.services.meal.communities_covered"] == (11, 12, 1)
    assert got["city.sub_districts.with_centre"] == (2, 3, 1)
    # The Chinese table has the same rows.
    table = pd.read_csv(cmp_dir / "compare.csv", encoding="utf-8-sig")
    assert len(table) == len(data["communities"]) + len(data["streets"]) + len(data["city"])
    assert table.loc[0, "变化"] == "新覆盖" and table.loc[0, "社区"] == "丽景社区"


def test_closing_the_only_meal_point_uncovers_lijing_again(runs):
    cmp = compare_runs(runs["plan"], runs["closed"])
    assert {(r.community, r.item, r.change) for r in cmp.communities.itertuples()} == {("丽景社区", "meal", "newly_uncovered")}
    assert cmp.counts["services"]["meal"] == {"newly_covered": 0, "newly_uncovered": 1}
    # Closed = the baseline plus the centre: 丽景社区's meal figures are the baseline's exactly,
    # and against the baseline no community changes at all.
    ca, _, _ = _read(runs["base"])
    cc, sc, _ = _read(runs["closed"])
    meal_cols = [c for c in ca.columns if "meal" in c]
    pd.testing.assert_series_equal(cc.loc["丽景社区", meal_cols], ca.loc["丽景社区", meal_cols], check_names=False)
    assert compare_runs(runs["base"], runs["closed"]).communities.empty
    assert bool(sc.loc["硕放街道", "has_street_centre"])
    summary = json.loads((runs["closed"] / "summary.json").read_text(encoding="utf-8"))
    assert summary["parameters"]["scenario"]["remove"] == [MEAL_POINT]


def test_removing_an_unknown_facility_exits_2_naming_it(runs, tmp_path):
    sample = runs["sample"]
    data = {**runs["plan_config"], "scenario": {"remove": ["不存在的助餐点"]}}
    data = json.loads(json.dumps(data))
    for section, key in (("network", "osm"), ("facilities", "path"), ("population", "raster"), ("population", "elderly_raster"),
                         ("communities", "path"), ("estates", "path"), ("streets", "path")):
        data[section][key] = str(sample.out_dir / data[section][key])
    cfg = _write_config(tmp_path, "bad.yaml", data)
    out = tmp_path / "out"
    done = _cli("run", str(cfg), "--out", str(out))
    assert done.returncode == 2, done.stderr
    assert "scenario.remove" in done.stderr and "不存在的助餐点" in done.stderr
    assert "Traceback" not in done.stderr and not out.exists()


# --- the shipped example configs ---------------------------------------------------------

EXAMPLES = sorted((REPO / "configs" / "examples").glob("*.yaml"))


def test_the_three_examples_ship():
    assert {p.name for p in EXAMPLES} >= {"planning_lines.yaml", "osm_raster.yaml", "scenario.yaml"}


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_config_validates(path):
    """Every example is a valid run config with a loadable profile (its input files need not exist)."""
    from carecircle.config import RunConfig
    from carecircle.coverage.profile import load_profile

    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    cfg = RunConfig.model_validate(data)
    assert load_profile(cfg.profile).name == cfg.profile
    if path.name == "planning_lines.yaml":
        assert cfg.network.lines is not None and cfg.population.buildings is not None
        assert cfg.estates is not None and cfg.output.shapefile_encoding.upper() == "GBK" and cfg.profile == "wuxi"
    if path.name == "osm_raster.yaml":
        assert cfg.network.osm is not None and cfg.population.raster is not None
    if path.name == "scenario.yaml":
        assert [a.name for a in cfg.scenario.add] == [MEAL_POINT, CENTRE]


def _comment_of(lines: list[str], i: int) -> str:
    """The inline comment of line ``i`` plus the comment lines directly above it."""
    text = [lines[i].split("#", 1)[1]] if "#" in lines[i] else []
    j = i - 1
    while j >= 0 and lines[j].strip().startswith("#"):
        text.append(lines[j].split("#", 1)[1])
        j -= 1
    return " ".join(text)


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_keys_are_commented_in_chinese_and_english(path):
    """Each key is commented (on its line or just above), or sits in a commented block, in both languages."""
    lines = path.read_text(encoding="utf-8").splitlines()
    indent = [len(x) - len(x.lstrip()) for x in lines]
    for i, line in enumerate(lines):
        body = line.split("#", 1)[0]
        if not body.strip() or ":" not in body:
            continue
        text, k = _comment_of(lines, i), i
        while not text and indent[k] > 0:  # a key without a comment of its own: its block's
            k = max(j for j in range(k) if lines[j].strip() and not lines[j].strip().startswith("#") and indent[j] < indent[k])
            text = _comment_of(lines, k)
        assert re.search(r"[\u4e00-\u9fff]", text) and re.search(r"[A-Za-z]{3}", text), f"{path.name}:{i + 1}: {line.strip()}"
