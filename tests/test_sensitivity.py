"""Coverage at the profile's walking speeds, and the step-free comparison in summary.json."""

from __future__ import annotations

import json
from types import SimpleNamespace

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import SHARED_DATA

from carecircle.config import load_config, parse_config
from carecircle.coverage.profile import load_profile
from carecircle.coverage.sensitivity import speed_sensitivity
from carecircle.errors import InputError
from carecircle.pipeline import run

DATA = SHARED_DATA
LONGGANG = DATA / "osm" / "shenzhen_longgang_2019.osm"


def preset(name, speed):
    return SimpleNamespace(name=name, speed_kmh=speed, source=f"{name} source")


def test_coverage_at_each_speed_by_hand():
    # 15 min: 1000 m at 4.0 km/h, 900 m at 3.6, 750 m at 3.0
    pop = pd.DataFrame({
        "people": [10.0, 20.0, 30.0, 40.0, 50.0],
        "elderly": [1.0, 2.0, 3.0, 4.0, 0.0],
        "dist_day_care_m": [100.0, 760.0, 950.0, 2000.0, np.nan],  # NaN: beyond the search or unreachable
        "dist_meal_m": [750.0, 900.0, 1000.0, np.nan, 10.0],
    })
    rows = speed_sensitivity(pop, ["day_care", "meal"], minutes=15,
                             presets=[preset("standard", 4.0), preset("older", 3.6), preset("older_slow", 3.0)],
                             search_limit_m=3000)
    assert [r["distance_m"] for r in rows] == pytest.approx([1000, 900, 750])
    day = [r["services"]["day_care"] for r in rows]
    # 4.0: points 1-3 (60 people, elderly 6 of 10); 3.6: points 1-2 (30, 3); 3.0: point 1 (10, 1)
    assert [d["population_covered"] for d in day] == [60, 30, 10]
    assert [d["elderly_covered_share"] for d in day] == pytest.approx([0.6, 0.3, 0.1])
    meal = [r["services"]["meal"] for r in rows]
    # distance exactly at the circle counts as inside (≤): 4.0 → 1, 2, 3, 5; 3.6 → 1, 2, 5; 3.0 → 1, 5
    assert [m["population_covered"] for m in meal] == [110, 80, 60]
    assert [m["population_covered_share"] for m in meal] == pytest.approx([110 / 150, 80 / 150, 60 / 150])
    assert rows[1]["preset"] == "older" and rows[1]["source"] == "older source"


def test_a_speed_beyond_the_search_limit_is_not_guessed():
    pop = pd.DataFrame({"people": [1.0], "elderly": [1.0], "dist_meal_m": [np.nan]})
    (row,) = speed_sensitivity(pop, ["meal"], minutes=15, presets=[preset("fast", 16.0)], search_limit_m=3000)
    assert row["distance_m"] == pytest.approx(4000) and row["services"]["meal"]["elderly_covered_share"] is None


def test_profile_speed_presets_have_sources():
    presets = load_profile("wuxi").walk.speed_presets  # inherited from national
    assert [(p.name, p.speed_kmh) for p in presets] == [("standard", 4.0), ("older", 3.6), ("older_slow", 3.0)]
    assert all(p.source for p in presets)


def test_new_network_and_walk_keys_are_validated(tmp_path):
    osm = tmp_path / "a.osm"
    osm.write_text("<osm/>")
    base = {"network": {"osm": str(osm)}, "facilities": {"path": str(osm)},
            "population": {"raster": str(osm), "elderly_share": 0.2}, "communities": {"path": str(osm)}}
    ok = parse_config({**base, "network": {"osm": str(osm), "step_free": True, "cycleways": "foot_yes",
                                           "pedestrian_areas": "outline", "clip_margin_m": 3000},
                       "walk": {"sensitivity": True, "compare_step_free": True}}, path=tmp_path / "c.yaml")
    assert ok.network.cycleways == "foot_yes" and ok.walk.compare_step_free
    assert parse_config({**base, "network": {"osm": str(osm), "cycleways": False}}, path=tmp_path / "c.yaml").network.cycleways is False
    for bad in ({"cycleways": "sometimes"}, {"pedestrian_areas": "through"}, {"clip_margin_m": -1}):
        with pytest.raises(InputError, match=r"network\."):
            parse_config({**base, "network": {"osm": str(osm), **bad}}, path=tmp_path / "c.yaml")


@pytest.mark.shared
@pytest.mark.skipif(not LONGGANG.exists(), reason=f"../shared/data absent: {LONGGANG}")
def test_summary_sensitivity_and_step_free_comparison(tmp_path):
    from test_shared_inputs import write_inputs

    cfg = write_inputs(tmp_path, LONGGANG)
    cfg["walk"] = {"sensitivity": True, "compare_step_free": True}
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(cfg, allow_unicode=True), encoding="utf-8")
    summary = run(load_config(tmp_path / "run.yaml"), tmp_path / "out", log=lambda line: None)
    assert json.loads((tmp_path / "out" / "summary.json").read_text(encoding="utf-8"))["speed_sensitivity"]

    # the table read off population.gpkg's distances by hand
    pop = gpd.read_file(tmp_path / "out" / "population.gpkg")
    for row in summary["speed_sensitivity"]["rows"]:
        for key in ("day_care", "meal"):
            inside = pop[f"dist_{key}_m"].to_numpy() <= 15 * row["speed_kmh"] * 1000 / 60
            # summary.json shares carry 4 decimals.
            assert row["services"][key]["elderly_covered_share"] == pytest.approx(
                pop.loc[inside, "elderly"].sum() / pop["elderly"].sum(), abs=5e-5)
    standard = summary["speed_sensitivity"]["rows"][0]["services"]
    assert standard["day_care"]["elderly_covered_share"] == summary["services"]["day_care"]["elderly_covered_share"]

    both = summary["step_free_comparison"]
    assert both["standard"]["services"]["meal"] == {k: summary["services"]["meal"][k] for k in both["standard"]["services"]["meal"]}
    assert both["step_free"]["network"]["excluded_by_reason"]["steps (step-free)"] == 35  # all of Longgang's steps
    # the step-free side equals a run on network.step_free: true
    cfg["walk"] = {}
    cfg["network"]["step_free"] = True
    (tmp_path / "free.yaml").write_text(yaml.safe_dump(cfg, allow_unicode=True), encoding="utf-8")
    free = run(load_config(tmp_path / "free.yaml"), tmp_path / "free", log=lambda line: None)
    for key in ("day_care", "meal"):
        assert both["step_free"]["services"][key]["elderly_covered_share"] == free["services"][key]["elderly_covered_share"]
        assert both["step_free"]["services"][key]["elderly_covered"] <= both["standard"]["services"][key]["elderly_covered"]
