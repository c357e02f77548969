"""Flags, sub-district scorecards, city totals and the action list, by hand, for every profile.

The world (from test_indicators): 甲社区 (东街道) 1,000 households built 2023, 400 elderly,
3 of 4 elderly within the day-care circle, 1 of 4 within the meal circle, a 150 m² day-care
centre inside; 乙社区 (东街道) 2,000 existing households, 800 elderly, fully covered for day
care, 3 of 4 for meals, a 100 m² meal point and a 600 m² 街道 centre (day care + meals)
inside; 丙社区 (西街道) 2,620 people, no households/year, no population points, 300 elderly,
nearest day care 1,300 m and meal 1,400 m by walk, no facility inside.
"""

from __future__ import annotations

import re

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
from shapely.geometry import Point, box
from test_indicators import CRS, communities, facilities, nearest, population

from carecircle.coverage.indicators import community_indicators
from carecircle.coverage.profile import load_profile
from carecircle.coverage.scorecards import street_scorecard
from carecircle.coverage.standards import action_list, assess, check_communities, checks, city_totals, community_flag_columns, evaluate
from carecircle.maps.labels import check_words, column_labels, word_actions, word_flags
from test_indicators import POOLED

FLAGS = ["flag_no_day_care", "flag_no_meal", "flag_space", "flag_pooled_space", "flag_no_station", "flag_station_size", "flag_per_capita"]


def result(profile="wuxi", **kw):
    kw.setdefault("nearest", nearest())
    return evaluate(communities(), population(), facilities(), load_profile(profile), **kw)


def worded(profile="wuxi", lang="zh", **kw):
    """The assessment with the maps stage's words (``flags``, ``check_label``, ``standard``)."""
    res = result(profile, **kw)
    prof = load_profile(profile)
    res.communities = word_flags(res.communities, prof, lang)
    res.actions = word_actions(res.actions, prof, lang)
    return res


def flags(res) -> dict[str, list[str]]:
    c = res.communities
    return {name: [k for k in c.loc[i, "failed_checks"].split(";") if k] for i, name in enumerate(c["name"])}


@pytest.mark.parametrize("profile, expected, street_flags", [
    # 丙: no day care/meal within 1,000 m everywhere; 甲: meals cover 1/4 < 1/2. National: no
    # 每百户 figure, so no space check (opt-in).
    ("national", {"甲社区": ["no_meal"], "乙社区": [], "丙社区": ["no_day_care", "no_meal"]},
     {"东街道": [], "西街道": []}),
    # Kunshan counts presence ("开展…服务占比"): 甲 has no meal facility inside, 丙 nothing.
    ("kunshan", {"甲社区": ["no_meal", "present_meal", "space"], "乙社区": [],
                 "丙社区": ["no_day_care", "no_meal", "present_day_care", "present_meal", "space", "no_station"]},
     {"东街道": ["large_centres"], "西街道": ["no_street_centre", "large_centres"]}),
    # Rugao: existing estates carry no number → only 甲 (new) is short.
    ("rugao", {"甲社区": ["no_meal", "space"], "乙社区": [], "丙社区": ["no_day_care", "no_meal", "no_station"]},
     {"东街道": [], "西街道": ["no_street_centre"]}),
    # Wuxi's 区域性助餐中心 rule: no facility carries that tier → not checked (city not_checked).
    ("wuxi", {"甲社区": ["no_meal", "space"], "乙社区": [], "丙社区": ["no_day_care", "no_meal", "space"]},
     {"东街道": [], "西街道": ["no_street_centre"]}),
    ("tongxiang", {"甲社区": ["no_meal"], "乙社区": [], "丙社区": ["no_day_care", "no_meal"]},
     {"东街道": [], "西街道": ["no_street_centre"]}),
    # SJZ: 甲's only station is 150 m² < 200 and no meal facility inside ("不出社区"); per capita
    # is per sub-district (分区分级): 东 0.1 × 7,500 = 750 ≤ 150 + 100 + 600; 西 262 > 0.
    ("shijiazhuang", {"甲社区": ["no_meal", "present_meal", "station_size"], "乙社区": [],
                      "丙社区": ["no_day_care", "no_meal", "present_meal", "no_station"]},
     {"东街道": [], "西街道": ["no_street_centre", "per_capita"]}),
])
def test_flags_per_profile(profile, expected, street_flags):
    res = result(profile)
    assert flags(res) == expected
    s = res.streets.set_index("street")
    got = {st: [c[5:] for c in s.columns if c.startswith("flag_") and s.loc[st, c]] for st in s.index}
    assert got == street_flags
    c = res.communities
    assert list(c["n_flags"]) == [len(v) for v in expected.values()]
    # One action row per failed check, community and street level.
    n_street = sum(len(v) for v in street_flags.values())
    assert len(res.actions) == sum(len(v) for v in expected.values()) + n_street
    assert list(res.actions["rank"]) == list(range(1, len(res.actions) + 1))


def test_flag_text_worst_check_and_space_numbers_wuxi():
    c = worded("wuxi").communities
    assert c.loc[0, "flags"] == "助餐点不在15分钟步行圈内；养老服务用房面积不足"
    assert c.loc[1, "flags"] == "" and c.loc[1, "worst_check"] == ""
    assert c.loc[2, "flags"] == "日间照料中心不在15分钟步行圈内；助餐点不在15分钟步行圈内；养老服务用房面积不足"
    # 甲: space affects all 400 elderly, meals 300 → space is the worst.
    assert c.loc[0, "worst_check"] == "space"
    # 丙: all three affect 300 elderly; the space shortfall (153.5 m²) is the largest.
    assert c.loc[2, "worst_check"] == "space"
    assert (c.loc[0, "space_required_m2"], c.loc[0, "space_target_m2"], c.loc[0, "space_shortfall_m2"]) == (200, 300, 50)
    assert set(community_flag_columns(load_profile("wuxi"))) == set(FLAGS) | {"flag_estate_coverage"}


def test_action_list_order_and_content_wuxi():
    a = worded("wuxi").actions
    short_c = 2620 / 2.56 * 0.15
    want = [
        # (community, street, check, elderly affected, shortfall)
        ("甲社区", "东街道", "space", 400, 50),
        ("丙社区", "西街道", "space", 300, short_c),
        ("丙社区", "西街道", "no_day_care", 300, 50),   # 0 % covered vs 50 % threshold
        ("丙社区", "西街道", "no_meal", 300, 50),
        ("甲社区", "东街道", "no_meal", 300, 25),       # 25 % vs 50 %; 400 × 3/4 uncovered
        ("", "西街道", "no_street_centre", 300, 1),
    ]
    got = list(zip(a["community"], a["street"], a["check"], a["elderly_affected"], a["shortfall"]))
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert g[:3] == w[:3]
        assert g[3] == pytest.approx(w[3]) and g[4] == pytest.approx(w[4])
    row = a.iloc[0]
    assert (row["value"], row["required"], row["unit"]) == (150, 200, "m²")
    assert "新建住宅小区按每百户20至30平方米" in row["source"] and "每百户 20–30 m²" in row["standard"]
    meal = a[a["check"] == "no_meal"].set_index("community")
    assert (meal.loc["甲社区", "value"], meal.loc["甲社区", "required"], meal.loc["甲社区", "unit"]) == (25, 50, "%")
    assert (meal.loc["甲社区", "nearest_facility"], meal.loc["甲社区", "nearest_facility_m"]) == ("乙助餐点", 1100)
    assert a.iloc[2]["nearest_facility"] == "甲日间照料中心" and a.iloc[2]["nearest_facility_m"] == 1300
    assert a.iloc[5]["check_label"] == "街道（镇）无街道综合养老服务中心"
    assert "街道(镇)综合性养老服务中心建成率" in a.iloc[5]["source"].replace("（", "(").replace("）", ")")
    assert list(a.columns) == ["rank", "community", "estate", "street", "check", "check_label", "verdict", "value", "required",
                               "shortfall", "unit", "elderly_affected", "standard", "source", "target_year", "nearest_facility",
                               "nearest_facility_m", "facilities_unknown_area"]
    assert set(a["verdict"]) == {"未达标"} and set(a["target_year"]) == {2025}
    # The analysis itself emits keys and numbers only: no words.
    raw = result("wuxi").actions
    assert "check_label" not in raw and "standard" not in raw and set(raw["unit"]) == {"m²", "%", "count"}


def test_action_list_english_labels():
    a = worded("wuxi", lang="en").actions
    assert a.iloc[0]["check_label"] == "elderly-service floor space short"


def test_street_scorecard_by_hand_wuxi():
    s = result("wuxi").streets.set_index("street")
    e = s.loc["东街道"]
    assert (e["communities"], e["communities_flagged"], e["elderly"]) == (2, 1, 1200)
    assert (e["communities_covered_day_care"], e["communities_covered_meal"]) == (2, 1)
    assert (e["coverage_rate_day_care"], e["coverage_rate_meal"], e["target_meal"]) == (1.0, 0.5, 1.0)
    assert bool(e["meets_target_day_care"]) and not bool(e["meets_target_meal"])
    assert e["elderly_covered_share_day_care"] == pytest.approx((0.75 * 400 + 800) / 1200)
    assert e["elderly_covered_share_meal"] == pytest.approx((0.25 * 400 + 0.75 * 800) / 1200)
    assert bool(e["has_street_centre"]) and e["n_street_centres"] == 1
    assert (e["space_required_m2"], e["space_provided_m2"], e["space_shortfall_m2"]) == (500, 850, 50)
    # score = mean(day care 1, meals 0.5, centre 1, space 1 − 50/500) × 100
    assert e["score"] == pytest.approx(85.0)
    w = s.loc["西街道"]
    assert w["score"] == 0.0 and not bool(w["has_street_centre"])
    assert (e["rank"], w["rank"]) == (1, 2)
    assert s.geometry.loc["东街道"].area == pytest.approx(2_000_000)


def test_streets_layer_supplies_geometry_and_empty_sub_districts():
    streets = gpd.GeoDataFrame({"street": ["东街道", "西街道", "南街道"]},
                               geometry=[box(0, 0, 2000, 1000), box(0, 1000, 1000, 2000), box(0, -1000, 1000, 0)], crs=CRS)
    facs = facilities()
    facs.loc[len(facs)] = [3, "南街道综合养老服务中心", "综合中心", 300.0, np.nan, True, True, True, False, Point(500, -500)]
    res = evaluate(communities(), population(), facs, load_profile("wuxi"), nearest=nearest(), streets=streets)
    s = res.streets.set_index("street")
    assert s.loc["南街道", "communities"] == 0 and bool(s.loc["南街道", "has_street_centre"])
    assert s.loc["西街道", "geometry"].equals(box(0, 1000, 1000, 2000))


def test_kunshan_large_centres_and_station_actions():
    res = result("kunshan")
    s = res.streets.set_index("street")
    assert (s.loc["东街道", "n_large_centres"], s.loc["西街道", "n_large_centres"]) == (1, 0)  # only the 600 m² centre ≥ 500
    a = res.actions
    lc = a[a["check"] == "large_centres"].set_index("street")
    assert (lc.loc["东街道", "value"], lc.loc["东街道", "required"], lc.loc["东街道", "shortfall"]) == (1, 2, 1)
    assert lc.loc["东街道", "elderly_affected"] == 1200
    ns = a[a["check"] == "no_station"].iloc[0]
    assert (ns["community"], ns["value"], ns["required"], ns["unit"]) == ("丙社区", 0, 1, "count")
    c = res.communities
    # Kunshan: 30 m² per 100 new households → 甲 needs 300, has 150.
    assert (c.loc[0, "space_required_m2"], c.loc[0, "space_shortfall_m2"]) == (300, 150)


def test_shijiazhuang_station_size_and_per_capita_values():
    a = result("shijiazhuang").actions
    ss = a[a["check"] == "station_size"].iloc[0]
    assert (ss["community"], ss["value"], ss["required"], ss["shortfall"]) == ("甲社区", 150, 200, 50)
    # 0.1 m² per person is 分区分级: per sub-district, the street centre and the stations together.
    pc = a[a["check"] == "per_capita"].set_index("street")
    assert list(pc.index) == ["西街道"] and pc.loc["西街道", "community"] == ""
    assert (pc.loc["西街道", "required"], pc.loc["西街道", "value"]) == (pytest.approx(262), 0)
    s = result("shijiazhuang").streets.set_index("street")
    # 东: 7,500 people × 0.1 = 750 m² ≤ 150 + 100 + 600 = 850 m² (not failed although 甲 alone has 150 < 250).
    assert (s.loc["东街道", "per_capita_required_m2"], s.loc["东街道", "care_floor_area_m2"]) == (750, 850)
    assert not s.loc["东街道", "flag_per_capita"]


def test_station_with_unknown_area_is_not_flagged_but_counted_unverified():
    facs = facilities()
    facs.loc[0, "floor_area_m2"] = np.nan
    res = evaluate(communities(), population(), facs, load_profile("shijiazhuang"), nearest=nearest())
    assert not res.communities.loc[0, "flag_station_size"]
    assert res.city["stations"]["area_unverified"] == 1


def test_rugao_pooled_rule():
    """3,500 new households in 甲: the largest unit (150 m² centre / 800 m² estate room) is < 1,200 m²."""
    estates = gpd.GeoDataFrame({
        "name": ["大苑", "小苑"], "community": ["甲社区", "乙社区"], "households": [3500.0, 2000.0],
        "built_year": [2023.0, 2023.0], "space_m2": [800.0, 700.0],
    }, geometry=[box(100, 100, 400, 400), box(1100, 100, 1400, 400)], crs=CRS)
    res = result("rugao", estates=estates)
    c = res.communities
    assert bool(c.loc[0, "flag_pooled_space"]) and not c.loc[1, "flag_pooled_space"]  # 乙: 2,000 < 3,000 households
    # 甲: 3,500 × 30/100 = 1,050 m² required, 800 provided (estate room).
    assert (c.loc[0, "space_required_m2"], c.loc[0, "space_provided_m2"], c.loc[0, "space_shortfall_m2"]) == (1050, 800, 250)
    # Units required = ceil(3,500 / 4,000) = 1; none of ≥ 1,200 m² (800 and 150 are smaller).
    p = res.actions[res.actions["check"] == "pooled_space"].iloc[0]
    assert (p["value"], p["required"], p["shortfall"], p["unit"]) == (0, 1, 1, "count")
    assert "不少于1200平方米" in p["source"]


def test_rugao_pooled_units_scale_with_households():
    """9,000 new households need ceil(9,000 / 4,000) = 3 units of ≥ 1,200 m²; two estates have one each."""
    estates = gpd.GeoDataFrame({
        "name": ["一苑", "二苑", "三苑"], "community": ["甲社区"] * 3, "households": [4000.0, 3000.0, 2000.0],
        "built_year": [2023.0] * 3, "space_m2": [1300.0, 1200.0, 600.0],
    }, geometry=[box(100, 100, 300, 300), box(400, 100, 600, 300), box(100, 400, 300, 600)], crs=CRS)
    c = result("rugao", estates=estates).communities
    assert (c.loc[0, "pooled_units_required"], c.loc[0, "pooled_units"]) == (3, 2)
    assert bool(c.loc[0, "flag_pooled_space"])
    # Old code: one unit of ≥ 1,200 m² anywhere passed the community whatever its size.
    estates.loc[2, "space_m2"] = 1250.0
    assert not result("rugao", estates=estates).communities.loc[0, "flag_pooled_space"]


def test_city_totals_wuxi():
    t = result("wuxi").city
    assert (t["profile"], t["title"], t["cutoff_m"], t["communities"], t["communities_flagged"]) == ("wuxi", "无锡市", 1000, 3, 2)
    dc = t["services"]["day_care"]
    # points only (丙 has none): elderly 300 + 800 of 1,200 covered; people 1,875 + 5,000 of 7,500.
    assert dc["elderly_covered_share"] == pytest.approx(1100 / 1200)
    assert dc["population_covered_share"] == pytest.approx(6875 / 7500)
    assert (dc["communities_covered"], dc["target_share"], dc["meets_target"]) == (2, 1.0, False)
    assert t["services"]["meal"]["elderly_covered_share"] == pytest.approx(700 / 1200)
    assert t["flagged_by_check"]["no_meal"] == 2 and t["flagged_by_check"]["no_street_centre"] == 1
    assert t["space"]["shortfall_m2"] == pytest.approx(50 + 2620 / 2.56 * 0.15)
    assert t["space"]["required_m2"] == pytest.approx(200 + 300 + 2620 / 2.56 * 0.15)
    sd = t["sub_districts"]
    assert {k: sd[k] for k in ("label", "count", "with_centre", "centre_required", "kinds")} == {
        "label": "街道（镇）", "count": 2, "with_centre": 1, "centre_required": True, "kinds": {"街道": 2}}
    assert sd["rules"]["no_street_centre"][0] | {"source": ""} == {
        "applies_to": None, "checked": True, "places": 2, "meeting": 1, "share": 0.5, "target_share": None,
        "meets_target": False, "source": "", "target_year": 2025}
    # The 区域性助餐中心 tier is in no facility of this data: not checked, said so.
    assert sd["rules"]["meal_centre"][0]["checked"] is False
    assert any(x["check"] == "meal_centre" for x in t["not_checked"])
    assert t["nearest_basis"] == "walk"


def test_city_totals_list_unchecked_standards():
    nc = result("national").city["not_checked"]
    assert {x["check"] for x in nc} == {"per_capita", "space.new", "space.existing"}
    assert "请选用省级（城市）配置" in next(x["source"] for x in nc if x["check"] == "space.new")
    nc = result("tongxiang").city["not_checked"]
    assert {x["check"] for x in nc} == {"space.new", "space.existing"}


def test_min_covered_share_is_a_profile_key(tmp_path):
    (tmp_path / "strict.yaml").write_text("extends: wuxi\ncircle: {min_covered_share: 0.8}\n", encoding="utf-8")
    res = evaluate(communities(), population(), facilities(), load_profile(tmp_path / "strict.yaml"), nearest=nearest())
    # 甲 day care 0.75 < 0.8 and 乙 meals 0.75 < 0.8 now fail too.
    assert list(res.communities["flag_no_day_care"]) == [True, False, True]
    assert list(res.communities["flag_no_meal"]) == [True, True, True]


def test_staged_functions_equal_evaluate():
    prof = load_profile("wuxi")
    ind = community_indicators(communities(), population(), facilities(), prof, nearest=nearest())
    com = check_communities(ind, prof)
    sc = street_scorecard(com, facilities(), prof)
    acts = action_list(com, sc, prof)
    tot = city_totals(com, sc, prof, population=population(), facilities=facilities())
    acts = action_list(com, sc, prof, city=tot)
    res = result("wuxi")
    pd.testing.assert_frame_equal(acts, res.actions)
    assert tot == res.city
    via_assess = assess(ind, facilities(), prof, population=population())
    pd.testing.assert_frame_equal(via_assess.streets, res.streets)
    assert via_assess.city == res.city


def test_city_shares_without_population_points_use_communities():
    prof = load_profile("wuxi")
    ind = community_indicators(communities(), population(), facilities(), prof, nearest=nearest())
    city = assess(ind, facilities(), prof).city
    assert city["shares_basis"] == "communities"
    # elderly-weighted community shares: (0.75·400 + 1·800 + 0·300) / 1500
    assert city["services"]["day_care"]["elderly_covered_share"] == pytest.approx(1100 / 1500)
    # people: (0.75·2500 + 1·5000 + 0·2620) / 10120
    assert city["services"]["day_care"]["population_covered_share"] == pytest.approx(6875 / 10120)


def test_column_labels_cover_every_output_column():
    prof = load_profile("kunshan")
    res = result("kunshan")
    for lang in ("zh", "en"):
        labels = column_labels(lang, prof)
        for df in (res.communities, res.streets, res.actions):
            missing = [c for c in df.columns if c != "geometry" and c not in labels]
            assert not missing, (lang, missing)
    zh = column_labels("zh", prof)
    assert zh["street"] == "所属区镇" and zh["elderly_covered_share_meal"] == "助餐点老年人覆盖率"
    assert zh["flag_no_day_care"] == "日间照料中心不在15分钟步行圈内"
    assert column_labels("en", prof)["space_shortfall_m2"] == "space shortfall (m²)"
    # The centre check names the profile's own centre, never a default 街道 centre.
    assert zh["flag_no_street_centre"] == "区镇无区域性养老服务中心"
    assert column_labels("zh", load_profile("tongxiang"))["flag_no_street_centre"] == "镇（街道）无镇（街道）居家养老服务中心"


def test_checks_catalogue_per_profile():
    keys = {p: [c.key for c in checks(load_profile(p))] for p in ("national", "kunshan", "rugao", "shijiazhuang")}
    assert keys["national"] == ["no_day_care", "no_meal"]  # the space check is opt-in nationally
    assert keys["kunshan"] == ["no_day_care", "no_meal", "present_day_care", "present_meal", "space", "no_station",
                               "no_street_centre", "large_centres"]
    assert keys["rugao"] == ["no_day_care", "no_meal", "space", "pooled_space", "no_station", "no_street_centre", "elder_homes"]
    assert keys["shijiazhuang"] == ["no_day_care", "no_meal", "present_meal", "rural_mutual_aid", "estate_coverage", "no_station",
                                    "station_size", "per_capita", "no_street_centre"]
    levels = {c.key: c.level for c in checks(load_profile("shijiazhuang"))}
    assert levels["per_capita"] == "street" and levels["station_size"] == "community"
    assert {c.year for c in checks(load_profile("shijiazhuang"))} == {2025}


def test_street_without_centre_points_to_the_nearest_one():
    a = result("wuxi").actions
    row = a[a["check"] == "no_street_centre"].iloc[0]
    # 西街道 = box(0, 1000, 1000, 2000); the centre at (1500, 800): 500 m east, 200 m south of the corner.
    assert row["nearest_facility"] == "东街道综合养老服务中心"
    assert row["nearest_facility_m"] == pytest.approx(np.hypot(500, 200))


def test_no_facilities_at_all():
    res = evaluate(communities(), population(), facilities().iloc[:0], load_profile("shijiazhuang"))
    c = res.communities
    # 丙 has no points and no facility to walk to: unreachable, flagged.
    assert bool(c.loc[2, "flag_no_day_care"]) and bool(c.loc[2, "flag_no_meal"])
    assert c["flag_no_station"].all() and res.streets["flag_per_capita"].all()
    assert res.streets["flag_no_street_centre"].all() and res.streets["nearest_street_centre"].isna().all()


def test_nothing_fails_gives_an_empty_action_list():
    pop = population()
    pop["dist_day_care_m"] = 50.0
    pop["dist_meal_m"] = 50.0
    com = communities().iloc[:2].assign(households=[100.0, 100.0])
    res = evaluate(com, pop, facilities(), load_profile("wuxi"), nearest=nearest())
    assert res.actions.empty and "rank" in res.actions.columns and "nearest_facility_m" in res.actions.columns
    assert (res.communities["n_flags"] == 0).all() and (res.communities["worst_check"] == "").all()
    assert (res.communities["failed_checks"] == "").all()
    assert res.streets.loc[0, "score"] == 100.0 and res.city["communities_flagged"] == 0


def test_sub_district_without_communities_is_not_scored():
    streets = gpd.GeoDataFrame({"street": ["东街道", "西街道", "北街道"]},
                               geometry=[box(0, 0, 2000, 1000), box(0, 1000, 1000, 2000), box(0, 5000, 100, 5100)], crs=CRS)
    s = result("wuxi", streets=streets).streets.set_index("street")
    assert np.isnan(s.loc["北街道", "score"]) and pd.isna(s.loc["北街道", "rank"])
    assert list(s.index) == ["东街道", "西街道", "北街道"]  # ranked first, unscored last


# --- estate by estate (逐小区), English output, walked nearest facilities -----------------

def test_kunshan_flags_a_community_when_any_existing_estate_is_short():
    """Kunshan: existing estates one by one. 甲 has 安居苑 (500 hh, 150 m²: 50 over 20/100)
    and 和园 (1,000 hh, 120 m²: 80 under) — pooled they would pass (300 ≤ 270 + 150 − …)."""
    estates = gpd.GeoDataFrame({
        "name": ["安居苑", "和园", "乙苑"], "community": ["甲社区", "甲社区", "乙社区"],
        "households": [500.0, 1000.0, 1000.0], "built_year": [1995.0, 2000.0, 2005.0], "space_m2": [230.0, 120.0, 250.0],
    }, geometry=[box(50, 50, 300, 300), box(400, 400, 700, 700), box(1100, 100, 1900, 900)], crs=CRS)
    # pooled within the class (same 20 m² rate): 甲 needs 300, has 350 → passes.
    nat = result(POOLED, estates=estates).communities
    assert nat.loc[0, "space_shortfall_m2"] == 0 and not nat.loc[0, "flag_space"]
    # Kunshan: 安居苑 needs 100 (has 230), 和园 needs 200 (has 120): 80 short, the surplus does not count.
    res = result("kunshan", estates=estates)
    c = res.communities
    assert bool(c.loc[0, "flag_space"]) and c.loc[0, "space_shortfall_m2"] == 80 and c.loc[0, "space_estates_short"] == 1
    # 乙 lists only 乙苑 (1,000 of its 2,000 households): 乙苑 stands alone (200 ≤ 250), the other
    # 1,000 existing households need 200 m² with no room counted — a partial layer keeps them.
    assert bool(c.loc[1, "flag_space"]) and c.loc[1, "space_shortfall_m2"] == 200
    # The 问题清单 names the failing 小区: one row for 和园, with its community and street, its own
    # numbers (has 120, needs 200, short 80); no community row is left (nothing pooled is short).
    rows = word_actions(res.actions, load_profile("kunshan"))
    rows = rows[(rows["check"] == "space") & (rows["community"] == "甲社区")]
    assert len(rows) == 1
    row = rows.iloc[0]
    assert (row["estate"], row["street"], row["value"], row["required"], row["shortfall"]) == ("和园", "东街道", 120, 200, 80)
    assert "已建每百户 20 m²（≥ 20 达标，逐小区核算）" in row["standard"] and "逐年逐小区予以落实" in row["source"]
    assert res.city["space"]["shortfall_m2"] == pytest.approx(80 + 200 + 2620 / 2.62 * 0.2)  # + 丙 (no estates): 200


def test_space_standard_text_per_profile():
    text = {p: check_words(load_profile(p))["space"]["standard"] for p in ("kunshan", "wuxi", "rugao")}
    assert text["kunshan"][0] == "新建（2022年起）每百户 30 m²（≥ 30 达标，逐小区核算）；已建每百户 20 m²（≥ 20 达标，逐小区核算）"
    assert text["kunshan"][1] == ("new (built 2022 on): 30 m² per 100 households (≥ 30 complies, estate by estate); "
                                  "existing: 20 m² per 100 households (≥ 20 complies, estate by estate)")
    assert text["wuxi"][0] == "新建（2021年起）每百户 20–30 m²（≥ 20 达标）；已建每百户 15–20 m²（≥ 15 达标）"
    assert text["rugao"][1].endswith("existing: not stated (in jiedao (urban sub-district), main functional area)")


CJK = re.compile(r"[\u3000-\u303f\u4e00-\u9fff\uff00-\uffef]")


@pytest.mark.parametrize("profile", ["national", "kunshan", "rugao", "wuxi", "tongxiang", "shijiazhuang"])
def test_assess_in_english_has_no_chinese_labels(profile):
    prof = load_profile(profile)
    ind = community_indicators(communities(), population(), facilities(), prof, nearest=nearest())
    res = assess(ind, facilities(), prof, population=population())
    en, zh = word_actions(res.actions, prof, "en"), word_actions(res.actions, prof, "zh")
    assert len(en) == len(zh) > 0
    for col in ("check_label", "standard", "unit", "verdict"):
        bad = [v for v in en[col] if CJK.search(str(v))]
        assert not bad, (col, bad)
    en_c, zh_c = word_flags(res.communities, prof, "en"), word_flags(res.communities, prof, "zh")
    assert not any(CJK.search(v) for v in en_c["flags"])
    assert (en_c["flags"] != "").sum() == (zh_c["flags"] != "").sum()
    # Same verdicts, same numbers; only the words differ. The source stays the plan's Chinese.
    num = ["value", "required", "shortfall", "elderly_affected"]
    pd.testing.assert_frame_equal(en[num], zh[num])
    assert list(en["source"]) == list(zh["source"])
    labels = {k: w["label"][1] for k, w in check_words(prof).items()}
    first = en_c.loc[2, "flags"].split("; ")
    assert first == [labels[c.key] for c in checks(prof) if c.key in set(en.loc[en["community"] == "丙社区", "check"])]


def test_english_units_and_standard_for_station_checks():
    a = worded("kunshan", lang="en").actions
    row = a[a["check"] == "no_station"].iloc[0]
    assert (row["unit"], row["standard"], row["check_label"]) == ("sites", "≥ 1 per community", "no day-care centre in the community")
    lc = a[a["check"] == "large_centres"].iloc[0]
    assert lc["unit"] == "centres" and lc["standard"] == "≥ 2 of ≥ 500 m² per sub-district"


def walk_table():
    """The pipeline's nearest table: per community and service, the shortest walk any resident has."""
    t = nearest()
    centres = pd.DataFrame({
        "name": ["甲社区", "乙社区", "丙社区"], "service": "street_centre",
        "facility": ["东街道综合养老服务中心", "东街道综合养老服务中心", "东街道综合养老服务中心"], "distance_m": [900.0, 120.0, 1650.0],
    })
    return pd.concat([t, centres], ignore_index=True)


def test_action_nearest_facility_comes_from_the_walk_table():
    res = result("shijiazhuang", nearest=walk_table())
    c, a = res.communities, res.actions
    assert list(c["nearest_centre"]) == ["东街道综合养老服务中心"] * 3
    assert list(c["nearest_centre_m"]) == [900, 120, 1650]
    # Circle checks: the walked nearest facility of that service; other community checks:
    # the first circle service's (day care).
    meal = a[(a["check"] == "no_meal") & (a["community"] == "丙社区")].iloc[0]
    assert (meal["nearest_facility"], meal["nearest_facility_m"]) == ("东街道综合养老服务中心", 1400)
    st_ = a[(a["check"] == "no_station") & (a["community"] == "丙社区")].iloc[0]
    assert (st_["nearest_facility"], st_["nearest_facility_m"]) == ("甲日间照料中心", 1300)
    # 西街道 has no centre: its only community 丙 walks 1,650 m (the straight line from the
    # sub-district's boundary would be √(500² + 200²) ≈ 539 m).
    sc = a[a["check"] == "no_street_centre"].iloc[0]
    assert (sc["street"], sc["nearest_facility"], sc["nearest_facility_m"]) == ("西街道", "东街道综合养老服务中心", 1650)
    s = res.streets.set_index("street")
    # 东街道: the best of its communities (乙, 120 m).
    assert (s.loc["东街道", "nearest_street_centre_m"], s.loc["东街道", "nearest_street_centre_basis"]) == (120, "walk")


def test_walk_table_without_a_centre_row_falls_back_to_the_straight_line():
    t = walk_table()
    t = t[~((t["service"] == "street_centre") & (t["name"] == "丙社区"))]
    s = result("wuxi", nearest=t).streets.set_index("street")
    assert s.loc["西街道", "nearest_street_centre_basis"] == "straight_line"
    assert s.loc["西街道", "nearest_street_centre_m"] == pytest.approx(np.hypot(500, 200))


def test_walk_table_matches_on_street_when_names_repeat():
    com = communities(name=["甲社区", "甲社区", "丙社区"])
    t = nearest().assign(name=["甲社区", "甲社区", "甲社区", "甲社区", "丙社区", "丙社区"],
                         street=["东街道", "东街道", "西街道", "西街道", "西街道", "西街道"])
    t.loc[2:3, "street"] = "东街道"
    t.loc[2:3, "distance_m"] = [50, 80]
    c = community_indicators(com, population(), facilities(), load_profile("wuxi"), nearest=t)
    # The second 甲社区 row (东街道 too, by the fixture) takes the shortest walk of the rows keyed 甲社区/东街道.
    assert list(c["nearest_day_care_m"]) == [50, 50, 1300]


def test_column_labels_cover_the_estate_table():
    from test_indicators import space_estates

    from carecircle.coverage.space import estate_table

    prof = load_profile("kunshan")
    t = estate_table(space_estates(), communities(), prof)
    for lang in ("zh", "en"):
        labels = column_labels(lang, prof)
        assert not [c for c in t.columns if c != "geometry" and c not in labels]
    zh = column_labels("zh", prof)
    assert (zh["estate"], zh["estate_class"], zh["per_estate"]) == ("小区名称", "新建/已建", "逐小区核算")
