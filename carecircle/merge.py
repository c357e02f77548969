"""Province-level outputs of a batch: the finished runs' own outputs, put side by side.

Nothing is recomputed: tables are the runs' CSVs concatenated with a ``district`` column
(the run's name), layers are the runs' GeoPackages in one CRS, the summary adds up the runs'
summaries. For a tiled run (:mod:`carecircle.tiles`) every community and point is in exactly
one tile, the input counts describe the files (the same in every tile, taken once) and each
facility is taken from the tile that owns it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import geopandas as gpd
import pandas as pd

Log = Callable[[str], None]

#: Tables concatenated into the province tables (CSV + XLSX).
TABLES = ("communities", "streets", "actions", "estates")
#: Layers concatenated into GeoParquet files and one GeoPackage (the big ones).
LAYERS = ("communities", "population", "facilities", "isochrones")
#: Shapefiles of the runs' planning packages merged into one.
PACKAGE_LAYERS = ("communities", "streets", "facilities", "uncovered")
#: Province layers and package are in CGCS2000 geographic (districts may lie in different zones).
PROVINCE_CRS = "EPSG:4490"


def merge_batch(out: Path, done: list[tuple[str, Path]], *, failed: list[dict], tasks: list[dict], tiled: bool,
                log: Log = print) -> dict:
    """Write the province-level outputs of a batch into ``out``.

    Parameters
    ----------
    out : pathlib.Path
        The batch folder.
    done : list of (name, folder)
        The runs that finished, in batch order.
    failed : list of dict
        Task records of the runs that failed (named in the summary).
    tasks : list of dict
        Every task's record (time and peak memory per task).
    tiled : bool
        The runs are tiles of one region.
    log : callable

    Returns
    -------
    dict
        The province summary (also ``summary.json``).
    """
    summaries = {name: json.loads((folder / "summary.json").read_text(encoding="utf-8")) for name, folder in done}
    written = []
    for table in TABLES:
        frames = [_with_district(pd.read_csv(folder / f"{table}.csv", encoding="utf-8-sig", dtype=str, keep_default_na=False), name)
                  for name, folder in done if (folder / f"{table}.csv").is_file()]
        if frames:
            merged = pd.concat(frames, ignore_index=True)
            if tiled and table in ("streets", "actions"):
                merged = _rerank(table, merged)
            merged.to_csv(out / f"{table}.csv", index=False, encoding="utf-8-sig")
            merged.to_excel(out / f"{table}.xlsx", index=False)
            written += [f"{table}.csv", f"{table}.xlsx"]
    districts = _districts_table(done, summaries, tasks)
    districts.to_csv(out / "districts.csv", index=False, encoding="utf-8-sig")
    districts.to_excel(out / "districts.xlsx", index=False)
    written += ["districts.csv", "districts.xlsx"]

    layers = {}
    for layer in LAYERS:
        if tiled and layer == "isochrones":
            continue  # a halo facility's rings are drawn in several tiles; each tile's map has them
        parts = [_read_layer(folder / f"{layer}.gpkg", name, tiled) for name, folder in done if (folder / f"{layer}.gpkg").is_file()]
        if parts:
            layers[layer] = _arrow_ready(gpd.GeoDataFrame(pd.concat(parts, ignore_index=True), geometry="geometry",
                                                          crs=PROVINCE_CRS))
            layers[layer].to_parquet(out / f"{layer}.parquet")
            written.append(f"{layer}.parquet")
    if layers:
        gpkg = out / "province.gpkg"
        gpkg.unlink(missing_ok=True)  # our own file from an earlier merge: layers are appended otherwise
        for layer, gdf in layers.items():
            gdf.to_file(gpkg, layer=layer, driver="GPKG")
        written.append("province.gpkg")
    written += _package(out, done)
    summary = province_summary(summaries, failed=failed, tiled=tiled, facilities=layers.get("facilities"))
    written.append(_overview_map(out, done, summaries, layers.get("communities")))
    summary["outputs"] = sorted([*written, "summary.json"])
    (out / "summary.json").write_text(json.dumps(summary, ensure_ascii=False, indent=2), encoding="utf-8")
    log(f"合并 merged {len(done)} run(s) → {out}")
    return summary


def _with_district(frame: pd.DataFrame, name: str) -> pd.DataFrame:
    frame.insert(0, "district", name)
    return frame


def _rerank(table: str, frame: pd.DataFrame) -> pd.DataFrame:
    """Ranks across the whole tiled region (each tile ranked only its own streets and actions).

    The ordering rules are the analysis's own (:func:`carecircle.coverage.standards.street_scorecard`:
    1 = best score, ties share a rank; :func:`~carecircle.coverage.standards.action_list`: most
    elderly affected first); only the positions change, not a value.
    """
    from carecircle.coverage.standards import _sort_actions

    num = frame.copy()
    if table == "streets":
        from carecircle.coverage.scorecards import kind_shares

        # The shares per kind of place are region-wide: recomputed from every tile's places.
        for col in [c for c in frame.columns if c.startswith("meets_") and f"kind_share_{c[6:]}" in frame.columns]:
            key = col[len("meets_"):]
            meets = frame[col].str.lower().map({"true": True, "false": False, "1.0": True, "0.0": False, "": None})
            share = kind_shares(pd.DataFrame({"street_kind": frame["street_kind"], col: meets}), key)
            frame[f"kind_share_{key}"] = share.round(4).astype(str).replace("nan", "")
        score = pd.to_numeric(num["score"], errors="coerce")
        frame["rank"] = score.rank(method="min", ascending=False).astype("Int64").astype(str).replace("<NA>", "")
        order = pd.DataFrame({"rank": score.rank(method="min", ascending=False), "street": frame["street"]})
        return frame.loc[order.sort_values(["rank", "street"], na_position="last").index].reset_index(drop=True)
    for col in ("elderly_affected", "shortfall"):
        num[col] = pd.to_numeric(num[col], errors="coerce")
    num["_row"] = range(len(num))
    ordered = frame.iloc[_sort_actions(num)["_row"].to_numpy()].reset_index(drop=True)
    ordered["rank"] = [str(i) for i in range(1, len(ordered) + 1)]
    return ordered


_BOOL_TEXT = {"True": True, "False": False, "true": True, "false": False}


def _arrow_ready(gdf: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """One type per column for GeoParquet: a run whose flag column held a missing value wrote it
    as text (``"True"``/``"False"``) to its GeoPackage, another as booleans."""
    for col in gdf.columns.drop(gdf.geometry.name):
        if gdf[col].dtype != object:
            continue
        values = gdf[col].dropna()
        if values.map(lambda v: isinstance(v, bool) or v in _BOOL_TEXT).all():
            gdf[col] = gdf[col].map(lambda v: _BOOL_TEXT.get(v, v) if isinstance(v, str) else v).astype("boolean")
        elif values.map(type).nunique() > 1:
            gdf[col] = gdf[col].astype("string")
    return gdf


def _read_layer(path: Path, name: str, tiled: bool) -> gpd.GeoDataFrame:
    gdf = gpd.read_file(path)
    if "in_core" in gdf.columns:
        if tiled:  # every tile loads the facilities of its halo; the owner's row is the one kept
            gdf = gdf[gdf["in_core"].astype(bool)]
        gdf = gdf.drop(columns="in_core")
    gdf = gdf.to_crs(PROVINCE_CRS).rename(columns={"fid": "run_fid"})  # a run's fid repeats across runs; GeoPackage keys on fid
    gdf.insert(0, "district", name)
    return gdf


def _districts_table(done, summaries: dict, tasks: list[dict]) -> pd.DataFrame:
    """One row per task: status, time, memory and the headline numbers of the finished ones."""
    rows = []
    for rec in tasks:
        s = summaries.get(rec["name"])
        row = {"district": rec["name"], "ok": rec["ok"], "error": rec.get("error") or "",
               "seconds": rec.get("seconds"), "peak_rss_mb": rec.get("peak_rss_mb")}
        if s is not None:
            row.update({"people": s["population"]["people"], "elderly": s["population"]["elderly"],
                        "communities": s["communities"]["total"], "communities_flagged": s["communities"]["flagged"]})
            for key, svc in s["services"].items():
                if svc["circle_check"]:
                    row[f"elderly_covered_share_{key}"] = svc["elderly_covered_share"]
            row["map"] = f"{rec['name']}/map.html" if "map.html" in s.get("outputs", []) else ""
        rows.append(row)
    return pd.DataFrame(rows)


def province_summary(summaries: dict[str, dict], *, failed: list[dict], tiled: bool, facilities=None) -> dict:
    """Add the runs' summaries up: inputs read/kept/rejected, population, coverage, communities.

    Shares are recomputed from the summed counts (never averaged). Tiles share their input
    files: their ``inputs`` are equal and counted once.
    """
    names = list(summaries)
    inputs: dict[str, dict] = {}
    for name in names[:1] if tiled else names:
        for layer, rep in summaries[name]["inputs"].items():
            tot = inputs.setdefault(layer, {"read": 0, "kept": 0, "rejected": 0, "rejected_by_reason": {}})
            for k in ("read", "kept", "rejected"):
                tot[k] += rep[k]
            for reason, n in rep["rejected_by_reason"].items():
                tot["rejected_by_reason"][reason] = tot["rejected_by_reason"].get(reason, 0) + n
    for layer, tot in inputs.items():
        if tot["read"] != tot["kept"] + tot["rejected"]:
            raise AssertionError(f"merge: {layer}: read {tot['read']} ≠ kept {tot['kept']} + rejected {tot['rejected']}")
    population = {k: sum(s["population"][k] for s in summaries.values()) for k in ("points", "people", "elderly")}
    services: dict[str, dict] = {}
    for s in summaries.values():
        for key, svc in s["services"].items():
            tot = services.setdefault(key, {"label_zh": svc["label_zh"], "label_en": svc["label_en"],
                                            "circle_check": svc["circle_check"], "facilities": 0,
                                            "population_covered": 0.0, "elderly_covered": 0.0})
            tot["facilities"] += svc["facilities"]
            tot["population_covered"] += svc["population_covered"]
            tot["elderly_covered"] += svc["elderly_covered"]
    for key, tot in services.items():
        if tiled and facilities is not None and key in facilities.columns:
            tot["facilities"] = int(facilities[key].astype(bool).sum())  # each facility once, from its owner
        tot["population_covered_share"] = tot["population_covered"] / population["people"] if population["people"] else None
        tot["elderly_covered_share"] = tot["elderly_covered"] / population["elderly"] if population["elderly"] else None
    flags: dict[str, int] = {}
    for s in summaries.values():
        for flag, n in s["communities"]["flagged_by_flag"].items():
            flags[flag] = flags.get(flag, 0) + n
    from carecircle import __version__

    return {
        "carecircle": __version__,
        "kind": "tiles" if tiled else "districts",
        "runs": len(names) + len(failed),
        "finished": names,
        "failed": [{"name": f["name"], "error": f["error"]} for f in failed],
        "inputs": inputs,
        "population": population,
        "services": services,
        "communities": {"total": sum(s["communities"]["total"] for s in summaries.values()),
                        "flagged": sum(s["communities"]["flagged"] for s in summaries.values()),
                        "flagged_by_flag": flags},
        "streets": sum(len(s["streets"]) for s in summaries.values()),
        "runtime_s": round(sum(s["runtime_s"] for s in summaries.values()), 2),
    }


def _package(out: Path, done) -> list[str]:
    """One planning package (``shp/``): each layer of the runs' packages, with a ``district`` field."""
    import pyogrio

    target = out / "shp"
    written = []
    for layer in PACKAGE_LAYERS:
        parts = []
        for name, folder in done:
            path = folder / "shp" / f"{layer}.shp"
            if path.is_file():
                gdf = pyogrio.read_dataframe(path).to_crs(PROVINCE_CRS)
                if "in_core" in gdf.columns:
                    gdf = gdf[gdf["in_core"].astype(bool)].drop(columns="in_core")
                gdf.insert(0, "district", name)
                parts.append(gdf)
        if parts:
            target.mkdir(exist_ok=True)
            merged = gpd.GeoDataFrame(pd.concat(parts, ignore_index=True), geometry="geometry", crs=PROVINCE_CRS)
            pyogrio.write_dataframe(merged, target / f"{layer}.shp", encoding="UTF-8")
            written += [f"shp/{layer}{ext}" for ext in (".shp", ".shx", ".dbf", ".prj", ".cpg")]
    first = next((folder / "shp" / "fields.csv" for _, folder in done if (folder / "shp" / "fields.csv").is_file()), None)
    if first is not None:
        fields = pd.read_csv(first, encoding="utf-8-sig", dtype=str)
        extra = pd.DataFrame([{"layer": layer, "field": "district", "column": "district", "label_zh": "区县（批量运行名）",
                               "label_en": "district (batch run name)", "type": "str"} for layer in PACKAGE_LAYERS])
        pd.concat([extra, fields], ignore_index=True).to_csv(target / "fields.csv", index=False, encoding="utf-8-sig")
        written.append("shp/fields.csv")
    return written


def _overview_map(out: Path, done, summaries: dict, communities: gpd.GeoDataFrame | None) -> str:
    """``overview.html``: each district's outline, coloured by elderly day-care coverage, linking to its map."""
    import folium

    m = folium.Map(tiles="OpenStreetMap", control_scale=True)
    if communities is not None and len(communities):
        outlines = communities.dissolve(by="district").geometry.simplify(0.0005)
        bounds = communities.total_bounds
        m.fit_bounds([[bounds[1], bounds[0]], [bounds[3], bounds[2]]])
        for name, geom in outlines.items():
            s = summaries[name]
            share = next((v["elderly_covered_share"] for v in s["services"].values() if v["circle_check"]
                          and v["elderly_covered_share"] is not None), None)
            colour = "#2c7fb8" if share is None else ("#1a9641" if share >= 0.95 else "#fdae61" if share >= 0.8 else "#d7191c")
            link = f'<a href="{name}/map.html" target="_blank">{name} 地图 map</a>' if (out / name / "map.html").is_file() else name
            text = (f"<b>{link}</b><br>社区 {s['communities']['total']}，需关注 {s['communities']['flagged']}"
                    + (f"<br>老年人覆盖 {share:.1%}" if share is not None else ""))
            folium.GeoJson(gpd.GeoSeries([geom], crs=PROVINCE_CRS).to_json(),
                           style_function=lambda _, c=colour: {"color": c, "weight": 2, "fillOpacity": 0.25},
                           tooltip=name, popup=folium.Popup(text, max_width=300)).add_to(m)
    items = "".join(f'<li><a href="{name}/map.html" target="_blank">{name}</a></li>' if (folder / "map.html").is_file()
                    else f"<li>{name}</li>" for name, folder in done)
    m.get_root().html.add_child(folium.Element(
        f'<div style="position:fixed;top:10px;right:10px;z-index:9999;background:white;padding:6px 10px;'
        f'max-height:80%;overflow:auto;font-size:13px"><b>各区县地图 district maps</b><ol>{items}</ol></div>'))
    m.save(str(out / "overview.html"))
    return "overview.html"
