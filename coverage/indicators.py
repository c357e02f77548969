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

import geopandas as gpd
import numpy as np
import pandas as pd

from carecircle.coverage import circle, space
from carecircle.coverage.profile import Profile
from carecircle.coverage.space import TOLERANCE, first_position, group_max, numeric  # noqa: F401  (TOLERANCE re-exported)
from carecircle.errors import InputError
from carecircle.layers.areas import community_kind, street_kind
from carecircle.layers.facilities import keyword_flags

#: Weighted quantile reported as the "worst decile" distance.
WORST_DECILE = 0.9


def service_mask(facilities: pd.DataFrame, profile: Profile, services: list[str]) -> np.ndarray:
    """Facilities carrying any of ``services``.

    Uses the bool service columns the facility loader writes; a service without a column
    (e.g. a tier a user profile adds) is detected from its keywords in ``name`` and ``type``
    with the loader's own matcher (:func:`carecircle.layers.facilities.keyword_flags`).

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
    have = [s for s in services if s in facilities.columns]
    for s in have:
        mask |= facilities[s].fillna(False).to_numpy(dtype=bool)
    rest = [s for s in services if s not in have]
    if rest:
        empty = pd.Series("", index=facilities.index)
        flags = keyword_flags(facilities.get("name", empty), facilities.get("type", empty),
                              {s: profile.services[s].keywords for s in rest}, {s: profile.services[s].exclude for s in rest})
        for v in flags.values():
            mask |= v
    return mask


def _rep_points(gdf: gpd.GeoDataFrame) -> gpd.GeoSeries:
    return gdf.geometry.representative_point()


def _require(table: pd.DataFrame, label: str, columns: list[str]) -> None:
    """Raise :class:`InputError` when a table handed in by the pipeline lacks ``columns``."""
    if missing := set(columns) - set(table.columns):
        raise InputError(f"{label}: missing column(s) {', '.join(sorted(missing))}; expected {', '.join(columns)}")


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
        shortfall of the rest within its class: a surplus never offsets another estate's
        deficit, nor an existing estate's a new one's), ``space_estates_short`` (estates
        short on their own, see :func:`carecircle.coverage.space.estate_table`),
        ``space_target_shortfall_m2``, ``space_area_unknown`` (qualifying facilities counted
        without a floor-area figure), ``largest_unit_m2``, ``pooled_units`` and
        ``pooled_units_required`` (Rugao), ``community_kind`` (``urban`` / ``rural``),
        ``street_kind``, ``n_stations``, ``largest_station_m2``, ``stations_area_unknown``,
        ``n_<key>`` per ``presence`` check, ``estates_listed`` / ``estates_covered`` (with
        ``estate_coverage``), ``per_capita_required_m2``, geometry.
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
    pop_field = numeric(com, "population").to_numpy(dtype=float)
    eld_field = numeric(com, "elderly").to_numpy(dtype=float)
    out["population"] = np.where(np.isnan(pop_field), people_sum, pop_field)
    out["elderly"] = np.where(np.isnan(eld_field), eld_sum, eld_field)

    # ---- kinds of place (the scopes the plans use) ---------------------------------
    out["community_kind"] = place_kinds(com, profile)
    out["street_kind"] = street_kinds(com["street"], com.get("street_kind"), profile).to_numpy()

    # ---- households and floor space (coverage/space.py) ----------------------------
    fcid = community_of_points(facilities, com).to_numpy()
    area = pd.to_numeric(facilities["floor_area_m2"], errors="coerce").to_numpy(dtype=float)
    qual = service_mask(facilities, profile, profile.space.facility_services)
    for col, values in space.community_space(com, out, facilities, fcid, qual, profile, cutoff=cutoff, estates=estates,
                                             reach=reach, locate=community_of_points).items():
        out[col] = values

    # ---- stations ("one station per community") and presence of services ------------
    st = service_mask(facilities, profile, profile.station.services) & (fcid >= 0)
    out["n_stations"] = np.bincount(fcid[st], minlength=n)
    st_area = st & ~np.isnan(area)
    out["largest_station_m2"] = group_max(fcid[st_area], area[st_area], n)
    out["stations_area_unknown"] = np.bincount(fcid[st & np.isnan(area)], minlength=n)
    # Presence (the service inside the community) is reported beside reach for every circle
    # service; a profile's presence checks read their own counts.
    presence = {f"present_{s}": [s] for s in profile.circle_services} | {k: r.services for k, r in profile.presence.items()}
    for key, services in presence.items():
        has = service_mask(facilities, profile, services) & (fcid >= 0)
        out[f"n_{key}"] = np.bincount(fcid[has], minlength=n)
    # Facilities whose floor area would count here but is unknown: named in the action list.
    unknown = (qual | st) & (fcid >= 0) & np.isnan(area)
    names = pd.Series(facilities["name"].astype(str).to_numpy()[unknown]).groupby(fcid[unknown]).agg("; ".join)
    out["facilities_unknown_area"] = ""
    out.loc[names.index.to_numpy(), "facilities_unknown_area"] = names.to_numpy()
    if profile.estate_coverage is not None:
        out["estates_listed"], out["estates_covered"] = _estate_coverage(estates, com, population, profile, cutoff)

    pc_rule = profile.per_capita
    out["per_capita_required_m2"] = (
        out["population"] * pc_rule.min_m2_per_person if pc_rule is not None and pc_rule.measure == "floor_area" else np.nan
    )
    first = ["name", "street", "households", "population", "elderly"]
    return out[first + [c for c in out.columns if c not in first]]


def place_kinds(com: pd.DataFrame, profile: Profile) -> np.ndarray:
    """``urban`` / ``rural`` per community (the ``kind`` column, else the name's ending).

    A community neither a field nor its name marks as 村 counts as urban: the plans' urban
    checks are the default they state, and a 村 is named …村 (README, "readings").
    """
    kind = com["kind"].astype("string") if "kind" in com.columns else pd.Series(pd.NA, index=com.index, dtype="string")
    kind = kind.fillna(community_kind(com["name"].astype("string")))
    return kind.fillna("urban").to_numpy(dtype=object)


def street_kinds(names: pd.Series, given: pd.Series | None, profile: Profile) -> pd.Series:
    """The kind of each sub-district: the profile's named places, else ``given``, else the name's ending."""
    names = names.astype("string")
    kind = given.astype("string").reset_index(drop=True) if given is not None else pd.Series(pd.NA, index=range(len(names)), dtype="string")
    kind.index = names.index
    kind = kind.fillna(street_kind(names))
    named = names.map(profile.sub_district.kinds_by_name)
    return named.astype("string").fillna(kind)


def _estate_coverage(estates: gpd.GeoDataFrame | None, com: gpd.GeoDataFrame, population: gpd.GeoDataFrame,
                     profile: Profile, cutoff: float) -> tuple[np.ndarray, np.ndarray]:
    """Per community: 小区 listed (with population points inside) and 小区 whose residents are
    within the circle of ``estate_coverage.services`` (elderly-weighted share ≥ ``min_covered_share``)."""
    n = len(com)
    if estates is None or not len(estates):
        return np.zeros(n, dtype=int), np.zeros(n, dtype=int)
    polys = estates[estates.geometry.geom_type.isin(["Polygon", "MultiPolygon"])]
    if not len(polys):
        return np.zeros(n, dtype=int), np.zeros(n, dtype=int)
    ecid = space.estate_cid(polys, com, community_of_points)
    pe = community_of_points(population, polys.reset_index(drop=True)).to_numpy()
    inside = pe >= 0
    w = pd.to_numeric(population["elderly"], errors="coerce").fillna(0).to_numpy(dtype=float)[inside]
    cov = np.ones(len(population), dtype=bool)
    for s in profile.estate_coverage.services:
        cov &= circle.covered(population, s, cutoff)
    m = len(polys)
    w_sum = np.bincount(pe[inside], weights=w, minlength=m)
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.bincount(pe[inside], weights=w * cov[inside], minlength=m) / w_sum
    listed = (w_sum > 0) & (ecid >= 0)
    ok = listed & (share >= profile.circle.min_covered_share)
    return (np.bincount(ecid[listed], minlength=n).astype(int), np.bincount(ecid[ok], minlength=n).astype(int))
