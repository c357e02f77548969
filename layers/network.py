"""The walking street network and the rules of who may walk where.

A :class:`Network` is nodes and edges in one metric CRS, whatever it was read from:

- :func:`carecircle.layers.osm.read_osm`: an OSM extract (``.osm``, ``.osm.pbf``, ``.osm.bz2``),
- :func:`carecircle.layers.lines.read_lines`: any road-centreline line layer, in any CRS,
- :func:`carecircle.layers.online.download_place` / ``download_bbox``: an osmnx download,

all noded the same way (:mod:`carecircle.layers.noding`). The walk rules for OSM tags live
here: :func:`walk_exclusion` for ways and :func:`node_closure` for barrier nodes (gates,
entrances). The README's "Walk rules" table says each rule and the reason for it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import geopandas as gpd
import numpy as np
import pyproj
import shapely

from carecircle.errors import InputError
from carecircle.layers.accounting import LayerReport
from carecircle.layers.crs import utm_crs

#: ``highway`` values that are never walking ways: the osmnx 2.1 ``walk`` filter
#: (``abandoned|bus_guideway|construction|cycleway|motor|no|planned|platform|proposed|
#: raceway|razed|rest_area|services``) plus ``busway`` and ``disused``, but *without*
#: ``cycleway`` (see :data:`CYCLEWAY_CHOICES`).
EXCLUDED_HIGHWAY = frozenset(
    {
        "abandoned", "bus_guideway", "busway", "construction", "disused", "motorway",
        "motorway_link", "motorway_junction", "no", "planned", "platform", "proposed",
        "raceway", "razed", "rest_area", "services",
    }
)
#: ``foot`` values that explicitly allow walking and override access/motorroad tags.
FOOT_ALLOWED = frozenset({"yes", "designated", "permissive", "official"})
#: Tags saying the sidewalks are mapped as their own ways (which then carry the walking).
SEPARATE_SIDEWALK_KEYS = ("sidewalk", "sidewalk:both", "sidewalk:left", "sidewalk:right")
#: ``wheelchair`` values that make steps, a kerb or a stile passable on a step-free network.
WHEELCHAIR_ALLOWED = frozenset({"yes", "designated"})
#: Barrier nodes a wheelchair or a walking frame cannot pass (unless tagged ``wheelchair=yes``).
STEP_BARRIERS = frozenset({"stile", "turnstile", "full-height_turnstile", "kissing_gate"})
#: ``network.cycleways``: walk every cycleway (in Chinese cities separately mapped cycle
#: tracks, 非机动车道, are routinely walked and are often the only mapped path along that
#: side of a road), only those tagged ``foot=yes`` (or designated/permissive), or none (osmnx).
CYCLEWAY_CHOICES = (True, "foot_yes", False)
Cycleways = bool | Literal["foot_yes"]


@dataclass
class Network:
    """A walking street network in a metric CRS.

    Attributes
    ----------
    nodes : geopandas.GeoDataFrame
        Index 0..n-1 (RangeIndex); columns ``x``, ``y`` (metres), geometry Point. A closed
        barrier is several nodes at one location, one per street that leads up to it.
    edges : geopandas.GeoDataFrame
        Columns ``u``, ``v`` (int node positions), ``length_m`` (float, planar length of
        the geometry in the network CRS), ``highway`` (str, "" if unknown), geometry
        LineString running from node ``u`` to node ``v``; plus ``osm_id`` (OSM way id)
        for OSM input or ``source_row`` (1-based feature number) for a line layer.
    report : LayerReport
        ``layer="network"``; ``read`` = ways (OSM: ways with a ``highway`` tag) or line
        features read; ``rejected`` = one row per excluded way/feature with ``row``
        (1-based number among the ways/features read), ``osm_id`` for OSM input, and
        ``reason``.
    stats : dict
        ``nodes``, ``edges``, ``components``, ``largest_component_nodes``,
        ``largest_component_share``, ``largest_component_length_share``, ``dangles``
        (degree-1 nodes), ``total_length_km``, ``excluded_by_reason``,
        ``merged_duplicate_nodes``, ``zero_length_loops_dropped`` and, for OSM input,
        ``rules`` (the walk rules applied), ``bounds`` (lon/lat), ``distinct_osm_nodes``,
        ``nodes_beyond_bounds``, ``ways_cut_at_missing_nodes``, ``clipped_edges``,
        ``barriers_closed`` (by reason), ``pedestrian_areas``, ``area_crossings``.
    """

    nodes: gpd.GeoDataFrame
    edges: gpd.GeoDataFrame
    report: LayerReport
    stats: dict

    @property
    def crs(self) -> pyproj.CRS:
        """The metric CRS of nodes and edges."""
        return self.edges.crs

    def complete_area(self) -> shapely.Geometry:
        """Where the network is complete: the convex hull of its nodes, within the OSM
        extract's ``<bounds>`` when it has them (beyond them the file holds only the ways
        that cross into the box, so inputs there would snap onto a partial network)."""
        hull = shapely.convex_hull(shapely.multipoints(self.nodes[["x", "y"]].to_numpy()))
        bounds = self.stats.get("bounds")
        if bounds is None:
            return hull
        return shapely.intersection(hull, bounds_polygon(bounds, self.crs))


# --------------------------------------------------------------------------- walk rules


def walk_exclusion(tags: Mapping[str, str], *, include_private: bool = False, step_free: bool = False,
                   cycleways: Cycleways = True, areas: bool = True) -> str | None:
    """Why a way is not part of the walking network, or None if it is.

    Parameters
    ----------
    tags : mapping
        The way's OSM tags (a dict or a pyosmium ``TagList``; only ``.get`` is used).
    include_private : bool
        Keep ``access=private`` / ``service=private`` ways, e.g. the internal paths of gated
        residential compounds whose residents walk through the gates.
    step_free : bool
        The network of a wheelchair user or an older person with a walking frame: no
        ``highway=steps`` unless they have a ramp (``ramp=yes``, ``ramp:wheelchair=yes``) or
        are tagged ``wheelchair=yes``; no way tagged ``wheelchair=no``.
    cycleways : {True, "foot_yes", False}
        Which ``highway=cycleway`` ways are walked (see :data:`CYCLEWAY_CHOICES`).
    areas : bool
        Keep ``area=yes`` ways (pedestrian squares): their outline is walked.

    Returns
    -------
    str or None
        A short stable reason (``"highway=motorway"``, ``"foot=no"``, ``"access=private"``,
        ``"service=private"``, ``"access=no"``, ``"motorroad=yes"``, ``"area=yes"``,
        ``"sidewalk mapped separately"``, ``"steps (step-free)"``, ``"wheelchair=no"``,
        ``"highway=cycleway"``, ``"cycleway without foot=yes"``, ``"no highway tag"``) or None.
    """
    highway = tags.get("highway")
    if highway is None:
        return "no highway tag"
    if highway in EXCLUDED_HIGHWAY:
        return f"highway={highway}"
    if not areas and tags.get("area") == "yes":
        return "area=yes"
    foot = tags.get("foot")
    if foot == "no":
        return "foot=no"
    if step_free:
        # foot=yes on steps still means steps: the step-free test comes before it
        if tags.get("wheelchair") == "no":
            return "wheelchair=no"
        if highway == "steps" and not _steps_step_free(tags):
            return "steps (step-free)"
    if highway == "cycleway":
        if cycleways is False:  # as osmnx: no cycleway at all
            return "highway=cycleway"
        if cycleways == "foot_yes" and foot not in FOOT_ALLOWED:
            return "cycleway without foot=yes"
    if foot in FOOT_ALLOWED:  # an explicit foot permission overrides access and motorroad
        return None
    if foot == "use_sidepath" or "separate" in [tags.get(key) for key in SEPARATE_SIDEWALK_KEYS]:
        return "sidewalk mapped separately"
    if not include_private:
        if "private" in (tags.get("access"), foot):
            return "access=private"
        if tags.get("service") == "private":
            return "service=private"
    if tags.get("access") == "no":
        return "access=no"
    if tags.get("motorroad") == "yes":  # 快速路 main carriageways: motor vehicles only
        return "motorroad=yes"
    return None


def _steps_step_free(tags: Mapping[str, str]) -> bool:
    """Steps a wheelchair can use: tagged so, or with a ramp (a ramp mapped ``separate`` is its own way)."""
    if tags.get("wheelchair") in WHEELCHAIR_ALLOWED or tags.get("ramp:wheelchair") == "yes":
        return True
    return tags.get("ramp") == "yes" and tags.get("ramp:wheelchair") not in ("no", "separate")


def node_closure(tags: Mapping[str, str], *, include_private: bool = False, step_free: bool = False) -> str | None:
    """Why no walk passes through a barrier node (a gate, an entrance), or None if it is open.

    Only nodes with a ``barrier`` tag are judged: access tags on a shop or a car park
    drawn as a node on a street are about that place, not the street. A gate that
    residents may pass (``barrier=gate`` with no access tag, 小区门禁 with a guard) is open;
    a locked (``locked=yes``) or ``access=private`` gate is open only with
    ``include_private``; ``access=no`` or ``foot=no`` closes it; ``foot=yes`` (or designated,
    permissive) opens it whatever ``access`` says.

    Parameters
    ----------
    tags : mapping
        The node's OSM tags.
    include_private : bool
        Residents' gates (locked, private) are open.
    step_free : bool
        Stiles, turnstiles and kissing gates, raised kerbs and nodes tagged
        ``wheelchair=no`` are closed too (unless ``wheelchair=yes``).

    Returns
    -------
    str or None
        ``"foot=no"``, ``"access=no"``, ``"access=private"``, ``"locked=yes"``,
        ``"barrier=<value> (step-free)"``, ``"wheelchair=no"``, or None.
    """
    barrier = tags.get("barrier")
    if barrier is None:
        return None
    foot = tags.get("foot")
    if foot == "no":
        return "foot=no"
    if step_free and tags.get("wheelchair") not in WHEELCHAIR_ALLOWED:
        if tags.get("wheelchair") == "no":
            return "wheelchair=no"
        if barrier in STEP_BARRIERS or (barrier == "kerb" and tags.get("kerb") == "raised"):
            return f"barrier={barrier} (step-free)"
    if foot in FOOT_ALLOWED:
        return None
    access = tags.get("access")
    if access == "no":
        return "access=no"
    if not include_private:
        if "private" in (access, foot):
            return "access=private"
        if tags.get("locked") == "yes":
            return "locked=yes"
    return None


# --------------------------------------------------------------------------- shared by the readers


def metric_crs(target_crs, extent, source) -> pyproj.CRS:
    """``target_crs`` as a projected pyproj CRS, or the UTM zone of the centre of ``extent``
    (west, south, east, north in degrees)."""
    if target_crs is None:
        west, south, east, north = extent
        return utm_crs((west + east) / 2, (south + north) / 2)
    try:
        crs = pyproj.CRS.from_user_input(target_crs)
    except pyproj.exceptions.CRSError:
        raise InputError(
            f"{source}: unknown target CRS {target_crs!r}; give an EPSG code such as EPSG:4549"
        ) from None
    if not crs.is_projected:
        raise InputError(f"{source}: target CRS {target_crs!r} is not projected; network lengths need metres")
    return crs


def bounds_polygon(bounds, crs) -> shapely.Polygon:
    """The lon/lat box ``(west, south, east, north)`` as a polygon in the metric ``crs``
    (densified every 1e-4°, so its projected edges stay true)."""
    to_metric = pyproj.Transformer.from_crs("EPSG:4326", crs, always_xy=True)
    return shapely.transform(shapely.segmentize(shapely.box(*bounds), 1e-4),
                             lambda c: np.column_stack(to_metric.transform(c[:, 0], c[:, 1])))


def first_line(exc: BaseException) -> str:
    """The first line of an exception message (InputError messages are one line)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
