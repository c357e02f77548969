"""Scenario comparison between two run folders, values set by hand."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from carecircle.compare import compare_runs, comparison_table, write_comparison
from carecircle.errors import InputError

COMMUNITIES_A = """name,street,elderly_covered_share_day_care,elderly_covered_share_meal,flag_no_day_care,flag_no_meal,flag_space,flag_no_station,space_shortfall_m2
甲社区,东街道,0.75,0.25,False,True,True,False,50
乙社区,东街道,1.0,0.75,False,False,False,False,0
丙社区,西街道,0.0,0.0,True,True,True,True,153.5
丁社区,西街道,1.0,1.0,False,False,False,False,0
"""
COMMUNITIES_B = """name,street,elderly_covered_share_day_care,elderly_covered_share_meal,flag_no_day_care,flag_no_meal,flag_space,flag_no_station,space_shortfall_m2
甲社区,东街道,0.75,1.0,False,False,False,False,0
乙社区,东街道,1.0,0.25,False,True,True,False,20
丙社区,西街道,1.0,0.0,False,True,True,False,100
戊社区,西街道,1.0,1.0,false,false,false,false,
"""
STREETS_A = "street,communities,communities_flagged,score,rank,has_street_centre\n东街道,2,1,85.0,1,True\n西街道,2,1,0.0,2,False\n"
STREETS_B = "street,communities,communities_flagged,score,rank,has_street_centre\n东街道,2,2,90.0,1,True\n西街道,2,1,40.0,2,True\n"


def _run(folder, communities, streets, summary):
    folder.mkdir()
    (folder / "communities.csv").write_text(communities, encoding="utf-8")
    (folder / "streets.csv").write_text(streets, encoding="utf-8")
    (folder / "summary.json").write_text(json.dumps(summary, ensure_ascii=False), encoding="utf-8")
    return folder


@pytest.fixture
def runs(tmp_path):
    a = _run(tmp_path / "a", COMMUNITIES_A, STREETS_A, {
        "services": {"day_care": {"elderly_covered_share": 0.9}, "meal": {"elderly_covered_share": 0.5}},
        "communities": {"total": 4, "flagged": 2}, "runtime_s": 3.2, "versions": {"carecircle": 1.0}, "profile": "wuxi"})
    b = _run(tmp_path / "b", COMMUNITIES_B, STREETS_B, {
        "services": {"day_care": {"elderly_covered_share": 0.95}, "meal": {"elderly_covered_share": 0.5}},
        "communities": {"total": 4, "flagged": 2}, "runtime_s": 4.0, "versions": {"carecircle": 1.1}, "profile": "wuxi"})
    return a, b


def _changes(cmp):
    c = cmp.communities
    return {(r.community, r.item, r.change) for r in c.itertuples()}


def test_community_changes(runs):
    cmp = compare_runs(*runs)
    assert _changes(cmp) == {
        ("甲社区", "meal", "newly_covered"), ("甲社区", "space", "shortfall_closed"),
        ("乙社区", "meal", "newly_uncovered"), ("乙社区", "space", "shortfall_opened"),
        ("丙社区", "day_care", "newly_covered"), ("丙社区", "space", "shortfall_reduced"), ("丙社区", "no_station", "resolved"),
        ("丁社区", "community", "only_in_a"), ("戊社区", "community", "only_in_b"),
    }
    c = cmp.communities.set_index(["community", "item", "change"])
    assert c.loc[("甲社区", "meal", "newly_covered"), ["a", "b", "delta"]].tolist() == [0.25, 1.0, 0.75]
    assert c.loc[("丙社区", "space", "shortfall_reduced"), ["a", "b", "delta"]].tolist() == [153.5, 100.0, -53.5]
    assert c.loc[("乙社区", "space", "shortfall_opened"), ["a", "b"]].tolist() == [0.0, 20.0]
    assert cmp.counts["services"] == {"day_care": {"newly_covered": 1, "newly_uncovered": 0},
                                      "meal": {"newly_covered": 1, "newly_uncovered": 1}}
    assert cmp.counts["space"] == {"shortfalls_closed": 1, "shortfalls_opened": 1, "shortfall_m2_a": 203.5,
                                   "shortfall_m2_b": 120.0, "delta_m2": -83.5}
    assert cmp.counts["checks"] == {"no_station": {"resolved": 1, "raised": 0}}
    assert (cmp.counts["only_in_a"], cmp.counts["only_in_b"]) == (["丁社区"], ["戊社区"])


def test_street_and_city_deltas(runs):
    cmp = compare_runs(*runs)
    s = {(r.street, r.item): (r.a, r.b, r.delta) for r in cmp.streets.itertuples()}
    assert s == {("东街道", "communities_flagged"): (1, 2, 1), ("东街道", "score"): (85, 90, 5),
                 ("西街道", "score"): (0, 40, 40), ("西街道", "has_street_centre"): (0, 1, 1)}
    city = cmp.city.set_index("item")
    # runtime and versions always change: left out; unchanged values left out.
    assert list(city.index) == ["services.day_care.elderly_covered_share"]
    assert city.loc["services.day_care.elderly_covered_share", "delta"] == pytest.approx(0.05)


def test_write_comparison_zh_and_en(runs, tmp_path):
    cmp = compare_runs(*runs)
    paths = write_comparison(cmp, tmp_path / "out")
    table = pd.read_csv(paths["csv"], encoding="utf-8-sig")
    assert list(table.columns) == ["层级", "街道", "社区", "项目", "变化", "方案A", "方案B", "变化量"]
    assert len(table) == len(cmp.communities) + len(cmp.streets) + len(cmp.city) == 9 + 4 + 1
    assert set(table["变化"]) >= {"新覆盖", "失去覆盖", "缺口消除", "新增缺口", "缺口减少", "问题解决", "仅方案A有", "变化"}
    assert set(table["层级"]) == {"社区", "街道", "全市"}
    data = json.loads(paths["json"].read_text(encoding="utf-8"))
    assert data["counts"]["space"]["shortfalls_closed"] == 1 and len(data["communities"]) == 9
    en = comparison_table(cmp, "en")
    assert list(en.columns) == ["level", "street", "community", "item", "change", "a", "b", "delta"]
    assert "newly_covered" in set(en["change"])


def test_identical_runs_report_nothing(runs):
    a, _ = runs
    cmp = compare_runs(a, a)
    assert cmp.communities.empty and cmp.streets.empty and cmp.city.empty
    assert cmp.counts["space"]["delta_m2"] == 0


def test_missing_run_files_are_input_errors(runs, tmp_path):
    a, _ = runs
    with pytest.raises(InputError, match="not a run folder"):
        compare_runs(tmp_path / "nope", a)
    (a / "streets.csv").unlink()
    with pytest.raises(InputError, match="streets.csv: missing"):
        compare_runs(a, a)


def test_three_runs_each_against_the_baseline_with_an_xlsx(runs, tmp_path):
    import openpyxl

    from carecircle.compare import compare_many, runs_overview

    a, b = runs
    c = _run(tmp_path / "c", COMMUNITIES_A, STREETS_A, json.loads((a / "summary.json").read_text(encoding="utf-8")))
    results = compare_many([a, b, c])
    assert [r.run_b for r in results] == [str(b), str(c)]
    assert len(results[1].communities) == 0  # c is a copy of the baseline
    overview = runs_overview([a, b, c])
    # Stated by hand: baseline 0.9 / 0.5, b 0.95 / 0.5; shortfall sums 203.5, 120, 203.5 m².
    assert overview["run"].tolist() == ["a", "b", "c"]
    assert overview["elderly_covered_share_day_care"].tolist() == [0.9, 0.95, 0.9]
    assert overview["space_shortfall_m2"].tolist() == [203.5, 120.0, 203.5]
    paths = write_comparison(results, tmp_path / "out", overview=overview)
    table = pd.read_csv(paths["csv"], encoding="utf-8-sig")
    assert table.columns[0] == "方案" and set(table["方案"]) == {"b"}  # c changes nothing
    book = openpyxl.load_workbook(paths["xlsx"])
    assert book.sheetnames == ["汇总", "变化"]
    heads = [c.value for c in book["汇总"][1]]
    assert heads[:2] == ["方案", "老年人覆盖率（day_care）"] and "养老服务用房缺口（m²）" in heads
    assert book["汇总"].cell(2, 2).number_format == "0.0%"
    assert [c.value for c in book["变化"][1]][:3] == ["方案", "层级", "街道"]
    assert json.loads(paths["json"].read_text(encoding="utf-8"))["baseline"] == str(a)
    with pytest.raises(InputError, match="at least two"):
        compare_many([a])
