"""The siting step of a run: after the analysis, choose new sites of one service.

:func:`site_step` reads or generates the candidates (``layers.candidates``), snaps them
like every other point, and solves the plan on the walk network
(:func:`carecircle.coverage.siting.plan_sites`); :func:`write_siting` writes its outputs
(``maps.sites``); :func:`site` is ``carecircle site``: a run with the siting step required.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd

from carecircle.config import RunConfig
from carecircle.coverage import circle, indicators, snap
from carecircle.coverage.graph import build_graph
from carecircle.coverage.profile import Profile
from carecircle.coverage.siting import SitingPlan, plan_sites
from carecircle.layers import candidates as candidates_layer
from carecircle.errors import InputError
from carecircle.layers.accounting import LayerReport


@dataclass
class Siting:
    """The siting step's result: the plan, the candidates it chose from and their report."""

    plan: SitingPlan
    candidates: gpd.GeoDataFrame
    report: LayerReport
    service: str
    sites: gpd.GeoDataFrame


def site_step(config: RunConfig, profile: Profile, walk, inputs, analysis, log=print) -> Siting:
    """Choose the sites asked for by ``config.siting`` on top of a finished analysis.

    Parameters
    ----------
    config : RunConfig
        With a ``siting`` section.
    profile : Profile
    walk : Walk
        The run's walking circle.
    inputs : Inputs
        The loaded layers (network, population, communities).
    analysis : Analysis
        The analysis of the same run (its population distances and community verdicts
        are the before-state).
    log : callable

    Returns
    -------
    Siting
    """
    sc = config.siting
    if sc.service not in profile.circle_services:
        raise InputError(f"{config.source}: siting.service: {sc.service!r} is not a circle service of profile "
                         f"{profile.name} (choose from {', '.join(profile.circle_services)})")
    net, crs = inputs.network, inputs.network.crs
    if sc.candidates.generate is not None:
        cand, report = candidates_layer.generate_candidates(net, spacing_m=sc.candidates.generate.spacing_m)
    else:
        from carecircle.pipeline import _study_area

        c = sc.candidates
        cand, report = candidates_layer.read_candidates(
            c.path, target_crs=crs, name_field=c.name_field, x=c.x, y=c.y, crs=c.crs, encoding=c.encoding,
            sheet=c.sheet, layer=c.layer, study_area=_study_area(net, config.network.max_snap_m),
        )
    if not len(cand):
        raise InputError(f"{config.source}: siting.candidates: no usable candidate site ({report.read} read)")
    graph = build_graph(net, min_component_nodes=config.network.min_component_nodes)
    max_snap = config.network.max_snap_m
    cand_snap = snap.snap_points(graph, cand.geometry.values, max_snap_m=max_snap)
    if (~cand_snap.ok).any():
        report.rejected = pd.concat([report.rejected, pd.DataFrame({
            "row": cand["source_row"].to_numpy()[~cand_snap.ok], "reason": cand_snap.reason[~cand_snap.ok]})],
            ignore_index=True)
    usable = np.flatnonzero(cand_snap.ok)
    cand = cand.iloc[usable].reset_index(drop=True)
    cand_snap = cand_snap.take(usable)
    log(f"候选点 candidates: {len(cand):,} usable of {report.read:,}")

    pop, com, fac = analysis.population, inputs.communities, analysis.facilities
    key = sc.service
    # The same targets as the analysis: population points, then one centre per community.
    centres = com.geometry.representative_point().values
    targets = snap.snap_points(graph, np.concatenate([pop.geometry.values, centres]), max_snap_m=max_snap)
    fidx = np.flatnonzero(fac[key].to_numpy(bool) & fac["snapped"].to_numpy(bool))
    existing = snap.snap_points(graph, fac.geometry.values[fidx], max_snap_m=max_snap)
    site_com = indicators.community_of_points(cand, com).to_numpy()
    plan = plan_sites(
        graph, cand_snap, targets, candidate_ids=cand["cid"].to_numpy(), candidate_names=cand["name"].astype(str).to_numpy(),
        existing=existing, existing_names=fac["name"].astype(str).to_numpy()[fidx],
        people=pop["people"].to_numpy(float), elderly=pop["elderly"].to_numpy(float),
        point_community=indicators.community_of_points(pop, com).to_numpy(),
        covered=circle.covered(pop, key, walk.distance_m),
        centre_covered=circle.within(analysis.communities[f"nearest_{key}_m"], walk.distance_m),
        community_names=com["name"].astype(str).to_numpy(),
        community_streets=(com["street"] if "street" in com else pd.Series([""] * len(com))).astype(object).to_numpy(),
        site_community=site_com, cutoff_m=walk.distance_m, min_share=profile.circle.min_covered_share,
        objective=sc.objective, weight=sc.weight, new_sites=sc.new_sites,
        target_share=sc.target_share if sc.target_share is not None else profile.target(key).share,
        time_limit_s=sc.time_limit_s, capacity=sc.capacity,
    )
    s = plan.summary
    s.update({"service": key, "candidates_read": report.read, "candidates_rejected": len(report.rejected),
              "candidates_source": report.source})
    log(f"选址 siting: {s['new_sites']} site(s), value {s['value']:g} ({s['weight']}), "
        f"{'optimal' if s['optimal'] else 'gap ' + str(s['gap'])}, {s['solve_s']:.1f} s")
    sites = gpd.GeoDataFrame(plan.sites, geometry=gpd.points_from_xy(plan.sites["x"], plan.sites["y"]), crs=crs)
    return Siting(plan, cand, report, key, sites)


def scenario_block(config: RunConfig, profile: Profile, siting: Siting) -> dict:
    """A run config that reproduces the after-state: the run's own config with the sites added.

    Parameters
    ----------
    config : RunConfig
    profile : Profile
    siting : Siting

    Returns
    -------
    dict
        The config as YAML-ready data (absolute paths, no ``siting``), whose ``scenario.add``
        holds the run's own planned facilities and the new sites (WGS-84).
    """
    from carecircle.layers.facilities import keyword_flags

    data = config.model_dump(mode="json", exclude_none=True, exclude={"siting", "source"})
    spec = profile.services[siting.service]
    ftype = spec.keywords[0] if spec.keywords else spec.label_zh
    wgs = siting.sites.to_crs("EPSG:4326")
    names = pd.Series([f"建议选址{r}（{n}）" for r, n in zip(siting.sites["rank"], siting.sites["name"])], dtype="string")
    # A candidate's own name must not make the site count for another service (or not for its own).
    flags = keyword_flags(names, pd.Series([ftype] * len(names), dtype="string"), {k: s.keywords for k, s in profile.services.items()})
    clean = flags[siting.service] & ~np.any([v for k, v in flags.items() if k != siting.service] or [np.zeros(len(names), bool)], axis=0)
    names = names.where(pd.Series(clean), pd.Series([f"建议选址{r}" for r in siting.sites["rank"]], dtype="string"))
    scenario = data.get("scenario") or {"add": [], "remove": []}
    floor = config.siting.floor_area
    scenario["add"] = list(scenario.get("add", [])) + [
        {"name": str(n), "type": ftype, "lon": float(x), "lat": float(y), "crs": "wgs84",
         **({"floor_area": float(floor)} if floor is not None else {})}
        for n, x, y in zip(names, wgs.geometry.x, wgs.geometry.y)
    ]
    data["scenario"] = scenario
    return data


def site(config: RunConfig, out_dir: str | Path, **options) -> dict:
    """``carecircle site CONFIG --out DIR``: the run with its ``siting`` section required.

    Parameters
    ----------
    config : RunConfig
    out_dir : str or pathlib.Path
    **options
        Passed to :func:`carecircle.pipeline.run`.

    Returns
    -------
    dict
        The summary (with its ``siting`` block).
    """
    from carecircle.pipeline import run

    if config.siting is None:
        raise InputError(f"{config.source}: siting: key missing; `carecircle site` needs a siting section (see the README)")
    return run(config, out_dir, **options)
