"""Hypothesis over the config and CLI surface: hostile types, ranges, special floats and paths.

Whatever a user types, `carecircle check` and `carecircle run` answer with exit 0 or with one
line and exit 2 — never exit 1, never a traceback — and no file outside the output folder is
ever deleted or changed.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import signal
import sys
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from carecircle import cli
from carecircle.layers.sample import generate_sample

KEYS = [
    "walk.minutes", "walk.speed_kmh", "walk.distance_m", "walk.rings_minutes", "network.max_snap_m",
    "network.min_component_nodes", "population.elderly_share", "population.raster", "facilities.path",
    "facilities.crs", "facilities.x", "facilities.encoding", "communities.name_field", "profile",
    "output.shapefile_crs", "output.shapefile_encoding", "output.basemap", "output.lang", "output.gbk_unencodable",
    "scenario.add", "scenario.remove", "network", "walk",
]
SPECIAL_TEXT = ["", ".", "/", "..", "~", ".inf", "-.inf", ".nan", "1e308", "[/bold]", "[red]x[/red]", "\x1b[31m红\x1b[0m",
                "\x1b]0;title\x07", "gaode", "baidu", "GBK", "UTF-8", "tianditu", "EPSG:4549", "national", "wuxi",
                "不存在.yaml", "config.yaml", "../input", "=HYPERLINK(\"x\")", "名称", "a\x00b"]
value = st.recursive(
    st.one_of(
        st.floats(allow_nan=True, allow_infinity=True),
        st.sampled_from([0, -1, 1, 15, 1e308, -1e308, 2**63, 0.5, 4.0]),
        st.integers(-10**12, 10**12),
        st.booleans(),
        st.none(),
        st.sampled_from(SPECIAL_TEXT),
        st.text(max_size=6),
    ),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.sampled_from(["lon", "lat", "name", "type", "x"]), inner, max_size=3)),
    max_leaves=4,
)
number = st.one_of(st.floats(0.1, 60), st.floats(allow_nan=True, allow_infinity=True),
                   st.sampled_from([0, -1, 1e308, 2**63, True, "15", ".inf"]))
#: Per key, values a user might type: mostly plausible, some hostile; then anything at all.
PLAUSIBLE = {
    "walk.minutes": number, "walk.speed_kmh": number, "network.max_snap_m": number,
    "network.min_component_nodes": st.one_of(st.integers(-5, 10**7), number),
    "walk.rings_minutes": st.lists(number, max_size=3),
    "population.elderly_share": st.one_of(st.floats(0, 1), number),
    "facilities.crs": st.sampled_from(["gcj02", "gaode", "baidu", "wgs84", "EPSG:4549", "高德", "epsg:99999", "[/bold]"]),
    "facilities.path": st.sampled_from(["facilities.csv", "facilities_gbk.csv", "communities.gpkg", ".", "missing.csv",
                                        "/", "population.tif", "\x1b[31mx.csv"]),
    "population.raster": st.sampled_from(["population.tif", "elderly.tif", "facilities.csv", ".", "none.tif"]),
    "profile": st.sampled_from(["wuxi", "national", "kunshan", "nosuch", "config.yaml", ".", "/", "p.yml", "[/bold].yaml"]),
    "output.shapefile_encoding": st.sampled_from(["GBK", "UTF-8", "gbk", "latin1"]),
    "output.basemap": st.sampled_from(["osm", "amap", "tianditu", "google"]),
    "output.shapefile_crs": st.sampled_from(["auto", "EPSG:4490", "gcj02", "EPSG:4549", "[red]"]),
}
change = st.sampled_from(KEYS).flatmap(
    lambda k: st.tuples(st.just(k), st.one_of(PLAUSIBLE[k], value) if k in PLAUSIBLE else value))
scenario = st.fixed_dictionaries({"name": st.sampled_from(["规划A", "[/b]", ""]), "type": st.just("日间照料中心"),
                                  "lon": st.one_of(st.floats(119.5, 121), number), "lat": st.one_of(st.floats(31, 32), number)})
OUTS = ["new", ".", "/", "input", "docs", "afile", "below-file", "markup", "home", "earlier"]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A work folder with the sample inputs, a planner's folder, a home and a file — all to be kept."""
    root = tmp_path_factory.mktemp("fuzz")
    sample = generate_sample(root / "input")
    (root / "docs").mkdir()
    (root / "docs" / "重要文件.docx").write_bytes(b"keep me")
    (root / "home").mkdir()
    (root / "home" / "notes.txt").write_text("keep me")
    (root / "afile").write_text("keep me")
    (root / "cwd").mkdir()
    (root / "cwd" / "mine.txt").write_text("keep me")
    return root, Path(sample.config)


def _snapshot(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*")
            if p.is_file() and not p.relative_to(root).as_posix().startswith(("runs/", "cwd/runs/"))}


def _main(argv: list[str]) -> tuple[int, str]:
    """``carecircle ARGV`` in this process: (exit code, stderr + stdout)."""
    err, out = io.StringIO(), io.StringIO()
    saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    old_argv = sys.argv
    sys.argv = ["carecircle", *argv]
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
            try:
                cli.main()
                code = 0
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        sys.argv = old_argv
        for s, h in saved.items():
            signal.signal(s, h)
    return code, err.getvalue() + out.getvalue()


@settings(max_examples=int(os.environ.get("CARECIRCLE_FUZZ_EXAMPLES", 40)), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(changes=st.lists(change, min_size=0, max_size=2),
       add=st.one_of(st.none(), st.lists(scenario, min_size=1, max_size=2)),
       command=st.sampled_from(["check", "run"]), out=st.sampled_from(OUTS))
def test_every_value_gets_exit_0_or_one_line_exit_2(world, monkeypatch, changes, add, command, out) -> None:
    root, sample_config = world
    data = yaml.safe_load(sample_config.read_text(encoding="utf-8"))
    for key, v in changes:
        *parents, last = key.split(".")
        node = data
        for p in parents:
            node = node.setdefault(p, {}) if isinstance(node.get(p, {}), dict) else {}
        node[last] = v
    if add is not None:
        data["scenario"] = {"add": add}
    if command == "run":
        data.setdefault("output", {})
        if isinstance(data["output"], dict):
            data["output"]["formats"] = ["summary"]  # the analysis, without the slow renderers
    config = root / "input" / "fuzz.yaml"
    config.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    target = {"new": root / "runs" / "new", ".": Path("."), "/": Path("/"), "input": root / "input",
              "docs": root / "docs", "afile": root / "afile", "below-file": root / "afile" / "out",
              "markup": root / "runs" / "[/bold]\x1b[2J", "home": root / "home", "earlier": root / "runs" / "new"}[out]
    monkeypatch.setenv("HOME", str(root / "home"))
    monkeypatch.chdir(root / "cwd")
    before = _snapshot(root)
    argv = [command, str(config), "--out", str(target)]
    code, text = _main(argv)
    assert code in (0, 2), text
    assert "Traceback" not in text and "internal error" not in text, text
    if code == 2:
        errors = [line for line in text.splitlines() if "error:" in line]
        assert len(errors) == 1, text
    assert "\x1b" not in text
    after = _snapshot(root)
    for name, content in before.items():
        assert after.get(name) == content, f"{name} was changed or deleted ({argv})"
    assert not list(root.rglob(".*.partial-*"))
    if code == 0 and command == "run":
        assert (target / "summary.json").is_file()
    shutil.rmtree(root / "runs" / "[/bold]\x1b[2J", ignore_errors=True)
