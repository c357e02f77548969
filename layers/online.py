"""Walking networks downloaded with osmnx (needs internet), or taken from an osmnx graph.

osmnx's own ``walk`` filter selects the ways here; the offline reader
(:mod:`carecircle.layers.osm`) applies carecircle's walk rules instead.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pyproj
import shapely

from carecircle.errors import InputError
from carecircle.layers.accounting import LayerReport
from carecircle.layers.network import Network, first_line, metric_crs
from carecircle.layers.noding import node_lonlat, osm_grid, vertex_ids


def download_place(query: str, *, target_crs=None) -> Network:
    """Download the walking network of an OSM place with osmnx (needs internet).

    Parameters
    ----------
    query : str
        A place name Nominatim can geocode to a polygon, e.g. "新吴区, 无锡市, 中国".
    target_crs : optional
        Projected CRS of the result; default the UTM zone of the network's centre.

    Returns
    -------
    Network
        See :func:`network_from_graph`. osmnx's own ``walk`` filter selects the ways.

    Raises
    ------
    InputError
        The download or geocoding failed (offline, unknown place, no network there).
    """
    import osmnx as ox  # heavy import, only for the online path

    return _download(lambda: ox.graph_from_place(query, network_type="walk", retain_all=True),
                     key="network.place", what=repr(query), source=f"place:{query}", target_crs=target_crs)


def download_bbox(bbox: tuple[float, float, float, float], *, target_crs=None) -> Network:
    """Download the walking network inside a WGS-84 bounding box with osmnx (needs internet).

    Parameters
    ----------
    bbox : tuple of float
        ``(west, south, east, north)`` in degrees, WGS-84.
    target_crs : optional
        Projected CRS of the result; default the UTM zone of the network's centre.

    Returns
    -------
    Network

    Raises
    ------
    InputError
        A malformed box, or the download failed (offline, no network there).
    """
    west, south, east, north = (float(v) for v in bbox)
    if not (-180 <= west < east <= 180 and -90 <= south < north <= 90):
        raise InputError(f"network.bbox: {list(bbox)} is not [west, south, east, north] in degrees")
    import osmnx as ox  # heavy import, only for the online path

    return _download(lambda: ox.graph_from_bbox((west, south, east, north), network_type="walk", retain_all=True),
                     key="network.bbox", what=str([west, south, east, north]),
                     source=f"bbox:{west},{south},{east},{north}", target_crs=target_crs)


def _download(fetch, *, key: str, what: str, source: str, target_crs) -> Network:
    """Run an osmnx download; any failure becomes one line telling the user to use an extract."""
    try:
        graph = fetch()
    except (OSError, ValueError, TypeError) as exc:
        # requests' connection errors are OSErrors; osmnx raises ValueError/TypeError
        # subclasses for unknown places, non-polygon geocodes and empty responses.
        raise InputError(
            f"{key}: could not download {what} from OpenStreetMap "
            f"({type(exc).__name__}: {first_line(exc)[:120]}; offline?): "
            "use network: {osm: file} with an extract instead"
        ) from None
    return network_from_graph(graph, target_crs=target_crs, source=source)


def network_from_graph(graph, *, target_crs=None, source: str = "osmnx graph") -> Network:
    """Convert an unprojected osmnx graph (e.g. from ``ox.graph_from_place``) to a Network.

    Edges present in both directions (osmnx adds the reverse of every two-way street, and
    of every street in a walking graph) are kept once. The graph's nodes become the
    network's nodes (pass a simplified graph: an unsimplified one gives a node at every
    vertex).

    Parameters
    ----------
    graph : networkx.MultiDiGraph
        osmnx graph in EPSG:4326.
    target_crs : optional
        Projected CRS of the result; default the UTM zone of the graph's centre.
    source : str
        Recorded as ``report.source``.

    Returns
    -------
    Network
        Edges carry ``osm_id`` (the first OSM way id of the edge); ``report.read`` counts
        the distinct undirected edges of the graph.
    """
    import osmnx as ox

    if graph.number_of_edges() == 0:
        raise InputError(f"{source}: the graph has no edges; choose a larger area")
    nodes, edges = ox.graph_to_gdfs(graph, fill_edge_geometry=True)
    if edges.crs is None or not pyproj.CRS(edges.crs).is_geographic:
        raise InputError(f"{source}: give the graph unprojected (EPSG:4326), before ox.project_graph")
    # The two directions of one street have the same normalised geometry.
    key = shapely.to_wkb(shapely.normalize(np.asarray(edges.geometry.array, dtype=object)))
    edges = edges[~pd.Series(key).duplicated().to_numpy()]
    coords, part = shapely.get_coordinates(np.asarray(edges.geometry.array, dtype=object), return_index=True)
    crs = metric_crs(target_crs, (*coords.min(axis=0), *coords.max(axis=0)), source)
    build = node_lonlat(coords, part, crs)

    def first(value: Any) -> Any:  # osmnx merges tags of simplified edges into lists
        return value[0] if isinstance(value, list) else value

    highway = edges["highway"].map(first).fillna("").astype(str).to_numpy() if "highway" in edges else \
        np.full(len(edges), "")
    osm_id = edges["osmid"].map(first).astype(np.int64).to_numpy()
    report = LayerReport(layer="network", source=source, read=len(edges))
    report.notes.append("ways selected by osmnx's walk filter")
    # graph nodes at one location (duplicate OSM nodes) became one network node
    used = nodes.loc[np.unique(np.concatenate([edges.index.get_level_values(i) for i in (0, 1)])), ["x", "y"]]
    fixed = osm_grid(used.to_numpy())
    stats = {
        **build.assembly.stats,
        "excluded_by_reason": {},
        "merged_duplicate_nodes": int(len(used) - (vertex_ids(fixed[:, 0], fixed[:, 1]).max() + 1)),
    }
    return Network(nodes=build.assembly.nodes_frame(crs),
                   edges=build.assembly.edges_frame(crs, highway[build.edge_part], "osm_id", osm_id[build.edge_part]),
                   report=report, stats=stats)
