"""The siting outputs: sites.csv / sites.xlsx / sites.gpkg and sites_scenario.yaml.

Coordinates are WGS-84; the CSV also carries GCJ-02 columns for pasting into Amap. The
scenario file is a complete run config (the run's own, with the sites added under
``scenario.add``): ``carecircle run sites_scenario.yaml --out DIR`` reproduces the
after-state and ``carecircle compare`` shows the change.
"""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import yaml

from carecircle.layers.crs import from_wgs84
from carecircle.maps import export

#: ``{column: (中文, English)}`` of the sites table.
SITE_LABELS: dict[str, tuple[str, str]] = {
    "rank": ("排序", "Rank"),
    "cid": ("候选编号", "Candidate id"),
    "name": ("候选点名称", "Candidate"),
    "service": ("服务", "Service"),
    "lon": ("经度（WGS-84）", "Longitude (WGS-84)"),
    "lat": ("纬度（WGS-84）", "Latitude (WGS-84)"),
    "lon_gcj02": ("经度（GCJ-02 高德）", "Longitude (GCJ-02, Amap)"),
    "lat_gcj02": ("纬度（GCJ-02 高德）", "Latitude (GCJ-02, Amap)"),
    "snap_m": ("距道路（米）", "Distance to street (m)"),
    "elderly_new": ("新增覆盖老年人", "Elderly newly within the circle"),
    "people_new": ("新增覆盖人口", "People newly within the circle"),
    "elderly_reached": ("可达的未覆盖老年人", "Uncovered elderly it reaches"),
    "communities_new": ("新达标社区", "Communities newly passing"),
    "n_communities_new": ("新达标社区数", "Communities newly passing (count)"),
    "community": ("所在社区", "Community"),
    "street": ("所在街道", "Sub-district"),
    "nearest_facility": ("最近现有设施", "Nearest existing facility"),
    "nearest_facility_m": ("至最近现有设施步行距离（米）", "Walk to nearest existing facility (m)"),
}


def sites_table(sites: gpd.GeoDataFrame, service: str) -> gpd.GeoDataFrame:
    """The sites in WGS-84 with lon/lat (and GCJ-02) columns, in the output column order."""
    wgs = sites.to_crs("EPSG:4326")
    lon, lat = wgs.geometry.x.to_numpy(), wgs.geometry.y.to_numpy()
    glon, glat = from_wgs84(lon, lat, "gcj02") if len(lon) else (np.zeros(0), np.zeros(0))
    out = pd.DataFrame({"rank": sites["rank"].to_numpy(), "cid": sites["cid"].to_numpy(), "name": sites["name"].to_numpy(),
                        "service": service, "lon": lon, "lat": lat, "lon_gcj02": glon, "lat_gcj02": glat})
    rest = ["snap_m", "elderly_new", "people_new", "elderly_reached", "communities_new", "n_communities_new",
            "community", "street", "nearest_facility", "nearest_facility_m"]
    out = pd.concat([out, sites[rest].reset_index(drop=True)], axis=1)
    return gpd.GeoDataFrame(out, geometry=wgs.geometry.to_numpy(), crs="EPSG:4326")


def write_sites(out: Path, sites: gpd.GeoDataFrame, service: str, scenario: dict, *, lang: str = "zh") -> list[Path]:
    """Write sites.csv, sites.xlsx, sites.gpkg and sites_scenario.yaml into ``out``.

    Parameters
    ----------
    out : pathlib.Path
        The run's output folder.
    sites : geopandas.GeoDataFrame
        ``carecircle.siting.Siting.sites`` (analysis CRS).
    service : str
        The service the sites are for.
    scenario : dict
        The run config reproducing the after-state (:func:`carecircle.siting.scenario_block`).
    lang : {"zh", "en"}
        Headers of the XLSX.

    Returns
    -------
    list of pathlib.Path
    """
    table = sites_table(sites, service)
    written = export.write_tables(out, {"sites": table}, SITE_LABELS, lang)["sites"]
    gpkg = export.write_geopackage(out / "sites.gpkg", {"sites": table.drop(columns=["lon_gcj02", "lat_gcj02"])})
    yml = out / "sites_scenario.yaml"
    head = ("# 建议选址方案 — the recommended sites as a scenario of this run's config.\n"
            "# carecircle run sites_scenario.yaml --out AFTER   then   carecircle compare BEFORE AFTER\n")
    yml.write_text(head + yaml.safe_dump(scenario, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return [written["csv"], written["xlsx"], gpkg, yml]
