"""The real files in ../shared/data through the whole pipeline.

Each raw OSM extract is the network of a run whose other layers are small synthetic files
written in ``tmp_path`` over the extract's ``<bounds>``; the run must finish and every
count in ``summary.json`` must agree with the files it wrote. The Shanghai facility list
(GCJ-02) lies in none of these areas: paired with a Beijing extract the run must stop with
exit code 2 and one line naming the facility file.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
import yaml
from shapely.geometry import box
from conftest import SHARED_DATA

from carecircle.config import load_config
from carecircle.pipeline import run
from clitools import assert_one_line_error, cli

DATA = SHARED_DATA
OSM_DIR = DATA / "osm"
SHANGHAI = DATA / "facilities" / "shanghai_elderly_care_orgs_gcj02.csv"
OSM_NAMES = ["beijing_chaoyang_wangjing_2020.osm", "beijing_haidian_wudaokou_2017.osm", "shenzhen_longgang_2019.osm"]
PEOPLE_PER_POINT = 100.0
ELDERLY_SHARE = 0.25

pytestmark = pytest.mark.shared
if not DATA.is_dir():
    pytest.skip(f"../shared/data absent: {DATA} (real OSM extracts and facility list)", allow_module_level=True)


def file_bounds(path: Path) -> tuple[float, float, float, float]:
    """minlon, minlat, maxlon, maxlat of an OSM XML export's ``<bounds>``."""
    head = path.read_text(encoding="utf-8")[:2000]
    attrs = dict(re.findall(r'(min\w+|max\w+)="([-\d.]+)"', re.search(r"<bounds[^>]*>", head).group(0)))
    return tuple(float(attrs[k]) for k in ("minlon", "minlat", "maxlon", "maxlat"))


def highway_ways(path: Path) -> int:
    """Ways with a ``highway`` tag: what the OSM reader reads as candidate walking ways."""
    text = path.read_text(encoding="utf-8")
    return sum('k="highway"' in way for way in re.findall(r"<way\b.*?</way>", text, flags=re.S))


def write_inputs(folder: Path, osm: Path) -> dict:
    """2 × 2 communities over the middle of the extract, 8 × 8 population points, a facility CSV
    (WGS-84) with three good rows and two a planner's list always has: far away, and blank."""
    lon0, lat0, lon1, lat1 = file_bounds(osm)
    dx, dy = (lon1 - lon0) / 5, (lat1 - lat0) / 5
    x = np.array([lon0 + dx, lon0 + 2.5 * dx, lon0 + 4 * dx])
    y = np.array([lat0 + dy, lat0 + 2.5 * dy, lat0 + 4 * dy])
    com = gpd.GeoDataFrame(
        {"社区名称": ["东园社区", "西园社区", "南苑社区", "北苑社区"], "所属街道": ["甲街道", "甲街道", "乙街道", "乙街道"],
         "户数": [1200, 900, 1500, 800]},
        geometry=[box(x[i], y[j], x[i + 1], y[j + 1]) for j in (0, 1) for i in (0, 1)], crs="EPSG:4326",
    )
    com.to_file(folder / "communities.gpkg")
    gx, gy = np.meshgrid(np.linspace(x[0], x[2], 8), np.linspace(y[0], y[2], 8))
    pop = gpd.GeoDataFrame({"人口": np.full(gx.size, PEOPLE_PER_POINT)}, geometry=gpd.points_from_xy(gx.ravel(), gy.ravel()),
                           crs="EPSG:4326")
    pop.to_file(folder / "population.gpkg")
    centres = com.geometry.to_crs(com.estimate_utm_crs()).centroid.to_crs(4326)
    fac = pd.DataFrame({
        "名称": ["东园日间照料中心", "北苑日间照料中心", "西园老年助餐点", "远方养老院", "无坐标助餐点"],
        "类型": ["日间照料中心（含助餐点）", "日间照料中心（含助餐点）", "老年助餐点", "养老院", "助餐点"],
        "经度": [*(f"{v:.7f}" for v in centres.x.iloc[[0, 3, 1]]), "100.0", ""],
        "纬度": [*(f"{v:.7f}" for v in centres.y.iloc[[0, 3, 1]]), "30.0", ""],
    })
    fac.to_csv(folder / "facilities.csv", index=False, encoding="utf-8-sig")
    return {
        "profile": "national",
        "network": {"osm": str(osm)},
        "facilities": {"path": "facilities.csv"},
        "population": {"points": "population.gpkg", "count_field": "人口", "elderly_share": ELDERLY_SHARE},
        "communities": {"path": "communities.gpkg"},
        "output": {"formats": ["population", "communities", "facilities", "rejected"]},
    }


@pytest.mark.parametrize("name", OSM_NAMES)
def test_osm_extract_runs_with_consistent_summary(tmp_path, name) -> None:
    osm = OSM_DIR / name
    if not osm.exists():
        pytest.skip(f"../shared/data absent: {osm}")
    cfg = tmp_path / "run.yaml"
    cfg.write_text(yaml.safe_dump(write_inputs(tmp_path, osm), allow_unicode=True), encoding="utf-8")
    out = tmp_path / "out"
    summary = run(load_config(cfg), out, log=lambda line: None)
    assert json.loads((out / "summary.json").read_text(encoding="utf-8"))["inputs"] == summary["inputs"]

    for layer, entry in summary["inputs"].items():
        assert entry["read"] == entry["kept"] + entry["rejected"], layer
        assert sum(entry["rejected_by_reason"].values()) == entry["rejected"], layer
        if entry["rejected"]:
            rej = pd.read_csv(out / f"rejected_{layer}.csv", encoding="utf-8-sig")
            assert len(rej) == entry["rejected"] and (rej["row"] >= 1).all(), layer
    assert summary["inputs"]["network"]["read"] == highway_ways(osm)
    assert summary["network"]["nodes"] > 300 and summary["network"]["largest_component_share"] > 0.8

    fac_in = summary["inputs"]["facilities"]
    assert (fac_in["read"], fac_in["kept"], fac_in["rejected"]) == (5, 3, 2)
    rej = pd.read_csv(out / "rejected_facilities.csv", encoding="utf-8-sig").sort_values("row")
    assert rej["row"].tolist() == [5, 6]  # file lines: the header is line 1
    fac = gpd.read_file(out / "facilities.gpkg")
    assert len(fac) == 3 and fac["snapped"].all()
    assert fac["day_care"].sum() == 2 and fac["meal"].sum() == 3

    pop = gpd.read_file(out / "population.gpkg")
    assert summary["inputs"]["population"]["kept"] == len(pop) == 64
    assert pop["people"].sum() == summary["population"]["people"] == 64 * PEOPLE_PER_POINT
    assert pop["elderly"].sum() == pytest.approx(64 * PEOPLE_PER_POINT * ELDERLY_SHARE)
    cutoff = summary["parameters"]["walk_distance_m"]
    fac_m = fac.to_crs(pop.crs)
    for key in ("day_care", "meal"):
        d = pop[f"dist_{key}_m"].to_numpy()
        covered = d <= cutoff
        share = pop.loc[covered, "elderly"].sum() / pop["elderly"].sum()
        assert summary["services"][key]["elderly_covered_share"] == pytest.approx(share, abs=5e-5)  # 4 decimals
        # the walk is never shorter than the straight line to the nearest facility
        src = fac_m.geometry[fac_m[key]].to_numpy()
        straight = shapely.distance(pop.geometry.to_numpy()[:, None], src[None, :]).min(axis=1)
        reached = np.isfinite(d)
        assert reached.sum() >= 32 and (d[reached] >= straight[reached] - 1e-6).all()
    com = gpd.read_file(out / "communities.gpkg")
    assert sorted(com["name"]) == sorted(["东园社区", "西园社区", "南苑社区", "北苑社区"])
    assert summary["communities"]["total"] == 4


def test_shanghai_list_in_beijing_exits_2_naming_the_file(tmp_path) -> None:
    osm = OSM_DIR / "beijing_haidian_wudaokou_2017.osm"
    if not (osm.exists() and SHANGHAI.exists()):
        pytest.skip(f"../shared/data absent: {osm} or {SHANGHAI}")
    cfg = write_inputs(tmp_path, osm)
    cfg["facilities"] = {"path": str(SHANGHAI), "crs": "gcj02", "type": "category"}
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(cfg, allow_unicode=True), encoding="utf-8")
    out = tmp_path / "out"
    assert_one_line_error(cli("run", tmp_path / "run.yaml", "--out", out, timeout=300), str(SHANGHAI), "study area")
    assert not out.exists() and not [p for p in tmp_path.iterdir() if ".partial" in p.name]
