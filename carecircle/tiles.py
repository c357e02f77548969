"""Exact tiling: one region too big for one run, analysed as tiles whose results equal the whole run.

A tile is a *core* (the communities, points and streets it answers for) plus a *halo*: the
network and facilities within ``halo_m`` of the core. The batch reads the region's input files
once (:func:`prepare`), decides with one rule which tile owns every community and point, and
cuts out each tile's piece: its own communities and points, the network and the facilities
within its halo. Its outputs are a normal run's outputs for its core.

Why the results are exact
-------------------------
Let ``L`` be the search limit (``walk.distance_m × REPORT_LIMIT_FACTOR``, 3 × the circle) and
``s`` the snap limit (``network.max_snap_m``); the halo is ``L + 3 s`` (plus one metre).

* **Walks.** A walk from a core point ``p`` of length ≤ ``L`` starts at ``p``'s snap point
  (≤ ``s`` from ``p``), so every point of it lies within ``L + s`` of ``p``: every edge it
  uses touches the halo and is kept whole (edges are never cut, so lengths and the partial
  reach into the last edge are unchanged). Walks that leave the halo are longer than ``L``
  and are ``inf`` (beyond the cut-off) in the whole run too.
* **Facilities snapping near the halo edge.** A facility that can reach ``p`` within ``L``
  lies within ``L + 2 s`` of ``p`` and its nearest edge within ``L + 3 s``: that edge is in
  the tile, so the facility snaps exactly where it does in the whole run. A facility beyond
  that may snap onto a different (farther) edge in the tile — or not at all — but then it is
  farther than ``L`` from every core point by the same bound, so it changes no result.
  Facilities outside the halo are not loaded; ``in_core`` marks the facilities the tile owns
  (each facility is owned by exactly one tile, for the merged facility layer).
* **Islands created by clipping.** Clipping can cut a large network component into pieces
  smaller than ``min_component_nodes``; the tile must still let points snap onto them. So
  components are sized on the *whole* network before clipping (islands below the limit
  dropped, as they never capture a point), and the tile's graph is built with
  ``min_component_nodes = 1`` (the tile's summary records the original value).
* **Communities straddling tile borders.** A community is owned whole by one tile: the tile
  containing the representative point of its *street* (the 街道 polygon, or the union of the
  street's communities), or of the community itself when it names no street. Whole streets
  therefore stay in one tile and the street scorecards (sums over their communities) are
  exact. Population points follow their community (the same point-in-community rule as the
  analysis); points outside every community, and facilities, follow their location. A point
  in several tile polygons goes to the first; a point in none to the nearest (ties: the
  first). Every tile computes this from the same inputs and the same tile list, so every
  community and point is owned by exactly one tile.
* **The study area.** Inputs are filtered with the *whole* network's study area (computed
  before clipping), so a tile keeps and rejects exactly the rows the whole run does and its
  ``inputs`` counts equal the whole run's (they describe the files, not the tile).

* **Region-wide figures.** Ranks (streets by score, the action list by elderly affected) are
  positions within a run; :mod:`carecircle.merge` re-ranks the tiles' rows across the region
  with the analysis's own ordering. Sums and shares are added up from the tiles' counts.

Limits (documented, not silently wrong): ties between two facilities at exactly the same
walk may name a different nearest facility (the distance is the same); two edges exactly
equidistant from a point may snap differently; the capacity measures (2SFCA supply, facility
load, the nearest-first allocation: :mod:`carecircle.coverage.capacity`) depend on the demand
*around each facility*, across tile borders, so a tile computes them from its own core's
elderly only — exact away from the borders, not at them (each tile's summary.json says so
under ``tile.capacity``; run untiled for exact capacity figures). Tiles save memory and time in the analysis (graph,
snapping, searches, polygons, outputs); the region's files are read once, by the prepare task.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from scipy.sparse import coo_array
from scipy.sparse.csgraph import connected_components

from carecircle.config import RunConfig
from carecircle.layers.network import Network
from carecircle.errors import InputError

#: Tile polygons travel in lon/lat (every tile projects them into its own analysis CRS).
TILE_CRS = "EPSG:4326"


@dataclass
class Clip:
    """One tile of a tiled run: its inputs, cut out by :func:`prepare` (what :func:`carecircle.pipeline.load_inputs` returns).

    Attributes
    ----------
    name : str
        The tile's name (its output folder).
    inputs : carecircle.coverage.analysis.Inputs
        The tile's core (communities, points, streets, estates) and halo (network,
        facilities, ``in_core`` marking the facilities it owns); the layer reports are the
        whole files'.
    record : dict
        What the tile kept (written to ``summary.json`` as ``tile``).
    """

    name: str
    inputs: object
    record: dict = field(default_factory=dict)


def prepare(config: RunConfig, tiles: list, indices: list[int], names: list[str]) -> list[Clip]:
    """Read the layers of ``config`` once and cut out the tiles ``indices`` (named ``names``).

    The read and every filter are a whole run's (the same study area, the same rows kept and
    rejected), so each tile's input counts are the files' and its rows are the whole run's.

    Parameters
    ----------
    config : RunConfig
        The region's config (not :func:`tile_config`: islands are sized here, on the whole network).
    tiles : list of shapely.Geometry
        Every tile's polygon in ``EPSG:4326``, in plan order (ownership depends on all of them).
    indices : list of int
        The tiles to cut (a resumed batch needs only some).
    names : list of str
        Their names.

    Returns
    -------
    list of Clip
        In the order of ``indices``.
    """
    from carecircle.coverage.profile import load_profile
    from carecircle.pipeline import load_inputs

    inputs = load_inputs(config, load_profile(config.profile), log=lambda line: None)
    return split(inputs, tiles, indices, names, halo=halo_m(config), min_component_nodes=config.network.min_component_nodes)


def split(inputs, tiles: list, indices: list[int], names: list[str], *, halo: float,
          min_component_nodes: int) -> list[Clip]:
    """Cut tiles out of a region's loaded layers: ownership decided once, each tile's core and halo kept.

    Parameters
    ----------
    inputs : carecircle.coverage.analysis.Inputs
        The whole region, as a run loads it.
    tiles, indices, names
        As in :func:`prepare`.
    halo : float
        Width of the halo around each core (metres): :func:`halo_m`.
    min_component_nodes : int
        The run's ``network.min_component_nodes``, applied to the whole network.

    Returns
    -------
    list of Clip
    """
    from carecircle.coverage.analysis import Inputs
    from carecircle.coverage.indicators import community_of_points

    net, fac, pop, com = inputs.network, inputs.facilities, inputs.population, inputs.communities
    polys = gpd.GeoSeries(tiles, crs=TILE_CRS).to_crs(net.crs).to_numpy()
    street_owner = _street_owners(com, inputs.streets, polys)
    com_owner = np.where(com["street"].astype(str).to_numpy() != "",
                         com["street"].astype(str).map(street_owner).fillna(-1).to_numpy(int),
                         owner_of(com.geometry.representative_point().to_numpy(), polys))
    # Population points follow their community, with the analysis's own rule.
    cid = community_of_points(pop, com).to_numpy()
    pop_owner = np.where(cid >= 0, com_owner[np.maximum(cid, 0)], -1)
    loose = cid < 0
    pop_owner[loose] = owner_of(pop.geometry.to_numpy()[loose], polys)
    fac_geoms = fac.geometry.to_numpy()
    fac_owner = owner_of(fac_geoms, polys)
    fac_tree = shapely.STRtree(fac_geoms)
    cutter = NetworkCutter(net, min_component_nodes)
    com_names = com["name"].astype(str).to_numpy()
    estates, streets = inputs.estates, inputs.streets
    street_tile = streets["street"].astype(str).map(street_owner).to_numpy() if streets is not None else None

    out = []
    for index, name in zip(indices, names):
        mine_com = com_owner == index
        mine_pop = pop_owner == index
        core = shapely.union_all(np.concatenate([[polys[index]], com.geometry.to_numpy()[mine_com]]))
        stray = pop.geometry.to_numpy()[mine_pop & loose]
        if len(stray):
            core = shapely.union_all([core, shapely.convex_hull(shapely.multipoints(stray))])
        region = shapely.buffer(core, halo)
        shapely.prepare(region)
        near = np.sort(fac_tree.query(region, predicate="intersects"))
        tile_fac = fac.iloc[near].copy()
        tile_fac["in_core"] = fac_owner[near] == index
        # Each tile gets its own reports: a run appends notes to them (GBK, overlaps).
        reports = copy.deepcopy(inputs.reports)
        tile_net = cutter.cut(region, report=reports.get("network"))
        keep = set(com_names[mine_com])
        record = {
            "name": name, "index": index, "tiles": len(tiles), "halo_m": halo,
            "min_component_nodes": min_component_nodes,
            "communities_core": int(mine_com.sum()), "population_points_core": int(mine_pop.sum()),
            "facilities_loaded": int(len(tile_fac)), "facilities_core": int(tile_fac["in_core"].sum()),
            "network_nodes": int(len(tile_net.nodes)), "network_edges": int(len(tile_net.edges)),
        }
        out.append(Clip(name, Inputs(
            tile_net, tile_fac, pop[mine_pop].copy(), com[mine_com].copy(),
            estates[estates["community"].astype(str).isin(keep)].copy() if estates is not None else None,
            streets[street_tile == index].copy() if streets is not None else None, reports), record))
    return out


def owner_of(points: np.ndarray, polys: np.ndarray) -> np.ndarray:
    """The tile owning each point: the first polygon containing it, else the nearest (ties: the first).

    Parameters
    ----------
    points : numpy.ndarray of shapely Points
    polys : numpy.ndarray of shapely Polygons
        The tiles, in plan order, in the points' CRS.

    Returns
    -------
    numpy.ndarray of int
    """
    owner = np.full(len(points), -1, dtype=np.int64)
    if len(points) == 0:
        return owner
    tree = shapely.STRtree(polys)
    owner[:] = _first_per_point(tree.query(points, predicate="intersects"), len(points))
    miss = np.flatnonzero(owner < 0)
    if len(miss):
        pairs = tree.query_nearest(points[miss], all_matches=True)
        owner[miss] = _first_per_point(pairs, len(miss))
    return owner


def _first_per_point(pairs: np.ndarray, n: int) -> np.ndarray:
    """Smallest tile index per point of ``(point, tile)`` pairs (-1 for points without a pair)."""
    out = np.full(n, -1, dtype=np.int64)
    if pairs.shape[1]:
        p, t = pairs
        order = np.lexsort((t, p))
        p, t = p[order], t[order]
        first = np.r_[True, p[1:] != p[:-1]]
        out[p[first]] = t[first]
    return out


def _street_owners(com: gpd.GeoDataFrame, streets: gpd.GeoDataFrame | None, polys: np.ndarray) -> pd.Series:
    """Street name → owning tile, by the representative point of the street's polygon.

    The 街道 layer's polygon where there is one, else the union of the street's communities.
    """
    shapes = {}
    if len(com):
        named = com[com["street"].astype(str) != ""]
        for name, group in named.groupby(named["street"].astype(str), sort=True):
            shapes[name] = shapely.union_all(group.geometry.to_numpy())
    if streets is not None and len(streets):
        for name, group in streets.groupby(streets["street"].astype(str), sort=True):
            shapes[name] = shapely.union_all(group.geometry.to_numpy())
    if not shapes:
        return pd.Series(dtype=int)
    points = shapely.point_on_surface(np.array(list(shapes.values()), dtype=object))
    return pd.Series(owner_of(points, polys), index=list(shapes))


class NetworkCutter:
    """Cuts tiles out of one network: the edges touching a region (whole, never cut), islands dropped.

    Components are sized once, on the *whole* network, so that clipping cannot turn part of a
    large component into an island that no longer captures points (the tile then builds its
    graph with ``min_component_nodes = 1``).

    Parameters
    ----------
    net : Network
    min_component_nodes : int
        As in :func:`carecircle.coverage.graph.build_graph` (the largest component is kept
        when none is that large).
    """

    def __init__(self, net: Network, min_component_nodes: int):
        n = len(net.nodes)
        self.net = net
        self.u = net.edges["u"].to_numpy(np.int64)
        self.v = net.edges["v"].to_numpy(np.int64)
        adj = coo_array((np.ones(len(self.u)), (self.u, self.v)), shape=(n, n))
        n_comp, comp = connected_components(adj, directed=False)
        sizes = np.bincount(comp, minlength=n_comp)
        big = sizes >= min_component_nodes
        if not big.any() and n_comp:
            big[np.argmax(sizes)] = True
        self.big = big[comp[self.u]]
        self.tree = shapely.STRtree(net.edges.geometry.to_numpy())

    def cut(self, region: shapely.Geometry, report=None) -> Network:
        """The tile's network: nodes renumbered ``0..n-1``; ``report`` (default: the whole
        network's) and ``stats`` of the whole network.

        Parameters
        ----------
        region : shapely.Geometry
            Core plus halo, in the network's CRS.
        report : LayerReport, optional
        """
        keep = np.sort(self.tree.query(region, predicate="intersects"))
        keep = keep[self.big[keep]]
        u, v = self.u[keep], self.v[keep]
        used = np.unique(np.concatenate([u, v]))
        renumber = np.full(len(self.net.nodes), -1, dtype=np.int64)
        renumber[used] = np.arange(len(used))
        nodes = self.net.nodes.iloc[used].reset_index(drop=True)
        edges = self.net.edges.iloc[keep].reset_index(drop=True)
        edges["u"], edges["v"] = renumber[u], renumber[v]
        return Network(nodes=nodes, edges=edges, report=self.net.report if report is None else report,
                       stats=copy.deepcopy(self.net.stats))


def halo_m(config: RunConfig) -> float:
    """The halo a tile of ``config`` needs: search limit + 3 × snap limit (+ 1 m)."""
    from carecircle.coverage.profile import load_profile
    from carecircle.coverage.analysis import REPORT_LIMIT_FACTOR
    from carecircle.pipeline import resolve_walk

    walk = resolve_walk(config, load_profile(config.profile))
    return walk.distance_m * REPORT_LIMIT_FACTOR + 3 * config.network.max_snap_m + 1.0


def tile_config(config: RunConfig) -> RunConfig:
    """The config a tile runs with: islands are dropped before clipping, so the tile snaps onto every piece."""
    out = config.model_copy(deep=True)
    out.network.min_component_nodes = 1
    out.source = config.source
    return out


def plan_tiles(config: RunConfig, *, by: str | None = None, grid_m: float | None = None) -> list[tuple[str, object]]:
    """Split the region of ``config`` into tiles: one per 街道 (``by="streets"``) or a square grid.

    Parameters
    ----------
    config : RunConfig
    by : {"streets"}, optional
        One tile per 街道: the polygons of ``streets`` when the config has a 街道 layer, else
        the union of each street's communities (``communities.street_field``).
    grid_m : float, optional
        Side of grid cells (metres, in the local UTM zone); only cells holding a street's or a
        street-less community's representative point become tiles.

    Returns
    -------
    list of (name, shapely.Geometry)
        Tile names and polygons in ``EPSG:4326``.
    """
    import pyogrio

    from carecircle.layers.crs import utm_crs

    cc = config.communities
    com = gpd.GeoDataFrame(pyogrio.read_dataframe(cc.path))
    if com.crs is None:
        raise InputError(f"{cc.path}: communities: the layer has no CRS; tiles need one")
    street = cc.street_field
    if by == "streets":
        if config.streets is not None:
            st = gpd.GeoDataFrame(pyogrio.read_dataframe(config.streets.path))
            field_name = config.streets.name_field or _guess_name(st, config.streets.path)
            groups = st.dissolve(by=st[field_name].astype(str), sort=True).geometry
        elif street and street in com.columns:
            groups = com.dissolve(by=com[street].astype(str), sort=True).geometry
        else:
            raise InputError(f"{config.source}: tiles: by: streets needs a streets layer or communities.street_field")
        groups = groups.to_crs(TILE_CRS)
        return [(str(name), shapely.segmentize(geom, 0.001)) for name, geom in groups.items()]
    if not grid_m or grid_m <= 0:
        raise InputError(f"{config.source}: tiles: give by: streets or grid_m (cell side in metres, > 0)")
    lon, lat = com.to_crs(TILE_CRS).geometry.union_all().centroid.coords[0]
    metric = com.to_crs(utm_crs(lon, lat))
    if street and street in metric.columns:
        keyed = metric[metric[street].astype(str) != ""]
        seeds = list(keyed.dissolve(by=keyed[street].astype(str)).geometry.representative_point())
        seeds += list(metric[metric[street].astype(str) == ""].geometry.representative_point())
    else:
        seeds = list(metric.geometry.representative_point())
    x0, y0, x1, y1 = metric.total_bounds
    xy = shapely.get_coordinates(np.array(seeds, dtype=object))
    cells = sorted({(int((y - y0) // grid_m), int((x - x0) // grid_m)) for x, y in xy})
    boxes = [shapely.segmentize(shapely.box(x0 + c * grid_m, y0 + r * grid_m, x0 + (c + 1) * grid_m,
                                            y0 + (r + 1) * grid_m), grid_m / 20) for r, c in cells]
    polys = gpd.GeoSeries(boxes, crs=metric.crs).to_crs(TILE_CRS)
    return [(f"tile_r{r:02d}_c{c:02d}", geom) for (r, c), geom in zip(cells, polys)]


def _guess_name(gdf: gpd.GeoDataFrame, path) -> str:
    from carecircle.layers.areas import STREET_NAME

    for name in [*STREET_NAME, "名称", "name"]:
        if name in gdf.columns:
            return name
    raise InputError(f"{path}: streets: no street-name field; set streets.name_field")
