"""Verdicts true to each city's plan (issue 11): one hand-worked case per rule.

Every case is small enough to check by eye and fails on the code before the issue (noted per
test). The world: square communities 1 km wide in a row, named as the plans name places
(…社区 urban, …村 rural; …街道, …镇, …乡), one population point each at its centre with the
walk distances given, facilities placed inside the community they serve. Facility service
flags come from the profile's keywords through the loader's own matcher.
"""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from shapely.geometry import Point, box

from carecircle.coverage import standards
from carecircle.coverage.profile import load_profile
from carecircle.layers.areas import community_kind, street_kind
from carecircle.layers.facilities import keyword_flags, unmatched_names
from carecircle.maps.labels import column_labels, word_actions

CRS = "EPSG:32650"


def world(places, facilities=(), *, profile: str, dist=None, estates=None, streets=None, **kw):
    """Assess ``places`` — (community, street, households, built_year) — against ``profile``.

    Community ``i`` is the box (1000 i, 0)–(1000 i + 1000, 1000) with one population point of
    100 people, 20 elderly at its centre; ``dist`` gives the point's walk to day care and meals
    (default 100 m: inside both circles). ``facilities`` are (name, community index, floor
    area, offset) — placed at the community's centre + offset metres.
    """
    prof = load_profile(profile)
    n = len(places)
    com = gpd.GeoDataFrame({
        "name": [p[0] for p in places], "street": [p[1] for p in places],
        "households": [float(p[2]) for p in places], "population": np.nan, "elderly": np.nan,
        "built_year": [float(p[3]) for p in places],
    }, geometry=[box(1000 * i, 0, 1000 * i + 1000, 1000) for i in range(n)], crs=CRS)
    d = dist if dist is not None else [100.0] * n
    pop = gpd.GeoDataFrame({
        "people": [100.0] * n, "elderly": [20.0] * n,
        **{f"dist_{s}_m": d for s in prof.circle_services},
    }, geometry=[Point(1000 * i + 500, 500) for i in range(n)], crs=CRS)
    names = pd.Series([f[0] for f in facilities], dtype="string")
    flags = keyword_flags(names, pd.Series([""] * len(names), dtype="string"),
                          {k: s.keywords for k, s in prof.services.items()}, {k: s.exclude for k, s in prof.services.items()})
    fac = gpd.GeoDataFrame({
        "fid": np.arange(len(names)), "name": names, "type": "", "floor_area_m2": [float(f[2]) for f in facilities],
        "beds": np.nan, **flags,
    }, geometry=[Point(1000 * f[1] + 500 + (f[3] if len(f) > 3 else 0), 500) for f in facilities], crs=CRS)
    return standards.evaluate(com, pop, fac, prof, estates=estates, streets=streets, **kw)


# --- facility types ------------------------------------------------------------------------

def test_tongxiang_centre_is_recognised_and_tiers_kept_apart():
    """Old code: Tongxiang's street_centre keywords had no "居家养老服务中心": every 镇 flagged."""
    tx = load_profile("tongxiang")
    names = pd.Series(["梧桐街道居家养老服务中心", "濮院镇居家养老服务中心", "梧桐街道庆丰社区居家养老服务中心",
                       "城东社区综合养老服务中心", "桐乡市康乐居家养老服务有限公司", "乌镇居家养老服务社",
                       "梧桐街道中央厨房", "某某长者之家", "凤鸣邻里互助点", "嵌入式小型养老机构"], dtype="string")
    f = keyword_flags(names, pd.Series([""] * len(names)), {k: s.keywords for k, s in tx.services.items()},
                      {k: s.exclude for k, s in tx.services.items()})
    assert f["street_centre"].tolist() == [True, True, False, False, False, False, False, False, False, False]
    # The community tier is day care; home-visit companies and the kitchen are neither.
    assert f["day_care"].tolist()[2:7] == [True, True, False, False, False]
    assert not f["meal"][6]
    assert f["elder_home"].tolist()[7] and f["mutual_aid"].tolist()[8] and f["embedded"].tolist()[9]
    # Unmatched facilities are listed by name, never silently ignored.
    fac = pd.DataFrame({"name": names, **f})
    assert unmatched_names(fac, list(tx.services)) == ["桐乡市康乐居家养老服务有限公司", "乌镇居家养老服务社", "梧桐街道中央厨房"]
    res = world([("庆丰社区", "梧桐街道", 1000, 2000), ("南日村", "濮院镇", 500, 2000)],
                [("梧桐街道居家养老服务中心", 0, 800), ("濮院镇居家养老服务中心", 1, 600)], profile="tongxiang")
    assert not res.streets["flag_no_street_centre"].any()
    assert column_labels("zh", tx)["flag_no_street_centre"] == "镇（街道）无镇（街道）居家养老服务中心"


def test_one_matcher_case_insensitive_for_user_tiers(tmp_path):
    """Old code: service_mask matched a tier without a column case-sensitively; the loader did not."""
    (tmp_path / "p.yaml").write_text(
        "extends: wuxi\nservices:\n  dementia: {label_zh: 认知障碍照护, label_en: dementia care, keywords: [Dementia]}\n", encoding="utf-8")
    prof = load_profile(tmp_path / "p.yaml")
    from carecircle.coverage.indicators import service_mask

    fac = pd.DataFrame({"name": ["DEMENTIA unit", "dementia ward", "日间照料中心"], "type": ["", "", ""]})
    assert service_mask(fac, prof, ["dementia"]).tolist() == [True, True, False]


def test_kinds_from_fields_and_name_endings():
    assert community_kind(pd.Series(["新华社区", "张家村", "阳光花园"])).tolist() == ["urban", "rural", pd.NA]
    assert community_kind(pd.Series(["阳光花园", "张家村"]), pd.Series(["居委会", None])).tolist() == ["urban", "rural"]
    assert street_kind(pd.Series(["如城街道", "搬经镇", "白沙乡", "开发区"])).tolist() == ["街道", "镇", "乡", pd.NA]
    assert street_kind(pd.Series(["开发区"]), pd.Series(["主功能区"])).tolist() == ["主功能区"]


# --- sub-district scopes ------------------------------------------------------------------------

def test_rugao_centre_asked_of_city_streets_and_main_areas_only():
    """Old code: every 镇 without a comprehensive centre was flagged (the plan: 城市街道 + 主功能区)."""
    res = world([("东城社区", "如城街道", 1000, 2000), ("搬经村", "搬经镇", 800, 2000), ("长江社区", "长江镇", 900, 2000)],
                profile="rugao")
    s = res.streets.set_index("street")
    assert s["street_kind"].to_dict() == {"如城街道": "街道", "搬经镇": "镇", "长江镇": "主功能区"}
    assert s["flag_no_street_centre"].to_dict() == {"如城街道": True, "搬经镇": False, "长江镇": True}
    assert s.loc["搬经镇", "scope_no_street_centre"] == ""  # not asked
    acts = res.actions[res.actions["check"] == "no_street_centre"]
    assert sorted(acts["street"]) == ["如城街道", "长江镇"] and set(acts["verdict"]) == {"fail"}


def test_rugao_elder_homes_two_per_town():
    """Old code: no 长者之家 check. "每镇不少于2家": 搬经镇 has 1 → short by 1."""
    res = world([("搬经村", "搬经镇", 800, 2000), ("石庄村", "石庄镇", 800, 2000)],
                [("搬经长者之家", 0, 100), ("石庄一号长者之家", 1, 100), ("石庄二号长者之家", 1, 120, 100)], profile="rugao")
    s = res.streets.set_index("street")
    assert s["n_elder_homes"].to_dict() == {"搬经镇": 1, "石庄镇": 2}
    assert s["flag_elder_homes"].to_dict() == {"搬经镇": True, "石庄镇": False}
    row = res.actions[res.actions["check"] == "elder_homes"].iloc[0]
    assert (row["street"], row["value"], row["required"], row["shortfall"]) == ("搬经镇", 1, 2, 1)


def test_rugao_space_rules_in_main_areas_only():
    """Old code: the 30 m² rule flagged rural 镇 too (the plan: "城市街道、长江镇等主功能区")."""
    res = world([("东城社区", "如城街道", 1000, 2023), ("搬经村", "搬经镇", 1000, 2023)], profile="rugao")
    c = res.communities.set_index("name")
    # Both need 300 m² and have none; only the 街道's community is asked.
    assert (c.loc["东城社区", "space_shortfall_m2"], c.loc["搬经村", "space_shortfall_m2"]) == (300, 300)
    assert bool(c.loc["东城社区", "flag_space"]) and not c.loc["搬经村", "flag_space"]


def test_shijiazhuang_towns_share_is_a_city_check():
    """5 乡镇 with 3 centres = 60 %: the city meets the plan; the 2 without are reported, not
    failed. Old code: each 乡镇 without a centre was a failure. A 街道 without one fails."""
    places = [(f"{n}村", f"{n}镇", 300, 2000) for n in ("甲", "乙", "丙", "丁", "戊")] + [("新华社区", "新华街道", 1000, 2000)]
    centres = [("甲镇区域养老服务中心", 0, 500), ("乙镇区域养老服务中心", 1, 500), ("丙镇区域养老服务中心", 2, 500)]
    res = world(places, centres, profile="shijiazhuang")
    s = res.streets.set_index("street")
    assert not s.loc[[f"{n}镇" for n in "甲乙丙丁戊"], "flag_no_street_centre"].any()
    assert bool(s.loc["新华街道", "flag_no_street_centre"])
    assert s.loc["甲镇", "kind_share_no_street_centre"] == pytest.approx(0.6)  # in streets.csv too
    scopes = res.city["sub_districts"]["rules"]["no_street_centre"]
    town = next(sc for sc in scopes if sc["target_share"] == 0.6)
    assert (town["places"], town["meeting"], town["share"], town["meets_target"], town["target_year"]) == (5, 3, 0.6, True, 2025)
    a = res.actions[res.actions["check"] == "no_street_centre"]
    assert sorted(a.loc[a["verdict"] == "reported", "street"]) == ["戊镇", "丁镇"][::-1]
    assert a.loc[a["verdict"] == "fail", "street"].tolist() == ["新华街道"]
    # 2 of 5: the city misses 60 % — one city row (no street), 40 % against 60 %.
    res = world(places, centres[:2], profile="shijiazhuang")
    city = res.actions[(res.actions["street"] == "") & (res.actions["check"] == "no_street_centre")]
    assert len(city) == 1 and (city.iloc[0]["value"], city.iloc[0]["required"], city.iloc[0]["verdict"]) == (40, 60, "fail")
    assert word_actions(city, load_profile("shijiazhuang")).iloc[0]["check_label"].endswith("（全市）")


def test_wuxi_meal_centre_is_its_own_check():
    """Old code: no 区域性助餐中心 check; listing it in centre_services would have let a meal
    centre pass the comprehensive-centre check."""
    res = world([("春潮社区", "旺庄街道", 1000, 2000), ("新华社区", "梅村街道", 1000, 2000)],
                [("旺庄街道区域性助餐中心", 0, 300), ("梅村街道综合养老服务中心", 1, 800)], profile="wuxi")
    s = res.streets.set_index("street")
    assert s["flag_meal_centre"].to_dict() == {"旺庄街道": False, "梅村街道": True}
    assert s["flag_no_street_centre"].to_dict() == {"旺庄街道": True, "梅村街道": False}


# --- community scopes and presence --------------------------------------------------------------

def test_shijiazhuang_meal_only_point_is_not_a_station():
    """Old code: station.services included meals, so a 300 m² meal point passed "一社区一站" and
    the 200 m² station check."""
    res = world([("新华社区", "新华街道", 1000, 2000)], [("新华社区老年助餐点", 0, 300)], profile="shijiazhuang")
    c = res.communities.iloc[0]
    assert c["n_stations"] == 0 and bool(c["flag_no_station"]) and not c["flag_station_size"]


def test_shijiazhuang_urban_and_rural_checks():
    """The 一刻钟 circle and the station are urban; a 村 is asked for a 幸福院 / 邻里互助点.
    Old code: the 村 failed the circle and the station."""
    far = [2000.0, 2000.0]  # nothing within the circle for either
    res = world([("新华社区", "新华街道", 1000, 2000), ("南庄村", "南庄乡", 300, 2000)], profile="shijiazhuang", dist=far)
    c = res.communities.set_index("name")
    assert c["failed_checks"].to_dict() == {"新华社区": "no_day_care;no_meal;present_meal;no_station",
                                            "南庄村": "rural_mutual_aid"}
    res = world([("南庄村", "南庄乡", 300, 2000)], [("南庄村农村互助幸福院", 0, 80)], profile="shijiazhuang", dist=[2000.0])
    assert res.communities.loc[0, "failed_checks"] == ""


def test_shijiazhuang_meals_reach_every_estate():
    """"覆盖社区内所有居住小区": two 小区, residents of one outside the meal circle → 50 % < 100 %."""
    prof = load_profile("shijiazhuang")
    com = gpd.GeoDataFrame({"name": ["新华社区"], "street": ["新华街道"], "households": [800.0], "population": np.nan,
                            "elderly": np.nan, "built_year": [2000.0]}, geometry=[box(0, 0, 1000, 1000)], crs=CRS)
    est = gpd.GeoDataFrame({"name": ["东苑", "西苑"], "community": ["新华社区"] * 2, "households": [400.0, 400.0],
                            "built_year": [2000.0, 2000.0], "space_m2": np.nan},
                           geometry=[box(0, 0, 500, 1000), box(500, 0, 1000, 1000)], crs=CRS)
    pop = gpd.GeoDataFrame({"people": [100.0, 100.0], "elderly": [20.0, 20.0], "dist_day_care_m": [100.0, 100.0],
                            "dist_meal_m": [300.0, 1500.0]}, geometry=[Point(250, 500), Point(750, 500)], crs=CRS)
    fac = gpd.GeoDataFrame({"fid": [0], "name": ["新华社区日间照料站"], "type": [""], "floor_area_m2": [250.0], "beds": np.nan,
                            "day_care": [True], "meal": [True], "street_centre": [False], "institution": [False],
                            "elder_home": [False], "mutual_aid": [False], "embedded": [False]},
                           geometry=[Point(200, 200)], crs=CRS)
    res = standards.evaluate(com, pop, fac, prof, estates=est)
    c = res.communities.iloc[0]
    assert (c["estates_listed"], c["estates_covered"]) == (2, 1)
    # Half the elderly reach a meal point: the community passes the circle (≥ 50 %) but not every 小区.
    assert not c["flag_no_meal"] and bool(c["flag_estate_coverage"])
    row = res.actions[res.actions["check"] == "estate_coverage"].iloc[0]
    assert (row["value"], row["required"]) == (50, 100)


def test_kunshan_presence_and_reach_both_reported():
    """"村（社区）开展日间照料服务占比": a community walking to its neighbour's centre is within
    the circle but does not run the service itself. Old code: only the circle was checked."""
    res = world([("东村", "周市镇", 500, 2000), ("西村", "周市镇", 500, 2000)],
                [("东村日间照料中心（含助餐点）", 0, 300, 450)], profile="kunshan")
    c = res.communities.set_index("name")
    assert not c["flag_no_day_care"].any()  # both within 100 m by walk
    assert c["flag_present_day_care"].to_dict() == {"东村": False, "西村": True}
    dc = res.city["services"]["day_care"]
    assert (dc["communities_covered_share"], dc["communities_present_share"], dc["target_measure"]) == (1.0, 0.5, "presence")
    assert dc["meets_target"] is False and dc["target_year"] == 2025


# --- floor space ----------------------------------------------------------------------------------

def test_new_estate_never_offset_by_an_existing_surplus():
    """Wuxi: 新苑 (new, 1,000 hh) needs 200 m² and has 150; 老苑 (existing, 1,000 hh) needs 150 and has
    250. Old code pooled the community: 350 ≤ 400, no shortfall. Now the new class is 50 short."""
    est = gpd.GeoDataFrame({"name": ["新苑", "老苑"], "community": ["春潮社区"] * 2, "households": [1000.0, 1000.0],
                            "built_year": [2023.0, 2000.0], "space_m2": [150.0, 250.0]},
                           geometry=[box(0, 0, 500, 1000), box(500, 0, 1000, 1000)], crs=CRS)
    res = world([("春潮社区", "旺庄街道", 2000, 2000)], profile="wuxi", estates=est)
    c = res.communities.iloc[0]
    assert (c["space_required_m2"], c["space_provided_m2"], c["space_shortfall_m2"]) == (350, 400, 50)
    assert bool(c["flag_space"])


def test_partial_estate_layer_keeps_the_residual_households():
    """春潮社区 has 1,000 households; the layer lists one 400-household estate. Old code: the
    community had 400 households. Now 400 + 600 residual (classed by the community's 2000: existing)."""
    est = gpd.GeoDataFrame({"name": ["新苑"], "community": ["春潮社区"], "households": [400.0], "built_year": [2023.0],
                            "space_m2": [80.0]}, geometry=[box(0, 0, 500, 1000)], crs=CRS)
    res = world([("春潮社区", "旺庄街道", 1000, 2000)], profile="wuxi", estates=est)
    c = res.communities.iloc[0]
    assert (c["households"], c["households_new"], c["households_existing"], c["households_source"]) == (
        1000, 400, 600, "estates+community")
    # 400 · 20/100 = 80 (met by 新苑's room) + 600 · 15/100 = 90 with no room → 90 short.
    assert (c["space_required_m2"], c["space_shortfall_m2"]) == (170, 90)


def test_unknown_floor_area_is_unverified_not_failed():
    """Old code: a station without a floor area was silently passed (SJZ) and an unknown
    facility area counted 0 m² in the space check (a failure the data cannot prove)."""
    res = world([("新华社区", "新华街道", 1000, 2000)], [("新华社区日间照料站", 0, np.nan)], profile="shijiazhuang")
    c = res.communities.iloc[0]
    assert not c["flag_station_size"] and c["unverified_checks"] == "station_size"
    row = res.actions[res.actions["check"] == "station_size"].iloc[0]
    assert (row["verdict"], row["facilities_unknown_area"]) == ("unverified", "新华社区日间照料站")
    # The sub-district's 0.1 m²/person cannot be decided either (its only facility has no area).
    assert res.city["stations"]["area_unverified"] == 1
    assert res.city["unverified_by_check"] == {"station_size": 1, "per_capita": 1}
    assert word_actions(res.actions, load_profile("shijiazhuang")).loc[row.name, "verdict"] == "待核实（缺面积数据）"
    # Wuxi, space from facilities: 1,000 existing households need 150 m²; a 100 m² centre and one
    # of unknown area → could be enough: unverified.
    res = world([("春潮社区", "旺庄街道", 1000, 2000)], [("春潮日间照料中心", 0, 100), ("春潮助餐点", 0, np.nan, 50)],
                profile="wuxi")
    c = res.communities.iloc[0]
    assert c["space_shortfall_m2"] == 50 and not c["flag_space"] and c["unverified_checks"] == "space"
    assert c["space_area_unknown"] == 1


def test_shijiazhuang_per_capita_per_sub_district():
    """"分区分级": 0.1 m²/person per sub-district, the street centre and the stations together.
    社区 A (10,000 people, a 300 m² station) and B (10,000, none) share a 1,800 m² street centre:
    2,100 ≥ 2,000 m² → passes. Old code: B failed on its own (0 < 1,000)."""
    com = gpd.GeoDataFrame({"name": ["甲社区", "乙社区"], "street": ["新华街道"] * 2, "households": [3000.0] * 2,
                            "population": [10000.0] * 2, "elderly": [2000.0] * 2, "built_year": [2000.0] * 2},
                           geometry=[box(0, 0, 1000, 1000), box(1000, 0, 2000, 1000)], crs=CRS)
    res = standards.evaluate(com, two_points(), two_facilities(), load_profile("shijiazhuang"))
    s = res.streets.iloc[0]
    assert (s["per_capita_required_m2"], s["care_floor_area_m2"], s["flag_per_capita"]) == (2000, 2100, False)
    assert "per_capita" not in ";".join(res.communities["failed_checks"])


def two_points() -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame({"people": [100.0] * 2, "elderly": [20.0] * 2, "dist_day_care_m": [100.0] * 2,
                             "dist_meal_m": [100.0] * 2}, geometry=[Point(500, 500), Point(1500, 500)], crs=CRS)


def two_facilities() -> gpd.GeoDataFrame:
    """A 300 m² station in 甲社区 and the 1,800 m² street centre in 乙社区."""
    return gpd.GeoDataFrame({"fid": [0, 1], "name": ["甲社区日间照料站", "新华街道综合养老服务中心"], "type": "",
                             "floor_area_m2": [300.0, 1800.0], "beds": np.nan, "day_care": [True, True], "meal": [False, True],
                             "street_centre": [False, True], "institution": [False, False], "elder_home": False,
                             "mutual_aid": False, "embedded": False},
                            geometry=[Point(500, 500), Point(1500, 500)], crs=CRS)


# --- national profile, beds, target years ------------------------------------------------------

def test_national_space_check_is_opt_in():
    """No national 每百户 figure: no space verdict, and not_checked says to choose a provincial profile."""
    res = world([("新华社区", "新华街道", 1000, 2023)], profile="national")
    assert not res.communities["flag_space"].any() and "space" not in {c.key for c in standards.checks(load_profile("national"))}
    reasons = {x["check"]: x["source"] for x in res.city["not_checked"]}
    assert "请选用省级（城市）配置" in reasons["space.new"]
    assert load_profile("national_gb50180_5min").walk_distance_m == pytest.approx(300)


def test_beds_against_the_plan():
    """Kunshan > 95 % nursing beds: 900 of 1,000 → 90 %, fails; without a nursing column: not checked."""
    prof = load_profile("kunshan")
    fac = pd.DataFrame({"beds": [600.0, 400.0], "nursing_beds": [600.0, 300.0]})
    com = pd.DataFrame({"elderly": [20000.0]})
    b = standards._beds(fac, com, prof)
    assert (b["per_1000_elderly"], b["nursing_share"], b["nursing_target"], b["meets_nursing"]) == (50, 0.9, 0.95, False)
    b = standards._beds(fac.drop(columns="nursing_beds"), com, prof)
    assert b["nursing_share"] is None and "not checked" in b["nursing_reason"]


def test_count_facilities_circle_uses_the_walk(tmp_path):
    """``space.count_facilities: circle`` counts the rooms within the walk (design), not the
    straight line. A 500 m² centre 400 m east of the community across a river: the only path
    goes 2 km north, over, and back (4.4 km). Old code (straight line): 500 m² counted."""
    from types import SimpleNamespace

    import shapely

    from carecircle.coverage.analysis import Inputs, Walk, analyse

    xy = np.array([[0, 0], [0, 2000], [400, 2000], [400, 0]], dtype=float)
    lines = [shapely.LineString([xy[u], xy[v]]) for u, v in ((0, 1), (1, 2), (2, 3))]
    net = SimpleNamespace(
        nodes=gpd.GeoDataFrame({"x": xy[:, 0], "y": xy[:, 1]}, geometry=shapely.points(xy), crs=CRS),
        edges=gpd.GeoDataFrame({"u": [0, 1, 2], "v": [1, 2, 3], "length_m": [2000.0, 400.0, 2000.0], "highway": "footway"},
                               geometry=lines, crs=CRS), crs=CRS, stats={})
    (tmp_path / "p.yaml").write_text("extends: wuxi\nspace: {count_facilities: circle}\n", encoding="utf-8")
    prof = load_profile(tmp_path / "p.yaml")
    com = gpd.GeoDataFrame({"name": ["河西社区"], "street": ["旺庄街道"], "households": [1000.0], "population": np.nan,
                            "elderly": np.nan, "built_year": [2000.0], "street_kind": pd.NA},
                           geometry=[box(-200, -200, 200, 200)], crs=CRS)
    pop = gpd.GeoDataFrame({"pid": [0], "people": [100.0], "elderly": [20.0]}, geometry=[Point(0, 50)], crs=CRS)
    fac = gpd.GeoDataFrame({"fid": [0], "name": ["河东日间照料中心"], "type": [""], "floor_area_m2": [500.0], "beds": np.nan,
                            **{k: [k == "day_care"] for k in prof.services}}, geometry=[Point(400, 10)], crs=CRS)
    walk = Walk(1000.0, 15.0, 4.0, [1000.0])
    res = analyse(Inputs(net, fac, pop, com, None, None), prof, walk, max_snap_m=100, min_component_nodes=1,
                  polygons=False, log=lambda _: None)
    c = res.communities.iloc[0]
    assert c["space_provided_m2"] == 0 and c["space_shortfall_m2"] == 150  # 1,000 existing × 15 / 100


@settings(max_examples=15, deadline=None)
@given(st.integers(1, 6), st.data())
def test_town_share_verdict_matches_the_count(n_towns, data):
    """Any n 乡镇 with k centres: no 乡镇 is flagged; the city meets 60 % exactly when k/n ≥ 0.6;
    the action list has n − k reported rows and one city row when the share is missed."""
    k = data.draw(st.integers(0, n_towns))
    places = [(f"{i}号村", f"第{i}镇", 300, 2000) for i in range(n_towns)]
    centres = [(f"第{i}镇区域养老服务中心", i, 500) for i in range(k)]
    res = world(places, centres, profile="shijiazhuang")
    assert not res.streets["flag_no_street_centre"].any()
    town = next(sc for sc in res.city["sub_districts"]["rules"]["no_street_centre"] if sc["target_share"] == 0.6)
    assert town["meets_target"] == (k / n_towns >= 0.6 - 1e-9)
    a = res.actions[res.actions["check"] == "no_street_centre"]
    assert (a["verdict"] == "reported").sum() == n_towns - k
    assert ((a["street"] == "") & (a["verdict"] == "fail")).sum() == (0 if town["meets_target"] else 1)
