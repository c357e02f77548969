"""Batch runs and exact tiles on a real Dask scheduler with two worker processes.

The reference is always a plain single run (:func:`carecircle.pipeline.run`) of the same
config in this process: a batch must give the same per-point distances, community flags and
street scorecards, and a tiled run the same as the untiled one.
"""

from __future__ import annotations

import json

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
import yaml
from hypothesis import given, settings, strategies as st

from carecircle import pipeline
from carecircle.batch import load_run_config, run_batch
from carecircle.layers.network import Network
from carecircle.layers.accounting import LayerReport
from carecircle.layers.sample import generate_sample
from carecircle.tiles import NetworkCutter, owner_of

from clitools import cli

distributed = pytest.importorskip("dask.distributed")

#: Small outputs keep the runs quick; one district also draws its map and package (for the merged ones).
LEAN = ["population", "communities", "streets", "actions", "facilities"]
FULL = [*LEAN, "map", "shp"]
#: A short circle (search limit 750 m) on the 3 km sample district: the halo (750 + 3 × 100 m)
#: is narrower than the district, so tiles really are cut and walks cross their borders.
TILE_OVERRIDES = {"walk": {"distance_m": 250, "minutes": None, "speed_kmh": None}, "network": {"max_snap_m": 100},
                  "output": {"formats": ["population", "communities", "streets", "actions", "facilities"]}}


@pytest.fixture(scope="module")
def scheduler():
    """A real scheduler and two worker processes on localhost."""
    cluster = distributed.LocalCluster(n_workers=2, processes=True, threads_per_worker=1, dashboard_address=None,
                                       memory_limit=0)
    yield cluster.scheduler_address
    cluster.close()


def _config_with_formats(sample, formats):
    text = sample.config.read_text(encoding="utf-8").replace(
        "output: {shapefile_crs: auto, shapefile_encoding: UTF-8}",
        "output: {shapefile_crs: auto, shapefile_encoding: UTF-8, formats: [" + ", ".join(formats) + "]}")
    sample.config.write_text(text, encoding="utf-8")
    return text


def _points(folder):
    return gpd.read_file(folder / "population.gpkg").set_index("pid").sort_index()


def _assert_same_points(a: pd.DataFrame, b: pd.DataFrame):
    assert b.index.is_unique and sorted(a.index) == sorted(b.index)
    b = b.loc[a.index]
    for col in [c for c in a.columns if c.startswith("dist_")]:
        x, y = a[col].to_numpy(float), b[col].to_numpy(float)
        assert (np.isnan(x) == np.isnan(y)).all(), col
        np.testing.assert_allclose(x[~np.isnan(x)], y[~np.isnan(y)], rtol=0, atol=1e-6, err_msg=col)


#: Columns of coverage.capacity (tile-local by design).
CAPACITY_COLUMNS = ("supply_", "elderly_served_", "elderly_unserved_", "no_capacity_in_reach_", "capacity_",
                    "load_", "served_", "elderly_in_catchment_")


def _table(path, key, drop=("district",)):
    t = pd.read_csv(path, encoding="utf-8-sig")
    return t.drop(columns=[c for c in drop if c in t.columns]).set_index(key).sort_index()


def test_batch_equals_single_runs_failure_reported_and_resume(tmp_path, scheduler):
    samples = {name: generate_sample(tmp_path / folder, seed=seed)
               for name, folder, seed in (("甲区", "a", 11), ("乙区", "b", 12), ("丙区", "c", 13))}
    for name, s in samples.items():
        _config_with_formats(s, FULL if name == "甲区" else LEAN)
    good_c = samples["丙区"].config.read_text(encoding="utf-8")
    samples["丙区"].config.write_text(good_c.replace("profile: wuxi", "profile: wuxi\nwalk_typo: 1"), encoding="utf-8")
    batch = tmp_path / "province.yaml"
    batch.write_text(yaml.safe_dump({"runs": [
        {"name": "甲区", "config": "a/config.yaml"},
        {"name": "乙区", "config": "b/config.yaml", "overrides": {"walk": {"minutes": 10}}},
        {"name": "丙区", "config": "c/config.yaml"},
    ]}, allow_unicode=True), encoding="utf-8")
    out = tmp_path / "out"

    proc = cli("batch", batch, "--out", out, "--scheduler", scheduler)
    assert proc.returncode == 2, proc.stderr
    failed = [line for line in proc.stderr.splitlines() if "failed:" in line]
    assert len(failed) == 1 and "丙区" in failed[0] and "walk_typo" in failed[0], proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (out / "丙区").exists()

    # Each district equals its own single run.
    singles = {}
    for name, minutes in (("甲区", None), ("乙区", 10)):
        cfg = load_run_config(samples[name].config, {"walk": {"minutes": minutes}} if minutes else {})
        singles[name] = pipeline.run(cfg, tmp_path / f"single_{name}", log=lambda line: None)
        _assert_same_points(_points(tmp_path / f"single_{name}"), _points(out / name))
        for table, key in (("communities", "name"), ("streets", "street")):
            pd.testing.assert_frame_equal(_table(tmp_path / f"single_{name}" / f"{table}.csv", key),
                                          _table(out / name / f"{table}.csv", key))
    # The 10-minute override really took: a smaller circle covers fewer.
    assert singles["乙区"]["parameters"]["walk_minutes"] == 10

    # Province tables: the districts' rows, each tagged with its run's name.
    com = pd.read_csv(out / "communities.csv", encoding="utf-8-sig")
    assert com["district"].value_counts().to_dict() == {"甲区": 12, "乙区": 12}
    flags = [c for c in com.columns if c.startswith("flag_")]
    for name in ("甲区", "乙区"):
        mine = com[com["district"] == name].drop(columns="district").set_index("name").sort_index()
        single = _table(tmp_path / f"single_{name}" / "communities.csv", "name")
        assert mine[flags].equals(single[flags])
    pop = gpd.read_parquet(out / "population.parquet")
    assert len(pop) == sum(s["population"]["points"] for s in singles.values())
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert summary["failed"][0]["name"] == "丙区"
    for layer, tot in summary["inputs"].items():
        assert tot["read"] == tot["kept"] + tot["rejected"]
        assert tot["read"] == sum(s["inputs"][layer]["read"] for s in singles.values())
    elderly = sum(s["population"]["elderly"] for s in singles.values())
    covered = sum(s["services"]["meal"]["elderly_covered"] for s in singles.values())
    assert summary["population"]["elderly"] == elderly
    assert summary["services"]["meal"]["elderly_covered_share"] == pytest.approx(covered / elderly)
    overview = (out / "overview.html").read_text(encoding="utf-8")
    assert "甲区/map.html" in overview and "乙区/map.html" not in overview  # 乙区 drew no map
    package = gpd.read_file(out / "shp" / "communities.shp")
    assert package["district"].unique().tolist() == ["甲区"] and len(package) == 12

    # --resume: only the failed district runs; the finished folders are not touched.
    samples["丙区"].config.write_text(good_c, encoding="utf-8")
    stamps = {name: (out / name / "summary.json").stat().st_mtime_ns for name in ("甲区", "乙区")}
    proc = cli("batch", batch, "--out", out, "--scheduler", scheduler, "--resume")
    assert proc.returncode == 0, proc.stderr
    assert "2 already finished, 1 to run" in proc.stderr
    assert {name: (out / name / "summary.json").stat().st_mtime_ns for name in stamps} == stamps
    assert json.loads((out / "丙区" / "summary.json").read_text(encoding="utf-8"))["communities"]["total"] == 12
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert summary["failed"] == [] and summary["communities"]["total"] == 36
    # A district whose summary.json is gone is missing, and reruns alone.
    (out / "乙区" / "summary.json").unlink()
    proc = cli("batch", batch, "--out", out, "--scheduler", scheduler, "--resume")
    assert proc.returncode == 0 and "2 already finished, 1 to run" in proc.stderr, proc.stderr
    assert (out / "乙区" / "summary.json").is_file()
    assert (out / "甲区" / "summary.json").stat().st_mtime_ns == stamps["甲区"]


@pytest.mark.parametrize("tiles", [{"by": "streets"}, {"grid_m": 1000}])
def test_tiled_run_equals_untiled(tmp_path, scheduler, tiles):
    sample = generate_sample(tmp_path / "d", seed=7)
    whole = tmp_path / "whole"
    pipeline.run(load_run_config(sample.config, TILE_OVERRIDES), whole, log=lambda line: None)
    batch = tmp_path / "city.yaml"
    batch.write_text(yaml.safe_dump({"config": "d/config.yaml", "overrides": TILE_OVERRIDES, "tiles": tiles},
                                    allow_unicode=True), encoding="utf-8")
    out = tmp_path / "tiled"
    result = run_batch(batch, out, scheduler=scheduler, log=lambda line: None)
    assert not result.failures and len(result.tasks) == 3
    records = [json.loads((out / t["name"] / "summary.json").read_text(encoding="utf-8"))["tile"] for t in result.tasks]
    # The outer tiles are cut (the middle stripe's halo reaches both district edges).
    whole_edges = json.loads((whole / "summary.json").read_text(encoding="utf-8"))["network"]["graph"]["edges"]
    assert sum(r["network_edges"] < 0.8 * whole_edges for r in records) == 2

    _assert_same_points(_points(whole), gpd.read_parquet(out / "population.parquet").set_index("pid"))
    # Everything but the capacity measures, which share demand across tile borders (tiles.py says so).
    for table, key in (("communities", "name"), ("streets", "street")):
        a, b = _table(whole / f"{table}.csv", key), _table(out / f"{table}.csv", key)
        exact = [c for c in a.columns if not c.startswith(CAPACITY_COLUMNS)]
        assert len(exact) >= 30 and set(a.columns) == set(b.columns)
        pd.testing.assert_frame_equal(a[exact], b[exact], check_exact=False, rtol=1e-12)
    assert all("not shared" in r["capacity"] for r in records)

    # Walks cross tile borders: 硕放街道 has no street centre, so its communities walk to one
    # owned by another tile (and the distances above still agree).
    com = pd.read_csv(out / "communities.csv", encoding="utf-8-sig")
    fac = gpd.read_parquet(out / "facilities.parquet")
    tile_of = dict(zip(fac["name"], fac["district"]))
    crossing = com[com["nearest_centre"].map(tile_of).fillna(com["district"]) != com["district"]]
    assert len(crossing) >= 2 and crossing["nearest_centre_m"].notna().all()
    assert fac["run_fid"].is_unique  # each facility once, from the tile that owns it

    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    single = json.loads((whole / "summary.json").read_text(encoding="utf-8"))
    assert summary["inputs"] == {k: {kk: v[kk] for kk in ("read", "kept", "rejected", "rejected_by_reason")}
                                 for k, v in single["inputs"].items()}
    for key, svc in single["services"].items():
        assert summary["services"][key]["elderly_covered"] == svc["elderly_covered"]
        assert summary["services"][key]["facilities"] == svc["facilities"]
    assert summary["communities"]["flagged_by_flag"] == single["communities"]["flagged_by_flag"]


def test_bad_batch_file_is_one_line(tmp_path):
    batch = tmp_path / "b.yaml"
    batch.write_text("runs:\n  - {name: a/b, config: x.yaml}\n", encoding="utf-8")
    proc = cli("batch", batch, "--out", tmp_path / "o")
    assert proc.returncode == 2 and "runs.0" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "o").exists()


def _line_network(xy: np.ndarray, pairs: list[tuple[int, int]]) -> Network:
    nodes = gpd.GeoDataFrame({"x": xy[:, 0], "y": xy[:, 1]}, geometry=shapely.points(xy), crs="EPSG:32650")
    u, v = np.array(pairs).T
    lines = shapely.linestrings(np.stack([xy[u], xy[v]], axis=1))
    edges = gpd.GeoDataFrame({"u": u, "v": v, "length_m": shapely.length(lines), "highway": ""}, geometry=lines,
                             crs="EPSG:32650")
    return Network(nodes, edges, LayerReport("network", "test"), {})


def test_clip_keeps_pieces_of_big_components_and_drops_islands():
    # A street of 10 nodes 100 m apart (one component of 10) and an island of 3 nodes.
    xy = np.array([[i * 100.0, 0.0] for i in range(10)] + [[150.0, 50.0], [250.0, 50.0], [350.0, 50.0]])
    net = _line_network(xy, [(i, i + 1) for i in range(9)] + [(10, 11), (11, 12)])
    clipped = NetworkCutter(net, min_component_nodes=5).cut(shapely.box(120, -10, 280, 60))
    # Edges 1-2, 2-3 touch the box (kept whole, with nodes 1, 2, 3); the island is dropped.
    assert clipped.edges["length_m"].tolist() == [100.0, 100.0]
    assert clipped.nodes["x"].tolist() == [100.0, 200.0, 300.0]
    assert clipped.edges[["u", "v"]].to_numpy().tolist() == [[0, 1], [1, 2]]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 8), st.integers(0, 8), st.integers(1, 4), st.integers(1, 4)), min_size=1,
                max_size=6),
       st.lists(st.tuples(st.floats(-3, 14), st.floats(-3, 14)), min_size=1, max_size=40))
def test_every_point_has_one_owner(boxes, points):
    polys = np.array([shapely.box(x, y, x + w, y + h) for x, y, w, h in boxes])
    pts = shapely.points(np.array(points))
    owner = owner_of(pts, polys)
    for p, o in zip(pts, owner):
        inside = [i for i, poly in enumerate(polys) if poly.intersects(p)]
        if inside:
            assert o == inside[0]
        else:
            d = shapely.distance(p, polys)
            assert o == int(np.flatnonzero(d == d.min())[0])
