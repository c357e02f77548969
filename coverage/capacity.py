"""Capacity against demand: supply per elderly person (2SFCA, Gaussian E2SFCA), load, allocation.

A meal point 300 m away that cooks 40 meals a day for 2,000 elderly residents does not cover
them. Everything here compares each facility's *capacity* (places: seats, meals or beds per
day, :func:`facility_capacity`) with the elderly who can walk to it, on walk distances from
the same engine as the coverage verdicts: a sparse ``facilities × targets`` matrix whose
stored entries are the pairs within the search limit (an explicit zero is a distance of 0).

Measures, per service with capacity:

* **2SFCA** (Luo & Wang 2003): the catchment is the walking circle, boundary included
  (``d ≤ circle``, as pysal ``access``'s ``<=``). ``R_j = capacity_j / Σ_i elderly_i`` over the
  points in ``j``'s catchment; ``A_i = Σ_j R_j`` over the facilities in ``i``'s.
* **Gaussian E2SFCA**: the same with a distance weight in both steps,
  ``R_j = capacity_j / Σ_i w(d_ij) elderly_i`` and ``A_i = Σ_j w(d_ij) R_j``, ``w`` from the
  profile's ``capacity.decay`` (:func:`decay_weight`).
  A facility whose catchment holds no elderly has no ratio (NaN, it adds nothing to any
  ``A_i``): its places serve nobody who can walk there. Either way ``Σ_i elderly_i · A_i``
  equals the capacity of the facilities that do reach someone.
* **Load (饱和度)**: elderly within the catchment ÷ capacity (> 1: more elderly than places).
* **Allocation** (:func:`allocate`): elderly are assigned to facilities nearest pair first
  until the capacity is used, up to the search limit; what each point gets within the
  circle, beyond it, and what is left unserved.

Per community the point values are averaged weighted by elderly (a community whose points
hold no elderly is read at its centre), × 1000: ``supply_per_1000_elderly_<s>``. A community
with no facility of the service in reach has 0 and ``no_capacity_in_reach_<s>`` True, not
NaN. Per sub-district the same, and the 供需比 class (:func:`balance_class`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy.sparse import csr_array

from carecircle.coverage import circle
from carecircle.coverage.profile import CapacitySupply, Decay, Profile

#: 供需比 class keys (maps/ gives them words).
CLASSES = ("under", "balanced", "over")


def facility_capacity(facilities: pd.DataFrame, spec: CapacitySupply, service: str) -> tuple[np.ndarray, np.ndarray]:
    """Places per facility for one service, from the first known source of ``spec.columns``.

    Parameters
    ----------
    facilities : DataFrame
        ``capacity_<service>`` and ``capacity`` (the service's own places first, then the
        list's one figure), ``beds``, ``floor_area_m2``; missing columns count as unknown.
    spec : CapacitySupply
        The sources, in order, and the floor-area norm (m² per place).
    service : str

    Returns
    -------
    capacity : numpy.ndarray
        Places per facility, NaN where no source is known.
    basis : numpy.ndarray
        The source used per facility (``capacity``, ``beds``, ``floor_area``), ``""`` where none.
    """
    n = len(facilities)
    capacity = np.full(n, np.nan)
    basis = np.full(n, "", dtype=object)
    sources = {"capacity": [f"capacity_{service}", "capacity"], "beds": ["beds"], "floor_area": ["floor_area_m2"]}
    for key in spec.columns:
        for col in sources[key]:
            if col not in facilities:
                continue
            value = pd.to_numeric(facilities[col], errors="coerce").to_numpy(float)
            if key == "floor_area":
                value = value / spec.m2_per_place
            fill = np.isnan(capacity) & np.isfinite(value) & (value >= 0)
            capacity[fill] = value[fill]
            basis[fill] = key
    return capacity, basis


def decay_weight(dist_m: np.ndarray, decay: Decay, reach_m: float) -> np.ndarray:
    """Gaussian distance weight, 0 beyond ``reach_m`` (inclusive boundary).

    Parameters
    ----------
    dist_m : numpy.ndarray
    decay : Decay
        ``dai``: ``(e^(−½(d/d₀)²) − e^(−½)) / (1 − e^(−½))``, ``d₀ = reach_m``;
        ``plain``: ``e^(−d²/2σ²)``.
    reach_m : float

    Returns
    -------
    numpy.ndarray
    """
    d = np.asarray(dist_m, float)
    if decay.form == "dai":
        edge = np.exp(-0.5)
        w = (np.exp(-0.5 * (d / reach_m) ** 2) - edge) / (1.0 - edge)
    else:
        w = np.exp(-d * d / (2.0 * decay.sigma_m**2))
    return np.where(circle.within(d, reach_m), w, 0.0)


def _with_data(matrix: csr_array, data: np.ndarray) -> csr_array:
    """``matrix``'s sparsity pattern with new values (explicit zeros kept as entries)."""
    return csr_array((data, matrix.indices, matrix.indptr), shape=matrix.shape)


def two_step_fca(dist: csr_array, capacity: np.ndarray, demand: np.ndarray, weight: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Two-step floating catchment on a sparse distance matrix.

    Parameters
    ----------
    dist : scipy.sparse.csr_array
        ``n_facilities × n_points`` walk distances; the stored entries are the pairs.
    capacity : numpy.ndarray
        Places per facility (finite, ≥ 0).
    demand : numpy.ndarray
        Elderly per point.
    weight : numpy.ndarray
        Weight of each stored entry, in ``dist.data`` order: 1/0 for the step catchment,
        :func:`decay_weight` for the Gaussian E2SFCA.

    Returns
    -------
    ratio : numpy.ndarray
        ``R_j`` per facility, NaN where its catchment holds no (weighted) elderly.
    access : numpy.ndarray
        ``A_i`` per point (0 where no facility is in reach).
    demand_in_catchment : numpy.ndarray
        ``Σ_i w_ij elderly_i`` per facility.
    """
    w = _with_data(dist, np.asarray(weight, float))
    demand_in = w @ np.asarray(demand, float)
    ratio = np.full(len(capacity), np.nan)
    has = demand_in > 0
    ratio[has] = capacity[has] / demand_in[has]
    access = w.T @ np.where(has, ratio, 0.0)
    return ratio, access, demand_in


@dataclass
class Allocation:
    """Result of :func:`allocate`, per point and per facility."""

    served_within: np.ndarray
    served_beyond: np.ndarray
    unserved: np.ndarray
    served_by_facility: np.ndarray
    rounds: int = 0


def allocate(dist: csr_array, capacity: np.ndarray, demand: np.ndarray, *, circle_m: float) -> Allocation:
    """Assign elderly to facilities nearest pair first until capacities are used.

    The rule (deterministic): take every (facility, point) pair of ``dist`` in order of
    distance, ties by facility then point index, and give the pair as much as both the
    point's remaining elderly and the facility's remaining places allow. A point is split
    across facilities when its nearest one fills up; what is left after all its pairs is
    unserved. Pairs farther than the search limit are not in ``dist`` at all.

    Computed without a loop over pairs: in each round, a pair is settled when it is its
    point's first remaining pair and every earlier remaining pair of its facility is settled
    too (the prefix of the facility's list) — nothing still open can change what those pairs
    get in the sequential rule, so each facility fills that prefix by a cumulative sum at
    once. Pairs of exhausted points and full facilities drop out; the global first pair is
    always settled, so the rounds end (in practice after a few dozen).

    Parameters
    ----------
    dist : scipy.sparse.csr_array
        ``n_facilities × n_points`` walk distances within the search limit.
    capacity : numpy.ndarray
        Places per facility.
    demand : numpy.ndarray
        Elderly per point.
    circle_m : float
        Served at ``d ≤ circle_m`` counts as within the circle, farther as beyond it.

    Returns
    -------
    Allocation
    """
    demand = np.asarray(demand, float)
    n_fac, n_pts = dist.shape
    fac = np.repeat(np.arange(n_fac), np.diff(dist.indptr))
    pts = dist.indices.astype(np.int64)
    d = dist.data.astype(float)
    order = np.lexsort((pts, fac, d))  # the sequential rule's order
    fac, pts, d = fac[order], pts[order], d[order]
    left_p = demand.copy()
    left_f = np.asarray(capacity, float).copy()
    given = np.zeros(len(d))
    # Open pairs as positions in the global order; kept sorted by (facility, rank) too.
    open_ = np.flatnonzero((left_p[pts] > 0) & (left_f[fac] > 0))
    open_ = open_[np.argsort(fac[open_], kind="stable")]
    rounds = 0
    while len(open_):
        rounds += 1
        f, p = fac[open_], pts[open_]
        # The point's first remaining pair has the smallest rank among its open pairs.
        first_rank = np.full(n_pts, len(d))
        np.minimum.at(first_rank, p, open_)
        is_first = first_rank[p] == open_
        # Within each facility's run, the prefix before its first pair that is not settled.
        start = np.r_[True, f[1:] != f[:-1]]
        blocked = np.cumsum(~is_first)
        run_start = np.maximum.accumulate(np.where(start, np.arange(len(f)), 0))
        before_run = np.where(run_start > 0, blocked[run_start - 1], 0)
        settle = is_first & (blocked - before_run == 0)
        s, fs, ps = open_[settle], f[settle], p[settle]
        want = left_p[ps]
        cum = np.cumsum(want)
        run_first = np.r_[True, fs[1:] != fs[:-1]]
        base = np.maximum.accumulate(np.where(run_first, cum - want, 0))
        before = cum - want - base  # wanted by earlier settled pairs of the same facility
        get = np.clip(left_f[fs] - before, 0.0, want)
        given[s] = get
        whole = get >= want
        left_p[ps] = np.where(whole, 0.0, left_p[ps] - get)
        used = np.bincount(fs, weights=want, minlength=n_fac)
        touched = np.unique(fs)
        full = used[touched] >= left_f[touched]
        left_f[touched] = np.where(full, 0.0, left_f[touched] - used[touched])
        open_ = open_[(left_p[p] > 0) & (left_f[f] > 0)]
    within = circle.within(d, circle_m)
    served_within = np.bincount(pts, weights=np.where(within, given, 0.0), minlength=n_pts)
    served_beyond = np.bincount(pts, weights=np.where(within, 0.0, given), minlength=n_pts)
    return Allocation(
        served_within=served_within,
        served_beyond=served_beyond,
        unserved=np.maximum(demand - served_within - served_beyond, 0.0),
        served_by_facility=np.bincount(fac, weights=given, minlength=n_fac),
        rounds=rounds,
    )


def balance_class(ratio: np.ndarray, *, under_below: float, over_above: float) -> np.ndarray:
    """供需比 class keys: ``under`` (< ``under_below``), ``over`` (> ``over_above``), else ``balanced``; ``""`` for NaN."""
    ratio = np.asarray(ratio, float)
    out = np.where(ratio < under_below, "under", np.where(ratio > over_above, "over", "balanced")).astype(object)
    out[np.isnan(ratio)] = ""
    return out


def _weighted_mean(group: np.ndarray, value: np.ndarray, weight: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Per group ``0..n-1``: Σ weight·value / Σ weight and Σ weight (groups < 0 left out)."""
    ok = group >= 0
    num = np.bincount(group[ok], weights=(weight * value)[ok], minlength=n)
    den = np.bincount(group[ok], weights=weight[ok], minlength=n)
    return np.divide(num, den, out=np.full(n, np.nan), where=den > 0), den


@dataclass
class CapacityResult:
    """Columns for the output tables and the ``capacity`` entry of summary.json."""

    facilities: pd.DataFrame
    communities: pd.DataFrame
    streets: pd.DataFrame
    summary: dict = field(default_factory=dict)


def capacity_analysis(
    facilities: pd.DataFrame,
    demand: np.ndarray,
    point_community: np.ndarray,
    communities: pd.DataFrame,
    profile: Profile,
    distances: Mapping[str, tuple[np.ndarray, csr_array]],
    *,
    circle_m: float,
    limit_m: float,
) -> CapacityResult:
    """Every capacity measure of every service the profile gives a capacity source.

    Parameters
    ----------
    facilities : DataFrame
        One row per facility: ``name``, a bool per service, ``capacity`` / ``beds`` /
        ``floor_area_m2``.
    demand : numpy.ndarray
        Elderly per population point.
    point_community : numpy.ndarray
        Community row of each population point, ``-1`` outside every community.
    communities : DataFrame
        ``street`` per community (row order as ``point_community``).
    profile : Profile
        ``capacity`` section: sources, decay, 供需比 thresholds.
    distances : mapping
        Service → ``(rows, matrix)``: the facility rows searched (reachable facilities of the
        service) and their ``len(rows) × (n_points + n_communities)`` walk distances within
        the search limit, to the population points then to each community's centre.
    circle_m : float
        The walking circle (2SFCA catchment, load, "within the circle").
    limit_m : float
        The search limit of the matrices (allocation beyond the circle stops here).

    Returns
    -------
    CapacityResult
        ``facilities``: per service ``capacity_<s>``, ``capacity_basis_<s>``,
        ``elderly_in_catchment_<s>``, ``load_<s>``, ``served_<s>`` (NaN where not a facility
        of the service or no capacity). ``communities`` and ``streets``:
        ``supply_per_1000_elderly_<s>`` (2SFCA), ``supply_gaussian_per_1000_elderly_<s>``,
        ``no_capacity_in_reach_<s>``, ``elderly_served_within_<s>``,
        ``elderly_served_beyond_<s>``, ``elderly_unserved_<s>``; streets also
        ``supply_demand_ratio_<s>`` and ``supply_demand_class_<s>`` (:data:`CLASSES`).
    """
    cap_cfg = profile.capacity
    demand = np.asarray(demand, float)
    cid = np.asarray(point_community)
    n_pts, n_com = len(demand), len(communities)
    reach_m = cap_cfg.decay.reach_m or circle_m
    fac_out = pd.DataFrame(index=facilities.index)
    com_out = pd.DataFrame(index=communities.index)
    street = communities["street"].astype("string").fillna("").to_numpy(dtype=object)
    names, street_of = np.unique(street, return_inverse=True)
    st_out = pd.DataFrame({"street": names})
    point_street = np.where(cid >= 0, street_of[np.maximum(cid, 0)], -1)
    com_has_elderly = np.bincount(cid[cid >= 0], weights=demand[cid >= 0], minlength=n_com) > 0
    summary: dict = {
        "circle_m": circle_m, "search_limit_m": limit_m,
        "decay": {"form": cap_cfg.decay.form, "reach_m": reach_m, "sigma_m": cap_cfg.decay.sigma_m},
        "balance": {"under_below": cap_cfg.balance.under_below, "over_above": cap_cfg.balance.over_above},
        "services": {},
    }
    for s, spec in cap_cfg.services.items():
        offers = facilities[s].to_numpy(bool)
        capacity, basis = facility_capacity(facilities, spec, s)
        capacity[~offers], basis[~offers] = np.nan, ""
        rows, dist = distances.get(s, (np.zeros(0, np.int64), csr_array((0, n_pts + n_com))))
        known = np.isfinite(capacity[rows])
        rows, dist = rows[known], dist[known]
        missing = offers & np.isnan(capacity)
        entry = {
            "facilities": int(offers.sum()),
            "with_capacity": int((offers & ~missing).sum()),
            "by_basis": {k: int((basis == k).sum()) for k in spec.columns if (basis == k).any()},
            "without_capacity": int(missing.sum()),
            "without_capacity_names": facilities.loc[missing, "name"].astype(str).tolist(),
            # with places but not on the walk network (not snapped): they serve nobody here
            "with_capacity_unreachable": int((offers & ~missing).sum() - len(rows)),
            "measured": bool(len(rows)),
        }
        summary["services"][s] = entry
        fac_out[f"capacity_{s}"] = capacity
        fac_out[f"capacity_basis_{s}"] = basis
        if not len(rows):
            continue
        cap = capacity[rows]
        full_demand = np.concatenate([demand, np.zeros(n_com)])
        step = circle.within(dist.data, circle_m).astype(float)
        _, access, in_catch = two_step_fca(dist, cap, full_demand, step)
        _, access_g, _ = two_step_fca(dist, cap, full_demand, decay_weight(dist.data, cap_cfg.decay, reach_m))
        reached = np.bincount(dist.indices[step > 0], minlength=n_pts + n_com) > 0
        alloc = allocate(dist[:, :n_pts], cap, demand, circle_m=circle_m)

        for col, values in (("elderly_in_catchment", in_catch), ("served", alloc.served_by_facility)):
            fac_out[f"{col}_{s}"] = np.nan
            fac_out.iloc[rows, fac_out.columns.get_loc(f"{col}_{s}")] = values
        fac_out[f"load_{s}"] = np.divide(fac_out[f"elderly_in_catchment_{s}"].to_numpy(), capacity,
                                         out=np.full(len(capacity), np.nan), where=capacity > 0)

        # Communities: elderly-weighted means of their points; centres where no elderly.
        centre = np.arange(n_com)
        for col, a in (("supply_per_1000_elderly", access), ("supply_gaussian_per_1000_elderly", access_g)):
            mean, _ = _weighted_mean(cid, a[:n_pts], demand, n_com)
            com_out[f"{col}_{s}"] = 1000.0 * np.where(com_has_elderly, mean, a[n_pts + centre])
            st, st_w = _weighted_mean(point_street, a[:n_pts], demand, len(names))
            # A sub-district without elderly: the plain mean of its communities.
            plain = pd.Series(com_out[f"{col}_{s}"].to_numpy()).groupby(street_of).mean().reindex(range(len(names))).to_numpy()
            st_out[f"{col}_{s}"] = np.where(st_w > 0, 1000.0 * st, plain)
        any_reach = np.bincount(cid[cid >= 0], weights=reached[:n_pts][cid >= 0].astype(float), minlength=n_com) > 0
        com_out[f"no_capacity_in_reach_{s}"] = ~np.where(com_has_elderly, any_reach, reached[n_pts + centre])
        for col, v in (("within", alloc.served_within), ("beyond", alloc.served_beyond), ("unserved", alloc.unserved)):
            key = f"elderly_unserved_{s}" if col == "unserved" else f"elderly_served_{col}_{s}"
            ok = cid >= 0
            com_out[key] = np.bincount(cid[ok], weights=v[ok], minlength=n_com)
            st_out[key] = np.bincount(point_street[ok], weights=v[ok], minlength=len(names))

        city = 1000.0 * float(np.dot(demand, access[:n_pts]) / demand.sum()) if demand.sum() > 0 else None
        norm = cap_cfg.balance.norm_per_1000_elderly.get(s)
        base = norm if norm is not None else city
        ratio = st_out[f"supply_per_1000_elderly_{s}"].to_numpy() / base if base else np.full(len(names), np.nan)
        st_out[f"supply_demand_ratio_{s}"] = ratio
        st_out[f"supply_demand_class_{s}"] = balance_class(ratio, under_below=cap_cfg.balance.under_below,
                                                           over_above=cap_cfg.balance.over_above)
        loads = fac_out[f"load_{s}"].to_numpy()
        entry.update({
            "capacity_total": float(cap.sum()),
            "supply_per_1000_elderly_city": city,
            "supply_gaussian_per_1000_elderly_city": (1000.0 * float(np.dot(demand, access_g[:n_pts]) / demand.sum())
                                                      if demand.sum() > 0 else None),
            "balance_base": "norm" if norm is not None else "city_mean",
            "balance_base_per_1000_elderly": base,
            "elderly": float(demand.sum()),
            "elderly_served_within": float(alloc.served_within.sum()),
            "elderly_served_beyond": float(alloc.served_beyond.sum()),
            "elderly_unserved": float(alloc.unserved.sum()),
            "facilities_over_capacity": int((loads > 1).sum()),
            "facilities_no_elderly_in_catchment": int((in_catch == 0).sum()),
            "communities_no_capacity_in_reach": int(com_out[f"no_capacity_in_reach_{s}"].sum()),
            "streets_by_class": {k: int((st_out[f"supply_demand_class_{s}"] == k).sum()) for k in CLASSES},
            "allocation_rounds": alloc.rounds,
        })
    return CapacityResult(fac_out, com_out, st_out, summary)


def capacity_run(graph, facilities: pd.DataFrame, facility_snap, targets, demand: np.ndarray,
                 point_community: np.ndarray, communities: pd.DataFrame, profile: Profile, *,
                 circle_m: float, limit_m: float) -> CapacityResult:
    """:func:`capacity_analysis` with its walk distances: one bounded search per facility.

    Parameters
    ----------
    graph : WalkGraph
    facilities : DataFrame
        With the service flags and capacity columns.
    facility_snap : Snapped
        The facilities snapped (their ``ok`` ones are searched).
    targets : Snapped
        The population points, then one centre per community (as the coverage search has them).
    demand, point_community, communities, profile, circle_m
        As for :func:`capacity_analysis`.
    limit_m : float
        Allocation reaches this far; the search goes to the larger of it and the decay's reach.

    Returns
    -------
    CapacityResult
    """
    from carecircle.coverage.catchment import catchment_matrix

    cutoff = max(limit_m, circle_m, profile.capacity.decay.reach_m or circle_m)
    distances = {}
    for s, spec in profile.capacity.services.items():
        # Only facilities with known places take part: searching the others is wasted work.
        known = np.isfinite(facility_capacity(facilities, spec, s)[0])
        rows = np.flatnonzero(facilities[s].to_numpy(bool) & facility_snap.ok & known)
        distances[s] = (rows, catchment_matrix(graph, facility_snap.take(rows), targets, cutoff_m=cutoff))
    return capacity_analysis(facilities, demand, point_community, communities, profile, distances,
                             circle_m=circle_m, limit_m=cutoff)


def join_capacity(result: CapacityResult, facilities: pd.DataFrame, communities: pd.DataFrame,
                  streets: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The facilities, communities and streets tables with the capacity columns added.

    Streets are matched by name (``street``); a sub-district without communities gets NaN.
    """
    names = result.streets.assign(street=result.streets["street"].astype(streets["street"].dtype))
    # The places used replace a capacity_<service> input column of the same name.
    facilities = facilities.drop(columns=[c for c in result.facilities.columns if c in facilities.columns])
    # Row by row, whatever the tables' index (a tile's rows keep the labels of the whole run's).
    return (pd.concat([facilities, result.facilities.set_axis(facilities.index)], axis=1),
            pd.concat([communities, result.communities.set_axis(communities.index)], axis=1),
            streets.merge(names, on="street", how="left"))
