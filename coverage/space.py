"""Floor-space rules: 每百户 m² of elderly-service rooms, estate by estate or pooled, and the pooled unit.

What a community must provide is households/100 × the plan's rate, new and existing estates
separately (split at ``space.new_from_year``). Households come from the 小区 layer where it
lists the community's estates; a **partial** layer keeps the community's other households
(community households − Σ listed estates, classed by the community's own build year). What
it provides is the estates' ``space_m2`` or the floor area of qualifying facilities
(``space.provided_from``). New and existing estates are never pooled together: a surplus in
an existing estate never offsets a new estate's deficit; a class marked ``per_estate``
(逐小区) is checked estate by estate. A facility of unknown floor area is unknown, not 0 m²:
where it could close a shortfall the check is *unverified*.
"""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd

from carecircle.coverage import circle
from carecircle.coverage.profile import Profile
from carecircle.errors import InputError

#: Floor-space shortfalls below this (m²) are rounding, not a deficit.
TOLERANCE = 1e-6


def numeric(df: pd.DataFrame, col: str) -> pd.Series:
    """An optional column as numbers (unparseable → NaN); all NaN when ``df`` lacks it."""
    return pd.to_numeric(df[col], errors="coerce") if col in df.columns else pd.Series(np.nan, index=df.index)


def first_position(names: pd.Series) -> pd.Series:
    """Name → row position of its first occurrence (a repeated name maps to its first row)."""
    pos = pd.Series(np.arange(len(names)), index=names.to_numpy())
    return pos[~pos.index.duplicated(keep="first")]


def group_max(cid: np.ndarray, values: np.ndarray, n: int) -> np.ndarray:
    """Per community ``0..n-1``, the largest of ``values`` (NaN skipped); NaN where there is none."""
    out = np.full(n, np.nan)
    g = pd.Series(values).groupby(cid).max()
    out[g.index.to_numpy()] = g.to_numpy()
    return out


def is_new(year: pd.Series, profile: Profile) -> np.ndarray:
    """Built on or after ``space.new_from_year`` (unknown years per ``space.unknown_year_as``)."""
    y = pd.to_numeric(year, errors="coerce")
    unknown_new = profile.space.unknown_year_as == "new"
    return np.where(y.isna(), unknown_new, y >= profile.space.new_from_year).astype(bool)


def _rates(profile: Profile, which: str) -> tuple[float | None, float | None]:
    """The ``which`` (``min`` or ``target``) m² per 100 households of new and of existing
    estates; None where the plan states none."""
    return (getattr(profile.space.new, f"{which}_m2_per_100hh"), getattr(profile.space.existing, f"{which}_m2_per_100hh"))


def rate_parts(hh_new: np.ndarray, hh_old: np.ndarray, profile: Profile, which: str) -> np.ndarray:
    """Required m² from households by age class; NaN where no rate applies to any household."""
    rn, ro = _rates(profile, which)
    req = (hh_new * rn / 100.0 if rn is not None else 0.0) + (hh_old * ro / 100.0 if ro is not None else 0.0)
    checked = (hh_new if rn is not None else 0.0) + (hh_old if ro is not None else 0.0)
    total = hh_new + hh_old
    return np.where((checked == 0) & (total > 0), np.nan, req)


def estate_cid(estates: gpd.GeoDataFrame, communities: gpd.GeoDataFrame, locate) -> np.ndarray:
    """Community position of each estate: by ``community`` name, else by location (``locate``)."""
    by_name = estates["community"].map(first_position(communities["name"])) if "community" in estates.columns else pd.Series(np.nan, index=estates.index)
    by_place = locate(gpd.GeoDataFrame(geometry=estates.geometry.representative_point(), crs=estates.crs), communities)
    cid = by_name.fillna(by_place.where(by_place >= 0))
    return cid.fillna(-1).astype(int).to_numpy()


def estate_space(estates: gpd.GeoDataFrame, communities: gpd.GeoDataFrame, profile: Profile, locate) -> pd.DataFrame:
    """Per 小区 (aligned with ``estates``): community position, age class and its own space requirement.

    Columns ``_cid`` (-1 outside every community), ``households``, ``built_year``, ``is_new``,
    ``per_estate`` (its class is checked estate by estate), ``rate`` (compliance m² per 100
    households, NaN where the plan states none), ``required``, ``target`` (NaN where the
    households or the rate are unknown) and ``provided`` (``space_m2``, NaN if unknown).
    """
    hh = pd.to_numeric(estates["households"], errors="coerce").to_numpy(dtype=float)
    new = is_new(estates["built_year"], profile)
    sp = profile.space

    def by_class(which: str) -> np.ndarray:
        rn, ro = _rates(profile, which)
        return np.where(new, np.nan if rn is None else rn, np.nan if ro is None else ro).astype(float)

    rate, target_rate = by_class("min"), by_class("target")
    return pd.DataFrame({
        "_cid": estate_cid(estates, communities, locate),
        "households": hh,
        "built_year": pd.to_numeric(estates["built_year"], errors="coerce").to_numpy(dtype=float),
        "is_new": new,
        "per_estate": np.where(new, sp.new.per_estate, sp.existing.per_estate).astype(bool),
        "rate": rate,
        "required": hh * rate / 100.0,
        "target": hh * target_rate / 100.0,
        "provided": numeric(estates, "space_m2").to_numpy(dtype=float),
    })


def uses_estate_space(est: pd.DataFrame, n: int, profile: Profile) -> np.ndarray:
    """Per community: is its provided space the 小区 ``space_m2`` (else facility floor area)?"""
    src = profile.space.provided_from
    if src != "auto":
        return np.full(n, src in ("estates", "both"))
    inside = est["_cid"].to_numpy() >= 0
    known = inside & est["provided"].notna().to_numpy()
    return np.bincount(est["_cid"].to_numpy()[known], minlength=n) > 0


def estate_shortfalls(est: pd.DataFrame, uses_estates: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
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
        ``built_year``, ``estate_class`` (``new`` / ``existing``, split at
        ``space.new_from_year``), ``per_estate`` (the class is checked estate by estate, so
        this estate's deficit fails its community), ``space_rate_m2_per_100hh`` (compliance
        rate; NaN where the plan states none), ``space_required_m2``, ``space_target_m2``,
        ``space_provided_m2`` (``space_m2``, NaN if unknown), ``space_shortfall_m2``,
        ``space_target_shortfall_m2`` (NaN where not checked: no rate or households, or the
        community's space is measured from facility floor area), ``flag_space`` (the estate
        is short on its own), geometry.
    """
    from carecircle.coverage.indicators import community_of_points

    com = communities.reset_index(drop=True)
    est = estate_space(estates, com, profile, community_of_points)
    short, short_t = estate_shortfalls(est, uses_estate_space(est, len(com), profile))
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


def circle_space(com: gpd.GeoDataFrame, facilities: gpd.GeoDataFrame, qual: np.ndarray, area: np.ndarray,
                 cutoff: float, reach: pd.DataFrame | None) -> tuple[np.ndarray, np.ndarray]:
    """Floor area of qualifying facilities within the walk circle of each community, and how
    many of them have no floor-area figure.

    ``reach`` (``name``, ``fid``, ``distance_m``: walk distances from the community's
    representative point, :func:`carecircle.coverage.analysis.analyse` builds it with
    :func:`carecircle.coverage.catchment.catchment_matrix`) decides; without it (tables
    built by hand) facilities within ``cutoff`` in a straight line count.
    """
    n = len(com)
    fac = pd.DataFrame({"fid": facilities["fid"].to_numpy(), "_area": area})[qual]
    if reach is not None:
        if missing := {"name", "fid", "distance_m"} - set(reach.columns):
            raise InputError(f"reach: missing column(s) {', '.join(sorted(missing))}; expected name, fid, distance_m")
        pos = first_position(com["name"])
        r = reach.loc[circle.within(reach["distance_m"], cutoff), ["name", "fid"]]
        r = r.assign(_cid=r["name"].map(pos)).dropna(subset=["_cid"]).merge(fac, on="fid")
    else:
        reps = gpd.GeoDataFrame({"_cid": np.arange(n)}, geometry=com.geometry.representative_point().to_numpy(), crs=com.crs)
        f = gpd.GeoDataFrame(fac, geometry=facilities.geometry.to_numpy()[qual], crs=facilities.crs)
        r = gpd.sjoin(reps, f, predicate="dwithin", distance=cutoff)
    c = r["_cid"].astype(int).to_numpy()
    a = r["_area"].to_numpy(dtype=float)
    return np.bincount(c, weights=np.nan_to_num(a), minlength=n), np.bincount(c, weights=np.isnan(a), minlength=n)


def community_space(com: gpd.GeoDataFrame, out: pd.DataFrame, facilities: gpd.GeoDataFrame, fcid: np.ndarray,
                    qual: np.ndarray, profile: Profile, *, cutoff: float, estates: gpd.GeoDataFrame | None,
                    reach: pd.DataFrame | None, locate) -> dict[str, np.ndarray]:
    """Households and floor space of every community (the columns of
    :func:`carecircle.coverage.indicators.community_indicators` from ``households`` to
    ``pooled_units_required``).

    ``out`` supplies ``population``; ``fcid`` is each facility's community position, ``qual``
    the facilities whose floor area counts (``space.facility_services``).
    """
    n = len(com)
    hh_field = numeric(com, "households").to_numpy(dtype=float)
    com_new = is_new(numeric(com, "built_year"), profile)
    est_hh, est_new = np.zeros(n), np.zeros(n)
    est_space = np.full(n, np.nan)
    est_max = np.full(n, np.nan)
    est_units = np.zeros(n)  # estate rooms of ≥ the pooled unit size
    has_est_hh = np.zeros(n, dtype=bool)
    # Estates checked one by one (逐小区): required, provided and the sum of their own shortfalls.
    pe = {k: np.zeros(n) for k in ("required", "target", "provided", "short", "short_t")}
    # Estates pooled within their class, per class: required, target and provided.
    pooled = {(c, k): np.zeros(n) for c in ("new", "old") for k in ("required", "target", "provided")}
    n_short = np.zeros(n)
    use_est = np.full(n, profile.space.provided_from in ("estates", "both"))
    unit_m2 = profile.pooled.min_m2 if profile.pooled is not None else np.inf
    if estates is not None and len(estates):
        est = estate_space(estates, com, profile, locate)
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
        prov = e["provided"].to_numpy()
        est_max = group_max(ec, prov, n)
        est_units = np.bincount(ec, weights=np.nan_to_num(prov) >= unit_m2 - TOLERANCE, minlength=n)
        use_est = uses_estate_space(est, n, profile)
        short, short_t = (x[keep] for x in estate_shortfalls(est, use_est))
        n_short = np.bincount(ec, weights=np.nan_to_num(short) > TOLERANCE, minlength=n)
        one = e["per_estate"].to_numpy() & ~np.isnan(short)
        for key, values in (("required", e["required"]), ("target", e["target"]), ("provided", np.nan_to_num(prov)),
                            ("short", short), ("short_t", short_t)):
            pe[key] = np.bincount(ec[one], weights=np.asarray(values, dtype=float)[one], minlength=n)
        new = e["is_new"].to_numpy()
        for cls, sel in (("new", ~one & new), ("old", ~one & ~new)):
            for key, values in (("required", e["required"]), ("target", e["target"]), ("provided", np.nan_to_num(prov))):
                v = np.nan_to_num(np.asarray(values, dtype=float))
                pooled[cls, key] = np.bincount(ec[sel], weights=v[sel], minlength=n)
    # A partial 小区 layer: the community's households not in any listed estate stay, classed
    # by the community's own build year (only a community households figure can say how many).
    residual = np.where(has_est_hh & ~np.isnan(hh_field), np.clip(np.nan_to_num(hh_field) - est_hh, 0, None), 0.0)
    hh_from_pop = out["population"].to_numpy(dtype=float) / profile.household_size
    households = np.where(has_est_hh, est_hh + residual, np.where(np.isnan(hh_field), hh_from_pop, hh_field))
    source = np.where(has_est_hh, np.where(residual > 0, "estates+community", "estates"),
                      np.where(np.isnan(hh_field), "population", "community"))
    hh_new = np.nan_to_num(np.where(has_est_hh, est_new + residual * com_new, np.where(com_new, households, 0.0)))
    hh_old = np.nan_to_num(households) - hh_new
    res_new, res_old = residual * com_new, residual * ~com_new

    area = pd.to_numeric(facilities["floor_area_m2"], errors="coerce").to_numpy(dtype=float)
    if profile.space.count_facilities == "inside":
        sel = qual & (fcid >= 0)
        fac_space = np.bincount(fcid[sel], weights=np.nan_to_num(area[sel]), minlength=n)
        fac_unknown = np.bincount(fcid[sel], weights=np.isnan(area[sel]), minlength=n)
    else:
        fac_space, fac_unknown = circle_space(com, facilities, qual, area, cutoff, reach)
    sel = qual & (fcid >= 0) & ~np.isnan(area)
    fac_max = group_max(fcid[sel], area[sel], n)
    fac_units = np.bincount(fcid[sel], weights=area[sel] >= unit_m2 - TOLERANCE, minlength=n)

    required = rate_parts(hh_new, hh_old, profile, "min")
    target = rate_parts(hh_new, hh_old, profile, "target")
    both = profile.space.provided_from == "both"
    provided = np.where(use_est, np.nan_to_num(est_space) + (fac_space if both else 0.0), fac_space)
    from_fac = ~use_est | both
    # Estates checked one by one stand alone; the rest pools within its class (new with new,
    # existing with existing); residual households and facility rooms form one pool of their
    # own when the community's space is measured from facilities.
    rn, ro = _rates(profile, "min")
    tn, to = _rates(profile, "target")
    if estates is not None and len(estates):
        def cls_short(rate_new, rate_old, key):
            need_new = pooled["new", key] + (res_new * rate_new / 100.0 if rate_new is not None else 0.0)
            need_old = pooled["old", key] + (res_old * rate_old / 100.0 if rate_old is not None else 0.0)
            extra = np.where(both, fac_space, 0.0)
            short_new = np.clip(need_new - pooled["new", "provided"], 0, None)
            short_old = np.clip(need_old - pooled["old", "provided"], 0, None)
            # Facility rooms (``both``) close the larger gap first: they serve the whole community.
            return np.clip(short_new + short_old - extra, 0, None)

        est_short = pe["short"] + cls_short(rn, ro, "required")
        est_short_t = pe["short_t"] + cls_short(tn, to, "target")
    else:
        est_short = est_short_t = np.zeros(n)
    fac_short = np.clip(required - provided, 0, None)
    fac_short_t = np.clip(target - provided, 0, None)
    shortfall = np.where(use_est, est_short, fac_short)
    shortfall_t = np.where(use_est, est_short_t, fac_short_t)
    shortfall = np.where(np.isnan(required), np.nan, shortfall)
    shortfall_t = np.where(np.isnan(target), np.nan, shortfall_t)

    out = {
        "households": households, "households_source": source, "households_new": hh_new, "households_existing": hh_old,
        "space_required_m2": required, "space_target_m2": target, "space_provided_m2": provided,
        "space_provided_from": np.where(use_est, np.where(both, "estates+facilities", "estates"), "facilities"),
        "space_shortfall_m2": shortfall, "space_target_shortfall_m2": shortfall_t,
        "space_estates_short": n_short.astype(int),
        # Facilities of unknown floor area where the community's space counts facilities.
        "space_area_unknown": np.where(from_fac, fac_unknown, 0).astype(int),
        "largest_unit_m2": np.fmax(est_max, fac_max),
    }
    if profile.pooled is not None:
        pl = profile.pooled
        # One ≥ min_m2 unit per max_households new households (the plan's 3000–4000: the
        # upper bound, so the count is the fewest the plan allows); small plots are exempt.
        out["pooled_units_required"] = np.where(hh_new >= pl.min_households - TOLERANCE, np.ceil(hh_new / pl.max_households), 0.0)
        out["pooled_units"] = (est_units + fac_units).astype(int)
    else:
        out["pooled_units_required"] = np.zeros(n)
        out["pooled_units"] = np.zeros(n, dtype=int)
    return out
