"""Siting integer programs: brute force over every k-subset, and spopt (CBC) as an oracle.

Coverage matrices are random here; the walk-network side of the coverage sets is
``coverage.catchment`` (tested against networkx in test_catchment.py).
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.sparse import csr_array

from carecircle.coverage.siting import Demand, evaluate, solve
from carecircle.errors import InputError


def brute_max(cover, demand, k):
    best = 0.0
    for r in range(k + 1):
        for sub in itertools.combinations(range(cover.shape[0]), r):
            best = max(best, evaluate(cover, demand, list(sub))[2])
    return best


def brute_min(cover, demand, want):
    """Fewest sites whose gain reaches ``want`` (None if no subset does)."""
    for r in range(cover.shape[0] + 1):
        for sub in itertools.combinations(range(cover.shape[0]), r):
            if evaluate(cover, demand, list(sub))[2] >= want - 1e-9:
                return r
    return None


@st.composite
def instance(draw):
    nc = draw(st.integers(1, 7))
    npt = draw(st.integers(1, 14))
    seed = draw(st.integers(0, 2**31))
    rng = np.random.default_rng(seed)
    dense = rng.random((nc, npt)) < draw(st.sampled_from([0.15, 0.3, 0.5]))
    # Explicit zeros count as coverage: store some entries with distance 0.
    dist = np.where(dense, rng.choice([0.0, 10.0, 500.0], size=dense.shape), 0.0)
    rows, cols = np.nonzero(dense)
    cover = csr_array((dist[rows, cols], (rows, cols)), shape=(nc, npt))
    value = rng.choice([0.0, 1.0, 2.5, 7.0], size=npt)
    covered = rng.random(npt) < 0.2
    by_com = draw(st.booleans())
    if by_com:
        ncom = draw(st.integers(1, 4))
        community = rng.integers(-1, ncom, npt)
        share_weight = np.where(value > 0, value, rng.choice([0.0, 1.0], size=npt))
        demand = Demand(value, covered, community, share_weight, draw(st.sampled_from([0.3, 0.5, 2 / 3, 1.0])), ncom)
    else:
        demand = Demand(value, covered)
    return cover, demand


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(instance(), st.integers(0, 3))
def test_max_coverage_equals_brute_force(case, k):
    cover, demand = case
    sol = solve(cover, demand, objective="max_coverage", new_sites=k)
    assert sol.optimal
    assert len(sol.chosen) <= k and len(set(sol.chosen.tolist())) == len(sol.chosen)
    assert sol.value == pytest.approx(brute_max(cover, demand, k), abs=1e-9)
    assert sol.value == pytest.approx(evaluate(cover, demand, sol.chosen)[2])
    assert sol.greedy_value <= sol.value + 1e-9  # the greedy plan is a lower bound


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(instance(), st.sampled_from([0.25, 0.5, 0.8, 1.0]))
def test_min_sites_equals_brute_force(case, share):
    cover, demand = case
    sol = solve(cover, demand, objective="min_sites", target=share)
    assert sol.optimal
    everything = evaluate(cover, demand, np.arange(cover.shape[0]))[2]
    gain = evaluate(cover, demand, sol.chosen)[2]
    if demand.by_community:
        from carecircle.coverage.siting import community_passing

        before = community_passing(demand, demand.covered).sum()
        want = max(0.0, np.ceil(share * demand.n_communities - 1e-9) - before)
    else:
        want = max(0.0, share * demand.value.sum() - demand.value[demand.covered].sum())
    assert sol.target_reachable == (want <= everything + 1e-9)
    want = min(want, everything)
    assert gain >= want - 1e-6
    assert sol.value == brute_min(cover, demand, want - 1e-6)
    assert sol.greedy_value >= sol.value  # greedy sites: an upper bound


def test_majority_rule_by_hand():
    """Two communities of two points each (elderly 3+1 and 2+2), min_share 0.5.

    Candidate 0 reaches community A's big point (3 of 4: passes A); candidate 1 reaches one
    point of each community (1 of A, 2 of B: passes B alone); candidate 2 reaches B's other
    point. One site: either passes one community; the tie-break prefers more elderly
    (candidate 0: 3 elderly vs candidate 1: 3 elderly → equal; both pass one). Two sites:
    {0, 1} passes both (A 4/4, B 2/4).
    """
    #                  A3 A1 B2 B2
    dense = np.array([[1, 0, 0, 0],
                      [0, 1, 1, 0],
                      [0, 0, 0, 1]])
    cover = csr_array(dense.astype(float))
    value = np.array([3.0, 1.0, 2.0, 2.0])
    demand = Demand(value, np.zeros(4, bool), np.array([0, 0, 1, 1]), value, 0.5, 2)
    one = solve(cover, demand, objective="max_coverage", new_sites=1)
    assert one.value == 1 and one.optimal
    two = solve(cover, demand, objective="max_coverage", new_sites=2)
    assert two.value == 2 and sorted(two.chosen.tolist()) == [0, 1]
    least = solve(cover, demand, objective="min_sites", target=1.0)
    assert least.value == 2 and sorted(least.chosen.tolist()) == [0, 1]
    # By elderly instead: 2 sites cover at most 3 + 3 = 6 ({0, 1}) or 3 + 2 ... = {0,1} 6, {1,2} 5.
    by_value = solve(cover, Demand(value, np.zeros(4, bool)), objective="max_coverage", new_sites=2)
    assert by_value.value == 6.0


def test_capacity_limits_what_a_site_serves():
    # One candidate reaching 10 elderly with capacity 4: it serves 4; two sites serve 8.
    cover = csr_array(np.array([[1.0, 1.0, 0.0], [0.0, 1.0, 1.0]]))
    demand = Demand(np.array([5.0, 3.0, 2.0]), np.zeros(3, bool))
    sol = solve(cover, demand, objective="max_coverage", new_sites=1, capacity=4.0)
    assert sol.value == pytest.approx(4.0)
    sol = solve(cover, demand, objective="max_coverage", new_sites=2, capacity=4.0)
    assert sol.value == pytest.approx(8.0)
    sol = solve(cover, demand, objective="max_coverage", new_sites=2, capacity=100.0)
    assert sol.value == pytest.approx(10.0)


def test_capacity_keeps_two_sites_over_the_same_points():
    # Two candidates reaching the same 5 + 3 elderly, capacity 4 each: together they serve 8
    # (merged into one interchangeable candidate they would serve only 4).
    cover = csr_array(np.array([[1.0, 1.0], [1.0, 1.0]]))
    demand = Demand(np.array([5.0, 3.0]), np.zeros(2, bool))
    sol = solve(cover, demand, objective="max_coverage", new_sites=2, capacity=4.0)
    assert sol.value == pytest.approx(8.0)
    assert sorted(sol.chosen.tolist()) == [0, 1]
    # Without a capacity one of them is enough for all 8.
    assert solve(cover, demand, objective="max_coverage", new_sites=2).weight_gain == pytest.approx(8.0)


def test_bad_parameters():
    cover = csr_array(np.ones((1, 1)))
    demand = Demand(np.ones(1), np.zeros(1, bool))
    with pytest.raises(InputError, match="objective"):
        solve(cover, demand, objective="p_median", new_sites=1)
    with pytest.raises(InputError, match="new_sites"):
        solve(cover, demand, objective="max_coverage")
    with pytest.raises(InputError, match="target_share"):
        solve(cover, demand, objective="min_sites", target=1.5)


def elderly_gain(cover, demand, chosen):
    covered = evaluate(cover, demand, chosen)[0]
    return float(demand.value[covered & ~demand.covered].sum())


def brute_lexicographic(cover, demand, *, k=None, want=None):
    """Every subset: (primary, elderly) best lexicographically — most (communities or value)
    within ``k`` sites for max_coverage; fewest sites reaching ``want`` for min_sites, then
    the most elderly among those."""
    best = None
    for r in range(cover.shape[0] + 1 if k is None else k + 1):
        for sub in itertools.combinations(range(cover.shape[0]), r):
            gain = evaluate(cover, demand, list(sub))[2]
            if want is not None and gain < want - 1e-9:
                continue
            key = (-r if want is not None else gain, elderly_gain(cover, demand, list(sub)))
            best = key if best is None or key > best else best
    return best


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(instance(), st.integers(0, 3))
def test_max_coverage_takes_the_most_elderly_among_the_best_plans(case, k):
    cover, demand = case
    sol = solve(cover, demand, objective="max_coverage", new_sites=k)
    gain, elderly = brute_lexicographic(cover, demand, k=k)
    assert sol.value == pytest.approx(gain, abs=1e-9)
    assert elderly_gain(cover, demand, sol.chosen) == pytest.approx(elderly, abs=0.011)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(instance(), st.sampled_from([0.25, 0.5, 1.0]))
def test_min_sites_takes_the_most_elderly_among_the_smallest_plans(case, share):
    cover, demand = case
    sol = solve(cover, demand, objective="min_sites", target=share)
    neg_sites, elderly = brute_lexicographic(cover, demand, want=sol.target)
    assert sol.value == -neg_sites
    assert elderly_gain(cover, demand, sol.chosen) == pytest.approx(elderly, abs=0.011)


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 40), st.integers(1, 12), st.integers(0, 2**31), st.sampled_from([0.1, 0.3, 0.6]))
def test_dominated_rows_are_the_strict_subsets(n, m, seed, p):
    from carecircle.coverage.siting import _dominated

    rng = np.random.default_rng(seed)
    dense = np.unique(rng.random((n, m)) < p, axis=0)  # distinct rows, as _reduce leaves them
    got = _dominated(csr_array(dense), block=7)  # a small block: several blocks, their seams
    sets = [set(np.flatnonzero(r)) for r in dense]
    want = [any(a < b for b in sets) for a in sets]
    assert got.tolist() == want


def reference_milp(cover, demand, k):
    """The majority-rule MCLP written plainly (scipy's HiGHS, no reductions, no extra rows),
    solved in two stages: the most communities newly passing within ``k`` sites, then — held
    there — the most elderly newly within the circle."""
    from scipy.optimize import Bounds, LinearConstraint, milp

    from carecircle.coverage.siting import community_passing

    nc, npt, ng = cover.shape[0], cover.shape[1], demand.n_communities
    a = (csr_array((np.ones(cover.nnz), cover.indices, cover.indptr), shape=cover.shape)).toarray()
    inside = demand.community >= 0
    member = np.zeros((ng, npt))
    member[demand.community[inside], np.flatnonzero(inside)] = demand.share_weight[inside]
    total = member.sum(axis=1)
    before = community_passing(demand, demand.covered)
    # columns: x (nc), y (npt), z (ng)
    rows = [np.hstack([-a.T, np.eye(npt), np.zeros((npt, ng))]),                       # y ≤ Σ x (+1 if covered)
            np.hstack([np.zeros((ng, nc)), -member, np.diag(demand.min_share * total)]),  # share rule
            np.r_[np.ones(nc), np.zeros(npt + ng)][None]]                               # Σ x ≤ k
    hi = np.r_[demand.covered.astype(float), np.zeros(ng), k]
    lo = np.full(len(hi), -np.inf)
    lb = np.r_[np.zeros(nc), demand.covered.astype(float), np.zeros(ng)]
    ub = np.r_[np.ones(nc + npt), (total > 0).astype(float)]
    integ = np.r_[np.ones(nc), np.zeros(npt), np.ones(ng)]
    z_cost = np.r_[np.zeros(nc + npt), -np.ones(ng)]
    first = milp(z_cost, constraints=LinearConstraint(np.vstack(rows), lo, hi), integrality=integ,
                 bounds=Bounds(lb, ub), options={"mip_rel_gap": 0})
    best = round(-first.fun)
    rows.append(-z_cost[None])
    lo, hi = np.r_[lo, best - 1e-6], np.r_[hi, np.inf]
    v_cost = -np.r_[np.zeros(nc), demand.value * ~demand.covered, np.zeros(ng)]
    second = milp(v_cost, constraints=LinearConstraint(np.vstack(rows), lo, hi), integrality=integ,
                  bounds=Bounds(lb, ub), options={"mip_rel_gap": 0})
    return best - int(before.sum()), -second.fun


@pytest.mark.parametrize("seed", range(8))
def test_majority_rule_same_optimum_as_a_plain_model(seed):
    """Instances too big for brute force (40 sites × 90 points, with nested and equal
    coverage sets): the reduced, tightened one-solve model against a plain two-stage one."""
    rng = np.random.default_rng(seed)
    nc, npt, ng = 40, 90, 9
    dense = rng.random((nc, npt)) < 0.08
    dense[:10] |= dense[10:20]  # supersets of other candidates: the dominance reduction acts
    dense[20:25] = dense[25:30]  # equal sets: merged
    r, c = np.nonzero(dense)
    cover = csr_array((np.zeros(len(r)), (r, c)), shape=(nc, npt))
    value = rng.choice([0.0, 1.0, 3.5, 8.0, 12.25], size=npt)
    community = rng.integers(-1, ng, npt)
    demand = Demand(value, rng.random(npt) < 0.15, community, np.where(value > 0, value, 1.0), 0.5, ng)
    k = 4
    sol = solve(cover, demand, objective="max_coverage", new_sites=k)
    communities, elderly = reference_milp(cover, demand, k)
    assert sol.optimal and sol.model["tie_break_proven"]
    assert sol.value == communities
    assert elderly_gain(cover, demand, sol.chosen) == pytest.approx(elderly, abs=0.011)


# --------------------------------------------------------------------------- spopt oracle

spopt = pytest.importorskip("spopt.locate", reason="spopt (test-only oracle) not installed")
# pulp 3.x announces its 4.0 API on every variable; not ours.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:pulp")
pulp = pytest.importorskip("pulp")


@pytest.mark.parametrize("seed", range(6))
def test_same_optimum_as_spopt(seed):
    rng = np.random.default_rng(seed)
    n_cli, n_fac, n_old = 60, 25, 2
    cli = rng.uniform(0, 1000, (n_cli, 2))
    fac = rng.uniform(0, 1000, (n_fac + n_old, 2))
    cost = np.linalg.norm(cli[:, None] - fac[None], axis=2)  # clients × facilities, as spopt takes it
    radius = 180.0
    w = rng.integers(1, 12, n_cli).astype(float)
    old = np.arange(n_fac, n_fac + n_old)
    covered = (cost[:, old] <= radius).any(axis=1)
    inside = cost[:, :n_fac] <= radius
    r, c = np.nonzero(inside.T)
    cover = csr_array((np.zeros(len(r)), (r, c)), shape=(n_fac, n_cli))  # zeros: explicit
    k = 4
    ours = solve(cover, Demand(w, covered), objective="max_coverage", new_sites=k)
    predefined = np.zeros(n_fac + n_old, dtype=int)
    predefined[old] = 1
    mclp = spopt.MCLP.from_cost_matrix(cost, w, radius, p_facilities=k + n_old, predefined_facilities_arr=predefined)
    mclp.solve(pulp.PULP_CBC_CMD(msg=False))
    assert ours.optimal
    assert ours.value + w[covered].sum() == pytest.approx(pulp.value(mclp.problem.objective))
    # LSCP: every client reachable by some candidate must be covered.
    reach = inside.any(axis=1) | covered
    keep = reach
    ours = solve(csr_array(cover[:, np.flatnonzero(keep)]), Demand(np.ones(keep.sum()), covered[keep]),
                 objective="min_sites", target=1.0)
    lscp = spopt.LSCP.from_cost_matrix(cost[keep], radius, predefined_facilities_arr=predefined)
    lscp.solve(pulp.PULP_CBC_CMD(msg=False))
    assert ours.optimal and ours.target_reachable
    assert ours.value + n_old == pytest.approx(pulp.value(lscp.problem.objective))


def test_time_limit_keeps_a_plan_and_says_it_is_not_proven():
    rng = np.random.default_rng(11)
    nc, npt = 400, 600
    dense = rng.random((nc, npt)) < 0.03
    r, c = np.nonzero(dense)
    cover = csr_array((np.ones(len(r)), (r, c)), shape=(nc, npt))
    demand = Demand(rng.integers(1, 20, npt).astype(float), np.zeros(npt, bool))
    sol = solve(cover, demand, objective="max_coverage", new_sites=12, time_limit_s=1e-6)
    assert len(sol.chosen) <= 12
    assert sol.value >= sol.greedy_value - 1e-9  # never worse than the warm start
    if not sol.optimal:
        assert sol.status != "Optimal" and (sol.gap is None or sol.gap > 0 or sol.plan_from == "greedy")
