"""The pipeline: read the layers, analyse coverage and standards, write the outputs.

Three plain steps that mirror the stages — :func:`load_inputs` (``layers``),
:func:`carecircle.coverage.analysis.analyse` (``coverage``) and :func:`write_outputs`
(``maps``) — and :func:`run`, which
chains them and writes everything into a temporary folder that replaces the output folder
only once complete, so a failed run never leaves half-written files that look finished.
"""

from __future__ import annotations

import json
import platform
import time
from dataclasses import replace
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

import carecircle
from carecircle import outdir
from carecircle.config import NetworkConfig, RunConfig
from carecircle.coverage.analysis import REPORT_LIMIT_FACTOR, Analysis, Inputs, Log, Walk, analyse
from carecircle.coverage.profile import Profile, load_profile
from carecircle.layers import areas, facilities as facilities_layer, network as network_layer, population as population_layer
from carecircle.coverage import indicators
from carecircle.errors import InputError
from carecircle.layers.accounting import LayerReport
from carecircle.maps import cells as map_cells, export, html, labels as map_labels, planning_report as report_page
from carecircle.maps import sites as sites_out
from carecircle.siting import scenario_block, site_step


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
    return shapely.buffer(network.complete_area(), margin_m)


def load_inputs(config: RunConfig, profile: Profile, log: Log = print, *, clip=None) -> Inputs:
    """Read every input layer of ``config`` into the network's metric CRS.

    Parameters
    ----------
    config : RunConfig
    profile : Profile
        Supplies the facility-type keywords per service.
    log : callable
        Receives one progress line per layer.
    clip : carecircle.tiles.Clip, optional
        One tile of a bigger region: its core and halo, already cut out of the region's layers
        (read once for all tiles, see :mod:`carecircle.tiles`), returned as they are.

    Returns
    -------
    Inputs
    """
    if clip is not None:
        log(f"分块 tile {clip.name}: {clip.record['communities_core']:,} communities, "
            f"{clip.record['population_points_core']:,} points, {clip.record['network_edges']:,} edges with the halo")
        return clip.inputs
    net_cfg = config.network
    net = read_network(net_cfg)
    target = net.crs
    log(f"路网 network: {net.stats['nodes']:,} nodes, {net.stats['edges']:,} edges ({target.to_string()})")
    area = _study_area(net, net_cfg.max_snap_m)
    reports = {"network": net.report}

    fc = config.facilities
    keywords = {key: spec.keywords for key, spec in profile.services.items()}
    exclude = {key: spec.exclude for key, spec in profile.services.items()}
    fac, reports["facilities"] = facilities_layer.read_facilities(
        fc.path, crs=fc.crs, columns=fc.columns(), keywords=keywords, target_crs=target,
        auto_fix=fc.auto_fix, encoding=fc.encoding, sheet=fc.sheet, study_area=area, exclude=exclude,
    )
    if config.scenario is not None:
        fac = facilities_layer.apply_scenario(
            fac, add=pd.DataFrame([a.model_dump() for a in config.scenario.add],
                                  columns=["name", "type", "lon", "lat", "crs", "floor_area", "beds", "capacity"]),
            remove=config.scenario.remove, keywords=keywords, target_crs=target, report=reports["facilities"],
            exclude=exclude,
        )
    log(f"设施 facilities: {len(fac):,} kept of {reports['facilities'].read:,}")
    unmatched = facilities_layer.unmatched_names(fac, list(profile.services))
    if unmatched:
        log(f"警告 warning: {len(unmatched)} facility(ies) match no service of profile {profile.name} and count for nothing: "
            + ", ".join(unmatched[:10]) + (" …" if len(unmatched) > 10 else "") + " (unmatched_facilities.csv)")

    streets = None
    if config.streets is not None:
        streets, reports["streets"] = areas.read_streets(
            config.streets.path, name_field=config.streets.name_field, target_crs=target,
            kind_field=config.streets.kind_field,
        )
    cc = config.communities
    communities, reports["communities"] = areas.read_communities(
        cc.path, name_field=cc.name_field, street_field=cc.street_field, households_field=cc.households_field,
        population_field=cc.population_field, elderly_field=cc.elderly_field,
        built_year_field=cc.built_year_field, target_crs=target, streets=streets,
        kind_field=cc.kind_field, street_kind_field=cc.street_kind_field,
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


def read_network(net_cfg: NetworkConfig, *, step_free: bool | None = None) -> network_layer.Network:
    """The walk network the config names; ``step_free`` overrides ``network.step_free``
    (for the step-free comparison)."""
    from carecircle.layers import lines, online, osm

    if net_cfg.osm is not None:
        return osm.read_osm(
            net_cfg.osm, include_private=net_cfg.include_private,
            step_free=net_cfg.step_free if step_free is None else step_free, cycleways=net_cfg.cycleways,
            pedestrian_areas=net_cfg.pedestrian_areas, clip_margin_m=net_cfg.clip_margin_m,
        )
    if net_cfg.lines is not None:
        return lines.read_lines(net_cfg.lines, layer=net_cfg.layer)
    if net_cfg.place is not None:
        return online.download_place(net_cfg.place)
    return online.download_bbox(net_cfg.bbox)


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


def walk_checks(config: RunConfig, profile: Profile, walk: Walk, inputs: Inputs, analysis: Analysis,
                log: Log = print) -> dict:
    """The summary.json sections ``walk.sensitivity`` and ``walk.compare_step_free`` ask for.

    ``speed_sensitivity``: coverage of every circle service at each of the profile's
    ``walk.speed_presets``, read off the distances already searched (the circle's minutes at
    each speed; the profile's minutes when the circle is a distance). ``step_free_comparison``:
    the coverage on the network as configured and on the other one (step-free or not), which
    costs a second read of the extract and a second search per service.
    """
    from carecircle.coverage.sensitivity import speed_sensitivity

    out: dict = {}
    services = list(profile.circle_services)
    if config.walk.sensitivity:
        minutes = walk.minutes if walk.minutes is not None else profile.walk.minutes
        limit = walk.distance_m * REPORT_LIMIT_FACTOR
        out["speed_sensitivity"] = {
            "minutes": minutes, "search_limit_m": limit,
            "rows": speed_sensitivity(analysis.population, services, minutes=minutes,
                                      presets=profile.walk.speed_presets, search_limit_m=limit),
        }
        log("步速 walking speed: " + "; ".join(
            f"{row['speed_kmh']:g} km/h " + ", ".join(
                f"{k} {row['services'][k]['elderly_covered_share'] or 0:.1%}" for k in services)
            for row in out["speed_sensitivity"]["rows"]) + " of elderly within the circle")
    if config.walk.compare_step_free:
        if config.network.osm is None:
            raise InputError(f"{config.source}: walk.compare_step_free: needs network.osm "
                             "(the step-free rules read the OSM tags of steps, ramps and kerbs)")
        other_net = read_network(config.network, step_free=not config.network.step_free)
        other = analyse(replace(inputs, network=other_net), profile, walk, max_snap_m=config.network.max_snap_m,
                        min_component_nodes=config.network.min_component_nodes, polygons=False,
                        log=lambda line: None)
        runs = {config.network.step_free: (inputs.network, analysis), not config.network.step_free: (other_net, other)}
        out["step_free_comparison"] = {
            name: {
                "network": {k: runs[free][0].stats[k] for k in ("nodes", "edges", "components", "excluded_by_reason")},
                "services": {k: {m: runs[free][1].services[k][m] for m in (
                    "population_covered", "elderly_covered", "population_covered_share", "elderly_covered_share")}
                    for k in services},
            }
            for name, free in (("standard", False), ("step_free", True))
        }
        log("无障碍 step-free: " + ", ".join(
            f"{k} {out['step_free_comparison']['standard']['services'][k]['elderly_covered_share'] or 0:.1%} → "
            f"{out['step_free_comparison']['step_free']['services'][k]['elderly_covered_share'] or 0:.1%}"
            for k in services) + " of elderly within the circle")
    return out


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
        "inputs": _inputs_summary(inputs, profile),
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
        "capacity": _jsonable(analysis.capacity),
        "versions": _versions(),
    })


def _rounded(value, key: str = ""):
    """summary.json values rounded to what they mean, by their key (:func:`carecircle.maps.export.round_value`)."""
    if isinstance(value, dict):
        return {k: _rounded(v, str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [_rounded(v, key) for v in value]
    return export.round_value(key, value)


def _inputs_summary(inputs: Inputs, profile: Profile) -> dict:
    """Rows read / kept / rejected per layer; the facilities that match no service, by name."""
    out = {name: rep.to_dict() for name, rep in inputs.reports.items()}
    if "facilities" in out:
        out["facilities"]["unmatched"] = facilities_layer.unmatched_names(inputs.facilities, list(profile.services))
    return out


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
                  sites: gpd.GeoDataFrame | None = None, log: Log = print) -> list[str]:
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
    sites : geopandas.GeoDataFrame, optional
        Recommended sites (``maps.sites.sites_table``) for the map, the report and shp/.
    log : callable
        One line per output written (and when the report cannot have a PDF or charts).

    Returns
    -------
    list of str
        The files written, relative to ``out`` (``summary.json`` is the caller's, written last).
    """
    # The profile names its services, its checks and its sub-district unit; the analysis'
    # keys become words here, and every label says the run's circle (a 10-minute run's
    # checks read "10分钟步行圈").
    services = map_labels.profile_services(profile)
    labels = map_labels.follow_circle(map_labels.analysis_labels(profile, walk.distance_m), profile.walk.minutes,
                                      walk.minutes, walk.distance_m)
    rewrite = map_labels.circle_rewriter(profile.walk.minutes, walk.minutes, walk.distance_m)
    com = map_labels.word_flags(analysis.communities, profile, lang, walk.distance_m)
    com = com.assign(**{c: com[c].map(rewrite) for c in ("flags",) if c in com.columns})
    actions = map_labels.word_actions(analysis.actions, profile, lang, walk.distance_m)
    actions = actions.assign(**{c: actions[c].map(rewrite) for c in ("check_label", "standard") if c in actions.columns})
    streets, fac, pop, iso = analysis.streets, analysis.facilities, analysis.population, analysis.isochrones
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
    unmatched = facilities_layer.unmatched_names(fac, list(profile.services))
    if unmatched and config.wants("rejected"):
        cols = [c for c in ("fid", "source_row", "name", "type", "address", "lon", "lat") if c in fac.columns]
        map_cells.for_csv(fac.loc[fac["name"].astype(str).isin(unmatched), cols]).to_csv(
            out / "unmatched_facilities.csv", index=False, encoding="utf-8-sig")
    if config.wants("rejected"):
        for name, rep in inputs.reports.items():
            if len(rep.rejected):
                map_cells.for_csv(rep.rejected).to_csv(out / f"rejected_{name}.csv", index=False, encoding="utf-8-sig")
    if config.wants("map"):
        title = html.map_title(profile.title, lang=lang, minutes=walk.minutes, distance_m=walk.distance_m)
        # Uncovered points are drawn for the circle services only (day care, meals).
        pop_map = pop.drop(columns=[c for k in profile.services if k not in profile.circle_services
                                    for c in (f"dist_{k}_m", f"covered_{k}")], errors="ignore")
        tiles = config.output.tiles.model_dump() if config.output.tiles is not None else None
        m = html.build_map(facilities=fac, communities=com, streets=streets, isochrones=iso, population=pop_map,
                           actions=actions, services=services, labels=labels, cutoff_m=walk.distance_m,
                           lang=lang, basemap=basemap, title=title, sites=sites, network=inputs.network.edges,
                           estates=analysis.estates, tiles=tiles, tianditu_token=config.output.tianditu_key)
        html.write_map(m, out / "map.html", offline=offline)
        log("地图 map.html" + (" (离线 offline: Leaflet inlined)" if offline else " (online: Leaflet from the CDN)"))
    if config.wants("report"):
        report_page.write_report(out, streets=streets, communities=com, actions=actions,
                                 summary=summary, services=services, labels=labels, lang=lang, sites=sites,
                                 facilities=fac, estates=analysis.estates, network=inputs.network.edges, log=log)
        log("报告 report: " + ", ".join(f for f in ("report.html", "report.docx", "report.pdf") if (out / f).exists()))
    if config.wants("shp"):
        covered = np.all([pop[f"covered_{k}"].to_numpy(dtype=bool) for k in profile.circle_services], axis=0)
        package = {"communities": com, "streets": streets, "facilities": fac, "isochrones": iso,
                   "uncovered": pop_out[~covered]}
        if analysis.estates is not None:
            package["estates"] = analysis.estates
        if sites is not None:
            package["sites"] = sites
        export.write_package(
            out, package, crs=config.output.shapefile_crs, encoding=config.output.shapefile_encoding,
            labels=labels, services=services,
        )
        log(f"规划数据包 shp/: {', '.join(package)}")
    return sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())


#: Text columns of the input layers the shapefile package writes, per layer.
PACKAGE_TEXT = {"facilities": ("name", "type", "address"), "communities": ("name", "street"), "streets": ("street",)}


def _check_encodable(config: RunConfig, inputs: Inputs) -> None:
    """``shapefile_encoding: GBK``: every name the package writes must be GBK (or is dropped, by choice)."""
    if not config.wants("shp") or config.output.shapefile_encoding.upper() != "GBK":
        return
    frames = {"facilities": inputs.facilities, "communities": inputs.communities, "streets": inputs.streets}
    for layer, columns in PACKAGE_TEXT.items():
        frame, report = frames[layer], inputs.reports.get(layer)
        if frame is None or report is None:
            continue
        for col in (c for c in columns if c in frame.columns):
            bad = map_cells.unencodable(frame[col], "gbk")
            hit = bad.fillna("").astype(str) != ""
            if not hit.any():
                continue
            if config.output.gbk_unencodable == "drop":
                frame[col] = map_cells.drop_unencodable(frame[col], "gbk")
                report.notes.append(f"{col}: {''.join(dict.fromkeys(''.join(bad[hit])))} removed from {int(hit.sum())} "
                                    "value(s): GBK cannot hold them (output.gbk_unencodable: drop)")
                continue
            first = hit.to_numpy().argmax()
            row = frame["source_row"].iloc[first] if "source_row" in frame.columns else None
            where = f"line {row}" if row is not None and row > 0 else f"feature {frame[col].iloc[first]!r}"
            raise InputError(
                f"{report.source}: {where}: {col} {frame[col].iloc[first]!r} has {bad.iloc[first]!r}, which GBK cannot "
                f"hold ({int(hit.sum())} value(s) in all); set output.shapefile_encoding: UTF-8, or "
                "output.gbk_unencodable: drop to drop the character(s) with a note"
            )


def _note_overlaps(inputs: Inputs, log: Log) -> None:
    """Population points inside two communities: counted, and the community that got them, noted."""
    com, pop = inputs.communities, inputs.population
    if len(com) < 2 or len(pop) == 0:
        return
    p_idx, _ = shapely.STRtree(com.geometry.values).query(pop.geometry.values, predicate="intersects")
    per_point = np.bincount(p_idx, minlength=len(pop))
    multi = np.flatnonzero(per_point > 1)
    if len(multi) == 0:
        return
    got = indicators.community_of_points(pop.iloc[multi], com).to_numpy()
    names = com["name"].astype(str).to_numpy()
    pairs = pd.Series(names[got]).value_counts()
    note = (f"implausible: {len(multi)} population point(s) fall in two or more overlapping communities; each is "
            "counted once, in " + ", ".join(f"{n} ({k})" for n, k in pairs.head(5).items())
            + (" ..." if len(pairs) > 5 else ""))
    inputs.reports["communities"].notes.append(note)
    log(f"注意 note: {note}")


def prepare_inputs(config: RunConfig, *, basemap: str | None = None, log: Log = print,
                   clip=None) -> tuple[Profile, Walk, Inputs]:
    """Everything a run checks before its analysis: profile, walk, basemap key, layers, GBK names.

    ``carecircle check`` calls this too, so its "ok" means a run gets past loading.

    Parameters
    ----------
    config : RunConfig
    basemap : str, optional
        Overrides ``output.basemap``.
    log : callable
    clip : carecircle.tiles.Clip, optional
        One tile of a bigger region (passed to :func:`load_inputs`).

    Returns
    -------
    tuple
        ``(profile, walk, inputs)``.
    """
    profile = load_profile(config.profile)
    walk = resolve_walk(config, profile)
    if config.wants("map"):
        # A missing or malformed Tianditu key fails now, not after the analysis.
        html.check_basemap(basemap or config.output.basemap, tianditu_token=config.output.tianditu_key,
                           tiles=config.output.tiles.model_dump() if config.output.tiles is not None else None)
    log(f"标准 profile: {profile.name} ({profile.title}); 步行圈 walk circle {walk.distance_m:,.0f} m")
    inputs = load_inputs(config, profile, log, clip=clip)
    _check_encodable(config, inputs)
    _note_overlaps(inputs, log)
    for rep in inputs.reports.values():
        for note in rep.notes:
            if note.startswith("implausible:") and rep.layer != "communities":
                log(f"注意 note: {rep.layer}: {note}")
    return profile, walk, inputs


def run(config: RunConfig, out_dir: str | Path, *, lang: str | None = None, basemap: str | None = None,
        offline: bool | None = None, log: Log = print, clip=None) -> dict:
    """Run the whole analysis of ``config`` into ``out_dir``.

    ``out_dir`` must be new, empty or an earlier carecircle output (:mod:`carecircle.outdir`);
    this is checked, and the location tried for writing, before any work. Outputs are written
    to a staging folder beside ``out_dir`` and moved into place only when complete; an
    earlier output is replaced atomically.

    Parameters
    ----------
    config : RunConfig
    out_dir : str or pathlib.Path
    lang, basemap, offline : optional
        Override ``output.lang``, ``output.basemap`` and ``output.offline_map``.
    log : callable
        Progress lines.
    clip : carecircle.tiles.Clip, optional
        Run one tile of a bigger region (its core, with a halo); recorded as ``tile``.

    Returns
    -------
    dict
        The summary (also written as ``summary.json``).

    Raises
    ------
    InputError
        A refused or unwritable output folder, or bad input.
    """
    t0 = time.perf_counter()
    guard = {"config_file": config.source, "inputs": config.input_files()}
    target = outdir.check_target(out_dir, **guard)
    with outdir.staging(target, log) as tmp:
        profile, walk, inputs = prepare_inputs(config, basemap=basemap, log=log, clip=clip)
        lang = lang or config.output.lang
        analysis = analyse(inputs, profile, walk, max_snap_m=config.network.max_snap_m,
                           min_component_nodes=config.network.min_component_nodes,
                           polygons=any(config.wants(f) for f in ("isochrones", "map", "shp")), log=log)
        siting = site_step(config, profile, walk, inputs, analysis, log) if config.siting is not None else None
        checks = walk_checks(config, profile, walk, inputs, analysis, log=log)
        summary = build_summary(config, profile, walk, inputs, analysis, time.perf_counter() - t0)
        summary.update(checks)
        if siting is not None:
            summary["inputs"]["candidates"] = siting.report.to_dict()
            summary["siting"] = _jsonable(siting.plan.summary)
        if clip is not None:
            summary["tile"] = {**clip.record, "capacity": "per tile: demand across the tile's border is not shared "
                                                          "(exact for an untiled run only)"}
        files = write_outputs(
            tmp, config, profile, walk, inputs, analysis, summary,
            lang=lang, basemap=basemap or config.output.basemap,
            offline=config.output.offline_map if offline is None else offline,
            sites=sites_out.sites_table(siting.sites, siting.service) if siting is not None else None, log=log,
        )
        if siting is not None:
            scenario = scenario_block(config, profile, siting)
            files += [str(p.relative_to(tmp)) for p in
                      sites_out.write_sites(tmp, siting.sites, siting.service, scenario, lang=lang)]
        files = [f for f in files if f != outdir.MARKER]
        summary["outputs"] = sorted([*files, "summary.json"])
        summary["runtime_s"] = round(time.perf_counter() - t0, 2)
        # Rounded to what the values mean (shares 4 decimals, metres 0.1), the sections added
        # after build_summary (walk checks, siting, tile) included.
        summary = _rounded(_jsonable(summary))
        (tmp / "summary.json").write_text(json.dumps(summary, ensure_ascii=False, indent=2, allow_nan=False),
                                          encoding="utf-8")
        outdir.commit(tmp, target, summary["outputs"], **guard)
    return summary
