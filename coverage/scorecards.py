"""Sub-district (街道/镇) scorecards: the plans' per-place rules, scoped by the kind of place.

Every sub-district has a kind (``street_kind``: the streets layer's ``kind_field``, else the
communities' ``street_kind_field``, else the name's ending …街道 / …镇 / …乡, with the
profile's ``sub_district.kinds_by_name`` first). A rule (:class:`~carecircle.coverage.profile.PlaceRule`:
the centre, Wuxi's 区域性助餐中心, Rugao's ≥ 2 长者之家) applies where a scope names the kind:

* a scope without ``target_share`` asks it of every such place: one without fails
  (``flag_<key>``);
* a scope with ``target_share`` (SJZ 乡镇 60 %) is a city-level check: a place without is
  *reported*, and the share of such places meeting the rule is compared with the target
  (:func:`sub_district_totals`; a city row in the action list when it is missed).

Places of a kind no scope names are not asked (Rugao's rural 镇). ``per_capita`` with
``level: sub_district`` (SJZ "分区分级") compares the floor area of every qualifying facility
in the sub-district (street centre and community stations together) with its population ×
the rate; ``large_centres`` (Kunshan) counts facilities of a size. A facility without a
floor-area figure makes a size check *unverified*, not failed.
"""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd

from carecircle.coverage.indicators import service_mask, street_kinds
from carecircle.coverage.profile import Profile
from carecircle.coverage.space import TOLERANCE


#: ``scope_<key>`` of a rule whose facility tier no facility of the data carries.
NO_DATA = "no_data"


def _scope_of(kind: pd.Series, rule) -> tuple[np.ndarray, np.ndarray]:
    """Per place: the index of the first scope naming its kind (-1: not asked) and that scope's target share (NaN: every one)."""
    idx = np.full(len(kind), -1)
    share = np.full(len(kind), np.nan)
    k = kind.astype("string")
    for i, sc in enumerate(rule.scopes):
        hit = (np.ones(len(k), bool) if sc.applies_to is None else k.isin(sc.applies_to).fillna(False).to_numpy(dtype=bool)) & (idx < 0)
        idx[hit] = i
        share[hit] = np.nan if sc.target_share is None else sc.target_share
    return idx, share


def street_scorecard(communities: gpd.GeoDataFrame, facilities: gpd.GeoDataFrame, profile: Profile, *,
                     streets: gpd.GeoDataFrame | None = None) -> gpd.GeoDataFrame:
    """Per sub-district (街道/镇, ``profile.sub_district_label``) scorecard.

    Parameters
    ----------
    communities : GeoDataFrame
        Output of :func:`carecircle.coverage.standards.check_communities`.
    facilities : GeoDataFrame
        Facilities (metric CRS) with service flags and ``floor_area_m2``.
    profile : Profile
    streets : GeoDataFrame, optional
        Sub-district polygons (``street``, optional ``kind``, geometry). Without it a
        sub-district is the union of its communities.

    Returns
    -------
    GeoDataFrame
        ``street``, ``street_kind``, ``communities``, ``communities_flagged``, ``elderly``,
        ``population``; per circle service ``s``: ``communities_covered_<s>``,
        ``coverage_rate_<s>``, ``target_<s>``, ``meets_target_<s>``,
        ``elderly_covered_share_<s>``; ``communities_with_station``; per sub-district rule
        ``<key>`` (``no_street_centre`` …): ``n_<key>`` (facilities inside; the centre's is
        ``n_street_centres``), ``scope_<key>`` (``every``, ``share``, "" not asked, ``no_data``),
        ``flag_<key>``, ``kind_share_<key>`` (share of the places of its kind meeting the rule); ``has_street_centre``, ``nearest_street_centre``,
        ``nearest_street_centre_m``, ``nearest_street_centre_basis`` (``walk`` — the
        shortest walk any of its residents has to a centre — or ``straight_line`` from the
        boundary), ``n_large_centres``, ``flag_large_centres``, ``care_floor_area_m2`` (qualifying
        facilities inside), ``per_capita_required_m2``, ``flag_per_capita``,
        ``unverified_checks``, ``facilities_unknown_area``, ``space_required_m2``,
        ``space_provided_m2``, ``space_shortfall_m2``, ``score`` (0–100, mean of the
        components below), ``rank`` (1 = best score; ties share a rank), geometry.

        Score components, each 0–1: per circle service coverage rate ÷ target (capped at 1);
        each rule asked of every such place (met or not); share of communities with a station
        (when required); 1 − space shortfall ÷ space required (when anything is required);
        large centres ÷ the required count (capped, when configured).
    """
    com = communities.assign(street=communities["street"].astype("string").fillna(""))
    cs = profile.circle_services
    elder = com["elderly"].astype(float).fillna(0)
    agg = pd.DataFrame({"street": com["street"], "_one": 1, "_flagged": (com["n_flags"] > 0).astype(int), "_eld": elder,
                        "_pop": com["population"].astype(float).fillna(0), "_station": (com["n_stations"] > 0).astype(int)})
    for s in cs:
        share = com[f"elderly_covered_share_{s}"].astype(float)
        agg[f"_cov_{s}"] = (~com[f"flag_no_{s}"].astype(bool)).astype(int)
        agg[f"_ecov_{s}"] = (share * elder).fillna(0)
        agg[f"_ew_{s}"] = elder.where(share.notna(), 0)
    for col in ("space_required_m2", "space_provided_m2", "space_shortfall_m2"):
        agg[col] = com[col].astype(float)
    g = agg.groupby("street", sort=True)
    out = pd.DataFrame({"communities": g["_one"].sum(), "communities_flagged": g["_flagged"].sum(), "elderly": g["_eld"].sum(),
                        "population": g["_pop"].sum()})
    for s in cs:
        out[f"communities_covered_{s}"] = g[f"_cov_{s}"].sum()
        out[f"coverage_rate_{s}"] = out[f"communities_covered_{s}"] / out["communities"]
        out[f"target_{s}"] = profile.target(s).share
        out[f"meets_target_{s}"] = out[f"coverage_rate_{s}"] >= out[f"target_{s}"] - TOLERANCE
        out[f"elderly_covered_share_{s}"] = g[f"_ecov_{s}"].sum() / g[f"_ew_{s}"].sum().replace(0, np.nan)
    out["communities_with_station"] = g["_station"].sum()
    for col in ("space_required_m2", "space_provided_m2", "space_shortfall_m2"):
        out[col] = g[col].sum(min_count=1)
    out = out.reset_index()

    # Geometry: the streets layer when given (every sub-district appears, even without
    # communities), else the union of each sub-district's communities.
    if streets is not None:
        cols = {"street": streets["street"].astype("string").to_numpy()}
        if "kind" in streets.columns:
            cols["_kind"] = streets["kind"].astype("string").to_numpy()
        shapes = gpd.GeoDataFrame(cols, geometry=streets.geometry.to_numpy(), crs=streets.crs).dissolve("street", as_index=False)
        out = shapes.merge(out, on="street", how="outer")
        for col in ["communities", "communities_flagged", "communities_with_station"] + [f"communities_covered_{s}" for s in cs]:
            out[col] = out[col].fillna(0).astype(int)
        out["elderly"] = out["elderly"].fillna(0.0)
        out["population"] = out["population"].fillna(0.0)
        missing = out.geometry.isna()
        if missing.any():
            union = com[com["street"].isin(out.loc[missing, "street"])].dissolve("street")
            out.loc[missing, "geometry"] = out.loc[missing, "street"].map(union.geometry).to_numpy()
        out = gpd.GeoDataFrame(out, geometry="geometry", crs=streets.crs)
    else:
        union = com[["street", "geometry"]].dissolve("street")
        out = gpd.GeoDataFrame(out, geometry=out["street"].map(union.geometry).to_numpy(), crs=communities.crs)
    given = out["_kind"] if "_kind" in out.columns else pd.Series(pd.NA, index=out.index, dtype="string")
    if "street_kind" in com.columns:
        from_com = com.dropna(subset=["street_kind"]).drop_duplicates("street").set_index("street")["street_kind"]
        given = given.astype("string").fillna(out["street"].map(from_com).astype("string"))
    out["street_kind"] = street_kinds(out["street"], given, profile).to_numpy()
    out = out.drop(columns=["_kind"], errors="ignore")

    # Facilities → sub-district (one spatial join).
    polys = gpd.GeoDataFrame({"_s": np.arange(len(out))}, geometry=out.geometry.to_numpy(), crs=out.crs)
    fpts = gpd.GeoDataFrame(geometry=facilities.geometry.to_numpy(), crs=facilities.crs)
    fj = gpd.sjoin(fpts, polys, how="inner", predicate="intersects")
    fj = fj[~fj.index.duplicated(keep="first")]
    pos, sid = fj.index.to_numpy(), fj["_s"].to_numpy()
    area = pd.to_numeric(facilities["floor_area_m2"], errors="coerce").to_numpy(dtype=float)[pos]
    sd = profile.sub_district
    unverified = pd.Series([[] for _ in range(len(out))], index=out.index)
    unknown_names: dict[int, set] = {}

    def note_unknown(mask: np.ndarray, key: str) -> np.ndarray:
        """Per sub-district: does it hold a facility of ``mask`` without a floor area? (named)"""
        sel = mask & np.isnan(area)
        for i, name in zip(sid[sel], facilities["name"].astype(str).to_numpy()[pos][sel]):
            unknown_names.setdefault(int(i), set()).add(name)
        return np.bincount(sid[sel], minlength=len(out)) > 0

    out["n_street_centres"] = 0
    for key, rule in sd.place_rules().items():
        tier = service_mask(facilities, profile, rule.services)
        count = np.bincount(sid[tier[pos]], minlength=len(out))
        idx, share = _scope_of(out["street_kind"], rule)
        out["n_street_centres" if key == "no_street_centre" else f"n_{key}"] = count
        out[f"scope_{key}"] = np.where(idx < 0, "", np.where(np.isnan(share), "every", "share"))
        if key != "no_street_centre" and not tier.any():
            # A tier of its own (Wuxi's 区域性助餐中心, Rugao's 长者之家) that no facility of
            # the data carries: the list does not tell that tier apart, so the rule cannot be
            # checked (city totals say so) rather than failing every place.
            out[f"scope_{key}"] = NO_DATA
        out[f"flag_{key}"] = (out[f"scope_{key}"] == "every").to_numpy() & (count < rule.min_count)
        # The share of places of the same kind (with communities) meeting the rule, as the
        # plans count it (SJZ: 乡镇 60 %); NaN where the rule is not asked or not checked.
        asked = out[f"scope_{key}"].isin(["every", "share"]) & (out["communities"] > 0)
        # ``meets_<key>`` lets a region merged from tiles recompute the shares (carecircle.merge).
        out[f"meets_{key}"] = pd.Series(count >= rule.min_count, index=out.index).where(asked)
        out[f"kind_share_{key}"] = kind_shares(out, key)
    if "flag_no_street_centre" not in out.columns:
        out["flag_no_street_centre"] = False
        out["scope_no_street_centre"] = ""
    all_centres = service_mask(facilities, profile, sd.centre_services)
    out["n_street_centres"] = np.bincount(sid[all_centres[pos]], minlength=len(out))
    out["has_street_centre"] = out["n_street_centres"] > 0
    _nearest_centre(out, com, facilities, polys, all_centres)

    if sd.large_centres is not None:
        lc = sd.large_centres
        of_kind = service_mask(facilities, profile, lc.services)[pos]
        out["n_large_centres"] = np.bincount(sid[of_kind & (area >= lc.min_floor_area_m2)], minlength=len(out))
        few = (out["n_large_centres"] < lc.min_count).to_numpy()
        unknown = note_unknown(of_kind, "large_centres")
        out["flag_large_centres"] = few & ~unknown
        for i in np.flatnonzero(few & unknown):
            unverified.iloc[i].append("large_centres")
    else:
        out["n_large_centres"] = 0
        out["flag_large_centres"] = False

    qual = service_mask(facilities, profile, profile.space.facility_services)[pos]
    out["care_floor_area_m2"] = np.bincount(sid[qual], weights=np.nan_to_num(area[qual]), minlength=len(out))
    pc = profile.per_capita
    if pc is not None and pc.measure == "floor_area" and pc.level == "sub_district":
        out["per_capita_required_m2"] = out["population"].astype(float) * pc.min_m2_per_person
        low = (out["care_floor_area_m2"] < out["per_capita_required_m2"] - TOLERANCE).to_numpy() & (out["communities"] > 0).to_numpy()
        unknown = note_unknown(qual, "per_capita")
        out["flag_per_capita"] = low & ~unknown
        for i in np.flatnonzero(low & unknown):
            unverified.iloc[i].append("per_capita")
    else:
        out["per_capita_required_m2"] = np.nan
        out["flag_per_capita"] = False
    out["unverified_checks"] = unverified.map(";".join).to_numpy()
    out["facilities_unknown_area"] = ["; ".join(sorted(unknown_names.get(i, ()))) if out["unverified_checks"].iloc[i] else ""
                                      for i in range(len(out))]

    comps = [np.minimum(1.0, out[f"coverage_rate_{s}"] / profile.target(s).share) if profile.target(s).share > 0
             else pd.Series(1.0, index=out.index) for s in cs]
    for key in sd.place_rules():
        asked = out[f"scope_{key}"] == "every"
        if asked.any():
            comps.append((~out[f"flag_{key}"].astype(bool)).astype(float).where(asked))
    if profile.station.required:
        comps.append(out["communities_with_station"] / out["communities"].replace(0, np.nan))
    req = out["space_required_m2"]
    if (req.fillna(0) > 0).any():
        comps.append((1 - out["space_shortfall_m2"] / req.where(req > 0)).clip(0, 1))
    if sd.large_centres is not None:
        comps.append(np.minimum(1.0, out["n_large_centres"] / sd.large_centres.min_count))
    out["score"] = (pd.concat(comps, axis=1).mean(axis=1, skipna=True) * 100).round(1) if comps else np.nan
    # A sub-district without communities (only in the streets layer) is not scored.
    out.loc[out["communities"] == 0, "score"] = np.nan
    out["rank"] = out["score"].rank(method="min", ascending=False).astype("Int64")
    cols = [c for c in out.columns if c != "geometry"] + ["geometry"]
    return out[cols].sort_values(["rank", "street"], na_position="last").reset_index(drop=True)


def _nearest_centre(out: gpd.GeoDataFrame, com: pd.DataFrame, facilities: gpd.GeoDataFrame, polys: gpd.GeoDataFrame,
                    centres: np.ndarray) -> None:
    """The nearest centre of each sub-district (就近): walked when the communities carry the
    pipeline's walk table (the best of its communities'), else straight line from its boundary."""
    out["nearest_street_centre"] = pd.Series(pd.NA, index=out.index, dtype="string")
    out["nearest_street_centre_m"] = np.nan
    if centres.any() and len(out):
        cf = gpd.GeoDataFrame({"_fac": facilities["name"].to_numpy()[centres]}, geometry=facilities.geometry.to_numpy()[centres],
                              crs=facilities.crs)
        nj = gpd.sjoin_nearest(polys, cf, how="left", distance_col="_d")
        nj = nj[~nj.index.duplicated(keep="first")].sort_values("_s")
        out["nearest_street_centre"] = nj["_fac"].astype("string").to_numpy()
        out["nearest_street_centre_m"] = nj["_d"].to_numpy(dtype=float)
    out["nearest_street_centre_basis"] = pd.Series(np.where(out["nearest_street_centre_m"].notna(), "straight_line", pd.NA),
                                                   index=out.index, dtype="string")
    if "nearest_centre_m" in com.columns and (com.get("nearest_basis") == "walk").all():
        walk = com[["street", "nearest_centre", "nearest_centre_m"]].dropna(subset=["nearest_centre_m"])
        best = walk.sort_values("nearest_centre_m", kind="mergesort").drop_duplicates("street").set_index("street")
        hit = out["street"].isin(best.index).to_numpy()
        where = out.loc[hit, "street"]
        out.loc[hit, "nearest_street_centre"] = where.map(best["nearest_centre"]).to_numpy()
        out.loc[hit, "nearest_street_centre_m"] = where.map(best["nearest_centre_m"]).to_numpy(dtype=float)
        out.loc[hit, "nearest_street_centre_basis"] = "walk"


def _year(profile: Profile, *years) -> int | None:
    return next((y for y in years if y is not None), profile.target_year)


def street_results(streets: pd.DataFrame, profile: Profile) -> pd.DataFrame:
    """Action rows of the sub-district checks: failed, unverified, and reported (a place
    without the facility where the plan's target is a share)."""
    sd = profile.sub_district
    parts = []

    def rows(sel: pd.DataFrame, key: str, verdict: str, value, required: float, unit: str, source: str, year, near: bool):
        if sel.empty:
            return
        value = np.asarray(value, dtype=float)
        parts.append(pd.DataFrame({
            "community": "", "estate": pd.NA, "street": sel["street"].astype("string").to_numpy(), "check": key, "verdict": verdict,
            "value": value, "required": required, "shortfall": required - value, "unit": unit,
            "elderly_affected": sel["elderly"].astype(float).to_numpy(), "source": source, "target_year": year,
            "nearest_facility": sel["nearest_street_centre"].to_numpy() if near else pd.NA,
            "nearest_facility_m": sel["nearest_street_centre_m"].to_numpy(dtype=float) if near else np.nan,
            "facilities_unknown_area": sel["facilities_unknown_area"].to_numpy() if verdict == "unverified" else "",
        }))

    for key, rule in sd.place_rules().items():
        col = "n_street_centres" if key == "no_street_centre" else f"n_{key}"
        idx, share = _scope_of(streets["street_kind"], rule)
        idx = np.where(streets[f"scope_{key}"] == NO_DATA, -1, idx)
        short = (streets[col] < rule.min_count).to_numpy() & (streets["communities"] > 0).to_numpy()
        for i, sc in enumerate(rule.scopes):
            sel = streets[(idx == i) & short]
            verdict = "fail" if sc.target_share is None else "reported"
            rows(sel, key, verdict, sel[col], float(rule.min_count), "count", sc.source, _year(profile, sc.year),
                 key == "no_street_centre")
    unv = streets["unverified_checks"].fillna("").astype(str)
    lc = sd.large_centres
    if lc is not None:
        rows(streets[streets["flag_large_centres"].astype(bool)], "large_centres", "fail",
             streets.loc[streets["flag_large_centres"].astype(bool), "n_large_centres"], float(lc.min_count), "count",
             lc.source, _year(profile), False)
        sel = streets[unv.str.contains("large_centres")]
        rows(sel, "large_centres", "unverified", sel["n_large_centres"], float(lc.min_count), "count", lc.source, _year(profile), False)
    pc = profile.per_capita
    if pc is not None and pc.measure == "floor_area" and pc.level == "sub_district":
        for verdict, sel in (("fail", streets[streets["flag_per_capita"].astype(bool)]), ("unverified", streets[unv.str.contains("per_capita")])):
            if len(sel):
                rows(sel, "per_capita", verdict, sel["care_floor_area_m2"], 0.0, "m²", pc.source, _year(profile), False)
                parts[-1]["required"] = sel["per_capita_required_m2"].to_numpy(dtype=float)
                parts[-1]["shortfall"] = parts[-1]["required"] - parts[-1]["value"]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def sub_district_totals(streets: pd.DataFrame, profile: Profile) -> dict:
    """The city's sub-district totals: per rule and scope, places asked, places meeting it, share, target.

    Returns
    -------
    dict
        ``label``, ``count``, ``with_centre``, ``centre_required``, ``kinds`` (places per
        kind), ``rules`` (key → list of scopes: ``applies_to``, ``places``, ``meeting``,
        ``share``, ``target_share`` (None: every one), ``meets_target``, ``source``,
        ``target_year``).
    """
    sd = profile.sub_district
    with_com = streets[streets["communities"] > 0] if "communities" in streets.columns else streets
    rules = {}
    for key, rule in sd.place_rules().items():
        col = "n_street_centres" if key == "no_street_centre" else f"n_{key}"
        if (streets[f"scope_{key}"] == NO_DATA).all() and len(streets):
            rules[key] = [{"applies_to": sc.applies_to, "checked": False, "source": sc.source,
                           "reason": "no facility of the data carries this tier (" + ", ".join(rule.services) + ")"}
                          for sc in rule.scopes]
            continue
        idx, _ = _scope_of(with_com["street_kind"], rule)
        out = []
        for i, sc in enumerate(rule.scopes):
            sel = with_com[idx == i]
            meeting = int((sel[col] >= rule.min_count).sum())
            share = meeting / len(sel) if len(sel) else None
            target = 1.0 if sc.target_share is None else sc.target_share
            out.append({"applies_to": sc.applies_to, "checked": True, "places": int(len(sel)), "meeting": meeting, "share": share,
                        "target_share": sc.target_share,
                        "meets_target": None if share is None else bool(share >= target - TOLERANCE),
                        "source": sc.source, "target_year": _year(profile, sc.year)})
        rules[key] = out
    kinds = streets["street_kind"].astype("string").fillna("unknown").value_counts().to_dict() if len(streets) else {}
    return {
        "label": profile.sub_district_label, "count": int(len(streets)),
        "with_centre": int(streets["has_street_centre"].astype(bool).sum()), "centre_required": sd.centre_required,
        "kinds": {str(k): int(v) for k, v in kinds.items()}, "rules": rules,
    }


def city_results(city: dict, profile: Profile) -> pd.DataFrame:
    """One city-level action row per sub-district rule scope whose share misses the plan's target."""
    rows = []
    for key, scopes in city.get("sub_districts", {}).get("rules", {}).items():
        for sc in scopes:
            if not sc["checked"] or sc["target_share"] is None or sc["meets_target"] is not False:
                continue
            rows.append({"community": "", "estate": pd.NA, "street": "", "check": key, "verdict": "fail",
                         "value": sc["share"] * 100, "required": sc["target_share"] * 100,
                         "shortfall": (sc["target_share"] - sc["share"]) * 100, "unit": "%", "elderly_affected": np.nan,
                         "source": sc["source"], "target_year": sc["target_year"], "nearest_facility": pd.NA,
                         "nearest_facility_m": np.nan, "facilities_unknown_area": ""})
    return pd.DataFrame(rows)


def kind_shares(streets: pd.DataFrame, key: str) -> pd.Series:
    """Per sub-district, the share of the places of its kind that meet rule ``key``
    (``meets_<key>``; NaN where the rule is not asked), as the plans count it (SJZ: 乡镇 60 %).

    Parameters
    ----------
    streets : pandas.DataFrame
        ``street_kind`` and ``meets_<key>`` (True / False / NaN).
    key : str

    Returns
    -------
    pandas.Series
    """
    meets = streets[f"meets_{key}"]
    asked = meets.notna()
    kind = streets["street_kind"].astype(str)
    by_kind = meets[asked].astype(bool).groupby(kind[asked]).mean()
    return kind.map(by_kind).where(asked)

