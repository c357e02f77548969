"""Per-community indicators: walk distances, covered shares, households and floor space.

Everything here is a table operation on the results of the reach stage: population points
are joined to community polygons once (``sjoin``), facilities once, estates once, then
``groupby`` sums give the per-community values. Nothing is recomputed upstream; the walk
distances come from the ``dist_<service>_m`` columns of the population points (inf/NaN =
not reachable within the search cut-off).

The verdicts (flags), street scorecards and the action list are in
:mod:`carecircle.coverage.standards`; this module only measures.
"""

from __future__ import annotations

import re

import geopandas as gpd
import numpy as np
import pandas as pd

from carecircle.coverage import circle
from carecircle.coverage.profile import Profile
from carecircle.errors import InputError

#: Weighted quantile reported as the "worst decile" distance.
WORST_DECILE = 0.9
#: Floor-space shortfalls below this (m²) are rounding, not a deficit.
TOLERANCE = 1e-6


def service_mask(facilities: pd.DataFrame, profile: Profile, services: list[str]) -> np.ndarray:
    """Facilities carrying any of ``services``.

    Uses the bool service columns the facility loader writes; a service without a column
    (e.g. a tier a user profile adds) is detected from its keywords in ``name`` and ``type``.

    Parameters
    ----------
    facilities : DataFrame
        Facilities with ``name``, ``type`` and bool service columns.
    profile : Profile
    services : list of str

    Returns
    -------
    numpy.ndarray of bool
    """
    mask = np.zeros(len(facilities), dtype=bool)
    text = None
    for s in services:
        if s in facilities.columns:
            mask |= facilities[s].fillna(False).to_numpy(dtype=bool)
            continue
        words = profile.services[s].keywords
        if not words:
            continue
        if text is None:
            text = facilities.get("name", pd.Series("", index=facilities.index)).fillna("").astype(str) + " " + (
                facilities.get("type", pd.Series("", index=facilities.index)).fillna("").astype(str)
            )
        mask |= text.str.contains("|".join(map(re.escape, words)), regex=True).to_numpy(dtype=bool)
    return mask


def _rep_points(gdf: gpd.GeoDataFrame) -> gpd.GeoSeries:
    return gdf.geometry.representative_point()


def _numeric(df: pd.DataFrame, col: str) -> pd.Series:
    """An optional column as numbers (unparseable → NaN); all NaN when ``df`` lacks it."""
    return pd.to_numeric(df[col], errors="coerce") if col in df.columns else pd.Series(np.nan, index=df.index)


def _first_position(names: pd.Series) -> pd.Series:
    """Name → row position of its first occurrence (a repeated name maps to its first row)."""
    pos = pd.Series(np.arange(len(names)), index=names.to_numpy())
    return pos[~pos.index.duplicated(keep="first")]


def _require(table: pd.DataFrame, label: str, columns: list[str]) -> None:
    """Raise :class:`InputError` when a table handed in by the pipeline lacks ``columns``."""
    if missing := set(columns) - set(table.columns):
        raise InputError(f"{label}: missing column(s) {', '.join(sorted(missing))}; expected {', '.join(columns)}")


def _group_max(cid: np.ndarray, values: np.ndarray, n: int) -> np.ndarray:
    """Per community ``0..n-1``, the largest of ``values`` (NaN skipped); NaN where there is none."""
    out = np.full(n, np.nan)
    g = pd.Series(values).groupby(cid).max()
    out[g.index.to_numpy()] = g.to_numpy()
    return out


def community_of_points(points: gpd.GeoDataFrame, communities: gpd.GeoDataFrame) -> pd.Series:
    """Community position (0..n-1) of each point, -1 outside every community.

    A point on a shared boundary joins both polygons; it is kept with the first one so that
    no person is counted twice.

    Parameters
    ----------
    points : GeoDataFrame
        Points (population, facilities, ...) in the communities' CRS.
    communities : GeoDataFrame
        Community polygons.

    Returns
    -------
    pandas.Series of int
        Aligned with ``points``.
    """
    if len(points) == 0 or len(communities) == 0:
        return pd.Series(-1, index=points.index, dtype=int)
    polys = gpd.GeoDataFrame({"_cid": np.arange(len(communities))}, geometry=communities.geometry.to_numpy(), crs=communities.crs)
    pts = gpd.GeoDataFrame(geometry=points.geometry.to_numpy(), crs=points.crs)
    joined = gpd.sjoin(pts, polys, how="left", predicate="intersects")
    joined = joined[~joined.index.duplicated(keep="first")]
    return pd.Series(joined["_cid"].fillna(-1).astype(int).to_numpy(), index=points.index)


def _weighted_p90(cid: np.ndarray, dist: np.ndarray, weight: np.ndarray, n: int) -> np.ndarray:
    """Weighted 90th percentile of ``dist`` per community (inf allowed), NaN without weight."""
    order = np.lexsort((dist, cid))
    c, d, w = cid[order], dist[order], weight[order]
    total = np.bincount(c, weights=w, minlength=n)
    cum = pd.Series(w).groupby(c).cumsum().to_numpy()
    hit = cum >= WORST_DECILE * total[c] - 1e-9 * np.maximum(total[c], 1.0)
    hit &= total[c] > 0
    out = np.full(n, np.nan)
    first = pd.Series(np.arange(len(c))[hit]).groupby(c[hit]).min()
    out[first.index.to_numpy()] = d[first.to_numpy()]
    return out


def _nearest_groups(profile: Profile) -> dict[str, list[str]]:
    """Output key → services it looks for: each circle service, and ``centre`` (any of the
    profile's sub-district centre services) for the "one centre per street" check."""
    groups = {s: [s] for s in profile.circle_services}
    groups["centre"] = list(profile.sub_district.centre_services)
    return groups


def _nearest_table(communities: gpd.GeoDataFrame, facilities: gpd.GeoDataFrame, profile: Profile,
                   nearest: pd.DataFrame | None) -> tuple[pd.DataFrame, str]:
    """Per community and circle service (and the sub-district centre): nearest facility name and distance.

    From the pipeline's ``nearest`` table (walk distances) when given, matched on community
    name (and street when the table has one); a group of services (the centre) takes the
    shortest of its services' walks. Otherwise the straight-line nearest facility from the
    community's representative point, labelled ``straight_line``.
    """
    n = len(communities)
    out = pd.DataFrame(index=range(n))
    groups = _nearest_groups(profile)
    if nearest is not None:
        _require(nearest, "nearest", ["name", "service", "facility", "distance_m"])
        keys = ["name", "street"] if "street" in nearest.columns else ["name"]
        left = communities[keys].reset_index(drop=True).assign(_pos=np.arange(n))
        table = nearest.assign(distance_m=pd.to_numeric(nearest["distance_m"], errors="coerce"))
        for key, services in groups.items():
            sub = table[table["service"].isin(services) & table["distance_m"].notna()]
            sub = sub.sort_values("distance_m", kind="mergesort").drop_duplicates(keys)[keys + ["facility", "distance_m"]]
            m = left.merge(sub, on=keys, how="left").sort_values("_pos")
            out[f"nearest_{key}"] = m["facility"].astype("string").to_numpy()
            out[f"nearest_{key}_m"] = m["distance_m"].to_numpy(dtype=float)
        return out, "walk"
    reps = gpd.GeoDataFrame({"_pos": np.arange(n)}, geometry=_rep_points(communities).to_numpy(), crs=communities.crs)
    for key, services in groups.items():
        fac = facilities.loc[service_mask(facilities, profile, services), ["name", "geometry"]]
        out[f"nearest_{key}"] = pd.Series([pd.NA] * n, dtype="string")
        out[f"nearest_{key}_m"] = np.nan
        if len(fac) and n:
            j = gpd.sjoin_nearest(reps, fac.rename(columns={"name": "_fac"}), how="left", distance_col="_d")
            j = j[~j.index.duplicated(keep="first")].sort_values("_pos")
            out[f"nearest_{key}"] = j["_fac"].astype("string").to_numpy()
            out[f"nearest_{key}_m"] = j["_d"].to_numpy(dtype=float)
    return out, "straight_line"


def _estate_cid(estates: gpd.GeoDataFrame, communities: gpd.GeoDataFrame) -> np.ndarray:
    """Community position of each estate: by ``community`` name, else by location."""
    by_name = estates["community"].map(_first_position(communities["name"])) if "community" in estates.columns else pd.Series(np.nan, index=estates.index)
    by_place = community_of_points(gpd.GeoDataFrame(geometry=_rep_points(estates), crs=estates.crs), communities)
    cid = by_name.fillna(by_place.where(by_place >= 0))
    return cid.fillna(-1).astype(int).to_numpy()


def _is_new(year: pd.Series, profile: Profile) -> np.ndarray:
    y = pd.to_numeric(year, errors="coerce")
    unknown_new = profile.space.unknown_year_as == "new"
    return np.where(y.isna(), unknown_new, y >= profile.space.new_from_year).astype(bool)


def _rates(profile: Profile, which: str) -> tuple[float | None, float | None]:
    """The ``which`` (``min`` or ``target``) m² per 100 households of new and of existing
    estates; None where the plan states none."""
    return (getattr(profile.space.new, f"{which}_m2_per_100hh"), getattr(profile.space.existing, f"{which}_m2_per_100hh"))


def _rate_parts(hh_new: np.ndarray, hh_old: np.ndarray, profile: Profile, which: str) -> np.ndarray:
    """Required m² from households by age class; NaN where no rate applies to any household."""
    rn, ro = _rates(profile, which)
    req = (hh_new * rn / 100.0 if rn is not None else 0.0) + (hh_old * ro / 100.0 if ro is not None else 0.0)
    checked = (hh_new if rn is not None else 0.0) + (hh_old if ro is not None else 0.0)
    total = hh_new + hh_old
    return np.where((checked == 0) & (total > 0), np.nan, req)


def _estate_space(estates: gpd.GeoDataFrame, communities: gpd.GeoDataFrame, profile: Profile) -> pd.DataFrame:
    """Per 小区 (aligned with ``estates``): community position, age class and its own space requirement.

    Columns ``_cid`` (-1 outside every community), ``households``, ``built_year``, ``is_new``,
    ``per_estate`` (its class is checked estate by estate), ``rate`` (compliance m² per 100
    households, NaN where the plan states none), ``required``, ``target`` (NaN where the
    households or the rate are unknown) and ``provided`` (``space_m2``, NaN if unknown).
    """
    hh = pd.to_numeric(estates["households"], errors="coerce").to_numpy(dtype=float)
    is_new = _is_new(estates["built_year"], profile)
    sp = profile.space

    def by_class(which: str) -> np.ndarray:
        rn, ro = _rates(profile, which)
        return np.where(is_new, np.nan if rn is None else rn, np.nan if ro is None else ro).astype(float)

    rate, target_rate = by_class("min"), by_class("target")
    return pd.DataFrame({
        "_cid": _estate_cid(estates, communities),
        "households": hh,
        "built_year": pd.to_numeric(estates["built_year"], errors="coerce").to_numpy(dtype=float),
        "is_new": is_new,
        "per_estate": np.where(is_new, sp.new.per_estate, sp.existing.per_estate).astype(bool),
        "rate": rate,
        "required": hh * rate / 100.0,
        "target": hh * target_rate / 100.0,
        "provided": _numeric(estates, "space_m2").to_numpy(dtype=float),
    })


def _uses_estate_space(est: pd.DataFrame, n: int, profile: Profile) -> np.ndarray:
    """Per community: is its provided space the 小区 ``space_m2`` (else facility floor area)?"""
    src = profile.space.provided_from
    if src != "auto":
        return np.full(n, src == "estates")
    inside = est["_cid"].to_numpy() >= 0
    known = inside & est["provided"].notna().to_numpy()
    return np.bincount(est["_cid"].to_numpy()[known], minlength=n) > 0


def _estate_shortfalls(est: pd.DataFrame, uses_estates: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each estate's own shortfall to the compliance rate and to the target.

    Checked where the estate lies in a community whose space is measured from the 小区 (an
    unknown ``space_m2`` there counts as no room: the community total counts it so too), or,
    outside every community, where its own ``space_m2`` is known. NaN where not checked or
    no rate / households are known.
    """
    cid = est["_cid"].to_numpy()
    prov = est["provided"].to_numpy(dtype=float)
    checked = np.where(cid >= 0, uses_estates[np.maximum(cid, 0)], ~np.isnan(prov))
    have = np.nan_to_num(prov)
    short = np.where(checked, np.clip(est["required"].to_numpy() - have, 0, None), np.nan)
    short_t = np.where(checked, np.clip(est["target"].to_numpy() - have, 0, None), np.nan)
    return short, short_t


def estate_table(estates: gpd.GeoDataFrame, communities: gpd.GeoDataFrame, profile: Profile) -> gpd.GeoDataFrame:
    """One row per 小区 with its own floor-space requirement, what it provides and its shortfall.

    Parameters
    ----------
    estates : GeoDataFrame
        小区 with ``name``, ``community`` (NaN → located by geometry), ``households``,
        ``built_year``, ``space_m2`` (optional), metric CRS.
    communities : GeoDataFrame
        ``name``, ``street``, polygons (the pipeline's communities layer).
    profile : Profile

    Returns
    -------
    GeoDataFrame
        Input order: ``estate`` (the 小区 name), ``community`` (resolved by name, else by
        location; NA outside every community), ``street`` (the community's), ``households``,
        ``built_year``, ``estate_class``
        (``new`` / ``existing``, split at ``space.new_from_year``), ``per_estate`` (the class
        is checked estate by estate, so this estate's deficit fails its community),
        ``space_rate_m2_per_100hh`` (compliance rate; NaN where the plan states none),
        ``space_required_m2``, ``space_target_m2``, ``space_provided_m2`` (``space_m2``, NaN
        if unknown), ``space_shortfall_m2``, ``space_target_shortfall_m2`` (NaN where not
        checked: no rate or households, or the community's space is measured from facility
        floor area), ``flag_space`` (the estate is short on its own), geometry.
    """
    com = communities.reset_index(drop=True)
    est = _estate_space(estates, com, profile)
    short, short_t = _estate_shortfalls(est, _uses_estate_space(est, len(com), profile))
    cid = est["_cid"].to_numpy()
    inside = cid >= 0

    def of_community(col: str) -> pd.Series:
        values = com[col].astype("string").to_numpy() if col in com.columns else np.full(len(com), pd.NA, dtype=object)
        return pd.Series(np.where(inside, values[np.maximum(cid, 0)] if len(com) else pd.NA, pd.NA), dtype="string")

    return gpd.GeoDataFrame({
        "estate": estates["name"].astype("string").to_numpy(),
        "community": of_community("name").to_numpy(),
        "street": of_community("street").to_numpy(),
        "households": est["households"].to_numpy(),
        "built_year": est["built_year"].to_numpy(),
        "estate_class": np.where(est["is_new"], "new", "existing"),
        "per_estate": est["per_estate"].to_numpy(),
        "space_rate_m2_per_100hh": est["rate"].to_numpy(),
        "space_required_m2": est["required"].to_numpy(),
        "space_target_m2": est["target"].to_numpy(),
        "space_provided_m2": est["provided"].to_numpy(),
        "space_shortfall_m2": short,
        "space_target_shortfall_m2": short_t,
        "flag_space": np.nan_to_num(short) > TOLERANCE,
    }, geometry=estates.geometry.to_numpy(), crs=estates.crs)


def community_indicators(
    communities: gpd.GeoDataFrame,
    population: gpd.GeoDataFrame,
    facilities: gpd.GeoDataFrame,
    profile: Profile,
    *,
    cutoff_m: float | None = None,
    estates: gpd.GeoDataFrame | None = None,
    nearest: pd.DataFrame | None = None,
    reach: pd.DataFrame | None = None,
    point_community: np.ndarray | None = None,
) -> gpd.GeoDataFrame:
    """Measure every community against the walking circle and the floor-space standard.

    Parameters
    ----------
    communities : GeoDataFrame
        ``name``, ``street``, ``households``, ``population``, ``elderly``, ``built_year``,
        polygon geometry, metric CRS.
    population : GeoDataFrame
        Points with ``people``, ``elderly`` and ``dist_<s>_m`` per circle service
        (inf/NaN = unreachable).
    facilities : GeoDataFrame
        ``fid``, ``name``, ``type``, ``floor_area_m2``, bool service columns, points.
    profile : Profile
    cutoff_m : float, optional
        The walk-circle distance; default ``profile.walk_distance_m``.
    estates : GeoDataFrame, optional
        小区 with ``name``, ``community`` (NaN → located by geometry), ``households``,
        ``built_year``, ``space_m2``.
    nearest : DataFrame, optional
        The pipeline's walk-based table: per community and service, the shortest walk any
        resident has to a facility of that service and which facility: ``name``
        (community), ``service``, ``facility``, ``distance_m`` (optionally ``street``,
        then matched on both). Without it the straight-line nearest facility from the
        representative point is reported (``nearest_basis``).
    reach : DataFrame, optional
        Only for ``space.count_facilities: circle``: ``name`` (community), ``fid``,
        ``distance_m`` walk distances; without it facilities within ``cutoff_m`` in a
        straight line of the community's representative point are counted.
    point_community : numpy.ndarray, optional
        Community position (0..n-1, -1 outside) of each population point, as from
        :func:`community_of_points`, when the caller has it already; joined here otherwise.

    Returns
    -------
    GeoDataFrame
        One row per community (input order) with ``name``, ``street``, ``households``,
        ``households_source``, ``households_new``, ``households_existing``, ``population``,
        ``elderly``, ``n_points``, ``dist_basis``; per circle service ``s``:
        ``dist_<s>_mean_m``, ``dist_<s>_p90_m``, ``elderly_covered_share_<s>``,
        ``population_covered_share_<s>``, ``nearest_<s>``, ``nearest_<s>_m``;
        ``nearest_centre``, ``nearest_centre_m`` (the nearest sub-district centre, any of
        ``sub_district.centre_services``); ``nearest_basis`` (``walk`` or
        ``straight_line``); ``space_required_m2``, ``space_target_m2``,
        ``space_provided_m2``, ``space_provided_from``, ``space_shortfall_m2`` (with classes
        checked estate by estate, the sum of those estates' own shortfalls plus the pooled
        shortfall of the rest: a surplus never offsets another estate's deficit),
        ``space_estates_short`` (estates short on their own, see :func:`estate_table`),
        ``space_target_shortfall_m2``, ``largest_unit_m2``, ``n_stations``,
        ``largest_station_m2``, ``per_capita_required_m2``, geometry.
    """
    cutoff = float(profile.walk_distance_m if cutoff_m is None else cutoff_m)
    com = communities.reset_index(drop=True)
    n = len(com)
    if "street" not in com.columns:
        com = com.assign(street=pd.NA)
    out = gpd.GeoDataFrame({"name": com["name"].to_numpy(), "street": com["street"].to_numpy()},
                           geometry=com.geometry.to_numpy(), crs=com.crs)

    # ---- population points → communities (one spatial join) -------------------------
    for s in profile.circle_services:
        if f"dist_{s}_m" not in population.columns:
            raise InputError(f"population: dist_{s}_m: column missing; the reach stage must add one per circle service")
    pcid = community_of_points(population, com).to_numpy() if point_community is None else np.asarray(point_community)
    inside = pcid >= 0
    pc = pcid[inside]
    people = pd.to_numeric(population["people"], errors="coerce").fillna(0).to_numpy(dtype=float)[inside]
    eld = pd.to_numeric(population["elderly"], errors="coerce").fillna(0).to_numpy(dtype=float)[inside]
    people_sum = np.bincount(pc, weights=people, minlength=n)
    eld_sum = np.bincount(pc, weights=eld, minlength=n)
    # Elderly weights where the community has elderly counts on its points, else people:
    # a community's verdict should follow where its residents live even if the elderly
    # layer is missing there.
    w = np.where(eld_sum[pc] > 0, eld, people)
    w_sum = np.bincount(pc, weights=w, minlength=n)
    has_points = w_sum > 0
    out["n_points"] = np.bincount(pc, minlength=n)
    out["dist_basis"] = np.where(has_points, "population", "representative_point")

    near, basis = _nearest_table(com, facilities, profile, nearest)
    for s in profile.circle_services:
        d = pd.to_numeric(population[f"dist_{s}_m"], errors="coerce").to_numpy(dtype=float)[inside]
        d = np.where(np.isnan(d), np.inf, d)
        ok = np.isfinite(d)
        cov = circle.covered(population, s, cutoff)[inside]
        with np.errstate(invalid="ignore", divide="ignore"):
            # Mean over the reachable elderly; the unreachable show in the share and the p90.
            mean = np.bincount(pc, weights=np.where(ok, w * d, 0), minlength=n) / np.bincount(pc, weights=np.where(ok, w, 0), minlength=n)
            e_share = np.bincount(pc, weights=w * cov, minlength=n) / w_sum
            p_share = np.bincount(pc, weights=people * cov, minlength=n) / people_sum
        p90 = _weighted_p90(pc, d, w, n)
        # Communities without population points fall back to the representative point's
        # distance (the nearest-facility table): all in or all out; no distance (no
        # facility of the service, or no path) means unreachable.
        d0 = near[f"nearest_{s}_m"].to_numpy(dtype=float)
        covered0 = circle.within(d0, cutoff).astype(float)
        out[f"dist_{s}_mean_m"] = np.where(has_points, mean, d0)
        # p90 is NaN when the worst decile cannot reach a facility within the search cut-off.
        out[f"dist_{s}_p90_m"] = np.where(has_points, np.where(np.isinf(p90), np.nan, p90), d0)
        out[f"elderly_covered_share_{s}"] = np.where(has_points, e_share, covered0)
        out[f"population_covered_share_{s}"] = np.where(people_sum > 0, p_share, np.where(has_points, e_share, covered0))
        out[f"nearest_{s}"] = near[f"nearest_{s}"].to_numpy()
        out[f"nearest_{s}_m"] = d0
    # The nearest sub-district centre, for the action row of a sub-district without one.
    out["nearest_centre"] = near["nearest_centre"].to_numpy()
    out["nearest_centre_m"] = near["nearest_centre_m"].to_numpy(dtype=float)
    out["nearest_basis"] = basis

    # ---- people and households ------------------------------------------------------
    pop_field = _numeric(com, "population").to_numpy(dtype=float)
    eld_field = _numeric(com, "elderly").to_numpy(dtype=float)
    out["population"] = np.where(np.isnan(pop_field), people_sum, pop_field)
    out["elderly"] = np.where(np.isnan(eld_field), eld_sum, eld_field)

    hh_field = _numeric(com, "households").to_numpy(dtype=float)
    com_new = _is_new(_numeric(com, "built_year"), profile)
    est_hh = np.zeros(n)
    est_new = np.zeros(n)
    est_space = np.full(n, np.nan)
    est_max_space = np.full(n, np.nan)  # the largest estate room, for the pooled rule
    has_est_hh = np.zeros(n, dtype=bool)
    # Per-estate parts of the space check (逐小区): required, provided and the sum of the
    # estates' own shortfalls, over the estates whose class is checked estate by estate.
    pe_required, pe_target, pe_provided, pe_short, pe_short_t, n_short = (np.zeros(n) for _ in range(6))
    # Without estates, space is measured from facilities unless the profile forces estates.
    use_est = np.full(n, profile.space.provided_from == "estates")
    if estates is not None and len(estates):
        est = _estate_space(estates, com, profile)
        keep = est["_cid"].to_numpy() >= 0
        e = est[keep]
        ec = e["_cid"].to_numpy()
        e_hh = e["households"].to_numpy()
        known = ~np.isnan(e_hh)
        est_hh = np.bincount(ec[known], weights=e_hh[known], minlength=n)
        est_new = np.bincount(ec[known], weights=(e_hh * e["is_new"].to_numpy())[known], minlength=n)
        has_est_hh = np.bincount(ec[known], minlength=n) > 0
        total = e["provided"].groupby(ec).sum(min_count=1)
        est_space[total.index.to_numpy()] = total.to_numpy()
        est_max_space = _group_max(ec, e["provided"].to_numpy(), n)
        use_est = _uses_estate_space(est, n, profile)
        short, short_t = (x[keep] for x in _estate_shortfalls(est, use_est))
        n_short = np.bincount(ec, weights=np.nan_to_num(short) > TOLERANCE, minlength=n)
        pe = e["per_estate"].to_numpy() & ~np.isnan(short)

        def per_estate_sum(values: np.ndarray) -> np.ndarray:
            return np.bincount(ec[pe], weights=values[pe], minlength=n)

        pe_required = per_estate_sum(e["required"].to_numpy())
        pe_provided = per_estate_sum(np.nan_to_num(e["provided"].to_numpy()))
        pe_short = per_estate_sum(short)
        pe_short_t = per_estate_sum(short_t)
        pe_target = per_estate_sum(e["target"].to_numpy())
    hh_from_pop = out["population"].to_numpy(dtype=float) / profile.household_size
    households = np.where(has_est_hh, est_hh, np.where(np.isnan(hh_field), hh_from_pop, hh_field))
    out["households"] = households
    out["households_source"] = np.where(has_est_hh, "estates", np.where(np.isnan(hh_field), "population", "community"))
    hh_new = np.where(has_est_hh, est_new, np.where(com_new, households, 0.0))
    hh_new = np.nan_to_num(hh_new)
    hh_old = np.nan_to_num(households) - hh_new
    out["households_new"] = hh_new
    out["households_existing"] = hh_old

    # ---- facilities → communities (one spatial join, reused) -----------------------
    fcid = community_of_points(facilities, com).to_numpy()
    area = pd.to_numeric(facilities["floor_area_m2"], errors="coerce").to_numpy(dtype=float)
    qual = service_mask(facilities, profile, profile.space.facility_services)
    if profile.space.count_facilities == "inside":
        sel = qual & (fcid >= 0)
        fac_space = np.bincount(fcid[sel], weights=np.nan_to_num(area[sel]), minlength=n)
    else:
        fac_space = _circle_space(com, facilities, qual, area, cutoff, reach)
    sel = qual & (fcid >= 0) & ~np.isnan(area)
    fac_max = _group_max(fcid[sel], area[sel], n)

    # ---- floor space: required vs provided -------------------------------------------
    out["space_required_m2"] = _rate_parts(hh_new, hh_old, profile, "min")
    out["space_target_m2"] = _rate_parts(hh_new, hh_old, profile, "target")
    out["space_provided_m2"] = np.where(use_est, np.nan_to_num(est_space), fac_space)
    out["space_provided_from"] = np.where(use_est, "estates", "facilities")
    # Estates checked one by one stand alone; the rest of the community pools its rooms.
    # (Without estate space data nothing is per estate and this is required − provided.)
    pooled_provided = out["space_provided_m2"].to_numpy(dtype=float) - pe_provided
    out["space_shortfall_m2"] = pe_short + np.clip(out["space_required_m2"].to_numpy(dtype=float) - pe_required - pooled_provided, 0, None)
    out["space_target_shortfall_m2"] = pe_short_t + np.clip(out["space_target_m2"].to_numpy(dtype=float) - pe_target - pooled_provided, 0, None)
    out["space_estates_short"] = n_short.astype(int)
    # The largest single unit (an estate's room or one facility) for Rugao's pooled rule.
    out["largest_unit_m2"] = np.fmax(est_max_space, fac_max)

    # ---- stations ("one station per community") ------------------------------------
    st = service_mask(facilities, profile, profile.station.services) & (fcid >= 0)
    out["n_stations"] = np.bincount(fcid[st], minlength=n)
    st_area = st & ~np.isnan(area)
    out["largest_station_m2"] = _group_max(fcid[st_area], area[st_area], n)

    pc_rule = profile.per_capita
    out["per_capita_required_m2"] = (
        out["population"] * pc_rule.min_m2_per_person if pc_rule is not None and pc_rule.measure == "floor_area" else np.nan
    )
    first = ["name", "street", "households", "population", "elderly"]
    return out[first + [c for c in out.columns if c not in first]]


def _circle_space(com: gpd.GeoDataFrame, facilities: gpd.GeoDataFrame, qual: np.ndarray, area: np.ndarray,
                  cutoff: float, reach: pd.DataFrame | None) -> np.ndarray:
    """Floor area of qualifying facilities within the walk circle of each community."""
    n = len(com)
    fac = pd.DataFrame({"fid": facilities["fid"].to_numpy(), "_area": np.nan_to_num(area)})[qual]
    if reach is not None:
        _require(reach, "reach", ["name", "fid", "distance_m"])
        pos = _first_position(com["name"])
        r = reach.loc[circle.within(reach["distance_m"], cutoff), ["name", "fid"]]
        r = r.assign(_cid=r["name"].map(pos)).dropna(subset=["_cid"]).merge(fac, on="fid")
    else:
        reps = gpd.GeoDataFrame({"_cid": np.arange(n)}, geometry=_rep_points(com).to_numpy(), crs=com.crs)
        f = gpd.GeoDataFrame(fac, geometry=facilities.geometry.to_numpy()[qual], crs=facilities.crs)
        r = gpd.sjoin(reps, f, predicate="dwithin", distance=cutoff)
    return np.bincount(r["_cid"].astype(int).to_numpy(), weights=r["_area"].to_numpy(dtype=float), minlength=n)
