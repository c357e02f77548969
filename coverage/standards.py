"""Standards checks: flags per community, scorecards per sub-district, city totals, 问题清单.

The checks a profile applies (:func:`checks`) and what sets each flag:

``no_<s>`` (community, one per circle service ``s``, e.g. ``flag_no_day_care``)
    the elderly-weighted share of the community's population points within the walk
    distance of an ``s`` facility is below ``profile.circle.min_covered_share`` (default
    0.5). Communities without points use their representative point (all in / all out).
``space``
    ``space_shortfall_m2 > 0``: provided elderly-service floor space below
    households/100 × the compliance rate (new and existing estates separately, split at
    ``space.new_from_year``). Not applied where the plan states no rate. Where a class is
    checked estate by estate (``space.<class>.per_estate``, Kunshan's existing estates,
    逐小区), any estate of it short on its own fails the community and the shortfall is the
    sum of the estates' own (a surplus in one estate offsets no other's deficit); the
    per-estate table is :func:`carecircle.coverage.indicators.estate_table`.
``pooled_space`` (Rugao)
    the community has ≥ ``pooled.min_households`` households in new estates and no single
    unit (an estate's room or one qualifying facility) of ≥ ``pooled.min_m2``.
``no_station``
    ``station.required`` and no facility with a ``station.services`` flag inside the community.
``station_size`` (Shijiazhuang)
    the community has stations, and the largest one with a known floor area is below
    ``station.min_floor_area_m2`` (stations with unknown area are not flagged; the city
    totals count them as unverified).
``per_capita``
    a floor-area per-person standard (``per_capita.measure: floor_area``) and
    ``space_provided_m2 < population × min_m2_per_person``. Land standards are recorded,
    not checked (land is not in the inputs).
``no_street_centre`` (sub-district)
    ``sub_district.centre_required`` and no facility with a ``centre_services`` flag inside
    the sub-district.
``large_centres`` (sub-district, Kunshan)
    fewer than ``min_count`` facilities of ``services`` with ≥ ``min_floor_area_m2``.

The action list has one row per failed check, most severe first: by elderly affected
(uncovered elderly for circle checks, the community's or sub-district's elderly otherwise),
then by the shortfall.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import geopandas as gpd
import numpy as np
import pandas as pd

from carecircle.coverage import circle
from carecircle.coverage.indicators import TOLERANCE, community_indicators, service_mask
from carecircle.coverage.profile import Profile, load_profile

#: Units of the action list in English (the Chinese unit is the check's own).
UNITS_EN = {"处": "sites", "家": "centres"}


@dataclass(frozen=True)
class Check:
    """One checkable standard of a profile, with its label and standard text in both languages."""

    key: str
    level: str  # "community" | "street"
    label_zh: str
    label_en: str
    unit: str
    standard: str
    source: str
    standard_en: str = ""

    def label(self, lang: str = "zh") -> str:
        return self.label_en if lang == "en" else self.label_zh

    def standard_text(self, lang: str = "zh") -> str:
        """The standard's value (``source`` stays the plan's own Chinese wording)."""
        return self.standard_en if lang == "en" and self.standard_en else self.standard

    def unit_text(self, lang: str = "zh") -> str:
        return UNITS_EN.get(self.unit, self.unit) if lang == "en" else self.unit


def _g(x: float) -> str:
    return f"{x:g}"


def _space_standard(profile: Profile) -> tuple[str, str]:
    """The 每百户 m² standard as text (Chinese, English): new and existing, ranges, 逐小区."""
    sp = profile.space
    parts_zh, parts_en = [], []
    for r, zh, en in ((sp.new, f"新建（{sp.new_from_year}年起）", f"new (built {sp.new_from_year} on)"), (sp.existing, "已建", "existing")):
        if r.min_m2_per_100hh is None:
            parts_zh.append(f"{zh}：未规定")
            parts_en.append(f"{en}: not stated")
            continue
        rng = _g(r.min_m2_per_100hh)
        if r.target_m2_per_100hh != r.min_m2_per_100hh:
            rng += f"–{_g(r.target_m2_per_100hh)}"
        each_zh, each_en = ("，逐小区核算", ", estate by estate") if r.per_estate else ("", "")
        parts_zh.append(f"{zh}每百户 {rng} m²（≥ {_g(r.min_m2_per_100hh)} 达标{each_zh}）")
        parts_en.append(f"{en}: {rng} m² per 100 households (≥ {_g(r.min_m2_per_100hh)} complies{each_en})")
    return "；".join(parts_zh), "; ".join(parts_en)


def checks(profile: Profile, cutoff_m: float | None = None) -> list[Check]:
    """The checks ``profile`` applies, in report order.

    Parameters
    ----------
    profile : Profile
    cutoff_m : float, optional
        Walk-circle distance used for the standard text; default ``profile.walk_distance_m``.

    Returns
    -------
    list of Check
    """
    cutoff = profile.walk_distance_m if cutoff_m is None else cutoff_m
    minutes, sub = profile.walk.minutes, profile.sub_district_label
    thr = _g(profile.circle.min_covered_share * 100)
    out = []
    for s in profile.circle_services:
        spec = profile.services[s]
        share = _g(profile.target(s).share * 100)
        out.append(Check(
            f"no_{s}", "community",
            f"{spec.label_zh}不在{_g(minutes)}分钟步行圈内", f"no {spec.label_en} within a {_g(minutes)}-minute walk", "%",
            f"步行{_g(cutoff)}米内老年人占比 ≥ {thr}%；目标：{share}%的{profile.community_label}覆盖",
            "；".join(x for x in (profile.walk.source, profile.target(s).source, profile.circle.source) if x),
            f"elderly within a {_g(cutoff)} m walk ≥ {thr}%; target: {share}% of communities covered",
        ))
    sp = profile.space
    if sp.new.min_m2_per_100hh is not None or sp.existing.min_m2_per_100hh is not None:
        zh, en = _space_standard(profile)
        out.append(Check(
            "space", "community", "养老服务用房面积不足", "elderly-service floor space short", "m²", zh,
            "；".join(x for x in (sp.new.source, sp.existing.source) if x), en,
        ))
    if profile.pooled is not None:
        pl = profile.pooled
        out.append(Check(
            "pooled_space", "community", f"未集中配建≥{_g(pl.min_m2)}㎡养老服务用房", f"no pooled unit of ≥ {_g(pl.min_m2)} m²", "m²",
            f"新建住宅每{_g(pl.min_households)}–{_g(pl.max_households)}户统一配建 ≥ {_g(pl.min_m2)} m²", pl.source,
            f"new housing: one unit of ≥ {_g(pl.min_m2)} m² per {_g(pl.min_households)}–{_g(pl.max_households)} households",
        ))
    st = profile.station
    if st.required:
        out.append(Check(
            "no_station", "community", f"{profile.community_label}无养老服务站（点）", "no care station in the community", "处",
            f"每个{profile.community_label} ≥ 1 处", st.source, "≥ 1 per community",
        ))
    if st.min_floor_area_m2 is not None:
        out.append(Check(
            "station_size", "community", f"养老服务站（点）面积不足{_g(st.min_floor_area_m2)}㎡",
            f"care station smaller than {_g(st.min_floor_area_m2)} m²", "m²", f"≥ 1 处 ≥ {_g(st.min_floor_area_m2)} m²", st.source,
            f"≥ 1 station of ≥ {_g(st.min_floor_area_m2)} m²",
        ))
    pc = profile.per_capita
    if pc is not None and pc.measure == "floor_area":
        out.append(Check(
            "per_capita", "community", f"人均养老服务设施建筑面积不足{_g(pc.min_m2_per_person)}㎡",
            f"floor space below {_g(pc.min_m2_per_person)} m² per person", "m²", f"人均建筑面积 ≥ {_g(pc.min_m2_per_person)} m²", pc.source,
            f"floor area ≥ {_g(pc.min_m2_per_person)} m² per person",
        ))
    sd = profile.sub_district
    centre = profile.services[sd.centre_services[0]] if sd.centre_services else None
    if sd.centre_required and centre is not None:
        out.append(Check(
            "no_street_centre", "street", f"{sub}无{centre.label_zh}", f"no {centre.label_en} in the sub-district", "处",
            f"每个{sub} ≥ 1 处", sd.centre_source, "≥ 1 per sub-district",
        ))
    if sd.large_centres is not None:
        lc = sd.large_centres
        lab = profile.services[lc.services[0]]
        out.append(Check(
            "large_centres", "street", f"{_g(lc.min_floor_area_m2)}㎡以上{lab.label_zh}不足{lc.min_count}家",
            f"fewer than {lc.min_count} {lab.label_en}s of ≥ {_g(lc.min_floor_area_m2)} m²", "家",
            f"每个{sub} ≥ {lc.min_count} 家 ≥ {_g(lc.min_floor_area_m2)} m²", lc.source,
            f"≥ {lc.min_count} of ≥ {_g(lc.min_floor_area_m2)} m² per sub-district",
        ))
    return out


def community_flag_columns(profile: Profile) -> list[str]:
    """Flag columns on the communities table (always present, False when not applied).

    Parameters
    ----------
    profile : Profile

    Returns
    -------
    list of str
        ``flag_no_<s>`` per circle service, then ``flag_space``, ``flag_pooled_space``,
        ``flag_no_station``, ``flag_station_size``, ``flag_per_capita``.
    """
    keys = [f"no_{s}" for s in profile.circle_services] + ["space", "pooled_space", "no_station", "station_size", "per_capita"]
    return [f"flag_{k}" for k in keys]


def _nearest_cols(com: pd.DataFrame, profile: Profile, service: str | None) -> tuple[pd.Series, pd.Series]:
    s = service or (profile.circle_services[0] if profile.circle_services else None)
    if s is None or f"nearest_{s}" not in com.columns:
        return pd.Series(pd.NA, index=com.index, dtype="string"), pd.Series(np.nan, index=com.index)
    return com[f"nearest_{s}"].astype("string"), com[f"nearest_{s}_m"].astype(float)


def _community_failures(com: pd.DataFrame, profile: Profile, cutoff_m: float | None, lang: str) -> pd.DataFrame:
    """One row per failed community check (unsorted), ``_pos`` = row position in ``com``."""
    by_key = {c.key: c for c in checks(profile, cutoff_m) if c.level == "community"}
    elderly = com["elderly"].astype(float).fillna(0)
    parts = []

    def add(key, mask, value, required, affected, service=None, shortfall=None):
        mask = np.asarray(mask, dtype=bool)
        if key not in by_key or not mask.any():
            return
        c = by_key[key]
        near, near_m = _nearest_cols(com, profile, service)
        value = pd.Series(np.broadcast_to(np.asarray(value, dtype=float), len(com)), index=com.index)
        required = pd.Series(np.broadcast_to(np.asarray(required, dtype=float), len(com)), index=com.index)
        short = required - value if shortfall is None else pd.Series(np.asarray(shortfall, dtype=float), index=com.index)
        parts.append(pd.DataFrame({
            "_pos": np.flatnonzero(mask),
            "community": com["name"][mask].astype("string").to_numpy(),
            "street": com["street"][mask].astype("string").to_numpy(),
            "check": key, "check_label": c.label(lang),
            "value": value[mask].to_numpy(), "required": required[mask].to_numpy(),
            "shortfall": short[mask].to_numpy(), "unit": c.unit_text(lang),
            "elderly_affected": np.asarray(affected, dtype=float)[mask],
            "standard": c.standard_text(lang), "source": c.source,
            "nearest_facility": near[mask].to_numpy(), "nearest_facility_m": near_m[mask].to_numpy(),
        }))

    for s in profile.circle_services:
        share = com[f"elderly_covered_share_{s}"].astype(float)
        thr = profile.circle.min_covered_share
        add(f"no_{s}", (share < thr).fillna(False), share.fillna(0) * 100, thr * 100, elderly * (1 - share.fillna(0)), service=s)
    short = com["space_shortfall_m2"].astype(float)
    # Estate by estate (逐小区) the shortfall exceeds required − provided: a surplus in one
    # estate does not offset another's deficit, so the shortfall column is the measure.
    add("space", (short > TOLERANCE).fillna(False), com["space_provided_m2"], com["space_required_m2"], elderly, shortfall=short)
    if profile.pooled is not None:
        unit = com["largest_unit_m2"].astype(float).fillna(0)
        need = com["households_new"].astype(float) >= profile.pooled.min_households
        add("pooled_space", need & (unit < profile.pooled.min_m2 - TOLERANCE), unit, profile.pooled.min_m2, elderly)
    n_st = com["n_stations"].astype(int)
    add("no_station", n_st == 0, 0.0, 1.0, elderly)
    if profile.station.min_floor_area_m2 is not None:
        big = com["largest_station_m2"].astype(float)
        add("station_size", (n_st > 0) & (big < profile.station.min_floor_area_m2 - TOLERANCE).fillna(False), big,
            profile.station.min_floor_area_m2, elderly)
    pcr = com["per_capita_required_m2"].astype(float)
    add("per_capita", (com["space_provided_m2"].astype(float) < pcr - TOLERANCE).fillna(False), com["space_provided_m2"], pcr, elderly)
    cols = ["_pos", "community", "street", "check", "check_label", "value", "required", "shortfall", "unit",
            "elderly_affected", "standard", "source", "nearest_facility", "nearest_facility_m"]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=cols)


def _sort_actions(df: pd.DataFrame) -> pd.DataFrame:
    df = df.sort_values(["elderly_affected", "shortfall", "street", "community", "check"],
                        ascending=[False, False, True, True, True], na_position="last", kind="mergesort")
    return df.reset_index(drop=True)


def check_communities(indicators: gpd.GeoDataFrame, profile: Profile, *, cutoff_m: float | None = None,
                      lang: str = "zh") -> gpd.GeoDataFrame:
    """Add the flags to the community indicators.

    Parameters
    ----------
    indicators : GeoDataFrame
        Output of :func:`carecircle.coverage.indicators.community_indicators`.
    profile : Profile
    cutoff_m : float, optional
        Walk-circle distance (for the standard text); default ``profile.walk_distance_m``.
    lang : {"zh", "en"}
        Language of the ``flags`` text.

    Returns
    -------
    GeoDataFrame
        ``indicators`` plus ``flag_<check>`` (bool, see the module docstring), ``n_flags``,
        ``worst_check`` (key of the most severe failed check, "" if none) and ``flags``
        (labels in check order, joined by "；", or "; " in English).
    """
    com = indicators.reset_index(drop=True).copy()
    fails = _community_failures(com, profile, cutoff_m, lang)
    flag_cols = community_flag_columns(profile)
    com[flag_cols] = False
    for key, grp in fails.groupby("check", sort=False):
        com.loc[grp["_pos"].to_numpy(), f"flag_{key}"] = True
    com["n_flags"] = com[flag_cols].sum(axis=1).astype(int)
    worst = _sort_actions(fails).drop_duplicates("_pos", keep="first")
    com["worst_check"] = ""
    com.loc[worst["_pos"].to_numpy(), "worst_check"] = worst["check"].to_numpy()
    order = {c.key: i for i, c in enumerate(checks(profile, cutoff_m))}
    labels = fails.assign(_o=fails["check"].map(order)).sort_values(["_pos", "_o"]).groupby("_pos")["check_label"].agg(("; " if lang == "en" else "；").join)
    com["flags"] = ""
    com.loc[labels.index.to_numpy(), "flags"] = labels.to_numpy()
    return com


def street_scorecard(communities: gpd.GeoDataFrame, facilities: gpd.GeoDataFrame, profile: Profile, *,
                     streets: gpd.GeoDataFrame | None = None) -> gpd.GeoDataFrame:
    """Per sub-district (街道/镇, ``profile.sub_district_label``) scorecard.

    Parameters
    ----------
    communities : GeoDataFrame
        Output of :func:`check_communities`.
    facilities : GeoDataFrame
        Facilities (metric CRS) with service flags and ``floor_area_m2``.
    profile : Profile
    streets : GeoDataFrame, optional
        Sub-district polygons (``street``, geometry). Without it a sub-district is the union
        of its communities.

    Returns
    -------
    GeoDataFrame
        ``street``, ``communities``, ``communities_flagged``, ``elderly``; per circle service
        ``s``: ``communities_covered_<s>``, ``coverage_rate_<s>``, ``target_<s>``,
        ``meets_target_<s>``, ``elderly_covered_share_<s>``; ``communities_with_station``,
        ``has_street_centre``, ``n_street_centres``, ``n_large_centres``,
        ``flag_no_street_centre``, ``flag_large_centres``, ``nearest_street_centre``,
        ``nearest_street_centre_m`` and ``nearest_street_centre_basis``: ``walk`` — the
        shortest walk any of its residents has to a centre (the communities'
        ``nearest_centre_m`` from the pipeline's walk table) — or ``straight_line`` from the
        sub-district's boundary (0 when inside) where no walk is known, ``space_required_m2``,
        ``space_provided_m2``, ``space_shortfall_m2``, ``score`` (0–100, mean of the
        components below), ``rank`` (1 = best score; ties share a rank), geometry.

        Score components, each 0–1: per circle service coverage rate ÷ target (capped at 1);
        a centre present (when required); share of communities with a station (when
        required); 1 − space shortfall ÷ space required (when anything is required); large
        centres ÷ the required count (capped, when configured).
    """
    com = communities.assign(street=communities["street"].astype("string").fillna(""))
    cs = profile.circle_services
    elder = com["elderly"].astype(float).fillna(0)
    agg = pd.DataFrame({"street": com["street"], "_one": 1, "_flagged": (com["n_flags"] > 0).astype(int), "_eld": elder,
                        "_station": (com["n_stations"] > 0).astype(int)})
    for s in cs:
        share = com[f"elderly_covered_share_{s}"].astype(float)
        agg[f"_cov_{s}"] = (~com[f"flag_no_{s}"].astype(bool)).astype(int)
        agg[f"_ecov_{s}"] = (share * elder).fillna(0)
        agg[f"_ew_{s}"] = elder.where(share.notna(), 0)
    for col in ("space_required_m2", "space_provided_m2", "space_shortfall_m2"):
        agg[col] = com[col].astype(float)
    g = agg.groupby("street", sort=True)
    out = pd.DataFrame({"communities": g["_one"].sum(), "communities_flagged": g["_flagged"].sum(), "elderly": g["_eld"].sum()})
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
        shapes = gpd.GeoDataFrame({"street": streets["street"].astype("string").to_numpy()}, geometry=streets.geometry.to_numpy(),
                                  crs=streets.crs).dissolve("street", as_index=False)
        out = shapes.merge(out, on="street", how="outer")
        for col in ["communities", "communities_flagged", "communities_with_station"] + [f"communities_covered_{s}" for s in cs]:
            out[col] = out[col].fillna(0).astype(int)
        out["elderly"] = out["elderly"].fillna(0.0)
        missing = out.geometry.isna()
        if missing.any():
            union = com[com["street"].isin(out.loc[missing, "street"])].dissolve("street")
            out.loc[missing, "geometry"] = out.loc[missing, "street"].map(union.geometry).to_numpy()
        out = gpd.GeoDataFrame(out, geometry="geometry", crs=streets.crs)
    else:
        union = com[["street", "geometry"]].dissolve("street")
        out = gpd.GeoDataFrame(out, geometry=out["street"].map(union.geometry).to_numpy(), crs=communities.crs)

    # Facilities → sub-district (one spatial join).
    polys = gpd.GeoDataFrame({"_s": np.arange(len(out))}, geometry=out.geometry.to_numpy(), crs=out.crs)
    fpts = gpd.GeoDataFrame(geometry=facilities.geometry.to_numpy(), crs=facilities.crs)
    fj = gpd.sjoin(fpts, polys, how="inner", predicate="intersects")
    fj = fj[~fj.index.duplicated(keep="first")]
    pos = fj.index.to_numpy()
    sd = profile.sub_district
    all_centres = service_mask(facilities, profile, sd.centre_services)
    centre = all_centres[pos]
    out["n_street_centres"] = np.bincount(fj["_s"].to_numpy()[centre], minlength=len(out))
    out["has_street_centre"] = out["n_street_centres"] > 0
    out["flag_no_street_centre"] = sd.centre_required & ~out["has_street_centre"]
    # The nearest centre for a sub-district without one (就近): straight line from its boundary.
    out["nearest_street_centre"] = pd.Series(pd.NA, index=out.index, dtype="string")
    out["nearest_street_centre_m"] = np.nan
    if all_centres.any() and len(out):
        cf = gpd.GeoDataFrame({"_fac": facilities["name"].to_numpy()[all_centres]}, geometry=facilities.geometry.to_numpy()[all_centres],
                              crs=facilities.crs)
        nj = gpd.sjoin_nearest(polys, cf, how="left", distance_col="_d")
        nj = nj[~nj.index.duplicated(keep="first")].sort_values("_s")
        out["nearest_street_centre"] = nj["_fac"].astype("string").to_numpy()
        out["nearest_street_centre_m"] = nj["_d"].to_numpy(dtype=float)
    out["nearest_street_centre_basis"] = pd.Series(np.where(out["nearest_street_centre_m"].notna(), "straight_line", pd.NA),
                                                   index=out.index, dtype="string")
    # Walked (the pipeline's nearest table): the shortest walk any resident of the
    # sub-district has to a centre, i.e. the best of its communities'. Sub-districts with no
    # community (or none that reaches a centre) keep the straight line.
    if "nearest_centre_m" in com.columns and (com.get("nearest_basis") == "walk").all():
        walk = com[["street", "nearest_centre", "nearest_centre_m"]].dropna(subset=["nearest_centre_m"])
        best = walk.sort_values("nearest_centre_m", kind="mergesort").drop_duplicates("street").set_index("street")
        hit = out["street"].isin(best.index).to_numpy()
        where = out.loc[hit, "street"]
        out.loc[hit, "nearest_street_centre"] = where.map(best["nearest_centre"]).to_numpy()
        out.loc[hit, "nearest_street_centre_m"] = where.map(best["nearest_centre_m"]).to_numpy(dtype=float)
        out.loc[hit, "nearest_street_centre_basis"] = "walk"
    area = pd.to_numeric(facilities["floor_area_m2"], errors="coerce").to_numpy(dtype=float)[pos]
    if sd.large_centres is not None:
        lc = sd.large_centres
        big = service_mask(facilities, profile, lc.services)[pos] & (area >= lc.min_floor_area_m2)
        out["n_large_centres"] = np.bincount(fj["_s"].to_numpy()[big], minlength=len(out))
        out["flag_large_centres"] = out["n_large_centres"] < lc.min_count
    else:
        out["n_large_centres"] = 0
        out["flag_large_centres"] = False

    comps = [np.minimum(1.0, out[f"coverage_rate_{s}"] / profile.target(s).share) if profile.target(s).share > 0
             else pd.Series(1.0, index=out.index) for s in cs]
    if sd.centre_required:
        comps.append(out["has_street_centre"].astype(float))
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


def _street_failures(streets: pd.DataFrame, profile: Profile, lang: str) -> pd.DataFrame:
    by_key = {c.key: c for c in checks(profile) if c.level == "street"}
    parts = []
    lc = profile.sub_district.large_centres
    for key, value_col, required in (
        ("no_street_centre", "n_street_centres", 1.0),
        ("large_centres", "n_large_centres", float(lc.min_count) if lc is not None else 0.0),
    ):
        if key not in by_key:
            continue
        sel = streets[streets[f"flag_{key}"].astype(bool)]
        if sel.empty:
            continue
        c = by_key[key]
        parts.append(pd.DataFrame({
            "community": "", "street": sel["street"].astype("string").to_numpy(), "check": key, "check_label": c.label(lang),
            "value": sel[value_col].astype(float).to_numpy(), "required": required,
            "shortfall": required - sel[value_col].astype(float).to_numpy(), "unit": c.unit_text(lang),
            "elderly_affected": sel["elderly"].astype(float).to_numpy(), "standard": c.standard_text(lang), "source": c.source,
            "nearest_facility": sel["nearest_street_centre"].to_numpy() if key == "no_street_centre" else pd.NA,
            "nearest_facility_m": sel["nearest_street_centre_m"].to_numpy() if key == "no_street_centre" else np.nan,
        }))
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def action_list(communities: pd.DataFrame, streets: pd.DataFrame, profile: Profile, *, cutoff_m: float | None = None,
                lang: str = "zh") -> pd.DataFrame:
    """问题清单: one row per failed check, most severe first.

    Parameters
    ----------
    communities : DataFrame
        Output of :func:`check_communities`.
    streets : DataFrame
        Output of :func:`street_scorecard`.
    profile : Profile
    cutoff_m : float, optional
    lang : {"zh", "en"}
        Language of ``check_label``.

    Returns
    -------
    DataFrame
        ``rank`` (1 = most severe), ``community`` ("" for a sub-district check), ``street``,
        ``check``, ``check_label``, ``value``, ``required``, ``shortfall``, ``unit``,
        ``elderly_affected``, ``standard``, ``source``, ``nearest_facility``,
        ``nearest_facility_m``. Sorted by elderly affected, then shortfall (descending).
        For circle checks value/required are the covered share and threshold in %, and the
        nearest facility is of that service; for other community checks it is the nearest
        facility of the first circle service; for a sub-district without a centre it is the
        nearest centre (walked when the communities carry the pipeline's walk table, see
        :func:`street_scorecard`). ``check_label``, ``standard`` and ``unit`` are in
        ``lang``; ``source`` quotes the plan (Chinese).
    """
    com = communities.reset_index(drop=True)
    fails = _community_failures(com, profile, cutoff_m, lang).drop(columns="_pos")
    sf = _street_failures(streets, profile, lang)
    allf = pd.concat([f for f in (fails, sf) if len(f)], ignore_index=True) if len(fails) or len(sf) else fails
    allf = _sort_actions(allf)
    allf.insert(0, "rank", np.arange(1, len(allf) + 1))
    return allf


def city_totals(communities: pd.DataFrame, streets: pd.DataFrame, profile: Profile, *,
                population: pd.DataFrame | None = None, cutoff_m: float | None = None) -> dict:
    """City totals against the plan's targets (JSON-ready).

    Parameters
    ----------
    communities, streets : DataFrame
        Outputs of :func:`check_communities` and :func:`street_scorecard`.
    profile : Profile
    population : DataFrame, optional
        Population points with ``people``, ``elderly``, ``dist_<s>_m``: the covered shares
        are then over every point, including any outside the community polygons. Without
        it they are the community shares weighted by the communities' people / elderly
        (``shares_basis`` says which).
    cutoff_m : float, optional

    Returns
    -------
    dict
        ``profile``, ``title``, ``cutoff_m``, ``communities``, ``communities_flagged``,
        ``flagged_by_check``, ``shares_basis``, ``services`` (per circle service: ``population_covered_share``,
        ``elderly_covered_share``, ``communities_covered``, ``communities_covered_share``,
        ``target_share``, ``meets_target``, ``target_source``), ``sub_districts``, ``space``,
        ``stations``, ``not_checked`` (standards recorded but not checkable, with reasons).
    """
    cutoff = float(profile.walk_distance_m if cutoff_m is None else cutoff_m)
    n = len(communities)
    services = {}
    if population is not None:
        people = pd.to_numeric(population["people"], errors="coerce").fillna(0).to_numpy(dtype=float)
        eld = pd.to_numeric(population["elderly"], errors="coerce").fillna(0).to_numpy(dtype=float)
    else:
        people = communities["population"].astype(float).fillna(0).to_numpy()
        eld = communities["elderly"].astype(float).fillna(0).to_numpy()
    for s in profile.circle_services:
        if population is not None:
            cov = circle.covered(population, s, cutoff).astype(float)
            p_cov, e_cov = people * cov, eld * cov
        else:
            p_cov = people * communities[f"population_covered_share_{s}"].astype(float).fillna(0).to_numpy()
            e_cov = eld * communities[f"elderly_covered_share_{s}"].astype(float).fillna(0).to_numpy()
        covered = int((~communities[f"flag_no_{s}"].astype(bool)).sum())
        share = covered / n if n else float("nan")
        t = profile.target(s)
        services[s] = {
            "population_covered_share": float(p_cov.sum() / people.sum()) if people.sum() > 0 else None,
            "elderly_covered_share": float(e_cov.sum() / eld.sum()) if eld.sum() > 0 else None,
            "communities_covered": covered, "communities_covered_share": share,
            "target_share": t.share, "meets_target": bool(share >= t.share - TOLERANCE), "target_source": t.source,
        }
    flag_cols = [c for c in communities.columns if c.startswith("flag_")]
    by_check = {c[5:]: int(communities[c].astype(bool).sum()) for c in flag_cols}
    by_check.update({c[5:]: int(streets[c].astype(bool).sum()) for c in ("flag_no_street_centre", "flag_large_centres")})
    space = {
        "required_m2": _fsum(communities["space_required_m2"]), "target_m2": _fsum(communities["space_target_m2"]),
        "provided_m2": _fsum(communities["space_provided_m2"]), "shortfall_m2": _fsum(communities["space_shortfall_m2"]),
        "target_shortfall_m2": _fsum(communities["space_target_shortfall_m2"]),
        "communities_short": int(communities["flag_space"].astype(bool).sum()),
    }
    st = communities["n_stations"].astype(int)
    stations = {
        "required": profile.station.required,
        "communities_with_station": int((st > 0).sum()),
        "share": float((st > 0).mean()) if n else None,
        "area_unverified": int(((st > 0) & communities["largest_station_m2"].isna()).sum()),
    }
    not_checked = []
    if profile.per_capita is not None and profile.per_capita.measure == "land":
        not_checked.append({"standard": f"人均用地 ≥ {_g(profile.per_capita.min_m2_per_person)} m²", "source": profile.per_capita.source,
                            "reason": "land area is not in the inputs"})
    for name, r in (("new", profile.space.new), ("existing", profile.space.existing)):
        if r.min_m2_per_100hh is None:
            not_checked.append({"standard": f"space.{name}: 每百户 m²", "source": r.source, "reason": "the plan states no number"})
    if profile.sub_district.large_centres is not None:
        not_checked.append({"standard": "三星级 rating of large centres", "source": profile.sub_district.large_centres.source,
                            "reason": "star ratings are not in the facility data; size and count are checked"})
    return {
        "profile": profile.name, "title": profile.title, "cutoff_m": cutoff,
        "communities": n, "communities_flagged": int((communities["n_flags"] > 0).sum()),
        "flagged_by_check": by_check, "services": services,
        "shares_basis": "population_points" if population is not None else "communities",
        "sub_districts": {
            "label": profile.sub_district_label, "count": int(len(streets)),
            "with_centre": int(streets["has_street_centre"].astype(bool).sum()), "centre_required": profile.sub_district.centre_required,
        },
        "space": space, "stations": stations,
        "nearest_basis": str(communities["nearest_basis"].iloc[0]) if n and "nearest_basis" in communities else None,
        "not_checked": not_checked,
    }


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
           cutoff_m: float | None = None, lang: str = "zh") -> Assessment:
    """Community flags → sub-district scorecards → action list → city totals.

    Parameters
    ----------
    indicators : GeoDataFrame
        Output of :func:`carecircle.coverage.indicators.community_indicators`.
    facilities : GeoDataFrame
    profile : Profile
    streets : GeoDataFrame, optional
        Sub-district polygons (see :func:`street_scorecard`).
    population : DataFrame, optional
        Population points for the city covered shares (see :func:`city_totals`).
    cutoff_m : float, optional
        Walk-circle distance; default ``profile.walk_distance_m``.
    lang : {"zh", "en"}
        Language of ``flags`` and ``check_label``.

    Returns
    -------
    Assessment
    """
    com = check_communities(indicators, profile, cutoff_m=cutoff_m, lang=lang)
    sc = street_scorecard(com, facilities, profile, streets=streets)
    acts = action_list(com, sc, profile, cutoff_m=cutoff_m, lang=lang)
    city = city_totals(com, sc, profile, population=population, cutoff_m=cutoff_m)
    return Assessment(com, sc, acts, city)


def evaluate(communities: gpd.GeoDataFrame, population: gpd.GeoDataFrame, facilities: gpd.GeoDataFrame, profile: Profile, *,
             cutoff_m: float | None = None, estates: gpd.GeoDataFrame | None = None, streets: gpd.GeoDataFrame | None = None,
             nearest: pd.DataFrame | None = None, reach: pd.DataFrame | None = None, lang: str = "zh") -> Assessment:
    """:func:`~carecircle.coverage.indicators.community_indicators` then :func:`assess`.

    Parameters are those of the two functions; the city covered shares use ``population``.

    Returns
    -------
    Assessment
    """
    ind = community_indicators(communities, population, facilities, profile, cutoff_m=cutoff_m, estates=estates,
                               nearest=nearest, reach=reach)
    return assess(ind, facilities, profile, streets=streets, population=population, cutoff_m=cutoff_m, lang=lang)


_LABELS = {
    # communities
    "name": ("社区名称", "community"), "street": ("所属街道", "sub-district"), "households": ("户数", "households"),
    "households_source": ("户数来源", "households source"), "households_new": ("新建小区户数", "households, new estates"),
    "households_existing": ("已建小区户数", "households, existing estates"), "population": ("人口", "population"),
    "elderly": ("老年人口", "elderly"), "n_points": ("人口点数", "population points"), "dist_basis": ("距离依据", "distance basis"),
    "nearest_basis": ("最近设施距离依据", "nearest-facility basis"),
    "space_required_m2": ("应配养老用房面积（㎡）", "space required (m²)"), "space_target_m2": ("目标养老用房面积（㎡）", "space target (m²)"),
    "space_provided_m2": ("现有养老用房面积（㎡）", "space provided (m²)"), "space_provided_from": ("现有面积来源", "space provided from"),
    "space_shortfall_m2": ("养老用房缺口（㎡）", "space shortfall (m²)"),
    "space_target_shortfall_m2": ("距目标缺口（㎡）", "shortfall to target (m²)"), "largest_unit_m2": ("最大单处用房面积（㎡）", "largest unit (m²)"),
    "n_stations": ("养老服务站（点）数", "care stations"), "largest_station_m2": ("最大站点面积（㎡）", "largest station (m²)"),
    "per_capita_required_m2": ("按人均标准应配面积（㎡）", "per-capita requirement (m²)"),
    "n_flags": ("问题数", "failed checks"), "worst_check": ("最严重问题", "worst check"), "flags": ("问题", "flags"),
    # streets
    "communities": ("社区数", "communities"), "communities_flagged": ("有问题社区数", "communities flagged"),
    "communities_with_station": ("有站点社区数", "communities with a station"), "has_street_centre": ("有综合养老服务中心", "has centre"),
    "n_street_centres": ("综合养老服务中心数", "centres"),
    "nearest_street_centre": ("最近综合养老服务中心", "nearest centre"),
    "nearest_street_centre_m": ("最近综合养老服务中心距离（米）", "nearest centre (m)"),
    "nearest_street_centre_basis": ("最近综合养老服务中心距离依据", "nearest-centre basis"),
    "nearest_centre": ("最近综合养老服务中心", "nearest centre"),
    "nearest_centre_m": ("最近综合养老服务中心距离（米）", "nearest centre (m)"),
    "space_estates_short": ("面积不足小区数", "estates short of space"),
    # estates (estates.csv)
    "estate_class": ("新建/已建", "new / existing"), "per_estate": ("逐小区核算", "checked estate by estate"),
    "space_rate_m2_per_100hh": ("每百户标准（㎡）", "rate (m² per 100 households)"),
    "estate": ("小区名称", "estate"), "built_year": ("建成年份", "year built"),
    "n_large_centres": ("达规模日间照料中心数", "large centres"),
    "score": ("得分", "score"), "rank": ("排名", "rank"),
    # actions
    "community": ("社区", "community"), "check": ("检查项", "check"), "check_label": ("问题", "problem"), "value": ("现状值", "value"),
    "required": ("标准值", "required"), "shortfall": ("缺口", "shortfall"), "unit": ("单位", "unit"),
    "elderly_affected": ("受影响老年人", "elderly affected"), "standard": ("标准", "standard"), "source": ("依据", "source"),
    "nearest_facility": ("最近设施", "nearest facility"), "nearest_facility_m": ("最近设施距离（米）", "nearest facility (m)"),
}

_FLAG_LABELS = {
    "space": ("养老服务用房面积不足", "elderly-service floor space short"),
    "pooled_space": ("未集中配建养老服务用房", "no pooled unit"),
    "no_station": ("社区无养老服务站（点）", "no care station in the community"),
    "station_size": ("养老服务站（点）面积不足", "care station too small"),
    "per_capita": ("人均养老服务设施面积不足", "floor space per person short"),
    "no_street_centre": ("无综合养老服务中心", "no sub-district care centre"),
    "large_centres": ("达规模日间照料中心不足", "too few large day-care centres"),
}

_SERVICE_LABELS = {
    "dist_{s}_mean_m": ("到{zh}平均步行距离（米）", "mean walk to {en} (m)"),
    "dist_{s}_p90_m": ("到{zh}步行距离90分位（米）", "worst-decile walk to {en} (m)"),
    "elderly_covered_share_{s}": ("{zh}老年人覆盖率", "elderly covered, {en}"),
    "population_covered_share_{s}": ("{zh}人口覆盖率", "population covered, {en}"),
    "nearest_{s}": ("最近{zh}", "nearest {en}"), "nearest_{s}_m": ("最近{zh}距离（米）", "nearest {en} (m)"),
    "communities_covered_{s}": ("{zh}覆盖社区数", "communities covered, {en}"),
    "coverage_rate_{s}": ("{zh}社区覆盖率", "community coverage, {en}"), "target_{s}": ("{zh}覆盖目标", "target, {en}"),
    "meets_target_{s}": ("{zh}达标", "meets target, {en}"),
}

# Capacity columns (coverage/capacity.py), per service of profile.capacity.services.
_CAPACITY_LABELS = {
    "capacity_{s}": ("{zh}服务能力（位）", "{en} capacity (places)"),
    "capacity_basis_{s}": ("{zh}服务能力来源", "{en} capacity from"),
    "elderly_in_catchment_{s}": ("{zh}步行圈内老年人", "elderly within the circle of the {en}"),
    "load_{s}": ("{zh}饱和度", "{en} load (elderly ÷ places)"),
    "served_{s}": ("{zh}分配服务老年人", "elderly allocated to the {en}"),
    "supply_per_1000_elderly_{s}": ("每千名老人{zh}服务能力（2SFCA）", "{en} places per 1000 elderly (2SFCA)"),
    "supply_gaussian_per_1000_elderly_{s}": ("每千名老人{zh}服务能力（高斯2SFCA）", "{en} places per 1000 elderly (Gaussian 2SFCA)"),
    "no_capacity_in_reach_{s}": ("步行圈内无{zh}服务能力", "no {en} capacity within the circle"),
    "elderly_served_within_{s}": ("{zh}圈内可服务老年人", "elderly served by a {en} within the circle"),
    "elderly_served_beyond_{s}": ("{zh}圈外可服务老年人", "elderly served by a {en} beyond the circle"),
    "elderly_unserved_{s}": ("{zh}无法服务老年人", "elderly without a {en} place"),
    "supply_demand_ratio_{s}": ("{zh}供需比", "{en} supply/demand ratio"),
    "supply_demand_class_{s}": ("{zh}供需类型", "{en} supply/demand class"),
}


def column_labels(lang: str = "zh", profile: Profile | None = None) -> dict[str, str]:
    """Header labels for every output column (communities, streets, actions).

    Parameters
    ----------
    lang : {"zh", "en"}
    profile : Profile, optional
        Supplies the service and check labels (and the sub-district word); without it the
        ``national`` profile is used.

    Returns
    -------
    dict
        Column name → label.
    """
    profile = profile or load_profile("national")
    i = 1 if lang == "en" else 0
    out = {k: v[i] for k, v in _LABELS.items()}
    if i == 0:
        out["street"] = f"所属{profile.sub_district_label}"
        out["has_street_centre"] = f"{profile.sub_district_label}有{profile.services['street_centre'].label_zh}"
    for s in profile.circle_services:
        spec = profile.services[s]
        for pat, lab in _SERVICE_LABELS.items():
            out[pat.format(s=s)] = lab[i].format(zh=spec.label_zh, en=spec.label_en)
    for s in profile.capacity.services:
        spec = profile.services[s]
        for pat, lab in _CAPACITY_LABELS.items():
            out[pat.format(s=s)] = lab[i].format(zh=spec.label_zh, en=spec.label_en)
    cks = {c.key: c for c in checks(profile)}
    for col in community_flag_columns(profile) + ["flag_no_street_centre", "flag_large_centres"]:
        key = col[5:]
        # A check the profile does not apply still has a column (always False): generic label.
        out[col] = cks[key].label(lang) if key in cks else _FLAG_LABELS.get(key, (key, key.replace("_", " ")))[i]
    return out
