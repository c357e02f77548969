"""Capacity against demand: 2SFCA / Gaussian E2SFCA against pysal ``access``, allocation by hand.

pysal ``access`` (test-only) is fed the very same costs: its hospital example (three tracts,
four congestion scenarios, gravity weights; the data are inline in its test suite) and its
n × n grid cases (a 5 × 5 supply grid, euclidean costs, inclusive ``cost <= max_cost``).
Allocation splits are worked out by hand and, for random cases, by a plain sequential loop
over the sorted pairs — the rule as the docstring states it.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.sparse import csr_array

from carecircle.coverage.capacity import allocate, balance_class, capacity_analysis, decay_weight, facility_capacity, two_step_fca
from carecircle.coverage.profile import CapacitySupply, Decay, load_profile

access = pytest.importorskip("access", reason="pysal access (the test extra) is not installed")
# pysal access's own set_index(inplace=True), not ours.
pytestmark = pytest.mark.filterwarnings("ignore:The inplace keyword")


def _matrix(rows: list[tuple[int, int, float]], shape: tuple[int, int]) -> csr_array:
    """(facility, point, distance) triples → CSR, explicit zeros kept (as the catchment search gives)."""
    rows = sorted(rows)
    f = np.array([r[0] for r in rows], dtype=np.int64)
    p = np.array([r[1] for r in rows], dtype=np.int64)
    d = np.array([r[2] for r in rows], dtype=float)
    indptr = np.r_[0, np.cumsum(np.bincount(f, minlength=shape[0]))]
    return csr_array((d, p, indptr), shape=shape)


def _pysal(demand: np.ndarray, supply: np.ndarray, cost: pd.DataFrame, **kw) -> np.ndarray:
    """pysal access two_stage_fca per demand location (NaN where it has none)."""
    dem = pd.DataFrame({"geoid": np.arange(len(demand)), "pop": demand})
    sup = pd.DataFrame({"geoid": np.arange(len(supply)), "cap": supply})
    a = access.Access(demand_df=dem, demand_index="geoid", demand_value="pop", supply_df=sup, supply_index="geoid",
                      supply_value="cap", cost_df=cost, cost_origin="origin", cost_dest="dest", cost_name="cost")
    a.two_stage_fca(name="x", **kw)
    return a.access_df["x_cap"].reindex(np.arange(len(demand))).to_numpy(float)


# --------------------------------------------------------------- pysal's hospital example

TRACTS = pd.DataFrame({"geoid": [1, 2, 3], "pop": [100, 50, 10], "doc": [15, 20, 100]})
# (origin, dest): cost, for scenarios 0–3 of access/tests/test_hospital_example.py
SCENARIOS = [
    {(1, 1): 1, (2, 2): 1, (3, 3): 1, (1, 3): 40, (2, 3): 40, (3, 1): 40, (3, 2): 40, (1, 2): 80, (2, 1): 80},
    {(1, 1): 1, (2, 2): 1, (3, 3): 1, (1, 3): 20, (2, 3): 20, (3, 1): 40, (3, 2): 40, (1, 2): 80, (2, 1): 80},
    {(1, 1): 1, (2, 2): 1, (3, 3): 1, (1, 3): 40, (2, 3): 40, (3, 1): 20, (3, 2): 20, (1, 2): 80, (2, 1): 80},
    {(1, 1): 1, (2, 2): 1, (3, 3): 1, (1, 3): 20, (2, 3): 20, (3, 1): 20, (3, 2): 20, (1, 2): 40, (2, 1): 40},
]


@pytest.mark.parametrize("scenario", range(4))
def test_hospital_example_equals_pysal(scenario: int) -> None:
    costs = SCENARIOS[scenario]
    cost_df = pd.DataFrame([{"origin": o, "dest": d, "cost": c} for (o, d), c in costs.items()])
    a = access.Access(demand_df=TRACTS, demand_index="geoid", demand_value="pop", supply_df=TRACTS,
                      supply_index="geoid", supply_value="doc", cost_df=cost_df, cost_origin="origin",
                      cost_dest="dest", cost_name="cost")
    a.two_stage_fca(name="g", weight_fn=access.weights.gravity(1, -1), max_cost=61)
    want = a.access_df["g_doc"].loc[[1, 2, 3]].to_numpy()
    # facilities × points: the cost from the point (origin) to the facility (dest)
    dist = _matrix([(d - 1, o - 1, float(c)) for (o, d), c in costs.items()], (3, 3))
    weight = np.where(dist.data <= 61, 1.0 / dist.data, 0.0)
    _, got, _ = two_step_fca(dist, TRACTS["doc"].to_numpy(float), TRACTS["pop"].to_numpy(float), weight)
    np.testing.assert_allclose(got, want, rtol=1e-12)


# ------------------------------------------------------------------- pysal's grid cases


def _grid(n: int = 5, seed: int = 44, sample: int = 5):
    """access/tests/util.create_nxn_grid: supply on every cell, demand on a sample of cells."""
    xy = np.array([(x, y) for x in range(n) for y in range(n)], dtype=float)
    rng = np.random.default_rng(seed)
    supply = rng.integers(1, 200, len(xy)).astype(float)
    dem_cells = rng.choice(len(xy), sample, replace=False)
    demand = rng.integers(1, 200, sample).astype(float)
    d = np.hypot(*(xy[:, None, :] - xy[None, dem_cells, :]).transpose(2, 0, 1))  # supply × demand
    return supply, demand, d


def _cost_df(d: np.ndarray) -> pd.DataFrame:
    f, p = np.meshgrid(np.arange(d.shape[0]), np.arange(d.shape[1]), indexing="ij")
    return pd.DataFrame({"origin": p.ravel(), "dest": f.ravel(), "cost": d.ravel()})


def _dense(d: np.ndarray) -> csr_array:
    return _matrix([(f, p, d[f, p]) for f in range(d.shape[0]) for p in range(d.shape[1])], d.shape)


def test_grid_unit_values_as_pysal_asserts() -> None:
    """pysal's own grid assertions: 25 unit supplies, 5 unit demands → 5 with no cut-off, 1 at 0.9."""
    supply, demand, d = np.ones(25), np.ones(5), _grid()[2]
    dist = _dense(d)
    assert two_step_fca(dist, supply, demand, np.ones(dist.nnz))[1] == pytest.approx(np.full(5, 5.0))
    assert two_step_fca(dist, supply, demand, (dist.data <= 0.9).astype(float))[1] == pytest.approx(np.ones(5))


@pytest.mark.parametrize("cutoff", [0.9, 1.0, math.sqrt(2), 2.0, 3.0])
def test_grid_step_2sfca_equals_pysal(cutoff: float) -> None:
    """Random supplies and demands; 1 and √2 are exact grid distances, so the ``<=`` boundary counts."""
    supply, demand, d = _grid()
    dist = _dense(d)
    _, got, _ = two_step_fca(dist, supply, demand, (dist.data <= cutoff).astype(float))
    want = _pysal(demand, supply, _cost_df(d), max_cost=cutoff)
    np.testing.assert_allclose(got, want, rtol=1e-12)


@pytest.mark.parametrize("sigma, reach", [(1.0, 2.0), (2.0, 3.0), (0.7, 1.0)])
def test_grid_gaussian_e2sfca_equals_pysal(sigma: float, reach: float) -> None:
    supply, demand, d = _grid(seed=7)
    dist = _dense(d)
    w = decay_weight(dist.data, Decay(form="plain", sigma_m=sigma), reach)
    _, got, _ = two_step_fca(dist, supply, demand, w)
    want = _pysal(demand, supply, _cost_df(d), max_cost=reach, weight_fn=access.weights.gaussian(sigma))
    np.testing.assert_allclose(got, want, rtol=1e-12)


def test_grid_dai_gaussian_equals_pysal_with_the_same_weight() -> None:
    supply, demand, d = _grid(seed=3)
    dist = _dense(d)
    decay = Decay(form="dai")
    _, got, _ = two_step_fca(dist, supply, demand, decay_weight(dist.data, decay, 2.5))
    fn = lambda x: float(decay_weight(np.array([x]), decay, 2.5)[0])  # noqa: E731
    want = _pysal(demand, supply, _cost_df(d), max_cost=2.5, weight_fn=fn)
    np.testing.assert_allclose(got, want, rtol=1e-12)


def test_dai_decay_by_hand() -> None:
    w = decay_weight(np.array([0.0, 500.0, 1000.0, 1000.0001]), Decay(form="dai"), 1000.0)
    e = math.exp(-0.5)
    assert w == pytest.approx([1.0, (math.exp(-0.125) - e) / (1 - e), 0.0, 0.0])


def test_no_facility_in_reach_is_zero_and_empty_catchment_has_no_ratio() -> None:
    # facility 0 reaches point 0 only; facility 1 reaches only point 2, which has no elderly
    dist = _matrix([(0, 0, 100.0), (1, 2, 0.0)], (2, 3))
    ratio, acc, dem = two_step_fca(dist, np.array([30.0, 50.0]), np.array([60.0, 10.0, 0.0]), np.ones(2))
    assert ratio[0] == pytest.approx(0.5) and np.isnan(ratio[1])
    assert acc.tolist() == [0.5, 0.0, 0.0] and dem.tolist() == [60.0, 0.0]


# --------------------------------------------------------------------------- allocation


def _sequential(dist: csr_array, capacity, demand, circle_m):
    """The rule, literally: pairs by (distance, facility, point), each gets min(left, left)."""
    fac = np.repeat(np.arange(dist.shape[0]), np.diff(dist.indptr))
    pairs = sorted(zip(dist.data, fac, dist.indices))
    lp, lf = np.array(demand, float), np.array(capacity, float)
    within, beyond = np.zeros(len(lp)), np.zeros(len(lp))
    for d, f, p in pairs:
        g = min(lp[p], lf[f])
        lp[p] -= g
        lf[f] -= g
        (within if d <= circle_m else beyond)[p] += g
    return within, beyond, lp


def test_allocation_nearest_first_by_hand() -> None:
    """One meal point with 30 meals; 20 elderly 100 m away, 20 at 1.2 km (circle 1 km)."""
    dist = _matrix([(0, 0, 100.0), (0, 1, 1200.0)], (1, 2))
    a = allocate(dist, np.array([30.0]), np.array([20.0, 20.0]), circle_m=1000.0)
    assert a.served_within.tolist() == [20.0, 0.0]
    assert a.served_beyond.tolist() == [0.0, 10.0]
    assert a.unserved.tolist() == [0.0, 10.0]
    assert a.served_by_facility.tolist() == [30.0]


def test_allocation_follows_global_order_not_each_points_choice() -> None:
    """B (cap 1) is nearest to p2 (0.5) and p3 (0.1): p3 takes it; p2 then takes A (cap 1) at 1.0,
    before p1 at 5.0, who is left unserved — a "each point proposes to its nearest" round would
    have given A to p1."""
    # facilities A=0, B=1; points p1=0, p2=1, p3=2
    dist = _matrix([(0, 0, 5.0), (0, 1, 1.0), (1, 1, 0.5), (1, 2, 0.1)], (2, 3))
    a = allocate(dist, np.array([1.0, 1.0]), np.array([1.0, 1.0, 1.0]), circle_m=10.0)
    assert a.served_within.tolist() == [0.0, 1.0, 1.0]
    assert a.unserved.tolist() == [1.0, 0.0, 0.0]


def test_allocation_splits_a_point_and_breaks_ties_by_facility() -> None:
    """40 elderly at one point, two facilities both 300 m away with 25 places: the first fills."""
    dist = _matrix([(0, 0, 300.0), (1, 0, 300.0)], (2, 1))
    a = allocate(dist, np.array([25.0, 25.0]), np.array([40.0]), circle_m=1000.0)
    assert a.served_by_facility.tolist() == [25.0, 15.0]
    assert a.served_within.tolist() == [40.0] and a.unserved.tolist() == [0.0]


@st.composite
def _cases(draw):
    n_f, n_p = draw(st.integers(1, 6)), draw(st.integers(1, 12))
    cells = draw(st.sets(st.tuples(st.integers(0, n_f - 1), st.integers(0, n_p - 1)), max_size=n_f * n_p))
    # distances on a coarse grid so ties happen
    dists = draw(st.lists(st.sampled_from([0.0, 100.0, 500.0, 1000.0, 1500.0, 2500.0]), min_size=len(cells), max_size=len(cells)))
    cap = draw(st.lists(st.sampled_from([0.0, 1.0, 7.5, 20.0, 100.0]), min_size=n_f, max_size=n_f))
    dem = draw(st.lists(st.sampled_from([0.0, 0.5, 3.0, 12.0, 40.0]), min_size=n_p, max_size=n_p))
    rows = [(f, p, d) for (f, p), d in zip(sorted(cells), dists)]
    return _matrix(rows, (n_f, n_p)), np.array(cap), np.array(dem)


@settings(max_examples=300, deadline=None)
@given(_cases())
def test_allocation_equals_the_sequential_rule_and_adds_up(case) -> None:
    dist, cap, dem = case
    a = allocate(dist, cap, dem, circle_m=1000.0)
    within, beyond, left = _sequential(dist, cap, dem, 1000.0)
    np.testing.assert_allclose(a.served_within, within, atol=1e-9)
    np.testing.assert_allclose(a.served_beyond, beyond, atol=1e-9)
    served = a.served_within + a.served_beyond
    assert served.sum() <= cap.sum() + 1e-9
    assert (a.served_by_facility <= cap + 1e-9).all()
    np.testing.assert_allclose(served + a.unserved, dem, atol=1e-9)
    np.testing.assert_allclose(a.unserved, left, atol=1e-9)


# ------------------------------------------------------------------ supply and the tables


def test_capacity_sources_in_order_and_unknown_left_unknown() -> None:
    fac = pd.DataFrame({"capacity_meal": [60, np.nan, np.nan, np.nan, np.nan], "capacity": [40, 35, np.nan, np.nan, np.nan],
                        "beds": [np.nan, 12, 12, np.nan, np.nan], "floor_area_m2": [900, 480, 480, 240, np.nan]})
    cap, basis = facility_capacity(fac, CapacitySupply(columns=["capacity", "beds", "floor_area"], m2_per_place=24), "meal")
    # the service's own column first, then the list's one figure, then beds, then floor area
    assert cap[:4].tolist() == [60.0, 35.0, 12.0, 10.0] and np.isnan(cap[4])
    assert basis.tolist() == ["capacity", "capacity", "beds", "floor_area", ""]
    cap, _ = facility_capacity(fac, CapacitySupply(columns=["beds", "capacity"]), "day_care")
    assert cap[:3].tolist() == [40.0, 12.0, 12.0] and np.isnan(cap[3])
    with pytest.raises(ValueError, match="m2_per_place"):
        CapacitySupply(columns=["floor_area"])


def test_balance_classes() -> None:
    assert balance_class(np.array([0.5, 0.8, 1.0, 1.2, 1.21, np.nan]), under_below=0.8, over_above=1.2).tolist() == [
        "under", "balanced", "balanced", "balanced", "over", ""]


def test_capacity_analysis_tables_by_hand() -> None:
    """Two streets; community A (points 0, 1) near a 30-place centre, B (point 2) out of reach,
    C (no points) read at its centre, which the centre reaches. Circle 1000 m, limit 3000 m."""
    profile = load_profile("national")
    fac = pd.DataFrame({"name": ["甲", "乙", "丙"], "day_care": [True, True, False], "meal": [False, False, True],
                        "capacity": [30.0, np.nan, 10.0], "beds": np.nan, "floor_area_m2": np.nan})
    com = pd.DataFrame({"name": ["A", "B", "C"], "street": ["东街道", "西街道", "东街道"]})
    elderly = np.array([20.0, 40.0, 50.0])
    cid = np.array([0, 0, 1])
    # day_care rows searched: 甲 (0) and 乙 (1, no capacity); columns: points 0–2, centres 3–5
    day = _matrix([(0, 0, 200.0), (0, 1, 900.0), (0, 2, 2500.0), (0, 5, 800.0), (1, 2, 100.0)], (2, 6))
    res = capacity_analysis(fac, elderly, cid, com, profile, {"day_care": (np.array([0, 1]), day)},
                            circle_m=1000.0, limit_m=3000.0)
    s = res.summary["services"]["day_care"]
    assert s["without_capacity_names"] == ["乙"] and s["with_capacity"] == 1 and s["by_basis"] == {"capacity": 1}
    assert res.summary["services"]["meal"]["measured"] is False  # no meal distances given
    f = res.facilities
    assert f.loc[0, "elderly_in_catchment_day_care"] == 60.0 and f.loc[0, "load_day_care"] == 2.0
    assert np.isnan(f.loc[1, "load_day_care"]) and np.isnan(f.loc[2, "capacity_day_care"])
    c = res.communities
    # R = 30 / 60 = 0.5 per elderly → 500 per 1000 for both points of A and for C's centre
    assert c["supply_per_1000_elderly_day_care"].tolist() == [500.0, 0.0, 500.0]
    assert c["no_capacity_in_reach_day_care"].tolist() == [False, True, False]
    # allocation: point 0 (200 m) 20, point 1 (900 m) 10 of 40; point 2 gets nothing (甲 is full)
    assert c["elderly_served_within_day_care"].tolist() == [30.0, 0.0, 0.0]
    assert c["elderly_served_beyond_day_care"].tolist() == [0.0, 0.0, 0.0]
    assert c["elderly_unserved_day_care"].tolist() == [30.0, 50.0, 0.0]
    st_ = res.streets.set_index("street")
    # city mean = Σ e·A / Σ e = 30 / 110 places per elderly; 东: 500, 西: 0
    city = 1000 * 30 / 110
    assert s["supply_per_1000_elderly_city"] == pytest.approx(city)
    assert st_.loc["东街道", "supply_demand_ratio_day_care"] == pytest.approx(500 / city)
    assert st_["supply_demand_class_day_care"].to_dict() == {"东街道": "over", "西街道": "under"}
    assert s["elderly_served_within"] + s["elderly_served_beyond"] + s["elderly_unserved"] == pytest.approx(elderly.sum())


# ------------------------------------------------------------------------- map and report


def test_map_has_a_balance_choropleth_per_measured_service() -> None:
    from fixtures_maps import layer_features, map_args, small_inputs

    from carecircle.maps import html as H

    inputs = small_inputs()
    streets = inputs["streets"].copy()
    streets["supply_per_1000_elderly_meal"] = [12.5, 3.0]
    streets["supply_demand_class_meal"] = ["over", "under"]
    page = H.build_map(**map_args(inputs, streets=streets)).get_root().render()
    feats = layer_features(page)["街道供需比：助餐点"]
    colours = {f["properties"]["_tip"].split(" · ")[0]: f["properties"]["_colour"] for f in feats}
    assert colours == {streets["street"][0]: H.BALANCE_COLOURS["over"], streets["street"][1]: H.BALANCE_COLOURS["under"]}
    assert "供给不足" in feats[1]["properties"]["_tip"] and "3.0" in feats[1]["properties"]["_tip"]
    assert "街道供需比：日间照料中心" not in layer_features(page)  # not measured: no layer
    assert "供需比：供给富余" in page  # the legend


def test_report_chart_only_for_measured_services() -> None:
    from carecircle.maps import labels as L
    from carecircle.maps.planning_report import balance_chart, find_cjk_font

    streets = pd.DataFrame({"street": ["东街道", "西街道"], "supply_per_1000_elderly_meal": [12.5, 3.0],
                            "supply_demand_class_meal": ["over", "under"]})
    capacity = {"services": {"meal": {"balance_base": "city_mean", "balance_base_per_1000_elderly": 7.0}}}
    lab = L.Labels("zh", services={"meal": {"label_zh": "助餐点", "label_en": "meal point"}})
    try:
        find_cjk_font()
    except RuntimeError as exc:
        pytest.skip(str(exc))
    png = balance_chart(streets, capacity, lab)
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    assert balance_chart(streets.drop(columns="supply_demand_class_meal"), capacity, lab) is None


def test_loader_reads_one_capacity_column_per_service(tmp_path) -> None:
    from carecircle.layers.facilities import read_facilities

    p = tmp_path / "fac.csv"
    p.write_text("名称,类型,经度,纬度,托位,日供餐量,服务能力\n"
                 "甲日间照料中心,日间照料中心（含助餐点）,120.35,31.53,20,80,\n"
                 "乙助餐点,助餐点,120.36,31.53,,,45\n"
                 "丙助餐点,助餐点,120.37,31.53,,-3,\n", encoding="utf-8")
    gdf, report = read_facilities(p, target_crs="EPSG:32651")
    assert gdf["capacity_day_care"].tolist()[:1] == [20.0] and gdf["capacity_day_care"].isna().tolist()[1:] == [True, True]
    assert gdf["capacity_meal"].tolist()[0] == 80.0 and gdf["capacity_meal"][1:].isna().all()  # -3: unknown
    assert gdf["capacity"].isna().tolist() == [True, False, True] and gdf["capacity"][1] == 45.0
    assert any("capacity_meal" in n and "unreadable or negative" in n for n in report.notes)
    spec = CapacitySupply(columns=["capacity"])
    assert facility_capacity(gdf, spec, "meal")[0][:2].tolist() == [80.0, 45.0]
