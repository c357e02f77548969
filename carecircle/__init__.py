"""carecircle: elderly-care service coverage (15分钟养老服务圈) for Chinese cities.

The stages live in ``carecircle.layers`` (inputs), ``carecircle.coverage`` (analysis) and
``carecircle.maps`` (outputs); ``carecircle.pipeline`` wires them and ``carecircle.cli`` is
the command line.

For notebooks the stages are plain functions at the top level, as in osmnx: read the layers
as GeoDataFrames in the network's metric CRS, :func:`analyse` them, write what you need::

    import carecircle as cc

    net = cc.read_osm("district.osm")
    facilities, report = cc.read_facilities("设施.csv", crs="gcj02", target_crs=net.crs)
    ...
    result = cc.analyse(cc.Inputs(net, facilities, population, communities, None, None),
                        cc.load_profile("wuxi"), walk, max_snap_m=300, min_component_nodes=50)

Each name is imported from its stage on first use, so ``import carecircle`` stays light
(the command line's start-up time depends on it).
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

#: Public name -> the module that defines it.
_EXPORTS = {
    # layers: inputs -> validated GeoDataFrames (each reader also returns its LayerReport)
    "read_osm": "carecircle.layers.osm",
    "read_lines": "carecircle.layers.lines",
    "download_place": "carecircle.layers.online",
    "download_bbox": "carecircle.layers.online",
    "Network": "carecircle.layers.network",
    "read_facilities": "carecircle.layers.facilities",
    "read_population_raster": "carecircle.layers.population",
    "read_population_points": "carecircle.layers.population",
    "distribute_by_buildings": "carecircle.layers.population",
    "read_communities": "carecircle.layers.areas",
    "read_estates": "carecircle.layers.areas",
    "read_streets": "carecircle.layers.areas",
    "generate_sample": "carecircle.layers.sample",
    # coverage: the analysis
    "load_profile": "carecircle.coverage.profile",
    "list_profiles": "carecircle.coverage.profile",
    "Walk": "carecircle.coverage.analysis",
    "Inputs": "carecircle.coverage.analysis",
    "Analysis": "carecircle.coverage.analysis",
    "analyse": "carecircle.coverage.analysis",
    # maps: outputs
    "write_geopackage": "carecircle.maps.export",
    "write_package": "carecircle.maps.export",
    "write_tables": "carecircle.maps.export",
    "build_map": "carecircle.maps.html",
    "write_map": "carecircle.maps.html",
    # whole runs, as the command line does them
    "load_config": "carecircle.config",
    "load_inputs": "carecircle.pipeline",
    "run": "carecircle.pipeline",
    "InputError": "carecircle.errors",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str):
    """Import an exported name from its stage module on first access (PEP 562)."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'carecircle' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})
