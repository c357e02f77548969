"""The coverage stage's front door: one call from loaded layers to every table the outputs need.

:func:`analyse` snaps every point onto the walk network once, runs one multi-source search
per service, decides who is within the circle (``covered_<service>``, the one place that
test is made), then derives the community indicators, the standards checks and the
isochrone polygons. It returns keys and numbers; labels are applied in :mod:`carecircle.maps`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import geopandas as gpd
import numpy as np
import pandas as pd

from carecircle.coverage import capacity, catchment, circle, indicators, isochrones, reach, snap, space, standards
from carecircle.coverage.graph import WalkGraph, build_graph
from carecircle.coverage.profile import Profile
from carecircle.layers.accounting import LayerReport
from carecircle.layers.network import Network

Log = Callable[[str], None]

#: The circle test, offered at the stage's front door: maps read ``covered_<service>`` through it.
covered = circle.covered

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

    network: Network
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
    #: summary.json ``capacity``: supply, 2SFCA city means, allocation totals per service.
    capacity: dict = field(default_factory=dict)


def analyse(inputs: Inputs, profile: Profile, walk: Walk, *, max_snap_m: float, min_component_nodes: int,
            polygons: bool = True, log: Log = print) -> Analysis:
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
    log : callable

    Returns
    -------
    Analysis
    """
    graph: WalkGraph = build_graph(inputs.network, min_component_nodes=min_component_nodes)
    fac = inputs.facilities.copy()
    pop = inputs.population.copy()
    com = inputs.communities
    streets = inputs.streets
    if streets is not None and "kind" in streets.columns:
        # The streets layer's kind wins over a kind field on the communities.
        kind = com["street"].map(streets.dropna(subset=["kind"]).drop_duplicates("street").set_index("street")["kind"])
        com = com.assign(street_kind=kind.astype("string").fillna(com["street_kind"].astype("string")) if "street_kind" in com else kind)

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
        pop[f"covered_{key}"] = circle.within(pop[f"dist_{key}_m"], walk.distance_m)
        nearest_rows.append(_nearest_table(com, cid, dist, src, fac["name"].to_numpy()[idx], key))
        services_summary[key] = _service_summary(pop, fac, key, len(idx), profile, walk.distance_m)
    log("可达性 coverage: " + ", ".join(
        f"{k} {v['elderly_covered_share']:.1%}" for k, v in services_summary.items() if v["circle_check"]
    ) + " of elderly within the circle")
    nearest = pd.concat(nearest_rows, ignore_index=True)

    reach_table = None
    if profile.space.count_facilities == "circle":
        reach_table = _circle_reach(graph, fac, fac_snap, targets, n_pop, com, profile, walk.distance_m)
    communities = indicators.community_indicators(
        com, pop, fac, profile, cutoff_m=walk.distance_m, estates=inputs.estates, nearest=nearest,
        point_community=cid, reach=reach_table,
    )
    estates = space.estate_table(inputs.estates, com, profile) if inputs.estates is not None else None
    assessed = standards.assess(communities, fac, profile, streets=streets, services=services_summary, estates=estates,
                                cutoff_m=walk.distance_m)
    # Capacity against demand: one bounded search per facility, beside the verdicts.
    cap = capacity.capacity_run(graph, fac, fac_snap, targets, pop["elderly"].to_numpy(float), cid, com, profile,
                                circle_m=walk.distance_m, limit_m=walk.distance_m * REPORT_LIMIT_FACTOR)
    fac, com_out, streets_out = capacity.join_capacity(cap, fac, assessed.communities, assessed.streets)
    iso = _isochrones(graph, fac, fac_snap, profile, walk if polygons else None)
    if polygons:
        log(f"等时圈 isochrones: {len(iso):,} polygons")
    return Analysis(
        graph_stats=graph.stats,
        facilities=fac,
        population=pop,
        communities=com_out,
        streets=streets_out,
        estates=estates,
        actions=assessed.actions,
        city=assessed.city,
        isochrones=iso,
        services=services_summary,
        capacity=cap.summary,
    )


def _circle_reach(graph, fac, fac_snap, targets, n_pop: int, com: gpd.GeoDataFrame, profile: Profile,
                  cutoff_m: float) -> pd.DataFrame:
    """Walk distances from each community's centre to the facilities whose floor area counts
    (``space.count_facilities: circle``), one bounded search per facility (sparse)."""
    qual = indicators.service_mask(fac, profile, profile.space.facility_services) & fac_snap.ok
    idx = np.flatnonzero(qual)
    centres = targets.take(np.arange(n_pop, n_pop + len(com)))
    m = catchment.catchment_matrix(graph, fac_snap.take(idx), centres, cutoff_m=cutoff_m).tocoo()
    return pd.DataFrame({"name": com["name"].to_numpy()[m.col], "fid": fac["fid"].to_numpy()[idx][m.row], "distance_m": m.data})


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
    spec = profile.services[key]
    return {
        "label_zh": spec.label_zh,
        "label_en": spec.label_en,
        "circle_check": bool(spec.circle),
        "facilities": int(fac[key].sum()),
        "facilities_snapped": int(n_snapped),
        **circle.shares(pop, key, cutoff_m),
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
