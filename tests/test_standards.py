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
from carecircle.coverage.standards import (action_list, assess, check_communities, checks, city_totals, column_labels,
                                           community_flag_columns, evaluate, street_scorecard)

FLAGS = ["flag_no_day_care", "flag_no_meal", "flag_space", "flag_pooled_space", "flag_no_station", "flag_station_size", "flag_per_capita"]


def result(profile="wuxi", **kw):
    kw.setdefault("nearest", nearest())
    return evaluate(communities(), population(), facilities(), load_profile(profile), **kw)


def flags(res) -> dict[str, list[str]]:
    c = res.communities
    return {name: [f[5:] for f in FLAGS if c.loc[i, f]] for i, name in enumerate(c["name"])}


@pytest.mark.parametrize("profile, expected, street_flags", [
    # 丙: no day care/meal within 1,000 m everywhere; 甲: meals cover 1/4 < 1/2.
    ("national", {"甲社区": ["no_meal", "space"], "乙社区": [], "丙社区": ["no_day_care", "no_meal", "space"]},
     {"东街道": [], "西街道": []}),
    ("kunshan", {"甲社区": ["no_meal", "space"], "乙社区": [], "丙社区": ["no_day_care", "no_meal", "space", "no_station"]},
     {"东街道": ["large_centres"], "西街道": ["no_street_centre", "large_centres"]}),
    # Rugao: existing estates carry no number → only 甲 (new) is short.
    ("rugao", {"甲社区": ["no_meal", "space"], "乙社区": [], "丙社区": ["no_day_care", "no_meal", "no_station"]},
     {"东街道": [], "西街道": ["no_street_centre"]}),
    ("wuxi", {"甲社区": ["no_meal", "space"], "乙社区": [], "丙社区": ["no_day_care", "no_meal", "space"]},
     {"东街道": [], "西街道": ["no_street_centre"]}),
    ("tongxiang", {"甲社区": ["no_meal"], "乙社区": [], "丙社区": ["no_day_care", "no_meal"]},
     {"东街道": [], "西街道": ["no_street_centre"]}),
    # SJZ: 甲's only station is 150 m² < 200; per capita 0.1 m² × 2,500 = 250 > 150 provided;
    # 乙 500 ≤ 700; 丙 262 > 0.
    ("shijiazhuang", {"甲社区": ["no_meal", "station_size", "per_capita"], "乙社区": [],
                      "丙社区": ["no_day_care", "no_meal", "no_station", "per_capita"]},
     {"东街道": [], "西街道": ["no_street_centre"]}),
])
def test_flags_per_profile(profile, expected, street_flags):
    res = result(profile)
    assert flags(res) == expected
    s = res.streets.set_index("street")
    got = {st: [k for k in ("no_street_centre", "large_centres") if s.loc[st, f"flag_{k}"]] for st in s.index}
    assert got == street_flags
    c = res.communities
    assert list(c["n_flags"]) == [len(v) for v in expected.values()]
    # One action row per failed check, community and street level.
    n_street = sum(len(v) for v in street_flags.values())
    assert len(res.actions) == sum(len(v) for v in expected.values()) + n_street
    assert list(res.actions["rank"]) == list(range(1, len(res.actions) + 1))


def test_flag_text_worst_check_and_space_numbers_wuxi():
    c = result("wuxi").communities
    assert c.loc[0, "flags"] == "助餐点不在15分钟步行圈内；养老服务用房面积不足"
    assert c.loc[1, "flags"] == "" and c.loc[1, "worst_check"] == ""
    assert c.loc[2, "flags"] == "日间照料中心不在15分钟步行圈内；助餐点不在15分钟步行圈内；养老服务用房面积不足"
    # 甲: space affects all 400 elderly, meals 300 → space is the worst.
    assert c.loc[0, "worst_check"] == "space"
    # 丙: all three affect 300 elderly; the space shortfall (153.5 m²) is the largest.
    assert c.loc[2, "worst_check"] == "space"
    assert (c.loc[0, "space_required_m2"], c.loc[0, "space_target_m2"], c.loc[0, "space_shortfall_m2"]) == (200, 300, 50)
    assert set(community_flag_columns(load_profile("wuxi"))) == set(FLAGS)


def test_action_list_order_and_content_wuxi():
    a = result("wuxi").actions
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
    assert list(a.columns) == ["rank", "community", "street", "check", "check_label", "value", "required", "shortfall", "unit",
                               "elderly_affected", "standard", "source", "nearest_facility", "nearest_facility_m"]


def test_action_list_english_labels():
    a = result("wuxi", lang="en").actions
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
    assert (ns["community"], ns["value"], ns["required"], ns["unit"]) == ("丙社区", 0, 1, "处")
    c = res.communities
    # Kunshan: 30 m² per 100 new households → 甲 needs 300, has 150.
    assert (c.loc[0, "space_required_m2"], c.loc[0, "space_shortfall_m2"]) == (300, 150)


def test_shijiazhuang_station_size_and_per_capita_values():
    a = result("shijiazhuang").actions
    ss = a[a["check"] == "station_size"].iloc[0]
    assert (ss["community"], ss["value"], ss["required"], ss["shortfall"]) == ("甲社区", 150, 200, 50)
    pc = a[a["check"] == "per_capita"].set_index("community")
    assert (pc.loc["甲社区", "required"], pc.loc["甲社区", "value"], pc.loc["甲社区", "shortfall"]) == (250, 150, 100)
    assert pc.loc["丙社区", "required"] == pytest.approx(262)


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
    p = res.actions[res.actions["check"] == "pooled_space"].iloc[0]
    assert (p["value"], p["required"], p["shortfall"]) == (800, 1200, 400)
    assert "不少于1200平方米" in p["source"]


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
    assert t["sub_districts"] == {"label": "街道（镇）", "count": 2, "with_centre": 1, "centre_required": True}
    assert t["nearest_basis"] == "walk"


def test_city_totals_list_unchecked_standards():
    nc = result("national").city["not_checked"]
    assert any("人均用地" in x["standard"] for x in nc)
    nc = result("tongxiang").city["not_checked"]
    assert {x["standard"] for x in nc} == {"space.new: 每百户 m²", "space.existing: 每百户 m²"}


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
    tot = city_totals(com, sc, prof, population=population())
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
    assert column_labels("en")["space_shortfall_m2"] == "space shortfall (m²)"


def test_checks_catalogue_per_profile():
    keys = {p: [c.key for c in checks(load_profile(p))] for p in ("national", "kunshan", "rugao", "shijiazhuang")}
    assert keys["national"] == ["no_day_care", "no_meal", "space"]
    assert keys["kunshan"] == ["no_day_care", "no_meal", "space", "no_station", "no_street_centre", "large_centres"]
    assert keys["rugao"] == ["no_day_care", "no_meal", "space", "pooled_space", "no_station", "no_street_centre"]
    assert keys["shijiazhuang"] == ["no_day_care", "no_meal", "no_station", "station_size", "per_capita", "no_street_centre"]


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
    assert c["flag_no_station"].all() and c["flag_per_capita"].all()
    assert res.streets["flag_no_street_centre"].all() and res.streets["nearest_street_centre"].isna().all()


def test_nothing_fails_gives_an_empty_action_list():
    pop = population()
    pop["dist_day_care_m"] = 50.0
    pop["dist_meal_m"] = 50.0
    com = communities().iloc[:2].assign(households=[100.0, 100.0])
    res = evaluate(com, pop, facilities(), load_profile("wuxi"), nearest=nearest())
    assert res.actions.empty and "rank" in res.actions.columns and "nearest_facility_m" in res.actions.columns
    assert (res.communities["n_flags"] == 0).all() and (res.communities["worst_check"] == "").all()
    assert (res.communities["flags"] == "").all()
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
    # national (pooled, same 20 m² rate): 甲 needs 300, has 350 → passes.
    nat = result("national", estates=estates).communities
    assert nat.loc[0, "space_shortfall_m2"] == 0 and not nat.loc[0, "flag_space"]
    # Kunshan: 安居苑 needs 100 (has 230), 和园 needs 200 (has 120): 80 short, the surplus does not count.
    res = result("kunshan", estates=estates)
    c = res.communities
    assert bool(c.loc[0, "flag_space"]) and c.loc[0, "space_shortfall_m2"] == 80 and c.loc[0, "space_estates_short"] == 1
    assert not c.loc[1, "flag_space"]
    row = res.actions[(res.actions["check"] == "space") & (res.actions["community"] == "甲社区")].iloc[0]
    # value / required are the community totals; the shortfall is the estates' own (80, not 300 − 350).
    assert (row["value"], row["required"], row["shortfall"]) == (350, 300, 80)
    assert "已建每百户 20 m²（≥ 20 达标，逐小区核算）" in row["standard"] and "逐年逐小区予以落实" in row["source"]
    assert res.city["space"]["shortfall_m2"] == pytest.approx(80 + 2620 / 2.62 * 0.2)  # + 丙 (no estates): 200


def test_space_standard_text_per_profile():
    text = {p: next(c for c in checks(load_profile(p)) if c.key == "space") for p in ("kunshan", "wuxi", "rugao")}
    assert text["kunshan"].standard == "新建（2014年起）每百户 30 m²（≥ 30 达标）；已建每百户 20 m²（≥ 20 达标，逐小区核算）"
    assert text["kunshan"].standard_text("en") == ("new (built 2014 on): 30 m² per 100 households (≥ 30 complies); "
                                                   "existing: 20 m² per 100 households (≥ 20 complies, estate by estate)")
    assert text["wuxi"].standard == "新建（2014年起）每百户 20–30 m²（≥ 20 达标）；已建每百户 15–20 m²（≥ 15 达标）"
    assert text["rugao"].standard_text("en").endswith("existing: not stated")


CJK = re.compile(r"[\u3000-\u303f\u4e00-\u9fff\uff00-\uffef]")


@pytest.mark.parametrize("profile", ["national", "kunshan", "rugao", "wuxi", "tongxiang", "shijiazhuang"])
def test_assess_in_english_has_no_chinese_labels(profile):
    prof = load_profile(profile)
    ind = community_indicators(communities(), population(), facilities(), prof, nearest=nearest())
    en = assess(ind, facilities(), prof, population=population(), lang="en")
    zh = assess(ind, facilities(), prof, population=population())
    assert len(en.actions) == len(zh.actions) > 0
    for col in ("check_label", "standard", "unit"):
        bad = [v for v in en.actions[col] if CJK.search(str(v))]
        assert not bad, (col, bad)
    assert not any(CJK.search(v) for v in en.communities["flags"])
    assert (en.communities["flags"] != "").sum() == (zh.communities["flags"] != "").sum()
    # Same verdicts, same numbers; only the words differ. The source stays the plan's Chinese.
    num = ["value", "required", "shortfall", "elderly_affected"]
    pd.testing.assert_frame_equal(en.actions[num], zh.actions[num])
    assert list(en.actions["source"]) == list(zh.actions["source"])
    labels = {c.key: c.label_en for c in checks(prof)}
    first = en.communities.loc[2, "flags"].split("; ")
    assert first == [labels[k] for k in labels if k in set(en.actions.loc[en.actions["community"] == "丙社区", "check"])]


def test_english_units_and_standard_for_station_checks():
    a = result("kunshan", lang="en").actions
    row = a[a["check"] == "no_station"].iloc[0]
    assert (row["unit"], row["standard"], row["check_label"]) == ("sites", "≥ 1 per community", "no care station in the community")
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
