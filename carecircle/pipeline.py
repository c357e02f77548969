"""The pipeline: read the layers, analyse coverage and standards, write the outputs.

Three plain steps that mirror the stages — :func:`load_inputs` (``layers``),
:func:`carecircle.coverage.analysis.analyse` (``coverage``) and :func:`write_outputs`
(``maps``) — and :func:`run`, which
chains them and writes everything into a temporary folder that replaces the output folder
only once complete, so a failed run never leaves half-written files that look finished.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import tempfile
import time
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

import numpy as np
import pandas as pd
import shapely

import carecircle
from carecircle.config import RunConfig
from carecircle.coverage.analysis import REPORT_LIMIT_FACTOR, Analysis, Inputs, Log, Walk, analyse
from carecircle.coverage.profile import Profile, load_profile
from carecircle.layers import areas, facilities as facilities_layer, network as network_layer, population as population_layer
from carecircle.errors import InputError
from carecircle.layers.accounting import LayerReport
from carecircle.maps import export, html, labels as map_labels, planning_report as report_page


def resolve_walk(config: RunConfig, profile: Profile) -> Walk:
    """The walking circle: the config's ``walk`` over the profile's defaults.

    Parameters
    ----------
    config : RunConfig
    profile : Profile

    Returns
    -------
    Walk
    """
    w = config.walk
    if w.distance_m is not None:
        distance = float(w.distance_m)
        rings = sorted({distance / 3, 2 * distance / 3, distance})
        return Walk(distance, None, None, rings)
    minutes = w.minutes if w.minutes is not None else profile.walk.minutes
    speed = w.speed_kmh if w.speed_kmh is not None else profile.walk.speed_kmh
    ring_minutes = w.rings_minutes or [m for m in (5.0, 10.0) if m < minutes] + [minutes]

    def metres(m: float) -> float:
        # Multiply before dividing: 15 min at 4 km/h is exactly 1000 m, not 1000.0000000000001.
        return float(m) * speed * 1000.0 / 60.0

    rings = sorted({metres(m) for m in ring_minutes if 0 < m <= minutes} | {metres(minutes)})
    return Walk(metres(minutes), float(minutes), float(speed), rings)


def _study_area(network: network_layer.Network, margin_m: float) -> shapely.Geometry:
    """The area the network covers, grown by the snap limit: inputs outside cannot be reached."""
    hull = shapely.convex_hull(shapely.multipoints(network.nodes[["x", "y"]].to_numpy()))
    return shapely.buffer(hull, margin_m)


def load_inputs(config: RunConfig, profile: Profile, log: Log = print) -> Inputs:
    """Read every input layer of ``config`` into the network's metric CRS.

    Parameters
    ----------
    config : RunConfig
    profile : Profile
        Supplies the facility-type keywords per service.
    log : callable
        Receives one progress line per layer.

    Returns
    -------
    Inputs
    """
    net_cfg = config.network
    if net_cfg.osm is not None:
        net = network_layer.read_osm(net_cfg.osm, include_private=net_cfg.include_private)
    elif net_cfg.lines is not None:
        net = network_layer.read_lines(net_cfg.lines, layer=net_cfg.layer)
    elif net_cfg.place is not None:
        net = network_layer.download_place(net_cfg.place)
    else:
        net = network_layer.download_bbox(net_cfg.bbox)
    target = net.crs
    log(f"路网 network: {net.stats['nodes']:,} nodes, {net.stats['edges']:,} edges ({target.to_string()})")
    area = _study_area(net, net_cfg.max_snap_m)
    reports = {"network": net.report}

    fc = config.facilities
    keywords = {key: spec.keywords for key, spec in profile.services.items()}
    fac, reports["facilities"] = facilities_layer.read_facilities(
        fc.path, crs=fc.crs, columns=fc.columns(), keywords=keywords, target_crs=target,
        auto_fix=fc.auto_fix, encoding=fc.encoding, sheet=fc.sheet, study_area=area,
    )
    if config.scenario is not None:
        fac = facilities_layer.apply_scenario(
            fac, add=pd.DataFrame([a.model_dump() for a in config.scenario.add],
                                  columns=["name", "type", "lon", "lat", "crs", "floor_area", "beds"]),
            remove=config.scenario.remove, keywords=keywords, target_crs=target, report=reports["facilities"],
        )
    log(f"设施 facilities: {len(fac):,} kept of {reports['facilities'].read:,}")

    streets = None
    if config.streets is not None:
        streets, reports["streets"] = areas.read_streets(
            config.streets.path, name_field=config.streets.name_field, target_crs=target
        )
    cc = config.communities
    communities, reports["communities"] = areas.read_communities(
        cc.path, name_field=cc.name_field, street_field=cc.street_field, households_field=cc.households_field,
        population_field=cc.population_field, elderly_field=cc.elderly_field,
        built_year_field=cc.built_year_field, target_crs=target, streets=streets,
    )
    estates = None
    if config.estates is not None:
        ec = config.estates
        estates, reports["estates"] = areas.read_estates(
            ec.path, name_field=ec.name_field, households_field=ec.households_field,
            built_year_field=ec.built_year_field, community_field=ec.community_field,
            space_field=ec.space_field, target_crs=target, communities=communities,
        )
    log(f"社区 communities: {len(communities):,}" + (f", 小区 estates: {len(estates):,}" if estates is not None else ""))

    pc = config.population
    if pc.raster is not None:
        pop, reports["population"] = population_layer.read_population_raster(
            pc.raster, target_crs=target, study_area=area, elderly_share=pc.elderly_share,
            elderly_raster=pc.elderly_raster,
        )
    elif pc.points is not None:
        pop, reports["population"] = population_layer.read_population_points(
            pc.points, count_field=pc.count_field, elderly_field=pc.elderly_field,
            elderly_share=pc.elderly_share, households_field=pc.households_field, target_crs=target,
        )
    else:
        pop, reports["population"] = population_layer.distribute_by_buildings(
            pc.buildings, total_population=pc.total_population, weight_field=pc.weight_field,
            elderly_share=pc.elderly_share, target_crs=target, layer=pc.layer,
        )
    log(f"人口 population: {len(pop):,} points, {pop['people'].sum():,.0f} people, {pop['elderly'].sum():,.0f} elderly")
    _check_overlap(net, area, fac, pop, communities, config, reports["facilities"])
    return Inputs(net, fac, pop, communities, estates, streets, reports)


def _check_overlap(net, area, fac, pop, communities, config: RunConfig, fac_report: LayerReport) -> None:
    """Stop when a layer lies wholly outside the network (usually a wrong CRS) or nothing is left."""
    for key, gdf, path in (
        ("communities", communities, config.communities.path),
        ("population", pop, config.population.raster or config.population.points or config.population.buildings),
    ):
        if len(gdf) and not shapely.intersects(gdf.geometry.values, area).any():
            raise InputError(
                f"{path}: {key}: no feature overlaps the street network; check the layer's CRS "
                f"(network is in {net.crs.to_string()})"
            )
    if len(fac) == 0:
        reasons = ", ".join(f"{reason}: {n}" for reason, n in fac_report.to_dict()["rejected_by_reason"].items())
        raise InputError(
            f"{config.facilities.path}: no usable facility: all {fac_report.read} rows rejected ({reasons}); "
            "check the coordinate columns and facilities.crs"
        )


def _versions() -> dict[str, str]:
    names = ["numpy", "scipy", "pandas", "shapely", "pyproj", "geopandas", "pyogrio", "osmium",
             "rasterio", "folium", "pydantic", "networkx", "osmnx"]
    out = {"carecircle": carecircle.__version__, "python": platform.python_version()}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def build_summary(config: RunConfig, profile: Profile, walk: Walk, inputs: Inputs, analysis: Analysis,
                  runtime_s: float) -> dict:
    """The machine-readable record of a run (``summary.json``).

    Parameters
    ----------
    config, profile, walk, inputs, analysis
        The run's parameters and results.
    runtime_s : float
        Wall time of load + analysis.

    Returns
    -------
    dict
        JSON-serialisable; see the README for every key.
    """
    com = analysis.communities
    flag_cols = [c for c in com.columns if c.startswith("flag_")]
    pop = analysis.population
    unsnapped_pop = pop[~pop["snapped"]]
    fac = analysis.facilities
    streets = pd.DataFrame(analysis.streets.drop(columns="geometry", errors="ignore"))
    return _rounded({
        "carecircle": carecircle.__version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "runtime_s": round(runtime_s, 2),
        "config": str(config.source) if config.source else None,
        "profile": {"name": profile.name, "title": profile.title, "sub_district_label": profile.sub_district_label},
        "parameters": {
            "walk_distance_m": walk.distance_m,
            "walk_minutes": walk.minutes,
            "walk_speed_kmh": walk.speed_kmh,
            "rings_m": walk.rings_m,
            "distance_search_limit_m": walk.distance_m * REPORT_LIMIT_FACTOR,
            "max_snap_m": config.network.max_snap_m,
            "min_component_nodes": config.network.min_component_nodes,
            "household_size": profile.household_size,
            "analysis_crs": inputs.network.crs.to_string(),
            "scenario": config.scenario.model_dump() if config.scenario else None,
        },
        "inputs": {name: rep.to_dict() for name, rep in inputs.reports.items()},
        "network": {**_jsonable(inputs.network.stats), "graph": _jsonable(analysis.graph_stats)},
        "snapping": {
            "facilities_unsnapped": int((~fac["snapped"]).sum()),
            "facilities_unsnapped_names": fac.loc[~fac["snapped"], "name"].astype(str).tolist(),
            "population_points_unsnapped": int(len(unsnapped_pop)),
            "population_unsnapped": float(unsnapped_pop["people"].sum()),
            "elderly_unsnapped": float(unsnapped_pop["elderly"].sum()),
        },
        "population": {"points": int(len(pop)), "people": float(pop["people"].sum()),
                       "elderly": float(pop["elderly"].sum())},
        "services": analysis.services,
        "communities": {
            "total": int(len(com)),
            "flagged": int(com[flag_cols].any(axis=1).sum()) if flag_cols else 0,
            "flagged_by_flag": {c: int(com[c].sum()) for c in flag_cols},
        },
        "streets": _jsonable(streets.to_dict(orient="records")),
        "city": _jsonable(analysis.city),
        "versions": _versions(),
    })


def _rounded(value, key: str = ""):
    """summary.json values rounded to what they mean, by their key (:func:`carecircle.maps.export.round_value`)."""
    if isinstance(value, dict):
        return {k: _rounded(v, str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [_rounded(v, key) for v in value]
    return export.round_value(key, value)


def _jsonable(value):
    """numpy scalars → Python, NaN/inf → None, recursively."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (np.bool_, bool)):
        return bool(value)
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if np.isfinite(value) else None
    if value is pd.NA or value is None:
        return None
    return value


def write_outputs(out: Path, config: RunConfig, profile: Profile, walk: Walk, inputs: Inputs,
                  analysis: Analysis, summary: dict, *, lang: str, basemap: str, offline: bool,
                  log: Log = print) -> list[str]:
    """Render and export a finished analysis into ``out`` (never recomputes anything).

    Parameters
    ----------
    out : pathlib.Path
        An empty folder.
    config, profile, walk, inputs, analysis, summary
        The run.
    lang : {"zh", "en"}
    basemap : {"osm", "amap", "tianditu"}
    offline : bool
        Inline the map's JavaScript and CSS.
    log : callable
        One line per output written (and when the report cannot have a PDF or charts).

    Returns
    -------
    list of str
        The files written, relative to ``out`` (``summary.json`` is the caller's, written last).
    """
    # The profile names its services, its checks and its sub-district unit; every label says
    # the run's circle (a 10-minute run's checks read "10分钟步行圈").
    services = map_labels.profile_services(profile)
    labels = map_labels.follow_circle(map_labels.analysis_labels(profile), profile.walk.minutes, walk.minutes,
                                      walk.distance_m)
    com, streets, fac, pop, iso = (analysis.communities, analysis.streets, analysis.facilities,
                                   analysis.population, analysis.isochrones)
    # The analysis' own words (check labels, flags) name the profile's circle too.
    rewrite = map_labels.circle_rewriter(profile.walk.minutes, walk.minutes, walk.distance_m)
    actions = analysis.actions.assign(**{c: analysis.actions[c].map(rewrite) for c in ("check_label",)
                                         if c in analysis.actions.columns})
    com = com.assign(**{c: com[c].map(rewrite) for c in ("flags",) if c in com.columns})
    dist_cols = [f"dist_{k}_m" for k in profile.services]
    pop_out = pop[["pid", "people", "elderly", *dist_cols, "snap_m", "geometry"]]
    gpkgs = {"population": pop_out, "facilities": fac.to_crs("EPSG:4326"), "communities": com, "isochrones": iso}
    for name, layer in gpkgs.items():
        if config.wants(name):
            export.write_geopackage(out / f"{name}.gpkg", {name: layer})
    tables = {name: table for name, table in (("communities", com), ("streets", streets), ("estates", analysis.estates),
                                              ("actions", actions))
              if table is not None and config.wants(name)}
    export.write_tables(out, tables, labels, lang, services=services)
    log(f"表格 tables: {', '.join(f'{n}.csv/.xlsx' for n in tables)}")
    if config.wants("rejected"):
        for name, rep in inputs.reports.items():
            if len(rep.rejected):
                rep.rejected.to_csv(out / f"rejected_{name}.csv", index=False, encoding="utf-8-sig")
    if config.wants("map"):
        title = html.map_title(profile.title, lang=lang, minutes=walk.minutes, distance_m=walk.distance_m)
        # Uncovered points are drawn for the circle services only (day care, meals).
        pop_map = pop.drop(columns=[c for k in profile.services if k not in profile.circle_services
                                    for c in (f"dist_{k}_m", f"covered_{k}")], errors="ignore")
        tiles = config.output.tiles.model_dump() if config.output.tiles is not None else None
        m = html.build_map(facilities=fac, communities=com, streets=streets, isochrones=iso, population=pop_map,
                           actions=actions, services=services, labels=labels, cutoff_m=walk.distance_m,
                           lang=lang, basemap=basemap, title=title, network=inputs.network.edges,
                           estates=analysis.estates, tiles=tiles, tianditu_token=config.output.tianditu_key)
        html.write_map(m, out / "map.html", offline=offline)
        log("地图 map.html" + (" (离线 offline: Leaflet inlined)" if offline else " (online: Leaflet from the CDN)"))
    if config.wants("report"):
        report_page.write_report(out, streets=streets, communities=com, actions=actions,
                                 summary=summary, services=services, labels=labels, lang=lang,
                                 facilities=fac, estates=analysis.estates, network=inputs.network.edges, log=log)
        log("报告 report: " + ", ".join(f for f in ("report.html", "report.docx", "report.pdf") if (out / f).exists()))
    if config.wants("shp"):
        covered = np.all([pop[f"covered_{k}"].to_numpy(dtype=bool) for k in profile.circle_services], axis=0)
        package = {"communities": com, "streets": streets, "facilities": fac, "isochrones": iso,
                   "uncovered": pop_out[~covered]}
        if analysis.estates is not None:
            package["estates"] = analysis.estates
        export.write_package(
            out, package, crs=config.output.shapefile_crs, encoding=config.output.shapefile_encoding,
            labels=labels, services=services,
        )
        log(f"规划数据包 shp/: {', '.join(package)}")
    return sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())


def run(config: RunConfig, out_dir: str | Path, *, lang: str | None = None, basemap: str | None = None,
        offline: bool | None = None, log: Log = print) -> dict:
    """Run the whole analysis of ``config`` into ``out_dir``.

    Outputs are written to a temporary folder beside ``out_dir`` and moved into place only
    when complete; an existing ``out_dir`` is replaced.

    Parameters
    ----------
    config : RunConfig
    out_dir : str or pathlib.Path
    lang, basemap, offline : optional
        Override ``output.lang``, ``output.basemap`` and ``output.offline_map``.
    log : callable
        Progress lines.

    Returns
    -------
    dict
        The summary (also written as ``summary.json``).
    """
    t0 = time.perf_counter()
    out_dir = Path(out_dir)
    profile = load_profile(config.profile)
    walk = resolve_walk(config, profile)
    if config.wants("map"):
        # A missing Tianditu key fails now, not after the analysis.
        html.check_basemap(basemap or config.output.basemap, tianditu_token=config.output.tianditu_key,
                           tiles=config.output.tiles.model_dump() if config.output.tiles is not None else None)
    log(f"标准 profile: {profile.name} ({profile.title}); 步行圈 walk circle {walk.distance_m:,.0f} m")
    inputs = load_inputs(config, profile, log)
    lang = lang or config.output.lang
    analysis = analyse(inputs, profile, walk, max_snap_m=config.network.max_snap_m,
                       min_component_nodes=config.network.min_component_nodes,
                       polygons=any(config.wants(f) for f in ("isochrones", "map", "shp")), lang=lang, log=log)
    summary = build_summary(config, profile, walk, inputs, analysis, time.perf_counter() - t0)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.partial-", dir=out_dir.parent))
    try:
        files = write_outputs(
            tmp, config, profile, walk, inputs, analysis, summary,
            lang=lang, basemap=basemap or config.output.basemap,
            offline=config.output.offline_map if offline is None else offline, log=log,
        )
        summary["outputs"] = sorted([*files, "summary.json"])
        summary["runtime_s"] = round(time.perf_counter() - t0, 2)
        (tmp / "summary.json").write_text(json.dumps(summary, ensure_ascii=False, indent=2), encoding="utf-8")
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return summary
