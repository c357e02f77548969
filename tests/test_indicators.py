"""Community indicators on hand-built data: distances, shares, households, floor space."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from shapely.geometry import Point, box

from carecircle.coverage.indicators import _weighted_p90, community_indicators, service_mask
from carecircle.coverage.space import estate_table
from pathlib import Path

from carecircle.coverage.profile import load_profile
from carecircle.errors import InputError

CRS = "EPSG:32650"
INF = np.inf


def communities(**over):
    data = {
        "name": ["甲社区", "乙社区", "丙社区"], "street": ["东街道", "东街道", "西街道"],
        "households": [1000.0, 2000.0, np.nan], "population": [2500.0, 5000.0, 2620.0],
        "elderly": [400.0, 800.0, 300.0], "built_year": [2023.0, 2000.0, np.nan],
    }
    data.update(over)
    return gpd.GeoDataFrame(data, geometry=[box(0, 0, 1000, 1000), box(1000, 0, 2000, 1000), box(0, 1000, 1000, 2000)], crs=CRS)


def population():
    # 甲: 4 points × (625 people, 100 elderly); 乙: 4 × (1250, 200); 丙 has none.
    return gpd.GeoDataFrame({
        "people": [625.0] * 4 + [1250.0] * 4, "elderly": [100.0] * 4 + [200.0] * 4,
        "dist_day_care_m": [100, 200, 300, 1500, 100, 100, 100, 100],
        "dist_meal_m": [INF, INF, 900, 1200, 500, np.nan, 700, 800],
    }, geometry=[Point(100, 100), Point(300, 300), Point(600, 600), Point(900, 900),
                 Point(1100, 100), Point(1300, 300), Point(1500, 500), Point(1900, 900)], crs=CRS)


def facilities():
    return gpd.GeoDataFrame({
        "fid": [0, 1, 2], "name": ["甲日间照料中心", "乙助餐点", "东街道综合养老服务中心"], "type": ["日间照料中心", "助餐点", "综合中心"],
        "floor_area_m2": [150.0, 100.0, 600.0], "beds": [np.nan] * 3,
        "day_care": [True, False, True], "meal": [False, True, True], "street_centre": [False, False, True], "institution": [False] * 3,
    }, geometry=[Point(200, 200), Point(1200, 200), Point(1500, 800)], crs=CRS)


def nearest():
    return pd.DataFrame({
        "name": ["甲社区", "甲社区", "乙社区", "乙社区", "丙社区", "丙社区"],
        "service": ["day_care", "meal"] * 3,
        "facility": ["甲日间照料中心", "乙助餐点", "东街道综合养老服务中心", "乙助餐点", "甲日间照料中心", "东街道综合养老服务中心"],
        "distance_m": [150, 1100, 50, 80, 1300, 1400],
    })


#: The old national default (30 / 20, pooled within each class) as a test profile.
POOLED = str(Path(__file__).parent / "profiles" / "pooled_30_20.yaml")


def run(profile="wuxi", **kw):
    kw.setdefault("nearest", nearest())
    return community_indicators(communities(), population(), facilities(), load_profile(profile), **kw)


def test_distances_and_covered_shares_by_hand():
    c = run()
    assert list(c.columns[:5]) == ["name", "street", "households", "population", "elderly"]
    a, b, cc = c.iloc[0], c.iloc[1], c.iloc[2]
    # 甲: equal weights; day care 100/200/300/1500 → mean 525, 3 of 4 within 1000 m.
    assert a["dist_day_care_mean_m"] == pytest.approx(525.0)
    assert a["dist_day_care_p90_m"] == pytest.approx(1500.0)
    assert a["elderly_covered_share_day_care"] == pytest.approx(0.75)
    assert a["population_covered_share_day_care"] == pytest.approx(0.75)
    # meals: two unreachable (inf) → mean over the reachable 900/1200, p90 unreachable → NaN.
    assert a["dist_meal_mean_m"] == pytest.approx(1050.0)
    assert np.isnan(a["dist_meal_p90_m"])
    assert a["elderly_covered_share_meal"] == pytest.approx(0.25)
    # 乙: NaN distance = unreachable: 3 of 4 covered; mean of 500/700/800.
    assert b["elderly_covered_share_meal"] == pytest.approx(0.75)
    assert b["dist_meal_mean_m"] == pytest.approx(2000 / 3)
    assert b["dist_day_care_p90_m"] == pytest.approx(100.0)
    # 丙 has no points: its representative point's walk distance decides, all or nothing.
    assert cc["dist_basis"] == "representative_point" and cc["n_points"] == 0
    assert cc["dist_day_care_mean_m"] == cc["dist_day_care_p90_m"] == 1300
    assert cc["elderly_covered_share_day_care"] == 0.0 and cc["population_covered_share_meal"] == 0.0
    assert (c["nearest_basis"] == "walk").all()
    assert list(c["nearest_meal"]) == ["乙助餐点", "乙助餐点", "东街道综合养老服务中心"]
    assert list(c["nearest_day_care_m"]) == [150, 50, 1300]


def test_cutoff_override_changes_coverage():
    c = run(cutoff_m=250)
    assert c.loc[0, "elderly_covered_share_day_care"] == pytest.approx(0.5)  # 100 and 200 only


def test_elderly_weighting_differs_from_people():
    pop = population()
    pop.loc[0, "elderly"] = 300.0  # the covered point at 100 m now carries 300 of 600 elderly
    c = community_indicators(communities(), pop, facilities(), load_profile("wuxi"), nearest=nearest())
    # elderly: (300 + 100 + 100) / 600 covered; people still 3/4.
    assert c.loc[0, "elderly_covered_share_day_care"] == pytest.approx(500 / 600)
    assert c.loc[0, "population_covered_share_day_care"] == pytest.approx(0.75)
    # elderly-weighted mean: (300·100 + 100·200 + 100·300 + 100·1500) / 600
    assert c.loc[0, "dist_day_care_mean_m"] == pytest.approx(230000 / 600)


def test_households_and_space_wuxi():
    c = run("wuxi")
    # 甲: 1,000 households built 2023 (new) → 20 (min) / 30 (target) per 100 → 200 / 300 m²;
    # provided: the 150 m² day-care centre inside → shortfall 50, 150 to target.
    a = c.iloc[0]
    assert (a["households_source"], a["households_new"], a["households_existing"]) == ("community", 1000, 0)
    assert (a["space_required_m2"], a["space_target_m2"], a["space_provided_m2"]) == (200, 300, 150)
    assert (a["space_shortfall_m2"], a["space_target_shortfall_m2"]) == (50, 150)
    # 乙: 2,000 existing → 15/20 per 100 → 300/400; provided 100 + 600 = 700 → no shortfall.
    b = c.iloc[1]
    assert (b["space_required_m2"], b["space_target_m2"], b["space_provided_m2"], b["space_shortfall_m2"]) == (300, 400, 700, 0)
    # 丙: households from population ÷ 2.56 (Wuxi), unknown year → existing (15).
    cc = c.iloc[2]
    assert cc["households_source"] == "population" and cc["households"] == pytest.approx(2620 / 2.56)
    assert cc["space_required_m2"] == pytest.approx(2620 / 2.56 / 100 * 15)
    assert cc["space_provided_m2"] == 0 and cc["space_shortfall_m2"] == pytest.approx(2620 / 2.56 * 0.15)
    # Stations are day care only: 乙's meal-only point is not a station, its centre is.
    assert list(c["n_stations"]) == [1, 1, 0]
    assert c.loc[1, "largest_station_m2"] == 600 and np.isnan(c.loc[2, "largest_station_m2"])


@pytest.mark.parametrize("profile, required_a, required_b, required_c", [
    ("national", np.nan, np.nan, np.nan),  # no national 每百户 figure: opt-in
    (POOLED, 300, 400, 200),    # 30 new / 20 existing; 丙 = 2620 ÷ 2.62 = 1000 households
    ("kunshan", 300, 400, 200),     # 30 / 20 (the 50 m² general community space not counted)
    ("rugao", 300, np.nan, np.nan),  # 30 new; no number for existing estates
    ("wuxi", 200, 300, 2620 / 2.56 * 0.15),
    ("tongxiang", np.nan, np.nan, np.nan),
    ("shijiazhuang", np.nan, np.nan, np.nan),
])
def test_space_required_per_profile(profile, required_a, required_b, required_c):
    c = run(profile)
    np.testing.assert_allclose(c["space_required_m2"].to_numpy(dtype=float), [required_a, required_b, required_c])
    expect_short = np.clip(np.array([required_a, required_b, required_c]) - np.array([150, 700, 0]), 0, None)
    np.testing.assert_allclose(c["space_shortfall_m2"].to_numpy(dtype=float), expect_short)


def test_per_capita_requirement_only_for_floor_area_standards():
    assert run("shijiazhuang")["per_capita_required_m2"].tolist() == pytest.approx([250.0, 500.0, 262.0])
    assert run("national")["per_capita_required_m2"].isna().all()  # 0.1 m² of land: not checkable


def test_estates_give_households_age_split_and_space():
    estates = gpd.GeoDataFrame({
        "name": ["新苑", "老村", "远苑"], "community": ["甲社区", None, None],
        "households": [600.0, 400.0, 300.0], "built_year": [2023.0, 2005.0, 2024.0], "space_m2": [100.0, np.nan, 50.0],
    }, geometry=[box(100, 100, 400, 400), box(600, 600, 900, 900), box(100, 1100, 300, 1300)], crs=CRS)
    # 老村 is placed in 甲 by location, 远苑 in 丙 by location.
    c = run("wuxi", estates=estates)
    a = c.iloc[0]
    assert (a["households_source"], a["households"], a["households_new"], a["households_existing"]) == ("estates", 1000, 600, 400)
    # 600 × 20/100 + 400 × 15/100 = 180; target 600 × 30/100 + 400 × 20/100 = 260.
    assert (a["space_required_m2"], a["space_target_m2"]) == (180, 260)
    # auto: the estate space (100 m² known) replaces the facility floor area for 甲.
    assert (a["space_provided_m2"], a["space_provided_from"], a["space_shortfall_m2"]) == (100, "estates", 80)
    assert a["largest_unit_m2"] == 150  # the day-care centre (150) beats the estate room (100)
    cc = c.iloc[2]
    assert (cc["households_source"], cc["households"], cc["households_new"]) == ("estates", 300, 300)
    assert (cc["space_required_m2"], cc["space_provided_m2"], cc["space_shortfall_m2"]) == (60, 50, 10)
    assert c.iloc[1]["households_source"] == "community"


def test_provided_from_facilities_ignores_estate_space(tmp_path):
    (tmp_path / "p.yaml").write_text("extends: wuxi\nspace: {provided_from: facilities}\n", encoding="utf-8")
    estates = gpd.GeoDataFrame({"name": ["新苑"], "community": ["甲社区"], "households": [1000.0], "built_year": [2023.0],
                                "space_m2": [999.0]}, geometry=[box(100, 100, 400, 400)], crs=CRS)
    c = community_indicators(communities(), population(), facilities(), load_profile(tmp_path / "p.yaml"),
                             estates=estates, nearest=nearest())
    assert (c.loc[0, "space_provided_m2"], c.loc[0, "space_provided_from"]) == (150, "facilities")


def test_circle_counting_uses_reach_table_or_straight_line(tmp_path):
    (tmp_path / "p.yaml").write_text("extends: wuxi\nspace: {count_facilities: circle}\n", encoding="utf-8")
    prof = load_profile(tmp_path / "p.yaml")
    reach = pd.DataFrame({"name": ["甲社区", "甲社区", "甲社区", "乙社区"], "fid": [0, 1, 2, 2], "distance_m": [300, 900, 1200, 400]})
    c = community_indicators(communities(), population(), facilities(), prof, nearest=nearest(), reach=reach)
    assert list(c["space_provided_m2"]) == [250, 600, 0]  # 甲: 150 + 100 (the 1,200 m one is outside)
    # Without a reach table: straight line from the representative point, ≤ 1000 m.
    c2 = community_indicators(communities(), population(), facilities(), prof, nearest=nearest())
    reps = communities().geometry.representative_point()
    fac = facilities()
    expect = [fac.loc[fac.distance(r) <= 1000, "floor_area_m2"].sum() for r in reps]
    assert list(c2["space_provided_m2"]) == pytest.approx(expect)


def test_straight_line_nearest_without_table():
    c = community_indicators(communities(), population(), facilities(), load_profile("wuxi"))
    assert (c["nearest_basis"] == "straight_line").all()
    rep = communities().geometry.representative_point().iloc[0]
    fac = facilities()
    dc = fac[fac["day_care"]]
    d = dc.distance(rep)
    assert c.loc[0, "nearest_day_care"] == dc.loc[d.idxmin(), "name"]
    assert c.loc[0, "nearest_day_care_m"] == pytest.approx(d.min())


def test_service_mask_falls_back_to_keywords_for_missing_columns():
    fac = facilities().drop(columns=["meal"])
    prof = load_profile("wuxi")
    # 乙助餐点 matches the meal keyword 助餐; 东街道综合养老服务中心 no longer does.
    assert service_mask(fac, prof, ["meal"]).tolist() == [False, True, False]
    assert service_mask(facilities(), prof, ["day_care", "street_centre"]).tolist() == [True, False, True]


def test_missing_distance_column_is_an_input_error():
    with pytest.raises(InputError, match="population: dist_meal_m: column missing"):
        community_indicators(communities(), population().drop(columns="dist_meal_m"), facilities(), load_profile("wuxi"))
    with pytest.raises(InputError, match="nearest: missing column"):
        run(nearest=nearest().drop(columns="facility"))


def test_missing_table_columns_are_named_in_one_line(tmp_path):
    with pytest.raises(InputError) as err:
        run(nearest=nearest().drop(columns=["service", "distance_m"]))
    assert str(err.value) == "nearest: missing column(s) distance_m, service; expected name, service, facility, distance_m"
    (tmp_path / "p.yaml").write_text("extends: wuxi\nspace: {count_facilities: circle}\n", encoding="utf-8")
    reach = pd.DataFrame({"name": ["甲社区"], "distance_m": [300.0]})
    with pytest.raises(InputError) as err:
        community_indicators(communities(), population(), facilities(), load_profile(tmp_path / "p.yaml"),
                             nearest=nearest(), reach=reach)
    assert str(err.value) == "reach: missing column(s) fid; expected name, fid, distance_m"


def test_point_on_shared_boundary_counted_once():
    pop = population()
    pop.loc[len(pop)] = [1000.0, 1000.0, 50.0, 50.0, Point(1000, 500)]
    c = community_indicators(communities(), pop, facilities(), load_profile("wuxi"), nearest=nearest())
    assert c["n_points"].sum() == 9


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 2), st.floats(0, 3000), st.floats(0.01, 100)), min_size=1, max_size=30))
def test_weighted_p90_matches_brute_force(rows):
    cid = np.array([r[0] for r in rows])
    d = np.array([r[1] for r in rows])
    w = np.array([r[2] for r in rows])
    got = _weighted_p90(cid, d, w, 3)
    for c in range(3):
        sel = cid == c
        if not sel.any():
            assert np.isnan(got[c])
            continue
        order = np.argsort(d[sel], kind="stable")
        ds, ws = d[sel][order], w[sel][order]
        cum = np.cumsum(ws)
        ref = ds[np.argmax(cum >= 0.9 * ws.sum() - 1e-9 * max(ws.sum(), 1.0))]
        assert got[c] == pytest.approx(ref)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.floats(1, 999), st.floats(1, 999), st.floats(0, 50), st.one_of(st.floats(0, 2500), st.just(np.inf))),
                min_size=1, max_size=25))
def test_covered_shares_match_brute_force(rows):
    """Random points in 甲/乙: shares equal the hand computation per community."""
    xs = np.array([r[0] for r in rows]) * 2  # 0–2000: both communities
    pop = gpd.GeoDataFrame({"people": [r[2] + 1 for r in rows], "elderly": [r[2] for r in rows],
                            "dist_day_care_m": [r[3] for r in rows], "dist_meal_m": [r[3] for r in rows]},
                           geometry=[Point(x, r[1]) for x, r in zip(xs, rows)], crs=CRS)
    c = community_indicators(communities(), pop, facilities(), load_profile("national"), nearest=nearest())
    for i, (lo, hi) in enumerate(((0, 1000), (1000, 2000))):
        sel = (xs >= lo) & (xs < hi) if i == 0 else (xs > lo) & (xs <= hi)
        sel &= ~((xs == 1000) & (i == 1))  # a point on the shared edge belongs to 甲 only
        d = pop["dist_day_care_m"].to_numpy()[sel]
        e, p = pop["elderly"].to_numpy()[sel], pop["people"].to_numpy()[sel]
        if not sel.any() or (e.sum() == 0 and p.sum() == 0):
            continue
        w = e if e.sum() > 0 else p
        assert c.loc[i, "elderly_covered_share_day_care"] == pytest.approx(w[d <= 1000].sum() / w.sum())
        assert c.loc[i, "population_covered_share_day_care"] == pytest.approx(p[d <= 1000].sum() / p.sum())
        assert 0 <= c.loc[i, "elderly_covered_share_meal"] <= 1


# --- floor space estate by estate (逐小区) ------------------------------------------------
#
# 甲: 安居苑 existing (1995) 500 households, 150 m²; 和园 existing (2000, community left blank:
#     placed by location) 1,000 households, 120 m²; 新苑 new (2024) 400 households, 100 m².
# 乙: 乙苑 existing (2005) 1,000 households, 250 m².
# 丙: 丙一村 existing 300 households, space unknown; 丙二村 existing 200 households, 30 m².
# 外苑 lies outside every community: existing, 100 households, 10 m²; 外村 the same, space unknown.
def space_estates():
    return gpd.GeoDataFrame({
        "name": ["安居苑", "和园", "新苑", "乙苑", "丙一村", "丙二村", "外苑", "外村"],
        "community": ["甲社区", None, "甲社区", "乙社区", "丙社区", "丙社区", None, None],
        "households": [500.0, 1000.0, 400.0, 1000.0, 300.0, 200.0, 100.0, 100.0],
        "built_year": [1995.0, 2000.0, 2024.0, 2005.0, 1990.0, 1992.0, 1990.0, 1990.0],
        "space_m2": [150.0, 120.0, 100.0, 250.0, np.nan, 30.0, 10.0, np.nan],
    }, geometry=[box(50, 50, 300, 300), box(400, 400, 700, 700), box(750, 50, 950, 300), box(1100, 100, 1900, 900),
                 box(100, 1100, 400, 1400), box(500, 1500, 900, 1900), box(3000, 3000, 3100, 3100), box(3200, 3000, 3300, 3100)],
        crs=CRS)


# Per profile: community (required, provided, shortfall, estates short on their own) for 甲, 乙, 丙.
# 乙 has 2,000 households but lists only 乙苑 (1,000): the other 1,000 stay, classed by 乙's
# year (2000, existing) — a partial 小区 layer keeps the residual households.
@pytest.mark.parametrize("profile, expected", [
    # 30/20, pooled within each class: 甲 existing 500·.2 + 1000·.2 = 300 vs 270 → 30, new
    # 400·.3 = 120 vs 100 → 20: 50 (the existing surplus never offsets the new deficit); on
    # their own 和园 (200 − 120) and 新苑 (120 − 100) are short. 乙: 1000·.2 (乙苑) + 1000·.2
    # (residual) = 400 vs 250 → 150. 丙: 300·.2 + 200·.2 = 100 − 30.
    (POOLED, [(420, 370, 50, 2), (400, 250, 150, 0), (100, 30, 70, 2)]),
    # Kunshan: every estate one by one (和园 80 short; 安居苑's 50 m² surplus does not count;
    # 新苑 new, 逐小区 too: 120 − 100 = 20): 80 + 20 = 100, not 420 − 370 = 50. 乙: 乙苑 stands
    # alone (200 ≤ 250), the residual 1,000 existing households need 200 with no room: 200.
    # 丙: 丙一村's unknown room counts as none: 60 + (40 − 30) = 70.
    ("kunshan", [(420, 370, 100, 2), (400, 250, 200, 0), (100, 30, 70, 2)]),
    # Wuxi 15 existing / 20 new, pooled in class: 甲 existing 225 ≤ 270, new 80 ≤ 100 → 0; 和园
    # alone is short (150 − 120). 乙: 150 + 150 (residual) = 300 − 250 = 50. 丙: 75 − 30 = 45; only
    # 丙一村 is short on its own (丙二村 needs 200·.15 = 30, has 30).
    ("wuxi", [(305, 370, 0, 1), (300, 250, 50, 0), (75, 30, 45, 1)]),
    # Rugao: 30 for new estates only: 甲 120 required, the new class has 100 → 20 (the existing
    # estates' rooms do not count for it); existing estates carry no number → 乙 and 丙 not checked.
    ("rugao", [(120, 370, 20, 1), (np.nan, 250, np.nan, 0), (np.nan, 30, np.nan, 0)]),
    ("tongxiang", [(np.nan, 370, np.nan, 0), (np.nan, 250, np.nan, 0), (np.nan, 30, np.nan, 0)]),
    ("shijiazhuang", [(np.nan, 370, np.nan, 0), (np.nan, 250, np.nan, 0), (np.nan, 30, np.nan, 0)]),
])
def test_space_estate_by_estate_per_profile(profile, expected):
    c = run(profile, estates=space_estates())
    got = c[["space_required_m2", "space_provided_m2", "space_shortfall_m2", "space_estates_short"]].to_numpy(dtype=float)
    np.testing.assert_allclose(got, np.array(expected, dtype=float))
    assert list(c["space_provided_from"]) == ["estates"] * 3


def test_estate_rule_target_shortfall_and_user_override(tmp_path):
    # Wuxi targets (20 existing / 30 new) pooled: 甲 1500·.2 + 400·.3 = 420 − 370 = 50.
    c = run("wuxi", estates=space_estates())
    assert c.loc[0, "space_target_shortfall_m2"] == pytest.approx(50)
    # A Wuxi user profile checking existing estates one by one: 和园 150 − 120 = 30 counts on
    # its own (安居苑's surplus of 75 − 150 no longer offsets it), the new estate pools (80 ≤ 100).
    (tmp_path / "wx.yaml").write_text("extends: wuxi\nspace: {existing: {per_estate: true}}\n", encoding="utf-8")
    c = community_indicators(communities(), population(), facilities(), load_profile(tmp_path / "wx.yaml"),
                             estates=space_estates(), nearest=nearest())
    assert c.loc[0, "space_shortfall_m2"] == pytest.approx(30)
    # target: 和园 200 − 120 = 80 on its own (安居苑 100 ≤ 150); new pooled 120 − 100 = 20.
    assert c.loc[0, "space_target_shortfall_m2"] == pytest.approx(100)


def test_estate_rule_needs_estate_space(tmp_path):
    """Measured from facility floor area, space cannot be split between estates: pooled."""
    (tmp_path / "ks.yaml").write_text("extends: kunshan\nspace: {provided_from: facilities}\n", encoding="utf-8")
    prof = load_profile(tmp_path / "ks.yaml")
    c = community_indicators(communities(), population(), facilities(), prof, estates=space_estates(), nearest=nearest())
    # 甲: 420 required, the 150 m² day-care centre inside → 270; 乙: 200 − (100 + 600) → 0.
    assert list(c["space_shortfall_m2"][:2]) == [270, 0]
    assert list(c["space_estates_short"]) == [0, 0, 0]
    t = estate_table(space_estates(), communities(), prof)
    assert t["space_shortfall_m2"].iloc[:6].isna().all() and not t["flag_space"].iloc[:6].any()


def test_estate_table_kunshan_by_hand():
    t = estate_table(space_estates(), communities(), load_profile("kunshan"))
    assert list(t.columns) == ["estate", "community", "street", "households", "built_year", "estate_class", "per_estate",
                               "space_rate_m2_per_100hh", "space_required_m2", "space_target_m2", "space_provided_m2",
                               "space_shortfall_m2", "space_target_shortfall_m2", "flag_space", "geometry"]
    assert list(t["estate"]) == ["安居苑", "和园", "新苑", "乙苑", "丙一村", "丙二村", "外苑", "外村"]
    # 和园 has no community field: placed in 甲 by location; 外苑/外村 lie outside every community.
    assert t["community"].tolist()[:6] == ["甲社区", "甲社区", "甲社区", "乙社区", "丙社区", "丙社区"]
    assert t["community"].iloc[6:].isna().all() and t["street"].iloc[6:].isna().all()
    assert t["street"].tolist()[:6] == ["东街道"] * 4 + ["西街道"] * 2
    assert t["estate_class"].tolist() == ["existing", "existing", "new"] + ["existing"] * 5
    assert t["per_estate"].tolist() == [True] * 8  # new estates too: the indicator counts 新建居住（小）区 one by one
    assert t["space_rate_m2_per_100hh"].tolist() == [20, 20, 30, 20, 20, 20, 20, 20]
    np.testing.assert_allclose(t["space_required_m2"], [100, 200, 120, 200, 60, 40, 20, 20])
    np.testing.assert_allclose(t["space_provided_m2"], [150, 120, 100, 250, np.nan, 30, 10, np.nan])
    # 丙一村's unknown room counts as none (its community is measured from estate rooms);
    # 外村, outside every community with no room known, is not checked.
    np.testing.assert_allclose(t["space_shortfall_m2"], [0, 80, 20, 0, 60, 10, 10, np.nan])
    assert t["flag_space"].tolist() == [False, True, True, False, True, True, True, False]
    assert t.crs == CRS and t.geometry.iloc[0].equals(box(50, 50, 300, 300))


def test_estate_table_classes_and_unknown_years():
    est = space_estates()
    est.loc[0, "built_year"] = np.nan  # unknown year → existing (Wuxi: unknown_year_as existing)
    est.loc[1, "households"] = np.nan  # no households: nothing required
    t = estate_table(est, communities(), load_profile("wuxi"))
    assert t.loc[0, "estate_class"] == "existing" and t.loc[0, "space_required_m2"] == pytest.approx(75)
    assert np.isnan(t.loc[1, "space_required_m2"]) and np.isnan(t.loc[1, "space_shortfall_m2"]) and not t.loc[1, "flag_space"]
    # 新苑 new under Wuxi: 400 × 20/100 = 80 required, 30/100 → 120 target; provides 100.
    assert (t.loc[2, "space_required_m2"], t.loc[2, "space_target_m2"], t.loc[2, "space_shortfall_m2"],
            t.loc[2, "space_target_shortfall_m2"]) == (80, 120, 0, 20)
    assert not t["per_estate"].any()


@settings(max_examples=25, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 1), st.floats(0, 3000), st.one_of(st.just(np.nan), st.floats(0, 900)),
                          st.booleans()), min_size=1, max_size=12))
def test_estate_by_estate_never_below_pooled(rows):
    """Per estate, the shortfall is the sum of the estates' own; it is never below the pooled one."""
    est = gpd.GeoDataFrame({
        "name": [f"苑{i}" for i in range(len(rows))], "community": [["甲社区", "乙社区"][r[0]] for r in rows],
        "households": [r[1] for r in rows], "space_m2": [r[2] for r in rows],
        "built_year": [2024.0 if r[3] else 2000.0 for r in rows],
    }, geometry=[Point(10 + i, 10) if r[0] == 0 else Point(1010 + i, 10) for i, r in enumerate(rows)], crs=CRS)
    pooled = run(POOLED, estates=est)
    each = run("kunshan", estates=est)  # same 30 / 20 rates; every estate one by one
    table = estate_table(est, communities(), load_profile("kunshan"))
    com = communities()
    for i, name in enumerate(["甲社区", "乙社区"]):
        if each.loc[i, "space_provided_from"] != "estates":
            continue
        sel = table["community"] == name
        # The households the layer does not list stay, at the community's class (甲 2023 new,
        # 乙 2000 existing), with no room of their own.
        residual = max(0.0, com.loc[i, "households"] - table.loc[sel, "households"].sum())
        expect = table.loc[sel, "space_shortfall_m2"].sum() + residual * (30 if i == 0 else 20) / 100
        assert each.loc[i, "space_shortfall_m2"] == pytest.approx(expect, abs=1e-6)
        old = sel & (table["estate_class"] == "existing")
        assert each.loc[i, "space_shortfall_m2"] >= pooled.loc[i, "space_shortfall_m2"] - 1e-6
        # Any existing estate short on its own fails its community.
        if table.loc[old, "flag_space"].any():
            assert each.loc[i, "space_shortfall_m2"] > 0



def test_point_communities_given_by_the_caller_are_used():
    """The pipeline passes the point → community join it already made instead of joining twice."""
    from carecircle.coverage.indicators import community_of_points

    joined = run()
    given = run(point_community=community_of_points(population(), communities()).to_numpy())
    pd.testing.assert_frame_equal(pd.DataFrame(joined.drop(columns="geometry")),
                                  pd.DataFrame(given.drop(columns="geometry")))
    # Points 0–3 lie in 甲, 4–7 in 乙: said to be outside every community, 乙 has none left.
    moved = run(point_community=np.array([0, 0, 0, 0, -1, -1, -1, -1]))
    assert list(joined["n_points"]) == [4, 4, 0]
    assert list(moved["n_points"]) == [4, 0, 0]
