"""The pipeline: read the layers, analyse coverage and standards, write the outputs.

Three plain steps that mirror the stages — :func:`load_inputs` (``layers``),
:func:`analyse` (``coverage``) and :func:`write_outputs` (``maps``) — and :func:`run`, which
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
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

import carecircle
from carecircle.config import RunConfig
from carecircle.coverage import indicators, isochrones, reach, snap, standards
from carecircle.coverage.graph import WalkGraph, build_graph
from carecircle.coverage.profile import Profile, load_profile
from carecircle.layers import areas, facilities as facilities_layer, network as network_layer, population as population_layer
from carecircle.layers.report import InputError, LayerReport
from carecircle.maps import export, html, labels as map_labels, report as report_page

Log = Callable[[str], None]

#: Distances are searched up to this multiple of the circle, so that communities outside it
#: still learn how far their nearest facility is (mean, worst decile, 就近 facility).
REPORT_LIMIT_FACTOR = 3.0


@dataclass
class Walk:
    """The walking circle of a run: its distance and the rings drawn on the map."""

    distance_m: float
    minutes: float | None
    speed_kmh: float | None
    rings_m: list[float]


@dataclass
class Inputs:
    """Every input layer in the analysis CRS, with what happened to its rows."""

    network: network_layer.Network
    facilities: gpd.GeoDataFrame
    population: gpd.GeoDataFrame
    communities: gpd.GeoDataFrame
    estates: gpd.GeoDataFrame | None
    streets: gpd.GeoDataFrame | None
    reports: dict[str, LayerReport] = field(default_factory=dict)


@dataclass
class Analysis:
    """What the coverage stage found: tables and polygons, nothing rendered yet."""

    graph_stats: dict
    facilities: gpd.GeoDataFrame
    population: gpd.GeoDataFrame
    communities: gpd.GeoDataFrame
    streets: gpd.GeoDataFrame
    estates: gpd.GeoDataFrame | None
    actions: pd.DataFrame
    city: dict
    isochrones: gpd.GeoDataFrame
    services: dict[str, dict]


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
    per_minute = speed * 1000.0 / 60.0
    ring_minutes = w.rings_minutes or [m for m in (5.0, 10.0) if m < minutes] + [minutes]
    rings = sorted({float(m) * per_minute for m in ring_minutes if 0 < m <= minutes} | {minutes * per_minute})
    return Walk(minutes * per_minute, float(minutes), float(speed), rings)


def _study_area(network: network_layer.Network, margin_m: float) -> shapely.Geometry:
    """The area the network covers, grown by the snap limit: inputs outside cannot be reached."""
    hull = shapely.convex_hull(shapely.multipoints(network.nodes[["x", "y"]].to_numpy()))
    return shapely.buffer(hull, margin_m)


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
        One tile of a bigger region: keep its core and halo only (see :mod:`carecircle.tiles`).

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
    if clip is not None:  # after every filter, so a tile keeps and rejects the rows the whole run does
        net, fac, pop, communities, estates, streets = clip.apply(net, fac, pop, communities, estates, streets)
        log(f"分块 tile {clip.name}: {clip.record['communities_core']:,} communities, "
            f"{clip.record['population_points_core']:,} points, {clip.record['network_edges']:,} edges with the halo")
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


def analyse(inputs: Inputs, profile: Profile, walk: Walk, *, max_snap_m: float, min_component_nodes: int,
            polygons: bool = True, lang: str = "zh", log: Log = print) -> Analysis:
    """Coverage per service, community indicators, standards checks and isochrones.

    Every point is snapped onto the nearest edge once; each service costs one multi-source
    search over the graph (population points and community centres read their distance off
    their snapped edge). Polygons are drawn afterwards for the map and the package only.

    Parameters
    ----------
    inputs : Inputs
    profile : Profile
    walk : Walk
    max_snap_m : float
        Points farther than this from any street are unreachable (reported, never dropped).
    min_component_nodes : int
        Network islands smaller than this do not capture points.
    polygons : bool
        Draw isochrone polygons (only the map, isochrones.gpkg and shp/ need them).
    lang : {"zh", "en"}
        Language of the check labels in the tables.
    log : callable

    Returns
    -------
    Analysis
    """
    graph: WalkGraph = build_graph(inputs.network, min_component_nodes=min_component_nodes)
    fac = inputs.facilities.copy()
    pop = inputs.population.copy()
    com = inputs.communities

    fac_snap = snap.snap_points(graph, fac.geometry.values, max_snap_m=max_snap_m)
    fac["snapped"] = fac_snap.ok
    fac["snap_m"] = np.where(fac_snap.ok, fac_snap.access_m, np.nan)
    # Population points and community centres are snapped together so one search per
    # service serves both.
    centres = com.geometry.representative_point().values
    targets = snap.snap_points(graph, np.concatenate([pop.geometry.values, centres]), max_snap_m=max_snap_m)
    n_pop = len(pop)
    pop["snapped"] = targets.ok[:n_pop]
    pop["snap_m"] = np.where(targets.ok[:n_pop], targets.access_m[:n_pop], np.nan)

    cid = indicators.community_of_points(pop, com).to_numpy()
    nearest_rows = []
    services_summary: dict[str, dict] = {}
    for key in profile.services:
        idx = np.flatnonzero(fac[key].to_numpy(bool) & fac_snap.ok)
        dist, src = reach.nearest_distance(graph, fac_snap.take(idx), targets,
                                           cutoff_m=walk.distance_m * REPORT_LIMIT_FACTOR)
        pop[f"dist_{key}_m"] = np.where(np.isfinite(dist[:n_pop]), dist[:n_pop], np.nan)
        nearest_rows.append(_nearest_table(com, cid, dist, src, fac["name"].to_numpy()[idx], key))
        services_summary[key] = _service_summary(pop, fac, key, len(idx), profile, walk.distance_m)
    log("可达性 coverage: " + ", ".join(
        f"{k} {v['elderly_covered_share']:.1%}" for k, v in services_summary.items() if v["circle_check"]
    ) + " of elderly within the circle")
    nearest = pd.concat(nearest_rows, ignore_index=True)

    communities = indicators.community_indicators(
        com, pop, fac, profile, cutoff_m=walk.distance_m, estates=inputs.estates, nearest=nearest,
        point_community=cid,
    )
    assessed = standards.assess(communities, fac, profile, streets=inputs.streets, population=pop,
                                cutoff_m=walk.distance_m, lang=lang)
    iso = _isochrones(graph, fac, fac_snap, profile, walk if polygons else None)
    if polygons:
        log(f"等时圈 isochrones: {len(iso):,} polygons")
    return Analysis(
        graph_stats=graph.stats,
        facilities=fac,
        population=pop,
        communities=assessed.communities,
        streets=assessed.streets,
        estates=indicators.estate_table(inputs.estates, com, profile) if inputs.estates is not None else None,
        actions=assessed.actions,
        city=assessed.city,
        isochrones=iso,
        services=services_summary,
    )


def _nearest_table(com: gpd.GeoDataFrame, cid: np.ndarray, dist: np.ndarray, src: np.ndarray,
                   names: np.ndarray, service: str) -> pd.DataFrame:
    """Each community's nearest facility of one service and the walk to it.

    ``dist`` / ``src`` hold the population points first, then one centre per community;
    a community without population points is measured from its centre.
    """
    n_pop, n_com = len(cid), len(com)
    near_d, near_src = _nearest_per_community(cid, dist[:n_pop], src[:n_pop], n_com)
    has_points = np.bincount(cid[cid >= 0], minlength=n_com) > 0
    near_d = np.where(has_points, near_d, dist[n_pop:])
    near_src = np.where(has_points, near_src, src[n_pop:])
    found = near_src >= 0
    return pd.DataFrame({
        "name": com["name"].to_numpy(),
        "street": com["street"].to_numpy(),
        "service": service,
        "facility": np.where(found, names[np.where(found, near_src, 0)] if len(names) else "", ""),
        "distance_m": np.where(found, near_d, np.nan),
    })


def _service_summary(pop: gpd.GeoDataFrame, fac: gpd.GeoDataFrame, key: str, n_snapped: int,
                     profile: Profile, cutoff_m: float) -> dict:
    """The summary.json entry of one service: who lives within the circle."""
    covered = pop[f"dist_{key}_m"].to_numpy() <= cutoff_m
    people, elderly = pop["people"].to_numpy(float), pop["elderly"].to_numpy(float)
    spec = profile.services[key]
    return {
        "label_zh": spec.label_zh,
        "label_en": spec.label_en,
        "circle_check": bool(spec.circle),
        "facilities": int(fac[key].sum()),
        "facilities_snapped": int(n_snapped),
        "population_covered": float(people[covered].sum()),
        "elderly_covered": float(elderly[covered].sum()),
        "population_covered_share": _share(people[covered].sum(), people.sum()),
        "elderly_covered_share": _share(elderly[covered].sum(), elderly.sum()),
    }


def _nearest_per_community(cid: np.ndarray, dist: np.ndarray, src: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Per community, the shortest walk any of its residents has to the service, and to which source.

    Returns ``inf`` / ``-1`` for communities none of whose points reach a source.
    """
    best_d, best_src = np.full(n, np.inf), np.full(n, -1)
    ok = (cid >= 0) & np.isfinite(dist)
    if ok.any():
        order = np.lexsort((dist[ok], cid[ok]))
        c, d, s = cid[ok][order], dist[ok][order], src[ok][order]
        first = np.r_[True, c[1:] != c[:-1]]
        best_d[c[first]], best_src[c[first]] = d[first], s[first]
    return best_d, best_src


def _share(part: float, whole: float) -> float | None:
    return float(part / whole) if whole > 0 else None


def _isochrones(graph, fac, fac_snap, profile: Profile, walk: Walk | None) -> gpd.GeoDataFrame:
    """Per-facility rings, dissolved rings and catchments for every circle service (none without ``walk``)."""
    parts = []
    for key in profile.circle_services if walk is not None else []:
        idx = np.flatnonzero(fac[key].to_numpy(bool) & fac_snap.ok)
        if len(idx) == 0:
            continue
        src, fids = fac_snap.take(idx), fac["fid"].to_numpy()[idx]
        opts = {"service": key, "speed_kmh": walk.speed_kmh or 4.0}
        parts += [
            isochrones.facility_isochrones(graph, src, fids, cutoffs_m=walk.rings_m, **opts),
            isochrones.dissolve_isochrones(graph, src, cutoffs_m=walk.rings_m, **opts),
            isochrones.catchments(graph, src, fids, cutoffs_m=[walk.distance_m], **opts),
        ]
    if not parts:
        return gpd.GeoDataFrame(
            {"facility_fid": [], "service": [], "kind": [], "cutoff_m": [], "minutes": []},
            geometry=[], crs=fac.crs,
        )
    iso = gpd.GeoDataFrame(pd.concat(parts, ignore_index=True), geometry="geometry", crs=fac.crs)
    if walk.speed_kmh is None:
        iso["minutes"] = np.nan  # the circle was given as a distance
    return iso


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
    return {
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
    }


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
                  analysis: Analysis, summary: dict, *, lang: str, basemap: str, offline: bool) -> list[str]:
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

    Returns
    -------
    list of str
        The files written, relative to ``out`` (``summary.json`` is the caller's, written last).
    """
    # The profile names its services, its checks and its sub-district unit.
    services, labels = map_labels.profile_services(profile), map_labels.analysis_labels(profile)
    com, streets, fac, pop, iso = (analysis.communities, analysis.streets, analysis.facilities,
                                   analysis.population, analysis.isochrones)
    dist_cols = [f"dist_{k}_m" for k in profile.services]
    pop_out = pop[["pid", "people", "elderly", *dist_cols, "snap_m", "geometry"]]
    gpkgs = {"population": pop_out, "facilities": fac.to_crs("EPSG:4326"), "communities": com, "isochrones": iso}
    for name, layer in gpkgs.items():
        if config.wants(name):
            export.write_geopackage(out / f"{name}.gpkg", {name: layer})
    tables = {name: table for name, table in (("communities", com), ("streets", streets), ("estates", analysis.estates),
                                              ("actions", analysis.actions))
              if table is not None and config.wants(name)}
    export.write_tables(out, tables, labels, lang, services=services)
    if config.wants("rejected"):
        for name, rep in inputs.reports.items():
            if len(rep.rejected):
                rep.rejected.to_csv(out / f"rejected_{name}.csv", index=False, encoding="utf-8-sig")
    if config.wants("map"):
        title = html.map_title(profile.title, lang=lang, minutes=walk.minutes, distance_m=walk.distance_m)
        # Uncovered points are drawn for the circle services only (day care, meals).
        pop_map = pop.drop(columns=[f"dist_{k}_m" for k in profile.services if k not in profile.circle_services])
        m = html.build_map(facilities=fac, communities=com, streets=streets, isochrones=iso, population=pop_map,
                           actions=analysis.actions, services=services, labels=labels, cutoff_m=walk.distance_m,
                           lang=lang, basemap=basemap, title=title)
        html.write_map(m, out / "map.html", offline=offline)
    if config.wants("report"):
        report_page.write_report(out, streets=streets, communities=com, actions=analysis.actions,
                                 summary=summary, services=services, labels=labels, lang=lang)
    if config.wants("shp"):
        covered = np.all([pop_out[f"dist_{k}_m"].to_numpy() <= walk.distance_m for k in profile.circle_services], axis=0)
        export.write_package(
            out, {"communities": com, "streets": streets, "facilities": fac, "isochrones": iso,
                  "uncovered": pop_out[~covered]},
            crs=config.output.shapefile_crs, encoding=config.output.shapefile_encoding,
            labels=labels, services=services,
        )
    return sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())


def run(config: RunConfig, out_dir: str | Path, *, lang: str | None = None, basemap: str | None = None,
        offline: bool | None = None, log: Log = print, clip=None) -> dict:
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
    clip : carecircle.tiles.Clip, optional
        Run one tile of a bigger region (its core, with a halo); recorded as ``tile``.

    Returns
    -------
    dict
        The summary (also written as ``summary.json``).
    """
    t0 = time.perf_counter()
    out_dir = Path(out_dir)
    profile = load_profile(config.profile)
    walk = resolve_walk(config, profile)
    log(f"标准 profile: {profile.name} ({profile.title}); 步行圈 walk circle {walk.distance_m:,.0f} m")
    inputs = load_inputs(config, profile, log, clip=clip)
    lang = lang or config.output.lang
    analysis = analyse(inputs, profile, walk, max_snap_m=config.network.max_snap_m,
                       min_component_nodes=config.network.min_component_nodes,
                       polygons=any(config.wants(f) for f in ("isochrones", "map", "shp")), lang=lang, log=log)
    summary = build_summary(config, profile, walk, inputs, analysis, time.perf_counter() - t0)
    if clip is not None:
        summary["tile"] = clip.record
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.partial-", dir=out_dir.parent))
    try:
        files = write_outputs(
            tmp, config, profile, walk, inputs, analysis, summary,
            lang=lang, basemap=basemap or config.output.basemap,
            offline=config.output.offline_map if offline is None else offline,
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
