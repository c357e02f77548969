"""Siting end to end on the sample district: solve, then let an ordinary run confirm the plan.

The sample district (``carecircle.layers.sample``) has one community without a meal point
within the walking circle (its ``no_meal`` gap, 丽景社区) and every other community passing.
What is asserted comes from a *second, ordinary* ``carecircle run`` of the written
``sites_scenario.yaml`` (the facilities added through ``scenario.add``, snapped and searched
by the analysis, not by the siting code) and from the two runs' own population files:

* the communities the plan says newly pass do pass in that run, and nothing else changes;
* the elderly the sites bring within the circle are exactly the elderly whose walk to a meal
  drops to within the circle between the two runs;
* the after-state shares in ``summary.json`` are those of the confirming run;
* sites.csv, sites.gpkg and shp/sites agree on the coordinates; the GCJ-02 columns convert
  back to the WGS-84 ones;
* a candidate file (CSV in GCJ-02) keeps or rejects every row with a reason.
"""

from __future__ import annotations

import json

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import yaml
from clitools import assert_one_line_error, cli

from carecircle.config import load_config
from carecircle.layers import crs as cccrs
from carecircle.pipeline import run as run_pipeline

FORMATS = ["communities", "streets", "actions", "population", "map", "shp"]
CIRCLE_M = 1000.0


def _write(folder, name, data):
    path = folder / name
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def world(tmp_path_factory, sample_district):
    root = tmp_path_factory.mktemp("siting")
    sample = sample_district
    base = yaml.safe_load(sample.config.read_text(encoding="utf-8"))
    base["output"] = {**base.get("output", {}), "formats": FORMATS}
    siting = {"service": "meal", "candidates": {"generate": {"spacing_m": 100}}, "objective": "max_coverage",
              "new_sites": 2, "weight": "communities", "time_limit_s": 30}
    cfg = load_config(_write(sample.out_dir, "site.yaml", {**base, "siting": siting}))
    run_pipeline(cfg, root / "plan", log=lambda line: None)
    after = load_config(root / "plan" / "sites_scenario.yaml")
    run_pipeline(after, root / "after", log=lambda line: None)
    return {"root": root, "sample": sample, "base": base}


def _summary(run):
    return json.loads((run / "summary.json").read_text(encoding="utf-8"))


def test_plan_is_confirmed_by_an_ordinary_run(world):
    plan, after = world["root"] / "plan", world["root"] / "after"
    s = _summary(plan)["siting"]
    gap = world["sample"].gaps_of("no_meal")
    assert [g.community for g in gap] == ["丽景社区"]
    # One site is enough for the only failing community: the second is not spent.
    assert s["optimal"] and s["value"] == 1 and s["new_sites"] == 1 and s["gap"] == 0
    sites = pd.read_csv(plan / "sites.csv", encoding="utf-8-sig")
    assert sites["communities_new"].tolist() == ["丽景社区"]
    before = pd.read_csv(plan / "communities.csv", encoding="utf-8-sig").set_index("name")
    now = pd.read_csv(after / "communities.csv", encoding="utf-8-sig").set_index("name")
    changed = before.index[before["flag_no_meal"] != now["flag_no_meal"]].tolist()
    assert changed == ["丽景社区"] and not now.loc["丽景社区", "flag_no_meal"]
    assert (now["flag_no_day_care"] == before["flag_no_day_care"]).all()
    assert s["after"]["communities_passing"] == int((~now["flag_no_meal"]).sum())
    assert s["before"]["communities_passing"] == int((~before["flag_no_meal"]).sum())
    meal = _summary(after)["services"]["meal"]
    assert s["after"]["elderly_covered_share"] == pytest.approx(meal["elderly_covered_share"], abs=1e-12)
    assert s["before"]["elderly_covered_share"] == pytest.approx(_summary(plan)["services"]["meal"]["elderly_covered_share"])


def test_elderly_newly_within_the_circle_from_the_raw_points(world):
    plan, after = world["root"] / "plan", world["root"] / "after"
    p0 = gpd.read_file(plan / "population.gpkg")
    p1 = gpd.read_file(after / "population.gpkg")
    assert (p0["pid"].to_numpy() == p1["pid"].to_numpy()).all()
    d0 = np.nan_to_num(p0["dist_meal_m"].to_numpy(float), nan=np.inf)
    d1 = np.nan_to_num(p1["dist_meal_m"].to_numpy(float), nan=np.inf)
    newly = (d1 <= CIRCLE_M) & (d0 > CIRCLE_M)
    sites = pd.read_csv(plan / "sites.csv", encoding="utf-8-sig")
    assert newly.any()
    assert sites["elderly_new"].sum() == pytest.approx(p0["elderly"].to_numpy()[newly].sum())
    assert _summary(plan)["siting"]["after"]["elderly_covered"] == pytest.approx(p1["elderly"].to_numpy()[d1 <= CIRCLE_M].sum())


def test_site_files_agree(world):
    plan = world["root"] / "plan"
    csv = pd.read_csv(plan / "sites.csv", encoding="utf-8-sig")
    gpkg = gpd.read_file(plan / "sites.gpkg")
    assert gpkg.crs.to_epsg() == 4326
    # The CSV keeps 7 decimals of a degree (about 1 cm).
    np.testing.assert_allclose(gpkg.geometry.x, csv["lon"], atol=6e-8)
    np.testing.assert_allclose(gpkg.geometry.y, csv["lat"], atol=6e-8)
    lon, lat = cccrs.to_wgs84(csv["lon_gcj02"].to_numpy(), csv["lat_gcj02"].to_numpy(), "gcj02")
    np.testing.assert_allclose(lon, csv["lon"], atol=2e-7)
    np.testing.assert_allclose(lat, csv["lat"], atol=2e-7)
    shp = gpd.read_file(next((plan / "shp").glob("sites*.shp"))).to_crs(4326)
    np.testing.assert_allclose(shp.geometry.x, csv["lon"], atol=1e-6)
    scenario = yaml.safe_load((plan / "sites_scenario.yaml").read_text(encoding="utf-8"))
    added = scenario["scenario"]["add"]
    assert [a["lon"] for a in added] == pytest.approx(csv["lon"].tolist(), abs=6e-8)
    assert "siting" not in scenario
    page = (plan / "map.html").read_text(encoding="utf-8")
    escaped = lambda text: json.dumps(text)[1:-1]  # noqa: E731 - folium writes JSON with \\u escapes
    assert escaped("建议选址") in page and escaped(str(csv["name"].iloc[0])) in page


def test_candidate_file_and_min_sites(world, tmp_path):
    """Three parcels in GCJ-02 (one with a blank coordinate): the fewest reaching every community."""
    sample, base = world["sample"], world["base"]
    plan = pd.read_csv(world["root"] / "plan" / "sites.csv", encoding="utf-8-sig")
    glon, glat = plan["lon_gcj02"].iloc[0], plan["lat_gcj02"].iloc[0]
    parcels = pd.DataFrame({"地块名称": ["甲地块", "乙地块", "丙地块"],
                            "经度": [f"{glon:.9f}", f"{glon + 0.0015:.9f}", ""],
                            "纬度": [f"{glat:.9f}", f"{glat:.9f}", ""]})
    parcels.to_csv(sample.out_dir / "候选地块.csv", index=False, encoding="gbk")
    siting = {"service": "meal", "objective": "min_sites", "weight": "communities", "target_share": 1.0,
              "candidates": {"path": "候选地块.csv", "name_field": "地块名称", "crs": "gcj02"}}
    cfg = load_config(_write(sample.out_dir, "parcels.yaml", {**base, "output": {"formats": ["communities"]},
                                                                "siting": siting}))
    summary = run_pipeline(cfg, tmp_path / "out", log=lambda line: None)
    s, rep = summary["siting"], summary["inputs"]["candidates"]
    assert s["value"] == 1 and s["optimal"] and s["target_reachable"]
    assert rep["read"] == 3 and rep["kept"] == 2 and rep["rejected_by_reason"] == {"missing coordinates": 1}
    sites = pd.read_csv(tmp_path / "out" / "sites.csv", encoding="utf-8-sig")
    # 甲地块 is the site of the generated plan: it passes 丽景社区 alone.
    assert len(sites) == 1 and sites["communities_new"].tolist() == ["丽景社区"]


def test_bad_siting_config_is_one_line(world, tmp_path):
    sample, base = world["sample"], world["base"]
    bad = _write(sample.out_dir, "bad.yaml", {**base, "siting": {"service": "institution", "new_sites": 1,
                                                                 "candidates": {"generate": {"spacing_m": 100}}}})
    assert_one_line_error(cli("site", bad, "--out", tmp_path / "o"), "siting.service", "institution")
    missing = _write(sample.out_dir, "nosite.yaml", base)
    assert_one_line_error(cli("site", missing, "--out", tmp_path / "o"), "siting")
    both = _write(sample.out_dir, "both.yaml", {**base, "siting": {"service": "meal", "new_sites": 1, "candidates": {
        "path": "facilities.csv", "generate": {"spacing_m": 100}}}})
    assert_one_line_error(cli("site", both, "--out", tmp_path / "o"), "siting.candidates", "exactly one")
    nok = _write(sample.out_dir, "nok.yaml", {**base, "siting": {"service": "meal",
                                                                 "candidates": {"generate": {"spacing_m": 100}}}})
    assert_one_line_error(cli("site", nok, "--out", tmp_path / "o"), "new_sites")


def test_report_lists_a_streets_sites():
    from carecircle.maps import labels as L
    from carecircle.maps.planning_report import site_blocks

    lab = L.Labels("zh", None, {"meal": {"label_zh": "助餐点", "label_en": "Meal point"}})
    sites = pd.DataFrame({"rank": [2], "name": ["乙地块"], "elderly_new": [518.0], "communities_new": ["丽景社区"],
                          "community": ["丽景社区"], "nearest_facility_m": [1495.2], "street": ["梅村街道"]})
    blocks = site_blocks(sites, lab)
    assert blocks[0] == ("h3", "建议选址")
    kind, table, heads = blocks[1]
    assert kind == "table" and heads[:3] == ["排序", "候选点名称", "新增覆盖老年人"]
    assert table.iloc[0].tolist() == [2, "乙地块", 518.0, "丽景社区", "丽景社区", 1495.2]
    assert site_blocks(sites.iloc[0:0], lab)[1] == ("note", "本街道无建议选址")
