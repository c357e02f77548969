"""Capacity measures of a whole run, checked from outside: the real CLI on the sample district
with a 日供餐量 (meals per day) column added to the facility list.

The reference rebuilds the run's layers, measures each meal point's catchment with its own
single-source search (``nearest_distance`` of that facility alone, tested against networkx
elsewhere), hands the costs to pysal ``access`` for the 2SFCA, and aggregates per community
by hand: the run's communities.csv, streets.csv, facilities.gpkg and summary.json must agree.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pyogrio
import pytest
import yaml

from carecircle.config import load_config
from carecircle.coverage import indicators, reach, snap
from carecircle.coverage.graph import build_graph
from carecircle.coverage.profile import load_profile
from carecircle.layers.sample import generate_sample
from carecircle.pipeline import load_inputs, resolve_walk
from clitools import cli

access = pytest.importorskip("access", reason="pysal access (the test extra) is not installed")
pytestmark = pytest.mark.filterwarnings("ignore:The inplace keyword")

BLANK = 2  # meal points left without a 日供餐量 figure


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    d = tmp_path_factory.mktemp("cap-input")
    generate_sample(d)
    fac = pd.read_csv(d / "facilities.csv", encoding="utf-8-sig", dtype=str)
    meal = fac["类型"].str.contains("餐") | fac["名称"].str.contains("餐")
    meals = pd.Series("", index=fac.index)
    meals[meal] = [str(20 + 7 * i) for i in range(int(meal.sum()))]
    blank = meals[meal].index[:BLANK]
    meals[blank] = ""
    fac["日供餐量"] = meals
    fac.to_csv(d / "facilities.csv", index=False, encoding="utf-8-sig")
    cfg = yaml.safe_load((d / "config.yaml").read_text(encoding="utf-8"))
    cfg["facilities"]["capacity"] = {"meal": "日供餐量"}
    cfg["output"]["formats"] = ["population", "communities", "streets", "facilities"]
    (d / "config.yaml").write_text(yaml.safe_dump(cfg, allow_unicode=True), encoding="utf-8")
    out = tmp_path_factory.mktemp("cap-run") / "out"
    proc = cli("run", d / "config.yaml", "--out", out, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return {"dir": d, "out": out, "blank": fac.loc[blank, "名称"].tolist(),
            "summary": json.loads((out / "summary.json").read_text(encoding="utf-8"))}


@pytest.fixture(scope="module")
def reference(run):
    """Per meal point with a capacity, its catchment by its own search; pysal's 2SFCA on it."""
    config = load_config(run["dir"] / "config.yaml")
    profile = load_profile(config.profile)
    walk = resolve_walk(config, profile)
    inputs = load_inputs(config, profile, log=lambda _m: None)
    graph = build_graph(inputs.network, min_component_nodes=config.network.min_component_nodes)
    fac, pop, com = inputs.facilities, inputs.population, inputs.communities
    fsnap = snap.snap_points(graph, fac.geometry.values, max_snap_m=config.network.max_snap_m)
    psnap = snap.snap_points(graph, pop.geometry.values, max_snap_m=config.network.max_snap_m)
    rows = [j for j in np.flatnonzero(fac["meal"].to_numpy(bool)) if np.isfinite(fac["capacity_meal"].iloc[j]) and fsnap.ok[j]]
    cost = []
    for j in rows:
        d, _ = reach.nearest_distance(graph, fsnap.take([j]), psnap, cutoff_m=walk.distance_m)
        hit = np.flatnonzero(np.isfinite(d))
        cost.append(pd.DataFrame({"origin": hit, "dest": j, "cost": d[hit]}))
    cost = pd.concat(cost, ignore_index=True)
    elderly = pop["elderly"].to_numpy(float)
    a = access.Access(demand_df=pd.DataFrame({"geoid": np.arange(len(pop)), "e": elderly}), demand_index="geoid",
                      demand_value="e", supply_df=pd.DataFrame({"geoid": rows, "cap": fac["capacity_meal"].to_numpy()[rows]}),
                      supply_index="geoid", supply_value="cap", cost_df=cost, cost_origin="origin", cost_dest="dest",
                      cost_name="cost")
    a.two_stage_fca(name="r", max_cost=walk.distance_m)
    acc = a.access_df["r_cap"].reindex(np.arange(len(pop))).fillna(0).to_numpy()
    cid = indicators.community_of_points(pop, com).to_numpy()
    return {"access": acc, "cid": cid, "elderly": elderly, "cost": cost, "rows": rows, "com": com, "fac": fac}


def test_meal_points_without_a_figure_are_listed_not_counted(run) -> None:
    meal = run["summary"]["capacity"]["services"]["meal"]
    assert sorted(meal["without_capacity_names"]) == sorted(run["blank"])
    assert meal["without_capacity"] == BLANK and meal["with_capacity"] == meal["facilities"] - BLANK
    fac = pyogrio.read_dataframe(run["out"] / "facilities.gpkg")
    blank = fac["name"].isin(run["blank"])
    assert fac.loc[blank, "capacity_meal"].isna().all() and fac.loc[blank, "load_meal"].isna().all()
    # day care: the sample's 床位 (beds) are its places, not the canteen's meals
    day = run["summary"]["capacity"]["services"]["day_care"]
    assert day["by_basis"] == {"beds": day["with_capacity"]}


def test_supply_per_1000_elderly_equals_pysal_per_community(run, reference) -> None:
    ref = reference
    n_com = len(ref["com"])
    ok = ref["cid"] >= 0
    num = np.bincount(ref["cid"][ok], weights=(ref["elderly"] * ref["access"])[ok], minlength=n_com)
    den = np.bincount(ref["cid"][ok], weights=ref["elderly"][ok], minlength=n_com)
    want = 1000 * num / den
    com = pd.read_csv(run["out"] / "communities.csv", encoding="utf-8-sig")
    assert (den > 0).all()  # every sample community has elderly
    # The tables carry 4 decimals.
    np.testing.assert_allclose(com["supply_per_1000_elderly_meal"].to_numpy(), want, rtol=0, atol=5e-5)
    np.testing.assert_array_equal(com["no_capacity_in_reach_meal"].to_numpy(bool), want == 0)
    city = 1000 * float(ref["elderly"] @ ref["access"]) / ref["elderly"].sum()
    assert run["summary"]["capacity"]["services"]["meal"]["supply_per_1000_elderly_city"] == pytest.approx(city, abs=5e-5)


def test_load_and_allocation_add_up(run, reference) -> None:
    fac = pyogrio.read_dataframe(run["out"] / "facilities.gpkg")
    cost, elderly = reference["cost"], reference["elderly"]
    in_catch = cost.groupby("dest")["origin"].apply(lambda o: elderly[o.to_numpy()].sum())
    got = fac.set_index("fid").loc[in_catch.index]
    np.testing.assert_allclose(got["elderly_in_catchment_meal"], in_catch.to_numpy(), rtol=0, atol=0.5)
    np.testing.assert_allclose(got["load_meal"], in_catch.to_numpy() / got["capacity_meal"].to_numpy(), rtol=0, atol=5e-3)
    served = fac["served_meal"].fillna(0).to_numpy()
    assert (served <= fac["capacity_meal"].fillna(0).to_numpy() + 1e-9).all()
    s = run["summary"]["capacity"]["services"]["meal"]
    assert s["elderly_served_within"] + s["elderly_served_beyond"] == pytest.approx(served.sum())
    assert s["elderly_served_within"] + s["elderly_served_beyond"] + s["elderly_unserved"] == pytest.approx(elderly.sum())
    com = pd.read_csv(run["out"] / "communities.csv", encoding="utf-8-sig")
    cols = ["elderly_served_within_meal", "elderly_served_beyond_meal", "elderly_unserved_meal"]
    in_com = reference["cid"] >= 0
    assert com[cols].to_numpy().sum() == pytest.approx(elderly[in_com].sum())


def test_street_classes_follow_the_thresholds(run) -> None:
    profile = load_profile("wuxi")
    streets = pd.read_csv(run["out"] / "streets.csv", encoding="utf-8-sig")
    city = run["summary"]["capacity"]["services"]["meal"]["supply_per_1000_elderly_city"]
    ratio = streets["supply_per_1000_elderly_meal"] / city
    np.testing.assert_allclose(streets["supply_demand_ratio_meal"], ratio, rtol=0, atol=5e-4)
    lo, hi = profile.capacity.balance.under_below, profile.capacity.balance.over_above
    want = np.where(ratio < lo, "under", np.where(ratio > hi, "over", "balanced"))
    assert streets["supply_demand_class_meal"].tolist() == want.tolist()
