"""Standards checks: flags per community, the 问题清单 (action list) and city totals.

The analysis emits check **keys** and numbers; every word (labels, the standard's text, units)
is applied by :mod:`carecircle.maps.labels`. The checks a profile applies (:func:`checks`),
where each applies and what sets its flag:

``no_<s>`` (community, one per circle service ``s``, e.g. ``flag_no_day_care``)
    the elderly-weighted share of the community's population points within the walk
    distance of an ``s`` facility is below ``circle.min_covered_share`` (default 0.5), in
    communities of a kind in ``circle.applies_to`` (SJZ: urban only).
``<key>`` of ``profile.presence`` (community; KS ``day_care_present`` …)
    no facility with one of the rule's services inside the community (presence, not reach).
``estate_coverage`` (community, SJZ)
    fewer than ``estate_coverage.min_share`` of the community's 小区 have their residents
    within the circle ("覆盖社区内所有居住小区").
``space``
    ``space_shortfall_m2 > 0`` (see :mod:`carecircle.coverage.space`), in communities whose
    sub-district kind is in ``space.applies_to``. *Unverified* instead of failed when a
    qualifying facility without a floor-area figure could close the gap.
``pooled_space`` (Rugao)
    fewer units of ≥ ``pooled.min_m2`` than ``pooled_units_required`` (one per
    ``max_households`` new households, from ``min_households`` on), where ``pooled.applies_to``.
``no_station``
    ``station.required`` and no ``station.services`` facility (day care) inside the community,
    in communities of a kind in ``station.applies_to``.
``station_size`` (Shijiazhuang)
    no station of ≥ ``station.min_floor_area_m2``: failed when every station's area is
    known, unverified when one without a figure could be it.
``per_capita`` (community level only when ``per_capita.level: community``)
    floor area provided < population × ``min_m2_per_person``.

Sub-district checks (``no_street_centre``, ``sub_district.rules``, ``large_centres``,
``per_capita``) are in :mod:`carecircle.coverage.scorecards`.

The action list has one row per failed (or unverified, or reported) check, most severe
first: by elderly affected, then by the shortfall. A community whose floor-space deficit lies
in estates checked one by one gets one row per failing 小区 (``estate``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import geopandas as gpd
import numpy as np
import pandas as pd

from carecircle.coverage import circle, scorecards
from carecircle.coverage.indicators import community_indicators
from carecircle.coverage.profile import Profile
from carecircle.coverage.space import TOLERANCE

#: Verdicts of an action row: failed the plan, cannot be decided from the data (unknown
#: floor area), or reported without failing (a place where the plan's target is a share).
VERDICTS = ("fail", "unverified", "reported")

ACTION_COLUMNS = ["community", "estate", "street", "check", "verdict", "value", "required", "shortfall", "unit",
                  "elderly_affected", "source", "target_year", "nearest_facility", "nearest_facility_m",
                  "facilities_unknown_area"]


@dataclass(frozen=True)
class Check:
    """One checkable standard of a profile: its key, level, unit key, the plan's wording and year."""

    key: str
    level: str  # "community" | "street" | "city"
    unit: str  # "%", "m²" or "count"
    source: str
    year: int | None = None


def _year(profile: Profile, *years: int | None) -> int | None:
    return next((y for y in years if y is not None), profile.target_year)


def checks(profile: Profile) -> list[Check]:
    """The checks ``profile`` applies, in report order.

    Parameters
    ----------
    profile : Profile

    Returns
    -------
    list of Check
    """
    out = []
    for s in profile.circle_services:
        t = profile.target(s)
        out.append(Check(f"no_{s}", "community", "%",
                         "；".join(x for x in (profile.walk.source, t.source, profile.circle.source) if x), _year(profile, t.year)))
    for key, rule in profile.presence.items():
        out.append(Check(key, "community", "count", rule.source, _year(profile, rule.year)))
    if profile.estate_coverage is not None:
        out.append(Check("estate_coverage", "community", "%", profile.estate_coverage.source, _year(profile)))
    sp = profile.space
    if sp.new.min_m2_per_100hh is not None or sp.existing.min_m2_per_100hh is not None:
        out.append(Check("space", "community", "m²", "；".join(x for x in (sp.new.source, sp.existing.source) if x), _year(profile)))
    if profile.pooled is not None:
        out.append(Check("pooled_space", "community", "count", profile.pooled.source, _year(profile)))
    st = profile.station
    if st.required:
        out.append(Check("no_station", "community", "count", st.source, _year(profile)))
    if st.min_floor_area_m2 is not None:
        out.append(Check("station_size", "community", "m²", st.source, _year(profile)))
    pc = profile.per_capita
    if pc is not None and pc.measure == "floor_area":
        out.append(Check("per_capita", "community" if pc.level == "community" else "street", "m²", pc.source, _year(profile)))
    sd = profile.sub_district
    for key, rule in sd.place_rules().items():
        out.append(Check(key, "street", "count", "；".join(dict.fromkeys(sc.source for sc in rule.scopes if sc.source)),
                         _year(profile, *(sc.year for sc in rule.scopes))))
    if sd.large_centres is not None:
        out.append(Check("large_centres", "street", "count", sd.large_centres.source, _year(profile)))
    return out


def community_flag_columns(profile: Profile) -> list[str]:
    """Flag columns on the communities table (always present, False when not applied).

    Parameters
    ----------
    profile : Profile

    Returns
    -------
    list of str
        ``flag_no_<s>`` per circle service, one per presence check, then ``flag_estate_coverage``,
        ``flag_space``, ``flag_pooled_space``, ``flag_no_station``, ``flag_station_size``,
        ``flag_per_capita``.
    """
    keys = ([f"no_{s}" for s in profile.circle_services] + list(profile.presence)
            + ["estate_coverage", "space", "pooled_space", "no_station", "station_size", "per_capita"])
    return [f"flag_{k}" for k in keys]


def _nearest_cols(com: pd.DataFrame, profile: Profile, service: str | None) -> tuple[pd.Series, pd.Series]:
    s = service or (profile.circle_services[0] if profile.circle_services else None)
    if s is None or f"nearest_{s}" not in com.columns:
        return pd.Series(pd.NA, index=com.index, dtype="string"), pd.Series(np.nan, index=com.index)
    return com[f"nearest_{s}"].astype("string"), com[f"nearest_{s}_m"].astype(float)


def _in(values: pd.Series, kinds: list[str] | None) -> np.ndarray:
    """Rows whose kind is in ``kinds`` (None: every row)."""
    if kinds is None:
        return np.ones(len(values), dtype=bool)
    return values.astype("string").isin(kinds).fillna(False).to_numpy(dtype=bool)


def _community_results(com: pd.DataFrame, profile: Profile) -> pd.DataFrame:
    """One row per failed or unverified community check (unsorted), ``_pos`` = row position in ``com``."""
    by_key = {c.key: c for c in checks(profile) if c.level == "community"}
    elderly = com["elderly"].astype(float).fillna(0)
    kind = com["community_kind"] if "community_kind" in com.columns else pd.Series("urban", index=com.index)
    skind = com["street_kind"] if "street_kind" in com.columns else pd.Series(pd.NA, index=com.index, dtype="string")
    unknown = com["facilities_unknown_area"] if "facilities_unknown_area" in com.columns else pd.Series("", index=com.index)
    parts = []

    def add(key, mask, value, required, affected, *, service=None, shortfall=None, unverified=None):
        fail = np.asarray(mask, dtype=bool)
        unv = np.zeros(len(com), bool) if unverified is None else np.asarray(unverified, dtype=bool) & ~fail
        rows = fail | unv
        if key not in by_key or not rows.any():
            return
        c = by_key[key]
        near, near_m = _nearest_cols(com, profile, service)
        value = np.broadcast_to(np.asarray(value, dtype=float), len(com))
        required = np.broadcast_to(np.asarray(required, dtype=float), len(com))
        short = required - value if shortfall is None else np.asarray(shortfall, dtype=float)
        parts.append(pd.DataFrame({
            "_pos": np.flatnonzero(rows),
            "community": com["name"][rows].astype("string").to_numpy(), "estate": pd.NA,
            "street": com["street"][rows].astype("string").to_numpy(),
            "check": key, "verdict": np.where(fail[rows], "fail", "unverified"),
            "value": value[rows], "required": required[rows], "shortfall": short[rows], "unit": c.unit,
            "elderly_affected": np.broadcast_to(np.asarray(affected, dtype=float), len(com))[rows],
            "source": c.source, "target_year": c.year,
            "nearest_facility": near[rows].to_numpy(), "nearest_facility_m": near_m[rows].to_numpy(),
            "facilities_unknown_area": np.where(unv[rows], unknown[rows].astype(str).to_numpy(), ""),
        }))

    in_circle = _in(kind, profile.circle.applies_to)
    for s in profile.circle_services:
        share = com[f"elderly_covered_share_{s}"].astype(float)
        thr = profile.circle.min_covered_share
        add(f"no_{s}", in_circle & (share < thr).fillna(False).to_numpy(), share.fillna(0) * 100, thr * 100,
            elderly * (1 - share.fillna(0)), service=s)
    for key, rule in profile.presence.items():
        n = com[f"n_{key}"].astype(int)
        add(key, _in(kind, rule.applies_to) & (n == 0).to_numpy(), n, 1.0, elderly, service=rule.services[0])
    ec = profile.estate_coverage
    if ec is not None:
        listed, cov = com["estates_listed"].astype(float), com["estates_covered"].astype(float)
        share = (cov / listed.where(listed > 0)) * 100
        add("estate_coverage", _in(kind, ec.applies_to) & (share < ec.min_share * 100 - TOLERANCE).fillna(False).to_numpy(),
            share.fillna(0), ec.min_share * 100, elderly, service=ec.services[0])
    area_unknown = com["space_area_unknown"].astype(int).to_numpy() > 0 if "space_area_unknown" in com.columns else np.zeros(len(com), bool)
    short = com["space_shortfall_m2"].astype(float)
    in_space = _in(skind, profile.space.applies_to)
    is_short = in_space & (short > TOLERANCE).fillna(False).to_numpy()
    # Estate by estate (逐小区) the shortfall exceeds required − provided: a surplus in one
    # estate does not offset another's deficit, so the shortfall column is the measure.
    add("space", is_short & ~area_unknown, com["space_provided_m2"], com["space_required_m2"], elderly, shortfall=short,
        unverified=is_short & area_unknown)
    if profile.pooled is not None:
        have, need = com["pooled_units"].astype(float), com["pooled_units_required"].astype(float)
        few = _in(skind, profile.pooled.applies_to) & (have < need).to_numpy()
        add("pooled_space", few & ~area_unknown, have, need, elderly, unverified=few & area_unknown)
    n_st = com["n_stations"].astype(int)
    in_station = _in(kind, profile.station.applies_to)
    add("no_station", in_station & (n_st == 0).to_numpy(), 0.0, 1.0, elderly)
    if profile.station.min_floor_area_m2 is not None:
        big = com["largest_station_m2"].astype(float)
        small = in_station & (n_st > 0).to_numpy() & ~(big >= profile.station.min_floor_area_m2 - TOLERANCE).to_numpy()
        st_unknown = com["stations_area_unknown"].astype(int).to_numpy() > 0 if "stations_area_unknown" in com.columns else np.zeros(len(com), bool)
        add("station_size", small & ~st_unknown, big.fillna(0), profile.station.min_floor_area_m2, elderly,
            unverified=small & st_unknown)
    pcr = com["per_capita_required_m2"].astype(float)
    low = (com["space_provided_m2"].astype(float) < pcr - TOLERANCE).fillna(False).to_numpy()
    add("per_capita", low & ~area_unknown, com["space_provided_m2"], pcr, elderly, unverified=low & area_unknown)
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=["_pos", *ACTION_COLUMNS])


def _sort_actions(df: pd.DataFrame) -> pd.DataFrame:
    df = df.assign(_v=df["verdict"].map({v: i for i, v in enumerate(VERDICTS)}))
    df = df.sort_values(["_v", "elderly_affected", "shortfall", "street", "community", "check"],
                        ascending=[True, False, False, True, True, True], na_position="last", kind="mergesort")
    return df.drop(columns="_v").reset_index(drop=True)


def check_communities(indicators: gpd.GeoDataFrame, profile: Profile) -> gpd.GeoDataFrame:
    """Add the flags to the community indicators.

    Parameters
    ----------
    indicators : GeoDataFrame
        Output of :func:`carecircle.coverage.indicators.community_indicators`.
    profile : Profile

    Returns
    -------
    GeoDataFrame
        ``indicators`` plus ``flag_<check>`` (bool: failed, see the module docstring),
        ``n_flags``, ``worst_check`` (key of the most severe failed check, "" if none),
        ``failed_checks`` (the failed keys in check order, ";"-joined) and
        ``unverified_checks`` (checks the data cannot decide: a facility without a floor
        area; not failures).
    """
    com = indicators.reset_index(drop=True).copy()
    res = _community_results(com, profile)
    fails = res[res["verdict"] == "fail"]
    flag_cols = community_flag_columns(profile)
    com[flag_cols] = False
    for key, grp in fails.groupby("check", sort=False):
        com.loc[grp["_pos"].to_numpy(), f"flag_{key}"] = True
    com["n_flags"] = com[flag_cols].sum(axis=1).astype(int)
    worst = _sort_actions(fails).drop_duplicates("_pos", keep="first")
    com["worst_check"] = ""
    com.loc[worst["_pos"].to_numpy(), "worst_check"] = worst["check"].to_numpy()
    order = {c.key: i for i, c in enumerate(checks(profile))}
    for col, part in (("failed_checks", fails), ("unverified_checks", res[res["verdict"] == "unverified"])):
        keys = part.assign(_o=part["check"].map(order)).sort_values(["_pos", "_o"]).groupby("_pos")["check"].agg(";".join)
        com[col] = ""
        com.loc[keys.index.to_numpy(), col] = keys.to_numpy()
    return com


def _name_pooled_estates(fails: pd.DataFrame, estates: pd.DataFrame) -> pd.DataFrame:
    """Name, on a community's pooled ``space`` row, the 小区 short of space in it (the row's
    numbers stay the pool's: the plan pools, but the bureau acts on named estates)."""
    short = estates[~estates["per_estate"].astype(bool) & estates["flag_space"].astype(bool)]
    if not len(short):
        return fails
    names = short.groupby(["community", "street"])["estate"].agg(lambda e: "、".join(map(str, e)))
    space = (fails["check"] == "space") & fails["estate"].isna()
    keys = pd.MultiIndex.from_frame(fails.loc[space, ["community", "street"]].astype("string"))
    named = pd.Series(keys.map(lambda k: names.get(k, pd.NA)), index=fails.index[space], dtype="string")
    out = fails.copy()
    out["estate"] = out["estate"].astype("string")
    out.loc[space, "estate"] = named
    return out


def _estate_rows(fails: pd.DataFrame, com: pd.DataFrame, estates: pd.DataFrame | None) -> pd.DataFrame:
    """Split each community ``space`` row into one per failing 小区 checked estate by estate
    (its own required, provided and shortfall), keeping a community row for the pooled rest."""
    if estates is None or not len(estates) or not len(fails):
        return fails
    fails = _name_pooled_estates(fails, estates)
    own = estates[estates["per_estate"].astype(bool) & estates["flag_space"].astype(bool)]
    space = fails["check"] == "space"
    if not len(own) or not space.any():
        return fails
    keys = ["community", "street"]
    rows = fails[space].merge(own[keys + ["estate", "space_provided_m2", "space_required_m2", "space_shortfall_m2"]]
                              .rename(columns={"estate": "_estate"}), on=keys, how="inner")
    if not len(rows):
        return fails
    share = rows["space_shortfall_m2"] / rows.groupby(keys)["space_shortfall_m2"].transform("sum")
    per = rows.assign(estate=rows["_estate"], value=rows["space_provided_m2"].fillna(0), required=rows["space_required_m2"],
                      shortfall=rows["space_shortfall_m2"], elderly_affected=rows["elderly_affected"] * share)
    per = per[fails.columns]
    # The pooled remainder of the community, if any, stays a community row.
    own_sum = per.groupby(keys)["shortfall"].sum()
    rest = fails[space].copy()
    rest_short = rest["shortfall"].to_numpy() - pd.MultiIndex.from_frame(rest[keys].astype("string")).map(
        lambda k: own_sum.get(k, 0.0)).to_numpy(dtype=float)
    rest = rest.assign(shortfall=rest_short)[rest_short > TOLERANCE]
    return pd.concat([fails[~space], rest, per], ignore_index=True)


def action_list(communities: pd.DataFrame, streets: pd.DataFrame, profile: Profile, *,
                estates: pd.DataFrame | None = None, city: dict | None = None) -> pd.DataFrame:
    """问题清单: one row per failed, unverified or reported check, most severe first.

    Parameters
    ----------
    communities : DataFrame
        Output of :func:`check_communities`.
    streets : DataFrame
        Output of :func:`carecircle.coverage.scorecards.street_scorecard`.
    profile : Profile
    estates : DataFrame, optional
        :func:`carecircle.coverage.space.estate_table`: a space deficit in estates checked
        one by one is listed estate by estate.
    city : dict, optional
        :func:`city_totals`: a sub-district rule whose city-level share misses the plan's
        target adds one city row (``street`` "").

    Returns
    -------
    DataFrame
        ``rank`` (1 = most severe), ``community`` ("" for a sub-district check), ``estate``
        (NA unless the row is one 小区's), ``street``, ``check`` (key), ``verdict``
        (``fail``, ``unverified``, ``reported``), ``value``, ``required``, ``shortfall``,
        ``unit`` (``%``, ``m²``, ``count``), ``elderly_affected``, ``source`` (the plan's
        wording), ``target_year``, ``nearest_facility``, ``nearest_facility_m``,
        ``facilities_unknown_area`` (names, for unverified rows). Failures first, then by
        elderly affected and shortfall (descending). Words are applied in
        :func:`carecircle.maps.labels.word_actions`.
    """
    com = communities.reset_index(drop=True)
    res = _estate_rows(_community_results(com, profile).drop(columns="_pos"), com, estates)
    parts = [res, scorecards.street_results(streets, profile)]
    if city is not None:
        parts.append(scorecards.city_results(city, profile))
    parts = [p for p in parts if len(p)]
    allf = pd.concat(parts, ignore_index=True) if parts else res
    allf = _sort_actions(allf.reindex(columns=ACTION_COLUMNS))
    allf.insert(0, "rank", np.arange(1, len(allf) + 1))
    return allf


def city_totals(communities: pd.DataFrame, streets: pd.DataFrame, profile: Profile, *,
                population: pd.DataFrame | None = None, services: dict | None = None,
                facilities: pd.DataFrame | None = None, cutoff_m: float | None = None) -> dict:
    """City totals against the plan's targets (JSON-ready).

    Parameters
    ----------
    communities, streets : DataFrame
        Outputs of :func:`check_communities` and :func:`carecircle.coverage.scorecards.street_scorecard`.
    profile : Profile
    population : DataFrame, optional
        Population points (``people``, ``elderly``, ``covered_<s>`` or ``dist_<s>_m``): the
        covered shares are over every point (:func:`carecircle.coverage.circle.shares`).
    services : dict, optional
        The analysis' per-service summary (already holding those shares: not computed again).
        Without either, the shares are the community shares weighted by the communities'
        people / elderly (``shares_basis`` says which).
    facilities : DataFrame, optional
        For the bed targets (``beds``, and ``nursing_beds`` when the data have it).
    cutoff_m : float, optional

    Returns
    -------
    dict
        ``profile``, ``title``, ``target_year``, ``cutoff_m``, ``communities``,
        ``communities_flagged``, ``flagged_by_check``, ``unverified_by_check``,
        ``shares_basis``, ``services`` (per circle service: ``population_covered_share``,
        ``elderly_covered_share``, ``communities_covered`` (circle), ``communities_present``
        (the service inside), their shares, ``target_share``, ``target_measure``,
        ``meets_target``, ``target_source``, ``target_year``), ``sub_districts`` (with
        ``rules``: per rule and scope the places, places meeting it, share, target),
        ``kinds``, ``space``, ``stations``, ``beds``, ``not_checked``.
    """
    cutoff = float(profile.walk_distance_m if cutoff_m is None else cutoff_m)
    n = len(communities)
    out_services = {}
    basis = "population_points" if population is not None or services is not None else "communities"
    people = communities["population"].astype(float).fillna(0).to_numpy()
    eld = communities["elderly"].astype(float).fillna(0).to_numpy()
    for s in profile.circle_services:
        if services is not None and s in services:
            sh = services[s]
        elif population is not None:
            sh = circle.shares(population, s, cutoff)
        else:
            p_cov = people * communities[f"population_covered_share_{s}"].astype(float).fillna(0).to_numpy()
            e_cov = eld * communities[f"elderly_covered_share_{s}"].astype(float).fillna(0).to_numpy()
            sh = {"population_covered_share": float(p_cov.sum() / people.sum()) if people.sum() > 0 else None,
                  "elderly_covered_share": float(e_cov.sum() / eld.sum()) if eld.sum() > 0 else None}
        covered = int((~communities[f"flag_no_{s}"].astype(bool)).sum())
        present = int((communities[f"n_present_{s}"] > 0).sum()) if f"n_present_{s}" in communities else None
        t = profile.target(s)
        share = covered / n if n else float("nan")
        pshare = present / n if n and present is not None else None
        counted = pshare if t.measure == "presence" else share
        out_services[s] = {
            "population_covered_share": sh["population_covered_share"], "elderly_covered_share": sh["elderly_covered_share"],
            "communities_covered": covered, "communities_covered_share": share,
            "communities_present": present, "communities_present_share": pshare,
            "target_share": t.share, "target_measure": t.measure,
            "meets_target": bool(counted is not None and counted >= t.share - TOLERANCE),
            "target_source": t.source, "target_year": t.year or profile.target_year,
        }
    flag_cols = [c for c in communities.columns if c.startswith("flag_")]
    by_check = {c[5:]: int(communities[c].astype(bool).sum()) for c in flag_cols}
    by_check.update({c[5:]: int(streets[c].astype(bool).sum()) for c in streets.columns if c.startswith("flag_")})
    unverified: dict[str, int] = {}
    for table in (communities, streets):
        for v in table.get("unverified_checks", pd.Series(dtype=str)).fillna("").astype(str):
            for k in filter(None, v.split(";")):
                unverified[k] = unverified.get(k, 0) + 1
    space = {
        "required_m2": _fsum(communities["space_required_m2"]), "target_m2": _fsum(communities["space_target_m2"]),
        "provided_m2": _fsum(communities["space_provided_m2"]), "shortfall_m2": _fsum(communities["space_shortfall_m2"]),
        "target_shortfall_m2": _fsum(communities["space_target_shortfall_m2"]),
        "communities_short": int(communities["flag_space"].astype(bool).sum()),
        "new_from_year": profile.space.new_from_year, "new_from_year_source": profile.space.new_from_year_source,
    }
    st = communities["n_stations"].astype(int)
    stations = {
        "required": profile.station.required,
        "services": list(profile.station.services),
        "communities_with_station": int((st > 0).sum()),
        "share": float((st > 0).mean()) if n else None,
        "area_unverified": unverified.get("station_size", 0),
    }
    kinds = communities["community_kind"].astype(str).value_counts().to_dict() if "community_kind" in communities else {}
    not_checked = []
    if profile.per_capita is not None and profile.per_capita.measure == "land":
        not_checked.append({"check": "per_capita", "source": profile.per_capita.source, "reason": "land area is not in the inputs"})
    for name, r in (("new", profile.space.new), ("existing", profile.space.existing)):
        if r.min_m2_per_100hh is None:
            not_checked.append({"check": f"space.{name}", "source": r.source, "reason": "no 每百户 figure in the profile"})
    if profile.sub_district.large_centres is not None:
        not_checked.append({"check": "large_centres.rating", "source": profile.sub_district.large_centres.source,
                            "reason": "star ratings are not in the facility data; size and count are checked"})
    subs = scorecards.sub_district_totals(streets, profile)
    for key, scopes in subs["rules"].items():
        not_checked += [{"check": key, "source": sc["source"], "reason": sc["reason"]} for sc in scopes if not sc["checked"]]
    return {
        "profile": profile.name, "title": profile.title, "target_year": profile.target_year, "cutoff_m": cutoff,
        "communities": n, "communities_flagged": int((communities["n_flags"] > 0).sum()),
        "flagged_by_check": by_check, "unverified_by_check": unverified, "services": out_services,
        "shares_basis": basis,
        "sub_districts": subs,
        "kinds": {"communities": {str(k): int(v) for k, v in kinds.items()}},
        "space": space, "stations": stations, "beds": _beds(facilities, communities, profile),
        "nearest_basis": str(communities["nearest_basis"].iloc[0]) if n and "nearest_basis" in communities else None,
        "not_checked": not_checked,
    }


def _beds(facilities: pd.DataFrame | None, communities: pd.DataFrame, profile: Profile) -> dict:
    """Beds per 1000 elderly and the 护理型床位 share against the plan (None: not checked)."""
    b = profile.beds
    out = {"per_1000_elderly": None, "per_1000_target": b.per_1000_elderly, "per_1000_source": b.per_1000_source,
           "nursing_share": None, "nursing_target": b.nursing_share, "nursing_source": b.nursing_source,
           "target_year": b.year or profile.target_year, "checked": []}
    if facilities is None or "beds" not in facilities.columns:
        out["reason"] = "the facility data have no beds column"
        return out
    beds = pd.to_numeric(facilities["beds"], errors="coerce")
    eld = float(communities["elderly"].astype(float).sum())
    if beds.notna().any() and eld > 0:
        out["per_1000_elderly"] = float(beds.sum() / eld * 1000)
        if b.per_1000_elderly is not None:
            out["checked"].append("per_1000_elderly")
            out["meets_per_1000"] = out["per_1000_elderly"] >= b.per_1000_elderly - TOLERANCE
    if "nursing_beds" in facilities.columns and beds.sum() > 0:
        nursing = pd.to_numeric(facilities["nursing_beds"], errors="coerce")
        out["nursing_share"] = float(nursing.sum() / beds[nursing.notna()].sum()) if nursing.notna().any() else None
        if b.nursing_share is not None and out["nursing_share"] is not None:
            out["checked"].append("nursing_share")
            out["meets_nursing"] = out["nursing_share"] >= b.nursing_share - TOLERANCE
    else:
        out["nursing_reason"] = "not checked: the facility data have no nursing-bed column"
    return out


def _fsum(s: pd.Series) -> float | None:
    v = s.astype(float).sum(min_count=1)
    return None if pd.isna(v) else float(v)


@dataclass
class Assessment:
    """Everything the standards stage hands to the pipeline and the maps stage."""

    communities: gpd.GeoDataFrame
    streets: gpd.GeoDataFrame
    actions: pd.DataFrame
    city: dict = field(default_factory=dict)


def assess(indicators: gpd.GeoDataFrame, facilities: gpd.GeoDataFrame, profile: Profile, *,
           streets: gpd.GeoDataFrame | None = None, population: pd.DataFrame | None = None,
           services: dict | None = None, estates: pd.DataFrame | None = None,
           cutoff_m: float | None = None) -> Assessment:
    """Community flags → sub-district scorecards → city totals → action list.

    Parameters
    ----------
    indicators : GeoDataFrame
        Output of :func:`carecircle.coverage.indicators.community_indicators`.
    facilities : GeoDataFrame
    profile : Profile
    streets : GeoDataFrame, optional
        Sub-district polygons (see :func:`carecircle.coverage.scorecards.street_scorecard`).
    population : DataFrame, optional
        Population points for the city covered shares (see :func:`city_totals`).
    services : dict, optional
        The analysis' per-service summary (the city shares computed once).
    estates : DataFrame, optional
        The estate table, for one action per failing 小区.
    cutoff_m : float, optional
        Walk-circle distance; default ``profile.walk_distance_m``.

    Returns
    -------
    Assessment
    """
    com = check_communities(indicators, profile)
    sc = scorecards.street_scorecard(com, facilities, profile, streets=streets)
    city = city_totals(com, sc, profile, population=population, services=services, facilities=facilities, cutoff_m=cutoff_m)
    acts = action_list(com, sc, profile, estates=estates, city=city)
    return Assessment(com, sc, acts, city)


def evaluate(communities: gpd.GeoDataFrame, population: gpd.GeoDataFrame, facilities: gpd.GeoDataFrame, profile: Profile, *,
             cutoff_m: float | None = None, estates: gpd.GeoDataFrame | None = None, streets: gpd.GeoDataFrame | None = None,
             nearest: pd.DataFrame | None = None, reach: pd.DataFrame | None = None) -> Assessment:
    """:func:`~carecircle.coverage.indicators.community_indicators` then :func:`assess`.

    Parameters are those of the two functions; the city covered shares use ``population``.

    Returns
    -------
    Assessment
    """
    from carecircle.coverage.space import estate_table

    com = communities.reset_index(drop=True)
    if streets is not None and "kind" in streets.columns and "street_kind" not in com.columns:
        com = com.assign(street_kind=com["street"].map(streets.drop_duplicates("street").set_index("street")["kind"]))
    ind = community_indicators(com, population, facilities, profile, cutoff_m=cutoff_m, estates=estates,
                               nearest=nearest, reach=reach)
    est = estate_table(estates, com, profile) if estates is not None else None
    return assess(ind, facilities, profile, streets=streets, population=population, estates=est, cutoff_m=cutoff_m)
