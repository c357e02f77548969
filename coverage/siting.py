"""Where to build next: the sites that bring the most within the walking circle (location-allocation).

Two integer programs over a coverage relation ``cover`` (candidates × demand points, from
:func:`carecircle.coverage.catchment.catchment_matrix` — the same exact edge-snapped walk
distances as the analysis), with the existing facilities of the service fixed (the points
they already reach are ``Demand.covered``):

* ``max_coverage`` (MCLP, Church & ReVelle 1974): at most ``new_sites`` sites maximising
  the weight newly brought within the circle;
* ``min_sites`` (LSCP / partial set cover): the fewest sites reaching a target.

The weight is ``value`` per point (elderly or people), or *communities*: a community counts
when the weighted share of its points within the circle reaches ``min_share`` — the
majority rule of :class:`~carecircle.coverage.profile.CircleRule`, modelled exactly with a
binary per community (``need_c · z_c ≤ Σ_{i∈c} share_i y_i``), and tightened on the sites
by ``z_c ≤ Σ_j min(1, share_jc / need_c) x_j`` and ``z_c ≤ Σ_j b_jc x_j`` (``b_jc`` 1 where
site ``j`` alone passes ``c``, else ½: a community passes through one such site or through
at least two that touch it). With communities as the weight, or for ``min_sites``, the goal is
lexicographic — the count (of communities, of sites) first, then the most elderly newly
within the circle, proven to ``TIE_BREAK_ABS_GAP`` elderly. ``max_coverage`` by communities
solves it as one integer program whose count carries a weight above all the elderly there
are; ``min_sites`` in two stages (the fewest sites, then — held there — the most elderly),
which HiGHS proves faster for that objective.

Variables: ``x_j`` binary per candidate, ``y_i ∈ [0, 1]`` per demand point
(``y_i ≤ Σ_{j covers i} x_j``; with integral ``x`` the optimum puts ``y_i`` at 0 or 1, so
``y`` need not be integer), ``z_c`` binary per community. Before the model is built,
points already covered and candidates that reach no such point drop out, points with the
same covering candidates (and community) are merged, candidates reaching the same points
are kept once, and a candidate whose points are a strict subset of another's drops out —
on real districts this shrinks the model several-fold without changing its optimum.

Solved with HiGHS through ``highspy`` (not ``scipy.optimize.milp``, which runs the same
HiGHS but can neither take a starting solution nor re-solve a changed objective in place,
as ``min_sites``' second stage does): a greedy plan is passed as the warm start, and the
time limit stops the solver with its incumbent, its bound and the gap. The greedy plan
is a bound (lower for ``max_coverage``, upper on the sites for ``min_sites``) and is
reported as such, never as the answer.

Optional capacity (``capacity``): each new site may serve at most that much ``value``;
demand is then assigned (``a_ij``, fractional) instead of merely covered.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy.sparse import csr_array, diags_array, hstack, vstack

from carecircle.errors import InputError

OBJECTIVES = ("max_coverage", "min_sites")
#: Worth of the elderly newly covered in the greedy heuristic, relative to one community
#: passing (below 1: the heuristic never trades a community for elderly).
TIE_BREAK = 0.5
#: HiGHS optimality tolerances: proven optimal means within these of the bound.
MIP_REL_GAP = 1e-6
#: Worth of share progress towards failing communities in the greedy heuristic (a tie-break
#: below the elderly one).
PROGRESS = 1e-3
MIP_ABS_GAP = 1e-6
#: With the lexicographic weight: the elderly among the best plans are proven to within this
#: many persons.
TIE_BREAK_ABS_GAP = 0.01


@dataclass
class Demand:
    """The demand points and what each brings when it comes within the circle.

    Attributes
    ----------
    value : numpy.ndarray
        Per point, the weight counted (elderly or people); with communities as the weight,
        the tie-break.
    covered : numpy.ndarray
        Bool per point: already within the circle of an existing facility.
    community : numpy.ndarray, optional
        Per point, its community (``0..n-1``, ``-1`` outside any). Given: the weight is
        communities passing the majority rule.
    share_weight : numpy.ndarray, optional
        Per point, its weight in its community's covered share (elderly, or people where
        the community has no elderly counts — as in the indicators).
    min_share : float
        A community passes when ``Σ share_weight·covered / Σ share_weight ≥ min_share``.
    n_communities : int
        Number of communities (those without points never pass by new sites).
    """

    value: np.ndarray
    covered: np.ndarray
    community: np.ndarray | None = None
    share_weight: np.ndarray | None = None
    min_share: float = 0.5
    n_communities: int = 0

    @property
    def by_community(self) -> bool:
        """Whether the weight is communities passing."""
        return self.community is not None


@dataclass
class Solution:
    """A solved siting plan.

    Attributes
    ----------
    chosen : numpy.ndarray
        Candidate indices, ranked: each adds the most to those ranked before it.
    value : float
        The objective, recomputed from the plan: the weight newly within the circle (elderly,
        people or communities newly passing) for ``max_coverage``, the number of sites for
        ``min_sites``.
    weight_gain : float
        The weight newly within the circle (for ``min_sites`` too).
    optimal : bool
        The solver proved the plan optimal on the objective (within ``MIP_REL_GAP``; for
        communities and for ``min_sites``, exactly on that count — the elderly tie-break's
        own proof is ``model["tie_break_proven"]``).
    gap : float or None
        Relative gap between the plan and the solver's bound (0 when optimal).
    bound : float or None
        The solver's bound on the objective.
    status : str
        HiGHS model status (``Optimal``, ``Time limit reached`` ...) or ``trivial``.
    solver : str
    solve_s : float
        Wall time of the solve (model build included).
    greedy_value : float
        The greedy plan's objective: a lower bound (``max_coverage``) or an upper bound
        (``min_sites``), used as the warm start.
    target : float or None
        ``min_sites``: the weight to reach (capped at what all candidates reach).
    target_reachable : bool
        ``min_sites``: whether the requested target can be reached with the candidates.
    model : dict
        Size of the integer program after the reductions.
    plan_from : str
        ``solver`` (HiGHS's plan), ``greedy`` (the time limit passed before HiGHS had any
        plan: the greedy plan, not proven) or ``trivial`` (nothing to choose).
    """

    chosen: np.ndarray
    value: float
    weight_gain: float
    optimal: bool
    gap: float | None
    bound: float | None
    status: str
    solver: str
    solve_s: float
    greedy_value: float
    target: float | None = None
    target_reachable: bool = True
    model: dict = field(default_factory=dict)
    plan_from: str = "solver"


def evaluate(cover: csr_array, demand: Demand, chosen) -> tuple[np.ndarray, np.ndarray | None, float]:
    """The after-state of a plan, computed directly (no solver).

    Parameters
    ----------
    cover : scipy.sparse.csr_array
        Candidates × points coverage relation (stored entries, zeros included).
    demand : Demand
    chosen : array-like of int
        Candidate indices.

    Returns
    -------
    covered : numpy.ndarray
        Bool per point within the circle after the plan.
    passing : numpy.ndarray or None
        Bool per community passing after the plan (``None`` unless by community).
    gain : float
        The weight newly within the circle: communities newly passing, else ``value``.
    """
    chosen = np.asarray(chosen, dtype=np.int64)
    covered = demand.covered.copy()
    if len(chosen):
        sub = cover[chosen]
        covered[sub.indices] = True
    if not demand.by_community:
        return covered, None, float(demand.value[covered & ~demand.covered].sum())
    before, after = community_passing(demand, demand.covered), community_passing(demand, covered)
    return covered, after, float((after & ~before).sum())


def community_passing(demand: Demand, covered: np.ndarray) -> np.ndarray:
    """Bool per community: the majority rule with ``covered`` points (the indicators' formula)."""
    inside = demand.community >= 0
    c, w = demand.community[inside], demand.share_weight[inside]
    total = np.bincount(c, weights=w, minlength=demand.n_communities)
    part = np.bincount(c, weights=w * covered[inside], minlength=demand.n_communities)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (total > 0) & (part / total >= demand.min_share)


def solve(cover: csr_array, demand: Demand, *, objective: str, new_sites: int | None = None,
          target: float | None = None, time_limit_s: float = 60.0, capacity: float | None = None) -> Solution:
    """Choose sites among the candidates (see the module notes for the model).

    Parameters
    ----------
    cover : scipy.sparse.csr_array
        Candidates × points: a stored entry means the candidate brings the point within the
        circle (the structure counts, explicit zeros included).
    demand : Demand
    objective : {"max_coverage", "min_sites"}
    new_sites : int
        ``max_coverage``: how many sites at most.
    target : float
        ``min_sites``: the share to reach after the plan, 0–1 — of the communities, or of
        the total ``value``.
    time_limit_s : float
        Solver time limit; when it stops the solver, the incumbent is returned with its gap.
    capacity : float, optional
        Most ``value`` a new site may serve (``max_coverage``, weight by ``value``).

    Returns
    -------
    Solution
    """
    if objective not in OBJECTIVES:
        raise InputError(f"siting.objective: {objective!r}: use one of {', '.join(OBJECTIVES)}")
    if objective == "max_coverage" and (new_sites is None or new_sites < 0):
        raise InputError("siting.new_sites: max_coverage needs the number of sites to add (≥ 0)")
    if objective == "min_sites" and (target is None or not 0 <= target <= 1):
        raise InputError("siting.target_share: min_sites needs a share to reach between 0 and 1")
    if capacity is not None and (objective != "max_coverage" or demand.by_community or not capacity > 0):
        raise InputError("siting.capacity: only with objective max_coverage, weight elderly or population, and > 0")
    t0 = time.perf_counter()
    phases: dict = {}
    m = _reduce(csr_array(cover), demand, merge_equal=capacity is None)
    target_abs, reachable = None, True
    if objective == "min_sites":
        target_abs, reachable = _target(demand, m, target)
    greedy_x = _greedy(m, objective, new_sites, target_abs)
    greedy_value = float(len(greedy_x)) if objective == "min_sites" else _gain(m, greedy_x)[0]
    trivial = m.n_cand == 0 or (objective == "max_coverage" and new_sites == 0) or \
        (objective == "min_sites" and target_abs is not None and target_abs <= 1e-12)
    if trivial:
        chosen_local, status, optimal, gap, bound, solver = np.zeros(0, dtype=np.int64), "trivial", True, 0.0, None, "none"
        plan_from = "trivial"
        if objective == "max_coverage":
            bound = 0.0
    else:
        chosen_local, status, optimal, gap, bound, plan_from = _highs(m, objective, new_sites, target_abs, time_limit_s,
                                                                      capacity, greedy_x, phases=phases)
        solver = _solver_name()
    ranked = _rank(m, chosen_local, keep_all=capacity is not None)
    chosen = m.cand[ranked]
    _, _, gain = evaluate(cover, demand, chosen)
    if capacity is not None:
        gain = _capacitated_gain(m, ranked, capacity)
    value = float(len(chosen)) if objective == "min_sites" else gain
    return Solution(chosen=chosen, value=value, weight_gain=gain, optimal=optimal, gap=gap, bound=bound, status=status,
                    solver=solver, solve_s=time.perf_counter() - t0, greedy_value=float(greedy_value),
                    target=target_abs, target_reachable=reachable, plan_from=plan_from,
                    model={"candidates": int(m.n_cand), "points": int(m.n_pts), "communities": int(m.n_com),
                           "nnz": int(m.a.nnz), **phases})


# --------------------------------------------------------------------------- reduced model


@dataclass
class _Model:
    """The reduced instance: candidates ``cand`` × merged uncovered points."""

    cand: np.ndarray  # original candidate index per model candidate
    a: csr_array  # model candidates × merged points (bool)
    value: np.ndarray  # per merged point
    com: np.ndarray  # per merged point: model community, -1 none (by community only)
    share: np.ndarray  # per merged point: its share of its community
    need: np.ndarray  # per model community: share still missing
    com_id: np.ndarray  # original community per model community
    value_total: float  # tie-break normaliser
    by_community: bool

    @property
    def n_cand(self) -> int:
        return self.a.shape[0]

    @property
    def n_pts(self) -> int:
        return self.a.shape[1]

    @property
    def n_com(self) -> int:
        return len(self.need)


def _reduce(cover: csr_array, demand: Demand, *, merge_equal: bool = True) -> _Model:
    """Drop covered points and useless candidates, merge points with equal covering sets.

    With ``merge_equal``, candidates reaching the same points are kept once; not when sites
    have a capacity, where two such sites serve twice what one does.
    """
    n_pts = cover.shape[1]
    if len(demand.covered) != n_pts or len(demand.value) != n_pts:
        raise InputError(f"siting: demand has {len(demand.covered)} points for a coverage matrix of {n_pts}")
    relevant = ~demand.covered
    by_com = demand.by_community
    need_all = None
    if by_com:
        passing = community_passing(demand, demand.covered)
        inside = demand.community >= 0
        total = np.bincount(demand.community[inside], weights=demand.share_weight[inside], minlength=demand.n_communities)
        have = np.bincount(demand.community[inside], weights=(demand.share_weight * demand.covered)[inside],
                           minlength=demand.n_communities)
        with np.errstate(invalid="ignore", divide="ignore"):
            need_all = np.where(total > 0, demand.min_share - have / total, np.inf)
        # A point matters for a failing community or as a tie-break (elderly newly covered).
        open_com = np.zeros(len(demand.covered), dtype=bool)
        open_com[inside] = ~passing[demand.community[inside]]
        relevant &= open_com | (demand.value > 0)
    else:
        relevant &= demand.value > 0
    pts = np.flatnonzero(relevant)
    sub = csr_array(cover[:, pts])
    sub = csr_array((np.ones(sub.nnz, dtype=bool), sub.indices, sub.indptr), shape=sub.shape)
    cand = np.flatnonzero(np.diff(sub.indptr) > 0)
    sub = sub[cand]
    # Merge points with the same covering candidates (and community): a hash of the set.
    t = sub.T.tocsr()
    t.sort_indices()
    keys = _row_keys(t)
    com = demand.community[pts] if by_com else np.full(len(pts), -1)
    keep = keys[:, 0] > 0  # a point no candidate reaches cannot change
    key = np.column_stack([com[keep], keys[keep]])
    _, first, inv = np.unique(key, axis=0, return_index=True, return_inverse=True)
    inv = inv.ravel()
    kept = np.flatnonzero(keep)
    value = np.bincount(inv, weights=demand.value[pts][kept], minlength=len(first))
    a = csr_array(t[kept[first]].T.tocsr())
    if merge_equal:
        # Candidates reaching exactly the same points are interchangeable: keep one of each.
        a.sort_indices()
        same = _row_keys(a)
        _, one = np.unique(same, axis=0, return_index=True)
        one = np.sort(one)
        cand, a = cand[one], csr_array(a[one])
        # A candidate whose points are a strict subset of another's is never needed: swapping
        # it for the other keeps the plan's size and loses nothing (every weight here grows
        # with the points covered). Not with a capacity, where the smaller site still serves.
        keep_cand = ~_dominated(a)
        cand, a = cand[keep_cand], csr_array(a[keep_cand])
    merged_com = com[kept[first]]
    share = np.zeros(len(first))
    com_id = np.zeros(0, dtype=np.int64)
    need = np.zeros(0)
    if by_com:
        total = np.bincount(demand.community[inside], weights=demand.share_weight[inside], minlength=demand.n_communities)
        w = demand.share_weight[pts][kept]
        with np.errstate(invalid="ignore", divide="ignore"):
            share = np.bincount(inv, weights=w, minlength=len(first)) / np.where(merged_com >= 0, total[np.maximum(merged_com, 0)], 1)
        share = np.where(merged_com >= 0, share, 0.0)
        # Communities still failing that all candidates together could pass.
        reach_share = np.bincount(merged_com[merged_com >= 0], weights=share[merged_com >= 0], minlength=demand.n_communities)
        open_ids = np.flatnonzero(~passing & np.isfinite(need_all) & (reach_share >= need_all - 1e-12))
        local = np.full(demand.n_communities, -1)
        local[open_ids] = np.arange(len(open_ids))
        merged_com = np.where(merged_com >= 0, local[np.maximum(merged_com, 0)], -1)
        com_id, need = open_ids, need_all[open_ids]
    return _Model(cand=cand, a=a, value=value, com=merged_com, share=share, need=need, com_id=com_id,
                  value_total=float(value.sum()), by_community=by_com)


def _dominated(a: csr_array, block: int = 256) -> np.ndarray:
    """Bool per row of a boolean matrix of distinct rows: its set is a strict subset of another row's.

    Row ``j`` lies in row ``k`` when their overlap ``(A Aᵀ)[j, k]`` is all of ``j``; the
    product is formed ``block`` rows at a time, so memory grows with the overlaps of one
    block, never with rows².
    """
    ai = csr_array(a.astype(np.int32))
    at = csr_array(ai.T)
    cnt = np.diff(ai.indptr)
    out = (cnt == 0) & (cnt.max(initial=0) > 0)  # the empty set lies in every other
    for lo in range(0, a.shape[0], block):
        ov = (ai[lo:lo + block] @ at).tocoo()
        j, k = ov.row + lo, ov.col
        inside = (ov.data == cnt[j]) & (cnt[k] > cnt[j])
        out[j[inside]] = True
    return out


def _row_keys(a: csr_array) -> np.ndarray:
    """A key per row of a sorted boolean CSR matrix: (count, two random 64-bit hashes of its set)."""
    rng = np.random.default_rng(1)
    r1, r2 = rng.integers(1, 2**62, size=(2, max(a.shape[1], 1)), dtype=np.int64)
    cnt = np.diff(a.indptr)
    h1, h2 = np.zeros(a.shape[0], dtype=np.int64), np.zeros(a.shape[0], dtype=np.int64)
    full = cnt > 0
    with np.errstate(over="ignore"):
        if a.nnz:
            h1[full] = np.add.reduceat(r1[a.indices], a.indptr[:-1][full])
            h2[full] = np.add.reduceat(r2[a.indices], a.indptr[:-1][full])
    return np.stack([cnt, h1, h2], axis=1)


def _target(demand: Demand, m: _Model, share: float) -> tuple[float, bool]:
    """``min_sites``: the weight still to add to reach ``share``, capped at what is reachable."""
    if m.by_community:
        passing = community_passing(demand, demand.covered)
        total = demand.n_communities
        want = max(0.0, np.ceil(share * total - 1e-9) - passing.sum())
        reachable_gain = float(m.n_com)
    else:
        total = float(demand.value.sum())
        want = max(0.0, share * total - float(demand.value[demand.covered].sum()))
        reachable_gain = m.value_total
    if want > reachable_gain + 1e-9:
        return reachable_gain, False
    return float(want), True


def _gain(m: _Model, x) -> tuple[float, float]:
    """Primary gain (communities passing or value) and value gain of model candidates ``x``."""
    covered = np.zeros(m.n_pts, dtype=bool)
    x = np.asarray(x, dtype=np.int64)
    if len(x):
        covered[m.a[x].indices] = True
    vgain = float(m.value[covered].sum())
    if not m.by_community:
        return vgain, vgain
    inside = m.com >= 0
    got = np.bincount(m.com[inside], weights=(m.share * covered)[inside], minlength=m.n_com)
    return float((got >= m.need - 1e-12).sum()), vgain


def _greedy(m: _Model, objective: str, k: int | None, target: float | None) -> np.ndarray:
    """Add the candidate with the largest marginal gain until ``k`` sites or the target."""
    chosen: list[int] = []
    covered = np.zeros(m.n_pts, dtype=bool)
    got = np.zeros(m.n_com)
    done = np.zeros(m.n_com, dtype=bool)
    inside = m.com >= 0
    norm = TIE_BREAK / m.value_total if m.value_total > 0 else 0.0
    primary = 0.0
    while m.n_cand:
        if objective == "max_coverage" and len(chosen) >= k:
            break
        if objective == "min_sites" and primary >= target - 1e-9:
            break
        open_v = m.value * ~covered
        gain_v = m.a @ open_v
        if m.by_community:
            # Per candidate and community, the share it would add: (cand × pts) @ (pts × com).
            s = csr_array((m.share[inside] * ~covered[inside], (np.flatnonzero(inside), m.com[inside])),
                          shape=(m.n_pts, m.n_com))
            add = (m.a.astype(float) @ s).tocoo()
            passes = (got[add.col] + add.data >= m.need[add.col] - 1e-12) & ~done[add.col]
            # Progress towards communities not yet passing breaks the remaining ties, so a
            # site that passes a community only together with another still gets picked.
            progress = np.where(done[add.col], 0.0, np.minimum(add.data, m.need[add.col] - got[add.col]))
            gain = (np.bincount(add.row[passes], minlength=m.n_cand) + norm * gain_v
                    + PROGRESS * np.bincount(add.row, weights=progress, minlength=m.n_cand))
        else:
            gain = gain_v
        j = int(np.argmax(gain))
        if gain[j] <= 0:
            break
        chosen.append(j)
        newly = m.a[[j]].indices
        newly = newly[~covered[newly]]
        covered[newly] = True
        if m.by_community:
            sel = newly[inside[newly]]
            got += np.bincount(m.com[sel], weights=m.share[sel], minlength=m.n_com)
            done = got >= m.need - 1e-12
            primary = float(done.sum())
        else:
            primary = float(m.value[covered].sum())
    return np.array(chosen, dtype=np.int64)


def _rank(m: _Model, chosen: np.ndarray, *, keep_all: bool = False) -> np.ndarray:
    """The chosen model candidates in greedy order of their marginal gain among themselves.

    A site that brings no point within the circle once those ranked before it are built is
    left out: the plan reaches the same with fewer sites (``max_coverage`` asks for at most
    ``new_sites``). With ``keep_all`` (sites with a capacity, where a second site over the
    same points still serves more) such sites are ranked last instead.
    """
    chosen = np.asarray(chosen, dtype=np.int64)
    if len(chosen) < 2:
        return chosen
    sub = _Model(cand=m.cand[chosen], a=csr_array(m.a[chosen]), value=m.value, com=m.com, share=m.share,
                 need=m.need, com_id=m.com_id, value_total=m.value_total, by_community=m.by_community)
    order = _greedy(sub, "max_coverage", len(chosen), None)
    if keep_all:
        order = np.r_[order, np.setdiff1d(np.arange(len(chosen)), order)].astype(np.int64)
    return chosen[order]


def _capacitated_gain(m: _Model, chosen: np.ndarray, capacity: float) -> float:
    """Most value the chosen sites can serve with the capacity (a transport LP)."""
    if not len(chosen):
        return 0.0
    sol = _highs(_Model(cand=m.cand[chosen], a=csr_array(m.a[chosen]), value=m.value, com=m.com, share=m.share,
                        need=m.need, com_id=m.com_id, value_total=m.value_total, by_community=False),
                 "max_coverage", len(chosen), None, 60.0, capacity, np.arange(len(chosen)), fix_all=True)
    return float(sol[4])


def _solver_name() -> str:
    from importlib.metadata import version

    return f"HiGHS (highspy {version('highspy')})"


def _highs(m: _Model, objective: str, k, target, time_limit_s: float, capacity, warm: np.ndarray, fix_all: bool = False,
           phases: dict | None = None):
    """Build the integer program of the reduced model, solve it with HiGHS.

    Returns ``(chosen, status, optimal, gap, bound, plan_from)`` with ``bound`` on the primary
    objective; ``phases`` receives the solver's time (``solve_s``, and for ``min_sites`` the
    second stage's ``tie_break_s``) and whether the elderly tie-break was proven
    (``tie_break_proven``).
    """
    import highspy

    phases = {} if phases is None else phases
    nc, npt, ng = m.n_cand, m.n_pts, m.n_com
    a_t = csr_array(m.a.T.astype(float))  # points × candidates
    pairs = a_t.tocoo() if capacity is not None else None
    n_assign = pairs.nnz if pairs is not None else 0

    def row(rows, x=None, y=None, z=None, assign=None):
        """One block of constraint rows over the columns [x | y | z | assign]."""
        parts = [p if p is not None else csr_array((rows, w)) for p, w in zip((x, y, z, assign), (nc, npt, ng, n_assign))]
        return hstack(parts, format="csr")

    eye_p = diags_array(np.ones(npt), format="csr")
    blocks, row_hi = [], []
    if capacity is None:
        # y_i − Σ_{j covers i} x_j ≤ 0
        blocks.append(row(npt, x=-a_t, y=eye_p))
        row_hi.append(np.zeros(npt))
    else:
        # Assignment a_ij per covering pair: y_i − Σ_j a_ij ≤ 0 and Σ_i v_i a_ij − cap x_j ≤ 0.
        pair = np.arange(n_assign)
        take = csr_array((np.ones(n_assign), (pairs.row, pair)), shape=(npt, n_assign))
        serve = csr_array((m.value[pairs.row], (pairs.col, pair)), shape=(nc, n_assign))
        blocks += [row(npt, y=eye_p, assign=-take),
                   row(nc, x=diags_array(np.full(nc, -float(capacity)), format="csr"), assign=serve)]
        row_hi += [np.zeros(npt), np.zeros(nc)]
    if ng:
        # need_c z_c − Σ_{i∈c} share_i y_i ≤ 0
        inside = m.com >= 0
        s = csr_array((m.share[inside], (m.com[inside], np.flatnonzero(inside))), shape=(ng, npt))
        blocks.append(row(ng, y=-s, z=diags_array(m.need, format="csr")))
        row_hi.append(np.zeros(ng))
        # The same on the sites, much tighter in the LP relaxation: a community passes
        # through sites whose shares add up to its need (z_c ≤ Σ_j min(1, share_jc/need_c) x_j),
        # and through one site that passes it alone or at least two that touch it
        # (z_c ≤ Σ_j b_jc x_j, b_jc 1 for the first kind, ½ for the others). Both rows: each
        # is tighter where the other is loose.
        reach = (csr_array(m.a.astype(float)) @ s.T).tocoo()  # sites × communities: share reached
        frac = np.minimum(1.0, reach.data / m.need[reach.col])
        alone = reach.data >= m.need[reach.col] - 1e-12
        for coef in (frac, np.where(alone, 1.0, 0.5)):
            bx = csr_array((-coef, (reach.col, reach.row)), shape=(ng, nc))
            blocks.append(row(ng, x=bx, z=diags_array(np.ones(ng), format="csr")))
            row_hi.append(np.zeros(ng))
    row_lo = [np.full(len(h), -np.inf) for h in row_hi]
    if objective == "max_coverage":
        blocks.append(row(1, x=csr_array(np.ones((1, nc)))))
        row_lo.append([-np.inf])
        row_hi.append([float(k)])
    else:
        reached = row(1, z=csr_array(np.ones((1, ng)))) if m.by_community else row(1, y=csr_array(m.value[None, :]))
        blocks.append(reached)
        row_lo.append([target - (1e-9 if m.by_community else 1e-7 * max(1.0, target))])
        row_hi.append([np.inf])
    a = csr_array(vstack(blocks).tocsr())
    n = nc + npt + ng + n_assign
    # Lexicographic: the primary (communities or sites, integral) first, then the elderly
    # newly covered. For max_coverage by communities in one solve — the count weighted by
    # more than all the elderly there are, so no amount of elderly outweighs one community;
    # for min_sites in two (the fewest sites, then — held there — the most elderly), which
    # HiGHS proves faster there (Xinwu: 8 s against 33 s at 80 %).
    tie_break = m.by_community or objective == "min_sites"
    weighted = tie_break and objective == "max_coverage"
    big = m.value_total + 1.0 if weighted else 1.0
    value_cols = np.r_[np.zeros(nc), m.value, np.zeros(ng + n_assign)]
    if objective == "max_coverage":
        primary = np.r_[np.zeros(nc), np.zeros(npt) if m.by_community else m.value, np.ones(ng), np.zeros(n_assign)]
        cost = primary * big + (value_cols if weighted else 0.0)
        sense = highspy.ObjSense.kMaximize
    else:
        primary = np.r_[np.ones(nc), np.zeros(npt + ng + n_assign)]
        cost = primary
        sense = highspy.ObjSense.kMinimize
    lower, upper = np.zeros(n), np.ones(n)
    if fix_all:
        lower[:nc] = 1.0
    lp = highspy.HighsLp()
    lp.num_col_, lp.num_row_ = n, a.shape[0]
    lp.col_cost_, lp.col_lower_, lp.col_upper_ = cost, lower, upper
    lp.row_lower_, lp.row_upper_ = np.concatenate(row_lo).astype(float), np.concatenate(row_hi).astype(float)
    lp.sense_ = sense
    lp.a_matrix_.format_ = highspy.MatrixFormat.kRowwise
    lp.a_matrix_.start_, lp.a_matrix_.index_, lp.a_matrix_.value_ = a.indptr, a.indices, a.data
    integrality = np.full(n, highspy.HighsVarType.kContinuous)
    if not fix_all:
        integrality[:nc] = highspy.HighsVarType.kInteger
        integrality[nc + npt:nc + npt + ng] = highspy.HighsVarType.kInteger
    lp.integrality_ = list(integrality)
    h = _new_highs()
    t0 = time.perf_counter()
    h.setOptionValue("time_limit", float(time_limit_s))
    if weighted:
        # Proven to within TIE_BREAK_ABS_GAP elderly, so no relative gap: on a weight of
        # `big` per community a relative one would blur the elderly.
        h.setOptionValue("mip_rel_gap", 0.0)
        h.setOptionValue("mip_abs_gap", TIE_BREAK_ABS_GAP)
    else:
        h.setOptionValue("mip_rel_gap", MIP_REL_GAP)
        # An integral objective is proven optimal once the bound is less than one away.
        h.setOptionValue("mip_abs_gap", 1 - 1e-6 if tie_break else MIP_ABS_GAP)
    h.passModel(lp)
    if len(warm) and capacity is None and not fix_all:
        h.setSolution(_warm_start(m, warm, n))
    h.run()
    status = h.modelStatusToString(h.getModelStatus())
    info = h.getInfo()
    phases["solve_s"] = round(time.perf_counter() - t0, 3)
    if fix_all:
        sol = np.asarray(h.getSolution().col_value)
        return None, status, True, 0.0, float(m.value @ sol[nc:nc + npt]), "solver"
    bound = _primary_bound(info.mip_dual_bound, objective, big, tie_break)
    if not info.primal_solution_status:
        return warm, status, False, None, bound, "greedy"  # no incumbent within the time limit
    sol = np.asarray(h.getSolution().col_value)
    optimal = h.getModelStatus() == highspy.HighsModelStatus.kOptimal
    best = float(primary @ sol)
    if tie_break:
        best = float(np.round(best))
        phases["tie_break_proven"] = optimal if weighted else m.value_total == 0
        # The primary is what the plan is judged by: proven once the bound meets it, even if
        # the time limit stopped the elderly tie-break short of its proof.
        optimal = optimal or (bound is not None and bound == best)
    if optimal:
        gap = 0.0
    elif bound is None:
        gap = None
    elif tie_break:
        gap = abs(bound - best) / max(abs(best), 1e-9)
    else:
        gap = float(info.mip_gap) if np.isfinite(info.mip_gap) else None
    left = time_limit_s - (time.perf_counter() - t0)
    if tie_break and not weighted and m.value_total > 0 and left > 0:
        # min_sites, second stage: held at that many sites, the most elderly.
        nz = np.flatnonzero(primary)
        h.addRow(-np.inf, best + 1e-6, len(nz), nz.astype(np.int32), primary[nz])
        h.changeColsCost(n, np.arange(n, dtype=np.int32), value_cols)
        h.changeObjectiveSense(highspy.ObjSense.kMaximize)
        h.setOptionValue("mip_rel_gap", 0.0)
        h.setOptionValue("mip_abs_gap", TIE_BREAK_ABS_GAP)
        h.setOptionValue("time_limit", float(left))
        start = highspy.HighsSolution()
        start.col_value = list(sol)
        start.value_valid = True
        h.setSolution(start)
        h.run()
        phases["tie_break_s"] = round(time.perf_counter() - t0 - phases["solve_s"], 3)
        phases["tie_break_proven"] = h.getModelStatus() == highspy.HighsModelStatus.kOptimal
        if h.getInfo().primal_solution_status:
            sol = np.asarray(h.getSolution().col_value)
    return np.flatnonzero(sol[:nc] > 0.5), status, optimal, gap, bound, "solver"


def _primary_bound(dual_bound: float, objective: str, big: float, integral: bool) -> float | None:
    """The solver's bound on its objective, as a bound on the primary alone.

    With the weight, ``dual = big·P + V`` with ``0 ≤ V < big`` (the elderly): the
    communities are at most ``⌊dual / big⌋``. An integral primary (a count) is bounded by
    the integer on the right side of the bound (``big`` 1 without the weight).
    """
    if not np.isfinite(dual_bound):
        return None
    if not integral:
        return float(dual_bound)
    p = dual_bound / big
    return float(np.floor(p + 1e-9) if objective == "max_coverage" else np.ceil(p - 1e-9))


def _new_highs():
    """A silent HiGHS instance.

    The first instance of a process prints HiGHS's banner on the C-level stdout before any
    option can be set; it is sent to the null device so a run's output stays its own.
    """
    import highspy

    sys.stdout.flush()
    saved, null = os.dup(1), os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, 1)
        h = highspy.Highs()
    finally:
        os.dup2(saved, 1)
        os.close(saved)
        os.close(null)
    h.setOptionValue("output_flag", False)
    return h


def _warm_start(m: _Model, x: np.ndarray, n: int):
    """The greedy plan as a full HiGHS solution (x, y, z)."""
    import highspy

    col = np.zeros(n)
    col[x] = 1.0
    covered = np.zeros(m.n_pts, dtype=bool)
    covered[m.a[x].indices] = True
    col[m.n_cand:m.n_cand + m.n_pts] = covered
    if m.n_com:
        inside = m.com >= 0
        got = np.bincount(m.com[inside], weights=(m.share * covered)[inside], minlength=m.n_com)
        col[m.n_cand + m.n_pts:m.n_cand + m.n_pts + m.n_com] = got >= m.need + 1e-9
    sol = highspy.HighsSolution()
    sol.col_value = list(col)
    sol.value_valid = True
    return sol


# --------------------------------------------------------------------------- on the walk network


@dataclass
class SitingPlan:
    """A solved plan on the walk network, as tables and numbers (no words).

    Attributes
    ----------
    solution : Solution
    sites : pandas.DataFrame
        One row per chosen site in rank order: ``rank``, ``cid`` (candidate id), ``name``,
        ``x``, ``y`` (analysis CRS), ``snap_m``, ``elderly_new``, ``people_new`` (newly
        within the circle, in rank order: what the site adds to those ranked before it),
        ``elderly_reached`` (uncovered elderly it reaches on its own), ``communities_new``
        (names of communities that newly pass with it, ``、``-joined), ``n_communities_new``,
        ``community``, ``street`` (where the site lies), ``nearest_facility``,
        ``nearest_facility_m`` (walk to the nearest existing facility of the service).
    covered_after : numpy.ndarray
        Bool per population point: within the circle after the plan.
    passing_before, passing_after : numpy.ndarray
        Bool per community.
    summary : dict
        The ``siting`` block of summary.json (see the README).
    """

    solution: Solution
    sites: pd.DataFrame
    covered_after: np.ndarray
    passing_before: np.ndarray
    passing_after: np.ndarray
    summary: dict


def siting_demand(*, people: np.ndarray, elderly: np.ndarray, point_community: np.ndarray, covered: np.ndarray,
                  centre_covered: np.ndarray, weight: str, min_share: float) -> Demand:
    """The demand of the analysis: population points, then one centre per community.

    Mirrors :func:`carecircle.coverage.indicators.community_indicators`: a community's share
    is weighted by elderly where it has elderly on its points, else by people; a community
    without weighted points is judged at its centre (all in or all out).

    Parameters
    ----------
    people, elderly, point_community, covered : numpy.ndarray
        Per population point (``point_community`` ``-1`` outside every community;
        ``covered``: within the circle of an existing facility).
    centre_covered : numpy.ndarray
        Per community: its centre within the circle of an existing facility.
    weight : {"communities", "elderly", "population"}
    min_share : float
        ``circle.min_covered_share`` of the profile.

    Returns
    -------
    Demand
        Over ``len(people) + len(centre_covered)`` targets.
    """
    n_com = len(centre_covered)
    inside = point_community >= 0
    pc = point_community[inside]
    eld_sum = np.bincount(pc, weights=elderly[inside], minlength=n_com)
    w = np.zeros(len(people))
    w[inside] = np.where(eld_sum[pc] > 0, elderly[inside], people[inside])
    has_points = np.bincount(pc, weights=w[inside], minlength=n_com) > 0
    com = np.where(inside, point_community, -1)
    com = np.where(inside & has_points[np.maximum(com, 0)], com, -1)
    centre_com = np.where(has_points, -1, np.arange(n_com))
    value = people if weight == "population" else elderly
    return Demand(
        value=np.concatenate([value, np.zeros(n_com)]),
        covered=np.concatenate([covered, centre_covered]),
        community=np.concatenate([com, centre_com]) if weight == "communities" else None,
        share_weight=np.concatenate([w, np.ones(n_com)]),
        min_share=min_share,
        n_communities=n_com,
    )


def plan_sites(graph, candidates, targets, *, candidate_ids, candidate_names, existing, existing_names,
               people: np.ndarray, elderly: np.ndarray, point_community: np.ndarray, covered: np.ndarray,
               centre_covered: np.ndarray, community_names: np.ndarray, community_streets: np.ndarray,
               site_community: np.ndarray, cutoff_m: float, min_share: float, objective: str, weight: str,
               new_sites: int | None = None, target_share: float | None = None, time_limit_s: float = 60.0,
               capacity: float | None = None, report_limit_m: float | None = None) -> SitingPlan:
    """Choose new sites of one service on the walk network and measure what they change.

    Parameters
    ----------
    graph : WalkGraph
    candidates : Snapped
        The candidate sites (unsnapped ones take no part).
    targets : Snapped
        The population points, then one centre per community (as the analysis snaps them).
    candidate_ids, candidate_names : numpy.ndarray
        Per candidate.
    existing : Snapped
        The service's existing facilities; ``existing_names`` per entry.
    people, elderly, point_community, covered, centre_covered
        See :func:`siting_demand`.
    community_names, community_streets : numpy.ndarray
        Per community.
    site_community : numpy.ndarray
        Per candidate, the community it lies in (``-1`` none).
    cutoff_m : float
        The walking circle.
    min_share : float
        The majority rule's share.
    objective, weight, new_sites, target_share, time_limit_s, capacity
        See :func:`solve`; ``target_share`` defaults to all.
    report_limit_m : float, optional
        Search limit for the nearest existing facility of each site (default 3 × circle).

    Returns
    -------
    SitingPlan
    """
    from carecircle.coverage.catchment import catchment_matrix
    from carecircle.coverage.reach import nearest_distance

    n_pop, n_com = len(people), len(centre_covered)
    cover = catchment_matrix(graph, candidates, targets, cutoff_m=cutoff_m)
    demand = siting_demand(people=people, elderly=elderly, point_community=point_community, covered=covered,
                           centre_covered=centre_covered, weight=weight, min_share=min_share)
    sol = solve(cover, demand, objective=objective, new_sites=new_sites,
                target=1.0 if target_share is None else target_share, time_limit_s=time_limit_s, capacity=capacity)
    # The majority rule before and after, whatever the weight (the plan's metric).
    rule = siting_demand(people=people, elderly=elderly, point_community=point_community, covered=covered,
                         centre_covered=centre_covered, weight="communities", min_share=min_share)
    before = community_passing(rule, rule.covered)
    chosen = sol.chosen
    rows = []
    cov = rule.covered.copy()
    passing = before.copy()
    for site in chosen:  # a handful of sites: one sparse row each
        newly = cover[[site]].indices
        newly = newly[~cov[newly]]
        cov[newly] = True
        now = community_passing(rule, cov)
        gained = np.flatnonzero(now & ~passing)
        passing = now
        own = cover[[site]].indices
        own_pop = own[(own < n_pop) & ~rule.covered[own]]
        pop_new = newly[newly < n_pop]
        rows.append({"elderly_new": float(elderly[pop_new].sum()), "people_new": float(people[pop_new].sum()),
                     "elderly_reached": float(elderly[own_pop].sum()),
                     "communities_new": "、".join(str(n) for n in community_names[gained]),
                     "n_communities_new": int(len(gained))})
    after = passing
    covered_after = cov[:n_pop]
    limit = 3 * cutoff_m if report_limit_m is None else report_limit_m
    near_d, near_i = nearest_distance(graph, existing, candidates.take(chosen), cutoff_m=limit)
    found = near_i >= 0
    sc = site_community[chosen]
    sites = pd.DataFrame(rows, columns=["elderly_new", "people_new", "elderly_reached", "communities_new",
                                        "n_communities_new"])
    sites.insert(0, "rank", np.arange(1, len(chosen) + 1))
    sites.insert(1, "cid", np.asarray(candidate_ids)[chosen])
    sites.insert(2, "name", np.asarray(candidate_names, dtype=object)[chosen])
    sites.insert(3, "x", candidates.x[chosen])
    sites.insert(4, "y", candidates.y[chosen])
    sites.insert(5, "snap_m", candidates.access_m[chosen])
    sites["community"] = np.where(sc >= 0, community_names[np.maximum(sc, 0)], "") if len(community_names) else ""
    sites["street"] = np.where(sc >= 0, community_streets[np.maximum(sc, 0)], "") if len(community_streets) else ""
    names = np.asarray(existing_names, dtype=object)
    sites["nearest_facility"] = np.where(found, names[np.maximum(near_i, 0)] if len(names) else "", "")
    sites["nearest_facility_m"] = np.where(found, near_d, np.nan)

    def state(cov_pop, pas, sel_pop=slice(None), sel_com=slice(None)):
        e, p = elderly[sel_pop], people[sel_pop]
        c = cov_pop[sel_pop]
        pas = pas[sel_com]
        return {"elderly_covered": float(e[c].sum()), "elderly_covered_share": _ratio(e[c].sum(), e.sum()),
                "population_covered": float(p[c].sum()), "population_covered_share": _ratio(p[c].sum(), p.sum()),
                "communities_passing": int(pas.sum()), "communities_passing_share": _ratio(pas.sum(), len(pas))}

    streets = []
    point_street = np.where(point_community >= 0, community_streets[np.maximum(point_community, 0)], None) \
        if n_com else np.full(n_pop, None)
    for street in pd.unique(pd.Series(community_streets, dtype=object).dropna()):
        sp, scm = point_street == street, community_streets == street
        streets.append({"street": street, "sites": int((sites["street"] == street).sum()),
                        "before": state(covered, before, sp, scm), "after": state(covered_after, after, sp, scm)})
    summary = {
        "objective": objective,
        "weight": weight,
        "value": sol.value,
        "weight_gain": sol.weight_gain,
        "new_sites": int(len(chosen)),
        "optimal": sol.optimal,
        "gap": sol.gap,
        "bound": sol.bound,
        "status": sol.status,
        "plan_from": sol.plan_from,
        "solver": sol.solver,
        "solve_s": round(sol.solve_s, 3),
        "time_limit_s": time_limit_s,
        "greedy_value": sol.greedy_value,
        "target": sol.target,
        "target_share": target_share,
        "target_reachable": sol.target_reachable,
        "capacity": capacity,
        "candidates_snapped": int(candidates.ok.sum()),
        "candidates_useful": int(sol.model.get("candidates", 0)),
        "coverage_pairs": int(cover.nnz),
        "model": sol.model,
        "before": state(covered, before),
        "after": state(covered_after, after),
        "streets": streets,
    }
    return SitingPlan(sol, sites, covered_after, before, after, summary)


def _ratio(part: float, whole: float) -> float | None:
    return float(part / whole) if whole > 0 else None
