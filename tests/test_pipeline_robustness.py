"""Bad input through the whole pipeline: a run succeeds with every row accounted for, or it stops
with one line naming the file — never another exception, never half-written outputs.

The sample district is generated once; each case replaces one of its files (the facility
CSV, the 社区 or 小区 layer) with a malformed variant and runs the real pipeline in-process
(``load_config`` → ``pipeline.run``), a few through the CLI for the exit code. The circle is
300 m so that a run takes about a second (the isochrones dominate), which lets hypothesis
try a few dozen files.

Success means: ``read == kept + rejected`` for every layer in summary.json,
``rejected_<layer>.csv`` has exactly the rejected rows, each with its line/feature number
and a reason, and every data line of the facility file is either a kept facility
(``source_row``) or a rejected row — never both, never neither.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pytest
import shapely.affinity
import yaml
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from shapely.geometry import LineString, Point, Polygon

from carecircle.config import parse_config
from carecircle.errors import InputError
from carecircle.pipeline import run
from clitools import assert_one_line_error, cli

# A run takes about a second: few examples, and no shrinking (minutes of reruns); the
# failing example is printed as drawn.
SETTINGS = settings(max_examples=8, deadline=None, database=None, phases=[Phase.explicit, Phase.generate],
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
FORMATS = ["facilities", "population", "rejected"]


@pytest.fixture(scope="module")
def sample(sample_district):
    s = sample_district
    base = yaml.safe_load(Path(s.config).read_text(encoding="utf-8"))
    folder = Path(s.config).parent
    for key in ("facilities", "population", "communities", "estates", "streets"):
        for field in ("path", "raster", "elderly_raster"):
            if field in base[key]:
                base[key][field] = str(folder / base[key][field])
    base["network"]["osm"] = str(folder / base["network"]["osm"])
    base["walk"] = {"distance_m": 300}
    base["output"]["formats"] = FORMATS
    with open(folder / "facilities.csv", encoding="utf-8-sig", newline="") as f:
        header, *rows = list(csv.reader(f))
    return {"base": base, "folder": folder, "header": header, "rows": rows}


def config(sample, **sections) -> dict:
    cfg = json.loads(json.dumps(sample["base"]))
    for key, value in sections.items():
        cfg[key] = {**cfg[key], **value}
    return cfg


def attempt(cfg: dict, folder: Path, bad_file: Path) -> tuple[Path | None, dict | str]:
    """Run in-process; on InputError check the one-line message names ``bad_file`` and nothing
    was left behind. Any other exception fails the test (the CLI would exit 1)."""
    folder.mkdir(parents=True, exist_ok=True)
    out = folder / "out"
    try:
        summary = run(parse_config(cfg, path=folder / "run.yaml"), out, log=lambda line: None)
    except InputError as err:
        message = str(err)
        assert "\n" not in message and str(bad_file) in message, message
        assert not out.exists()
        assert not [p.name for p in folder.iterdir() if ".partial" in p.name]
        return None, message
    check_accounting(out, summary)
    return out, summary


def check_accounting(out: Path, summary: dict) -> None:
    assert json.loads((out / "summary.json").read_text(encoding="utf-8"))["inputs"] == summary["inputs"]
    for layer, entry in summary["inputs"].items():
        assert entry["read"] == entry["kept"] + entry["rejected"], layer
        assert sum(entry["rejected_by_reason"].values()) == entry["rejected"], layer
        path = out / f"rejected_{layer}.csv"
        if not entry["rejected"]:
            assert not path.exists(), layer
            continue
        rej = pd.read_csv(path, encoding="utf-8-sig", dtype={"reason": str}, keep_default_na=False)
        assert len(rej) == entry["rejected"], layer
        assert rej["row"].astype(int).ge(1).all() and rej["row"].is_unique, layer
        assert (rej["reason"].str.len() > 0).all(), layer
        assert rej["reason"].value_counts().to_dict() == entry["rejected_by_reason"], layer
    fac = gpd.read_file(out / "facilities.gpkg")
    assert len(fac) == summary["inputs"]["facilities"]["kept"]
    assert summary["communities"]["total"] == summary["inputs"]["communities"]["kept"]
    assert summary["population"]["points"] == summary["inputs"]["population"]["kept"]


def facility_lines(out: Path) -> tuple[set[int], dict[int, str]]:
    """Line numbers of the kept facilities, and reason per rejected line."""
    kept = set(gpd.read_file(out / "facilities.gpkg")["source_row"].astype(int))
    path = out / "rejected_facilities.csv"
    rej = pd.read_csv(path, encoding="utf-8-sig") if path.exists() else pd.DataFrame({"row": [], "reason": []})
    return kept, dict(zip(rej["row"].astype(int), rej["reason"]))


# ------------------------------------------------------------------ facility CSV variants

coordinate = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.floats(-400, 400).map(lambda v: f"{v:.6f}"),
    st.sampled_from(["", "nan", "inf", "-inf", "1e400", "１２０.３４", "东经120度", "31.5N", "--", "NULL"]),
)
# printable, no line breaks: one garbage row is one line of the file
cell = st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp")), max_size=10)
garbage = st.tuples(cell, cell, cell, coordinate, coordinate, cell, cell).map(list)


@SETTINGS
@given(
    inserts=st.lists(st.tuples(st.integers(0, 40), st.sampled_from(["garbage", "swapped"]), garbage), min_size=1, max_size=8),
    encoding=st.sampled_from(["utf-8", "utf-8-sig", "gbk", "gb18030"]),
    auto_fix=st.booleans(),
)
def test_garbage_rows_among_good_ones(sample, tmp_path_factory, inserts, encoding, auto_fix) -> None:
    rows = [list(r) for r in sample["rows"]]
    kinds = ["good"] * len(rows)
    for at, kind, junk in inserts:
        at = min(at, len(rows))
        if kind == "swapped":
            src = sample["rows"][at % len(sample["rows"])]
            # a different name, so it is not the duplicate of its source row
            junk = [src[0] + f"（{len(rows)}号录入）", *src[1:3], src[4], src[3], *src[5:]]
        rows.insert(at, junk)
        kinds.insert(at, kind)
    folder = tmp_path_factory.mktemp("garbage")
    path = folder / "设施.csv"
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows([sample["header"], *rows])
    path.write_bytes(buf.getvalue().encode(encoding, errors="replace"))
    out, result = attempt(config(sample, facilities={"path": str(path), "auto_fix": auto_fix}), folder, path)
    assert out is not None, result  # the good rows are all there: the run must go through
    # the header is line 1; rows that are blank after garbage generation are not data rows
    lines = {i + 2: kind for i, (kind, row) in enumerate(zip(kinds, rows)) if any(c.strip() for c in row)}
    kept, rejected = facility_lines(out)
    assert kept.isdisjoint(rejected) and kept | set(rejected) == set(lines)
    assert result["inputs"]["facilities"]["read"] == len(lines)
    for line, kind in lines.items():
        if kind == "good":
            assert line in kept, (line, rejected.get(line))
        elif kind == "swapped":
            assert (line in kept) if auto_fix else str(rejected.get(line)).startswith("lat/lng swapped"), (line, rejected.get(line))


@settings(SETTINGS, max_examples=5)
@given(per_line=st.lists(st.sampled_from(["utf-8", "gbk", "latin-1"]), min_size=1, max_size=4))
def test_mixed_encodings(sample, tmp_path_factory, per_line) -> None:
    # Excel users append to a CSV in another encoding: each line in its own
    lines = [sample["header"], *sample["rows"]]
    body = b"".join((",".join(r) + "\n").encode(per_line[i % len(per_line)], errors="replace") for i, r in enumerate(lines))
    folder = tmp_path_factory.mktemp("mixed")
    path = folder / "fac.csv"
    path.write_bytes(body)
    out, result = attempt(config(sample, facilities={"path": str(path)}), folder, path)
    if out is not None:
        kept, rejected = facility_lines(out)
        assert kept.isdisjoint(rejected) and len(kept) + len(rejected) == result["inputs"]["facilities"]["read"]


HEADER = "名称,类型,地址,经度,纬度,建筑面积,床位\n"
#: file content → a word the one-line error must contain (besides the file's path)
BAD_FILES = {
    "empty": (b"", "empty"),
    "header_only": (HEADER.encode("gbk"), "no data rows"),
    "no_coordinate_column": ("名称,类型,地址,建筑面积,床位\n甲日间照料中心,日间照料中心,无锡,300,5\n".encode("utf-8"), "经度"),
    "only_garbage": ((HEADER + "甲,日间照料中心,无锡,abc,,300,5\n乙,助餐点,无锡,inf,nan,x,y\n").encode("gbk"), "facilit"),
    "out_of_range": ((HEADER + "甲,日间照料中心,无锡,520.3,131.5,,\n乙,助餐点,无锡,-120.3,95,,\n").encode("utf-8"), "facilit"),
    "in_shanghai": ((HEADER + "甲,日间照料中心,上海,121.437,31.188,,\n").encode("utf-8"), "study area"),
    "binary": (bytes(range(256)) * 4, "encoding"),
}


@pytest.mark.parametrize("kind", sorted(BAD_FILES))
def test_bad_facility_files_stop_with_one_line(sample, tmp_path, kind) -> None:
    content, word = BAD_FILES[kind]
    path = tmp_path / f"{kind}.csv"
    path.write_bytes(content)
    # the sample config names its columns (经度/纬度, 建筑面积 ...): missing ones are errors too
    out, message = attempt(config(sample, facilities={"path": str(path)}), tmp_path, path)
    assert out is None, f"{kind}: a run without a usable facility must stop"
    assert word in message, message



def test_all_rows_rejected_says_why_in_the_message(sample, tmp_path) -> None:
    path = tmp_path / "only_garbage.csv"
    path.write_bytes(BAD_FILES["only_garbage"][0])
    out, message = attempt(config(sample, facilities={"path": str(path)}), tmp_path, path)
    assert out is None
    assert "rejected_facilities.csv" not in message and "non-numeric coordinates" in message, message


def test_utf8_forced_on_a_gbk_file(sample, tmp_path) -> None:
    path = tmp_path / "gbk.csv"
    path.write_bytes((sample["folder"] / "facilities_gbk.csv").read_bytes())
    out, result = attempt(config(sample, facilities={"path": str(path), "encoding": "utf-8"}), tmp_path, path)
    assert out is None and "utf-8" in result.lower()
    out, result = attempt(config(sample, facilities={"path": str(path), "encoding": None}), tmp_path / "auto", path)
    assert out is not None and result["inputs"]["facilities"]["kept"] == len(sample["rows"])


# ------------------------------------------------------------------ 社区 with broken geometry


def breakage(g) -> st.SearchStrategy:
    x0, y0, x1, y1 = g.bounds
    return st.sampled_from([
        Polygon([(x0, y0), (x1, y1), (x1, y0), (x0, y1)]),              # bow-tie: repaired
        Polygon([(x0, y0), (x1, y0), (x1, y1), (x0 + 1, y0 + 1), (x1, y1), (x0, y1)]),  # spike
        Polygon([(x0, y0), ((x0 + x1) / 2, (y0 + y1) / 2), (x1, y1), (x0, y0)]),  # no area at all
        None,
        Polygon(),
        Point(x0, y0),
        LineString([(x0, y0), (x1, y1)]),
    ])


@settings(SETTINGS, max_examples=6)
@given(data=st.data())
def test_communities_with_invalid_geometries(sample, tmp_path_factory, data) -> None:
    com = gpd.read_file(sample["folder"] / "communities.gpkg")
    hit = data.draw(st.lists(st.integers(0, len(com) - 1), min_size=1, max_size=len(com), unique=True))
    geoms = list(com.geometry)
    for i in hit:
        geoms[i] = data.draw(breakage(com.geometry[i]))
    com = com.set_geometry(gpd.GeoSeries(geoms, crs=com.crs))
    folder = tmp_path_factory.mktemp("geom")
    path = folder / "社区.gpkg"
    com.to_file(path)
    out, result = attempt(config(sample, communities={"path": str(path)}), folder, path)
    broken = {i + 1 for i in hit if geoms[i] is None or geoms[i].is_empty or geoms[i].geom_type != "Polygon"}
    if out is None:
        # only when nothing usable is left (or what is left lies off the network)
        assert "no usable communities" in result or "overlaps" in result, result
        assert len(hit) == len(com) or "overlaps" in result, result
        return
    entry = result["inputs"]["communities"]
    assert entry["read"] == len(com) and entry["kept"] >= 1
    if entry["rejected"]:
        rows = set(pd.read_csv(out / "rejected_communities.csv", encoding="utf-8-sig")["row"].astype(int))
        assert broken <= rows <= {i + 1 for i in hit}
    else:
        assert not broken


# ------------------------------------------------------------------ wrong CRS, estates


def mislabelled(com: gpd.GeoDataFrame, how: str) -> gpd.GeoDataFrame:
    if how == "degrees_as_metres":  # lon/lat numbers in a file that says UTM
        return com.to_crs(4326).set_crs(32650, allow_override=True)
    return com.set_crs(4326, allow_override=True)  # Gauss-Krüger metres in a file that says WGS-84


@pytest.mark.parametrize("how", ["degrees_as_metres", "metres_as_degrees"])
def test_communities_in_the_wrong_crs(sample, tmp_path, how) -> None:
    path = tmp_path / "communities_wrong_crs.gpkg"
    mislabelled(gpd.read_file(sample["folder"] / "communities.gpkg"), how).to_file(path)
    out, message = attempt(config(sample, communities={"path": str(path)}), tmp_path, path)
    assert out is None and "CRS" in message


def test_estates_without_their_community_are_counted(sample, tmp_path) -> None:
    est = gpd.read_file(sample["folder"] / "estates.gpkg")
    est.loc[[0, 5, 9], "community"] = "不存在社区"
    est.loc[3, "community"] = None
    est.loc[3, "geometry"] = shapely.affinity.translate(est.geometry[3], 50_000, 0)
    path = tmp_path / "estates.gpkg"
    est.to_file(path)
    out, result = attempt(config(sample, estates={"path": str(path)}), tmp_path, path)
    assert out is not None, result
    entry = result["inputs"]["estates"]
    assert (entry["read"], entry["kept"]) == (len(est), len(est) - 4)
    assert entry["rejected_by_reason"] == {"community not in the communities layer": 3,
                                           "outside every community polygon": 1}
    rej = pd.read_csv(out / "rejected_estates.csv", encoding="utf-8-sig")
    assert sorted(rej["row"]) == [1, 4, 6, 10]


def test_failure_while_writing_keeps_the_previous_output(sample, tmp_path) -> None:
    """An error in the export stage (after the temporary folder exists) removes the temporary
    folder and leaves the previous run's output as it was."""
    out = tmp_path / "out"
    first = run(parse_config(config(sample), path=tmp_path / "run.yaml"), out, log=lambda line: None)
    before = sorted(p.name for p in out.iterdir())
    bad = config(sample, output={"formats": [*FORMATS, "shp"], "shapefile_crs": "EPSG:999999"})
    with pytest.raises(InputError) as err:
        run(parse_config(bad, path=tmp_path / "run.yaml"), out, log=lambda line: None)
    assert "\n" not in str(err.value) and "EPSG:999999" in str(err.value)
    assert sorted(p.name for p in out.iterdir()) == before
    assert json.loads((out / "summary.json").read_text(encoding="utf-8"))["created"] == first["created"]
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


# ------------------------------------------------------------------ through the CLI


def cli_fails(cfg: dict, folder: Path, bad_file: Path) -> None:
    (folder / "run.yaml").write_text(yaml.safe_dump(cfg, allow_unicode=True), encoding="utf-8")
    out = folder / "out"
    assert_one_line_error(cli("run", folder / "run.yaml", "--out", out, timeout=300), str(bad_file))
    assert not out.exists() and not [p for p in folder.iterdir() if ".partial" in p.name]


@pytest.mark.parametrize("kind", ["empty", "only_garbage"])
def test_cli_exit_2_for_bad_facility_file(sample, tmp_path, kind) -> None:
    path = tmp_path / f"{kind}.csv"
    path.write_bytes(BAD_FILES[kind][0])
    cli_fails(config(sample, facilities={"path": str(path)}), tmp_path, path)


def test_cli_exit_2_for_communities_in_the_wrong_crs(sample, tmp_path) -> None:
    path = tmp_path / "communities_wrong_crs.gpkg"
    mislabelled(gpd.read_file(sample["folder"] / "communities.gpkg"), "degrees_as_metres").to_file(path)
    cli_fails(config(sample, communities={"path": str(path)}), tmp_path, path)


@pytest.mark.parametrize("args", [["run", "--bogus"], ["run", "a.yaml", "b.yaml", "--out", "o"]])
def test_cli_usage_errors_exit_2(tmp_path, args) -> None:
    proc = cli(*args, cwd=tmp_path, timeout=120)
    assert proc.returncode == 2 and "internal error" not in proc.stderr, proc.stderr
