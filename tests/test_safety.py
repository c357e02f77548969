"""Never lose a planner's files, never break on hostile input (issue 9).

The output folder: refused unless new, empty or an earlier carecircle output; replaced
atomically; stale staging folders tidied; umask permissions; writability checked before the
analysis; SIGTERM / Ctrl-C leave nothing half-written and no chromium behind. Hostile text:
no live spreadsheet formula, no rich markup or ANSI escape read from an input, NUL bytes
removed. Every config value finite and in range, checked before any work.
"""

from __future__ import annotations

import csv
import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import yaml
from openpyxl import load_workbook

from carecircle import outdir
from carecircle.config import load_config, parse_config
from carecircle.errors import InputError
from carecircle.layers.sample import generate_sample
from clitools import assert_one_line_error, cli


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    return generate_sample(tmp_path_factory.mktemp("safety") / "input")


def _config(sample, tmp_path: Path, name: str = "config.yaml", **changes) -> Path:
    """A copy of the sample config in ``tmp_path`` (inputs by absolute path), with ``changes``."""
    data = yaml.safe_load(Path(sample.config).read_text(encoding="utf-8"))
    base = Path(sample.config).parent
    for section in ("network", "facilities", "population", "communities", "estates", "streets"):
        for key, value in list(data.get(section, {}).items()):
            if key in ("osm", "lines", "path", "raster", "elderly_raster", "points", "buildings"):
                data[section][key] = str(base / value)
    for dotted, value in changes.items():
        *parents, last = dotted.split(".")
        node = data
        for p in parents:
            node = node.setdefault(p, {})
        node[last] = value
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


def _tree(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# ----------------------------------------------------------------------------- the reported loss


def test_a_folder_with_the_planners_files_is_refused_and_kept(sample, tmp_path) -> None:
    """Today: `--out 文档` deletes 重要文件.docx with the rest of the folder."""
    docs = tmp_path / "文档"
    docs.mkdir()
    (docs / "重要文件.docx").write_bytes(b"PK\x03\x04 the planner's report")
    proc = cli("run", sample.config, "--out", docs)
    assert_one_line_error(proc, "文档", "重要文件.docx", "nothing was deleted")
    assert (docs / "重要文件.docx").read_bytes() == b"PK\x03\x04 the planner's report"
    assert sorted(p.name for p in docs.iterdir()) == ["重要文件.docx"]
    assert not list(tmp_path.glob(".文档.partial-*"))


def test_out_dot_from_the_config_folder_is_refused(sample, tmp_path) -> None:
    """Today: `--out .` beside the config deletes the config and every input file."""
    folder = tmp_path / "project"
    shutil.copytree(Path(sample.config).parent, folder)
    before = _tree(folder)
    proc = cli("run", "config.yaml", "--out", ".", cwd=folder)
    assert_one_line_error(proc, "current folder")
    assert _tree(folder) == before


@pytest.mark.parametrize("case", ["root", "home", "config folder", "input folder", "above the config", "below a file",
                                  "symlink", "a file"])
def test_places_an_output_never_replaces(sample, tmp_path, monkeypatch, case) -> None:
    cfg = load_config(_config(sample, tmp_path))
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    (tmp_path / "report.docx").write_text("mine")
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "link").symlink_to(real, target_is_directory=True)
    out, needle = {
        "root": (Path("/"), "root folder"),
        "home": (home, "home folder"),
        "config folder": (tmp_path, "folder of the config file"),
        "input folder": (Path(cfg.facilities.path).parent, "folder of input file"),
        "above the config": (tmp_path.parent, "a folder above"),
        "below a file": (tmp_path / "report.docx" / "out", "is a file"),
        "symlink": (tmp_path / "link", "symbolic link"),
        "a file": (tmp_path / "report.docx", "a file"),
    }[case]
    with pytest.raises(InputError, match="nothing was deleted") as err:
        outdir.check_target(out, config_file=cfg.source, inputs=cfg.input_files())
    assert needle in str(err.value) and str(out) in str(err.value)
    assert (tmp_path / "report.docx").read_text() == "mine"


def test_new_empty_and_earlier_outputs_are_accepted(tmp_path) -> None:
    assert outdir.check_target(tmp_path / "new" / "out") == tmp_path / "new" / "out"
    (tmp_path / "empty").mkdir()
    assert outdir.check_target(tmp_path / "empty") == tmp_path / "empty"
    # An output of an older version: summary.json with the carecircle key and its file list.
    old = tmp_path / "old"
    old.mkdir()
    (old / "summary.json").write_text(json.dumps({"carecircle": "0.0.9", "outputs": ["map.html", "summary.json"]}))
    (old / "map.html").write_text("<html>")
    assert outdir.check_target(old) == old
    (old / "notes.txt").write_text("mine")
    with pytest.raises(InputError, match="notes.txt"):
        outdir.check_target(old)


def test_sample_never_overwrites_a_planners_folder(tmp_path) -> None:
    mine = tmp_path / "项目资料"
    mine.mkdir()
    (mine / "config.yaml").write_text("profile: wuxi  # 我的配置", encoding="utf-8")
    before = _tree(mine)
    err = assert_one_line_error(cli("sample", mine), str(mine), "not a carecircle output", "config.yaml")
    assert "nothing was deleted" in err
    assert _tree(mine) == before
    # A new folder is written whole and marked; writing it again replaces only what it wrote.
    fresh = tmp_path / "样例"
    assert cli("sample", fresh).returncode == 0
    listed = json.loads((fresh / outdir.MARKER).read_text(encoding="utf-8"))["files"]
    assert sorted(listed) == sorted(k for k in _tree(fresh) if k != outdir.MARKER)
    assert {"config.yaml", "district.osm", "facilities.csv", "population.tif"} <= set(listed)
    assert not [p for p in tmp_path.iterdir() if ".partial-" in p.name]
    assert cli("sample", fresh).returncode == 0
    (fresh / "备注.txt").write_text("mine", encoding="utf-8")
    assert_one_line_error(cli("sample", fresh), "备注.txt")
    assert (fresh / "备注.txt").read_text(encoding="utf-8") == "mine"


def test_compare_out_never_replaces_a_run_it_reads(earlier_run, tmp_path) -> None:
    _, first = earlier_run
    a, b = tmp_path / "a", tmp_path / "b"
    shutil.copytree(first, a)
    shutil.copytree(first, b)
    before = _tree(a)
    assert_one_line_error(cli("compare", a, b, "--out", a), str(a), "nothing was deleted")
    assert _tree(a) == before
    assert_one_line_error(cli("compare", a, b, "--out", tmp_path), "nothing was deleted")
    # The default, B/compare, twice; B stays an output a run may replace.
    for _ in range(2):
        proc = cli("compare", a, b)
        assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in (b / "compare").iterdir()) == [outdir.MARKER, "compare.csv", "compare.json",
                                                                   "compare.xlsx"]
    assert outdir.check_target(b) == b


# ----------------------------------------------------------------------------- replacing an output


@pytest.fixture(scope="module")
def earlier_run(sample, tmp_path_factory):
    """A complete run (tables only, fast) into ``out``, and its config."""
    root = tmp_path_factory.mktemp("earlier")
    cfg = _config(sample, root, **{"output.formats": ["communities", "streets", "actions", "rejected"]})
    proc = cli("run", cfg, "--out", root / "out")
    assert proc.returncode == 0, proc.stderr
    return cfg, root / "out"


def test_rerun_replaces_an_earlier_output_and_tidies_stale_partials(earlier_run, tmp_path) -> None:
    cfg, first = earlier_run
    out = tmp_path / "out"
    shutil.copytree(first, out)
    old_created = json.loads((out / "summary.json").read_text())["created"]
    # What `kill -9` during an earlier run leaves beside the output: its staging folder.
    stale = tmp_path / ".out.partial-999999999-dead"
    stale.mkdir()
    (stale / outdir.MARKER).write_text(json.dumps({"carecircle": "0.1.0", "files": []}))
    (stale / "communities.csv").write_text("half")
    # Someone else's folder of a similar name is not touched (no marker).
    foreign = tmp_path / ".out.partial-user-notes"
    foreign.mkdir()
    (foreign / "note.txt").write_text("mine")
    time.sleep(1.1)
    proc = cli("run", cfg, "--out", out)
    assert proc.returncode == 0, proc.stderr
    assert ".out.partial-999999999-dead" in proc.stderr  # named in the log
    assert not stale.exists()
    assert (foreign / "note.txt").read_text() == "mine"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["created"] != old_created
    marker = json.loads((out / outdir.MARKER).read_text())
    assert sorted(marker["files"]) == sorted(summary["outputs"])
    assert sorted(p.name for p in tmp_path.iterdir()) == [".out.partial-user-notes", "out"]


def test_an_output_left_aside_by_a_killed_replace_is_put_back(tmp_path) -> None:
    """Killed between 'old aside' and 'new in': the next run restores the earlier output."""
    aside = tmp_path / ".out.old-999999999-dead"
    aside.mkdir()
    outdir.write_marker(aside, ["summary.json"])
    (aside / "summary.json").write_text('{"carecircle": "0.1.0"}')
    lines = []
    outdir.tidy_stale(tmp_path / "out", lines.append)
    assert (tmp_path / "out" / "summary.json").read_text() == '{"carecircle": "0.1.0"}'
    assert not aside.exists() and "restored" in lines[0]


def test_commit_moves_old_aside_then_new_in(tmp_path, monkeypatch) -> None:
    """The old output is whole at every rename: first moved aside, never deleted before the new one is in."""
    out = tmp_path / "out"
    out.mkdir()
    outdir.write_marker(out, ["a.csv"])
    (out / "a.csv").write_text("old")
    tmp = tmp_path / ".out.partial-1-x"
    tmp.mkdir()
    (tmp / "a.csv").write_text("new")
    seen = []
    real_rename = os.rename

    def rename(src, dst):
        seen.append((Path(src).name, Path(dst).name, sorted(p.name for p in Path(src).iterdir())))
        real_rename(src, dst)

    monkeypatch.setattr(outdir.os, "rename", rename)
    outdir.commit(tmp, out, ["a.csv"])
    assert seen[0][0] == "out" and seen[0][1].startswith(".out.old-") and seen[0][2] == [".carecircle", "a.csv"]
    assert seen[1][:2] == (".out.partial-1-x", "out")
    assert (out / "a.csv").read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_output_folder_has_the_umask_permissions(earlier_run) -> None:
    """Today 0700 (mkdtemp); the run's umask (022 in the test process) gives 0755."""
    _, out = earlier_run
    umask = os.umask(0)
    os.umask(umask)
    assert out.stat().st_mode & 0o777 == 0o777 & ~umask


# ----------------------------------------------------------------------------- writable, before the analysis


def _no_analysis(monkeypatch):
    from carecircle import pipeline

    def boom(*a, **k):
        raise AssertionError("the analysis started")

    monkeypatch.setattr(pipeline, "load_inputs", boom)
    return pipeline


def test_full_disk_stops_before_the_analysis(sample, tmp_path, monkeypatch) -> None:
    pipeline = _no_analysis(monkeypatch)
    monkeypatch.setattr(outdir.shutil, "disk_usage", lambda p: shutil._ntuple_diskusage(10 ** 9, 10 ** 9 - 1000, 1000))
    with pytest.raises(InputError, match="disk is full"):
        pipeline.run(load_config(_config(sample, tmp_path)), tmp_path / "out", log=lambda s: None)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.yaml"]


def test_disk_full_while_writing_is_exit_2_and_leaves_nothing(sample, tmp_path, monkeypatch) -> None:
    from carecircle import pipeline

    def full(out, *a, **k):
        (out / "communities.csv").write_text("half")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(out / "map.html"))

    monkeypatch.setattr(pipeline, "write_outputs", full)
    cfg = load_config(_config(sample, tmp_path, **{"output.formats": ["communities"]}))
    with pytest.raises(InputError, match="No space left"):
        pipeline.run(cfg, tmp_path / "out", log=lambda s: None)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.yaml"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_folder_stops_before_the_analysis(sample, tmp_path, monkeypatch) -> None:
    pipeline = _no_analysis(monkeypatch)
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        with pytest.raises(InputError, match="cannot write"):
            pipeline.run(load_config(_config(sample, tmp_path)), locked / "out", log=lambda s: None)
    finally:
        locked.chmod(0o755)


def test_read_only_location_via_cli_is_exit_2(sample, tmp_path) -> None:
    """A location the run cannot create (below /proc) is one line, exit 2, before the analysis."""
    proc = cli("run", _config(sample, tmp_path), "--out", "/proc/carecircle-out")
    assert_one_line_error(proc, "/proc/carecircle-out", "cannot write")
    assert "路网 network" not in proc.stderr


# ----------------------------------------------------------------------------- signals


def _chromium_of(folder: Path) -> list[int]:
    """PIDs of processes whose command line points into ``folder`` (a chromium printing the report)."""
    pids = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cmd = (proc / "cmdline").read_bytes()
            except OSError:
                continue
            if str(folder).encode() in cmd and b"--user-data-dir" in cmd:
                pids.append(int(proc.name))
    return pids


@pytest.mark.parametrize("signum, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_stop_signal_during_the_write_leaves_the_earlier_output(earlier_run, tmp_path, signum, code) -> None:
    cfg, first = earlier_run
    out = tmp_path / "out"
    shutil.copytree(first, out)
    before = _tree(out)
    # The full set of outputs, so the write phase (map, report, PDF) lasts seconds.
    full = _config_all_formats(cfg, tmp_path)
    proc = subprocess.Popen([sys.executable, "-m", "carecircle", "run", str(full), "--out", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        staging = list(tmp_path.glob(".out.partial-*"))
        if staging and (staging[0] / "communities.gpkg").exists():
            break
        time.sleep(0.02)
    assert proc.poll() is None, proc.communicate()
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err
    lines = [line for line in err.splitlines() if "stopped" in line]
    assert len(lines) == 1 and "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config_all.yaml", "out"]
    assert _tree(out) == before


def _config_all_formats(cfg: Path, tmp_path: Path) -> Path:
    data = yaml.safe_load(cfg.read_text(encoding="utf-8"))
    data["output"].pop("formats")
    path = tmp_path / "config_all.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


@pytest.mark.browser
def test_sigterm_while_chromium_prints_leaves_no_chromium(earlier_run, tmp_path) -> None:
    from carecircle.maps.planning_report import find_chromium

    if find_chromium() is None:
        pytest.skip("no chromium installed")
    cfg, _ = earlier_run
    full = _config_all_formats(cfg, tmp_path)
    proc = subprocess.Popen([sys.executable, "-m", "carecircle", "run", str(full), "--out", str(tmp_path / "out")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline, seen = time.time() + 180, []
    while time.time() < deadline and proc.poll() is None and not seen:
        seen = _chromium_of(tmp_path)
        time.sleep(0.05)
    if not seen:
        proc.communicate(timeout=60)
        pytest.skip("the run finished before chromium could be observed")
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    time.sleep(0.5)
    assert _chromium_of(tmp_path) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config_all.yaml"]


# ----------------------------------------------------------------------------- spreadsheet injection


HOSTILE = ["=HYPERLINK(\"http://evil.example\",\"点击\")", "+1+2", "-2+3", "@SUM(A1)", "\tTAB", "\rCR", "普通社区"]


def test_tables_never_carry_a_formula(tmp_path) -> None:
    from carecircle.maps.export import write_tables

    frame = pd.DataFrame({"name": HOSTILE, "distance_m": [-5.0, 1, 2, 3, 4, 5, 6], "code": ["-5", "+7", "1e3", "", "x", "y", "z"]})
    paths = write_tables(tmp_path, {"communities": frame})["communities"]
    with open(paths["csv"], encoding="utf-8-sig", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["name"] for r in rows] == ["'" + v for v in HOSTILE[:5]] + ["'\nCR", "普通社区"]
    assert [r["distance_m"] for r in rows] == ["-5.0", "1.0", "2.0", "3.0", "4.0", "5.0", "6.0"]
    assert [r["code"] for r in rows][:3] == ["-5", "+7", "1e3"]  # numbers written as text stay numbers
    book = load_workbook(paths["xlsx"])
    # No sheet (汇总, the data, 字段说明) holds a formula cell.
    assert not [c.coordinate for ws in book.worksheets for row in ws.iter_rows() for c in row if c.data_type == "f"]
    sheet = book["communities"]
    names = [c for c in next(sheet.iter_cols(min_col=1, max_col=1, min_row=2))]
    # The text itself, as text (a CR may come back as LF: XML's line-end handling).
    assert [c.value.replace("\r", "\n") for c in names] == [v.replace("\r", "\n") for v in HOSTILE]
    assert {c.data_type for c in names} == {"s"}
    assert [c.value for c in next(sheet.iter_cols(min_col=2, max_col=2, min_row=2))][0] == -5
    assert next(sheet.iter_cols(min_col=2, max_col=2, min_row=2))[0].data_type == "n"


@pytest.fixture(scope="module")
def hostile_run(sample, tmp_path_factory):
    """The sample district with hostile facility names and two overlapping communities."""
    root = tmp_path_factory.mktemp("hostile")
    inputs = root / "input"
    shutil.copytree(Path(sample.config).parent, inputs)
    fac = pd.read_csv(inputs / "facilities.csv", encoding="utf-8-sig", dtype=str)
    fac.loc[0, "名称"] = "=HYPERLINK(\"http://evil.example\",\"点击\")"
    fac.loc[1, "名称"] = "日间\x00照料中心甲"
    fac.loc[2, "名称"] = "\x1b[31m红色\x1b[0m日间照料"
    bad = fac.iloc[[3]].copy()
    bad["名称"], bad["经度"] = "@SUM(1+1)", ""
    pd.concat([fac, bad]).to_csv(inputs / "facilities.csv", index=False, encoding="utf-8-sig")
    com = gpd.read_file(inputs / "communities.gpkg")
    extra = com.iloc[[0]].copy()
    extra["name"] = "重叠社区"
    extra["geometry"] = extra.geometry.translate(150, 150)
    pd.concat([com, extra]).pipe(gpd.GeoDataFrame, crs=com.crs).to_file(inputs / "communities.gpkg")
    out = root / "out"
    proc = cli("run", inputs / "config.yaml", "--out", out)
    assert proc.returncode == 0, proc.stderr
    return inputs, out, proc


def test_no_output_table_holds_a_formula(hostile_run) -> None:
    _, out, _ = hostile_run
    xlsx = sorted(out.rglob("*.xlsx"))
    assert xlsx
    texts = set()
    for path in xlsx:
        for sheet in load_workbook(path).worksheets:
            for row in sheet.iter_rows():
                for cell in row:
                    assert cell.data_type != "f", (path.name, cell.coordinate, cell.value)
                    if isinstance(cell.value, str):
                        texts.add(cell.value)
    assert "=HYPERLINK(\"http://evil.example\",\"点击\")" in texts  # kept as text, whole
    for path in sorted(out.rglob("*.csv")):
        with open(path, encoding="utf-8-sig", newline="") as f:
            for row in csv.reader(f):
                for value in row:
                    assert not value.startswith(("=", "@", "\t", "\r")), (path.name, value)
    rejected = pd.read_csv(out / "rejected_facilities.csv", encoding="utf-8-sig", dtype=str)
    assert "'@SUM(1+1)" in rejected["名称"].tolist()


def test_nul_bytes_are_removed_with_a_note(hostile_run) -> None:
    _, out, _ = hostile_run
    names = gpd.read_file(out / "facilities.gpkg")["name"].tolist()
    assert "日间照料中心甲" in names  # not cut to "日间" at the NUL
    notes = json.loads((out / "summary.json").read_text())["inputs"]["facilities"]["notes"]
    assert "NUL characters removed from 1 text cell(s)" in notes


def test_overlapping_communities_are_noted(hostile_run) -> None:
    inputs, out, proc = hostile_run
    pop = gpd.read_file(out / "population.gpkg")
    com = gpd.read_file(inputs / "communities.gpkg").to_crs(pop.crs)
    # Independently: points that a plain spatial join puts in two or more communities.
    per_point = gpd.sjoin(pop, com, predicate="intersects").index.value_counts()
    expected = int((per_point > 1).sum())
    assert expected > 0
    notes = json.loads((out / "summary.json").read_text())["inputs"]["communities"]["notes"]
    note = next(n for n in notes if n.startswith("implausible:"))
    head = f"implausible: {expected} population point(s) fall in two or more overlapping communities; each is counted once, in "
    assert note.startswith(head)
    got = dict(part.rsplit(" (", 1) for part in note.removeprefix(head).split(", "))
    assert sum(int(n.rstrip(")")) for n in got.values()) == expected
    assert set(got) <= set(com["name"])
    assert note in proc.stderr


def test_summary_is_strict_json_and_the_terminal_gets_no_escape(hostile_run) -> None:
    _, out, proc = hostile_run

    def no_constant(name):
        raise AssertionError(f"{name} in summary.json")

    json.loads((out / "summary.json").read_text(), parse_constant=no_constant)
    assert "\x1b" not in proc.stderr and "\x1b" not in proc.stdout


# ----------------------------------------------------------------------------- terminal


def test_markup_in_a_path_prints_literally(tmp_path) -> None:
    """Today: rich reads `[/bold]` in the message as a closing tag and the handler crashes (exit 1)."""
    proc = cli("check", tmp_path / "配置[/bold].yaml")
    line = assert_one_line_error(proc, "[/bold]")
    assert "config file not found" in line


def test_escape_sequences_from_input_are_stripped(sample, tmp_path) -> None:
    cfg = _config(sample, tmp_path, **{"facilities.path": str(tmp_path / "设施\x1b]0;owned\x07\x1b[2J.csv")})
    proc = cli("check", cfg)
    line = assert_one_line_error(proc, "设施", ".csv", "file not found")
    assert "\x1b" not in proc.stderr and "\x07" not in proc.stderr and "owned" not in line


def test_profile_title_with_markup_is_printed_as_is(sample, tmp_path) -> None:
    (tmp_path / "my.yaml").write_text("extends: wuxi\ntitle: \"[/bold] 测试[red]\"\n", encoding="utf-8")
    proc = cli("check", _config(sample, tmp_path, profile="my.yaml"), cwd=Path("/"))
    assert proc.returncode == 0, proc.stderr
    assert "[/bold] 测试[red]" in proc.stderr


# ----------------------------------------------------------------------------- every value checked


BAD_VALUES = [
    ("walk.minutes", float("inf")), ("walk.minutes", float("nan")), ("walk.minutes", 1e308), ("walk.minutes", -1),
    ("walk.speed_kmh", float("inf")), ("walk.speed_kmh", 0), ("walk.distance_m", 1e308),
    ("walk.rings_minutes", [5, float("nan")]), ("walk.rings_minutes", [float("inf")]),
    ("network.max_snap_m", float("inf")), ("network.max_snap_m", 1e308),
    ("network.min_component_nodes", 1e308), ("population.elderly_share", float("nan")),
]


@pytest.mark.parametrize("key, value", BAD_VALUES, ids=[f"{k}={v}" for k, v in BAD_VALUES])
def test_every_numeric_key_is_finite_and_in_range(sample, tmp_path, key, value) -> None:
    path = _config(sample, tmp_path)
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    section, name = key.split(".")
    data[section].pop("minutes" if name == "distance_m" else "_", None)
    data[section].pop("speed_kmh" if name == "distance_m" else "_", None)
    data[section][name] = value
    with pytest.raises(InputError, match=key.replace(".", r"\.")):
        parse_config(data, path=path)


@pytest.mark.parametrize("lon, lat", [(0, 0), (float("nan"), 31.5), (120.3, float("inf")), (1e308, 31.5)])
def test_scenario_coordinates_are_checked(sample, tmp_path, lon, lat) -> None:
    path = _config(sample, tmp_path)
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    data["scenario"] = {"add": [{"name": "规划日照", "type": "日间照料中心", "lon": lon, "lat": lat, "crs": "gcj02"}]}
    with pytest.raises(InputError, match=r"scenario\.add\.0"):
        parse_config(data, path=path)


def test_walk_minutes_inf_is_exit_2_not_a_run(sample, tmp_path) -> None:
    """Today: exit 0, 100 % covered and `Infinity` in summary.json."""
    path = _config(sample, tmp_path)
    path.write_text(path.read_text(encoding="utf-8").replace("minutes: 15", "minutes: .inf"), encoding="utf-8")
    assert "minutes: .inf" in path.read_text(encoding="utf-8")
    proc = cli("run", path, "--out", tmp_path / "out")
    assert_one_line_error(proc, "walk.minutes", "finite")
    assert not (tmp_path / "out").exists()


def test_no_elderly_or_no_people_names_the_layer(sample, tmp_path) -> None:
    import rasterio

    from carecircle.layers.population import read_population_raster

    with pytest.raises(InputError, match="population.tif: population: no elderly"):
        read_population_raster(sample.population, target_crs="EPSG:4549", elderly_share=0)
    with rasterio.open(sample.population) as src:
        profile, shape = src.profile, src.shape
    empty = tmp_path / "nodata.tif"
    with rasterio.open(empty, "w", **profile) as dst:
        dst.write(np.full(shape, profile["nodata"], dtype=profile["dtype"]), 1)
    with pytest.raises(InputError, match="nodata.tif: population: no people left"):
        read_population_raster(empty, target_crs="EPSG:4549", elderly_share=0.2)


def test_a_point_with_more_than_100000_people_is_noted(tmp_path) -> None:
    from shapely.geometry import Point

    from carecircle.layers.population import read_population_points

    pts = gpd.GeoDataFrame({"人口": [500, 250_000, 120_000]}, geometry=[Point(120.3, 31.5)] * 3, crs="EPSG:4326")
    pts.to_file(tmp_path / "pop.gpkg")
    _, report = read_population_points(tmp_path / "pop.gpkg", count_field="人口", elderly_share=0.2,
                                       target_crs="EPSG:32651")
    assert "implausible: 2 point(s) with more than 100,000 people (largest 250,000); check the count field's unit" \
        in report.notes


def test_relative_profile_resolves_against_the_config_folder(sample, tmp_path) -> None:
    (tmp_path / "我的标准.yaml").write_text("extends: wuxi\nname: mine\n", encoding="utf-8")
    proc = cli("check", _config(sample, tmp_path, profile="我的标准.yaml"), cwd=Path("/"))
    assert proc.returncode == 0, proc.stderr
    assert "profile mine" in proc.stderr


@pytest.mark.parametrize("kind", ["folder", "gbk"])
def test_profile_that_is_a_folder_or_not_utf8_is_exit_2(sample, tmp_path, kind) -> None:
    target = tmp_path / "p.yaml"
    if kind == "folder":
        target.mkdir()
    else:
        target.write_bytes("extends: wuxi\ntitle: 无锡\n".encode("gbk"))
    proc = cli("check", _config(sample, tmp_path, profile="p.yaml"))
    assert_one_line_error(proc, "p.yaml", "folder" if kind == "folder" else "UTF-8")


# ----------------------------------------------------------------------------- check = what run refuses


def _with_facility_name(sample, tmp_path, name: str, row: int = 4) -> Path:
    src = Path(sample.config).parent / "facilities.csv"
    fac = pd.read_csv(src, encoding="utf-8-sig", dtype=str)
    fac.loc[row - 2, "名称"] = name  # line 1 is the header
    path = tmp_path / "设施.csv"
    fac.to_csv(path, index=False, encoding="utf-8-sig")
    return path


def test_gbk_names_are_decided_before_the_analysis(sample, tmp_path) -> None:
    fac = _with_facility_name(sample, tmp_path, "幸福🌸日间照料中心", row=4)
    cfg = _config(sample, tmp_path, **{"facilities.path": str(fac), "output.shapefile_encoding": "GBK"})
    proc = cli("check", cfg)
    assert_one_line_error(proc, "设施.csv", "line 4", "🌸", "GBK", "UTF-8", "gbk_unencodable: drop")
    proc = cli("run", cfg, "--out", tmp_path / "out")
    assert_one_line_error(proc, "设施.csv", "line 4")
    assert "可达性 coverage" not in proc.stderr  # stopped before the analysis
    drop = _config(sample, tmp_path, "drop.yaml", **{"facilities.path": str(fac), "output.shapefile_encoding": "GBK",
                                                     "output.gbk_unencodable": "drop"})
    proc = cli("check", drop)
    assert proc.returncode == 0, proc.stderr


def test_gbk_drop_removes_the_character_with_a_note(sample, tmp_path) -> None:
    from carecircle import pipeline

    fac = _with_facility_name(sample, tmp_path, "幸福🌸日间照料中心", row=4)
    cfg = load_config(_config(sample, tmp_path, **{"facilities.path": str(fac), "output.shapefile_encoding": "GBK",
                                                   "output.gbk_unencodable": "drop"}))
    _, _, inputs = pipeline.prepare_inputs(cfg, log=lambda s: None)
    assert "幸福日间照料中心" in inputs.facilities["name"].tolist()
    assert "name: 🌸 removed from 1 value(s): GBK cannot hold them (output.gbk_unencodable: drop)" \
        in inputs.reports["facilities"].notes


def test_check_loads_the_layers_like_run(sample, tmp_path) -> None:
    proc = cli("check", _config(sample, tmp_path, **{"facilities.name": "没有这一列"}))
    assert_one_line_error(proc, "没有这一列")


def test_check_accepts_gaode_and_baidu(sample, tmp_path) -> None:
    proc = cli("check", _config(sample, tmp_path, **{"facilities.crs": "gaode"}))
    assert proc.returncode == 0, proc.stderr


def test_check_wants_the_tianditu_key(sample, tmp_path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "TIANDITU_TOKEN"}
    proc = subprocess.run([sys.executable, "-m", "carecircle", "check", str(_config(sample, tmp_path, **{"output.basemap": "tianditu"}))],
                          capture_output=True, text=True, env=env)
    assert_one_line_error(proc, "TIANDITU_TOKEN")


def test_check_with_out_checks_the_output_folder(sample, tmp_path) -> None:
    docs = tmp_path / "文档"
    docs.mkdir()
    (docs / "重要文件.docx").write_text("mine")
    proc = cli("check", _config(sample, tmp_path), "--out", docs)
    assert_one_line_error(proc, "重要文件.docx")


def test_the_package_field_table_holds_no_formula(tmp_path) -> None:
    """A user profile's label is text in shp/fields.csv and fields.xlsx, never a formula."""
    from shapely.geometry import Point

    from carecircle.maps.export import write_package

    gdf = gpd.GeoDataFrame({"name": ["=1+1"]}, geometry=[Point(500000, 3500000)], crs="EPSG:4549")
    result = write_package(tmp_path, {"communities": gdf}, crs="EPSG:4549", labels={"name": ("=HYPERLINK(\"x\")", "@x")})
    sheet = load_workbook(result["fields_xlsx"]).worksheets[0]
    assert "f" not in {c.data_type for row in sheet.iter_rows() for c in row}
    assert "=HYPERLINK(\"x\")" in {c.value for row in sheet.iter_rows() for c in row}
    with open(result["fields_csv"], encoding="utf-8-sig", newline="") as f:
        assert not any(v.startswith(("=", "@")) for row in csv.reader(f) for v in row)


def test_gdal_error_on_a_full_disk_is_exit_2(sample, tmp_path, monkeypatch) -> None:
    """GDAL says 'write failed', not ENOSPC: the run asks the disk and names the folder."""
    from carecircle import pipeline

    usage = shutil.disk_usage(tmp_path)

    def full(out, *a, **k):
        monkeypatch.setattr(outdir.shutil, "disk_usage", lambda p: usage._replace(free=4096))
        raise RuntimeError("GDAL: write failed")

    monkeypatch.setattr(pipeline, "write_outputs", full)
    cfg = load_config(_config(sample, tmp_path, **{"output.formats": ["communities"]}))
    with pytest.raises(InputError, match="disk is full"):
        pipeline.run(cfg, tmp_path / "out", log=lambda s: None)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.yaml"]


def test_an_unreadable_input_is_not_blamed_on_the_output(tmp_path) -> None:
    err = PermissionError(errno.EACCES, "Permission denied", "/data/设施.csv")
    assert outdir.write_failure(err, tmp_path / "out", tmp_path / ".out.partial-1-x") is None
    err = PermissionError(errno.EACCES, "Permission denied", str(tmp_path / ".out.partial-1-x" / "map.html"))
    assert "cannot write" in str(outdir.write_failure(err, tmp_path / "out", tmp_path / ".out.partial-1-x"))


def test_check_out_sees_a_full_disk(tmp_path, monkeypatch) -> None:
    usage = shutil.disk_usage(tmp_path)
    outdir.check_writable(tmp_path / "new" / "out")
    monkeypatch.setattr(outdir.shutil, "disk_usage", lambda p: usage._replace(free=0))
    with pytest.raises(InputError, match="disk is full"):
        outdir.check_writable(tmp_path / "new" / "out")
    assert not (tmp_path / "new").exists()
