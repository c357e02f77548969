"""The command line: exit codes, one-line errors, help that teaches."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from clitools import assert_one_line_error, cli


@pytest.fixture(scope="module")
def sample(sample_district):
    return sample_district


def test_help_lists_the_subcommands() -> None:
    proc = cli("--help")
    assert proc.returncode == 0
    for word in ("run", "demo", "sample", "check", "compare", "profiles"):
        assert word in proc.stdout


def test_version() -> None:
    from carecircle import __version__

    proc = cli("--version")
    assert proc.returncode == 0 and proc.stdout.strip() == f"carecircle {__version__}"


def test_profiles_lists_the_six_profiles() -> None:
    proc = cli("profiles")
    assert proc.returncode == 0
    names = {line.split()[0] for line in proc.stdout.splitlines() if line.strip()}
    assert names >= {"national", "kunshan", "rugao", "wuxi", "tongxiang", "shijiazhuang"}


def test_check_accepts_the_sample_config(sample) -> None:
    proc = cli("check", str(sample.config))
    assert proc.returncode == 0, proc.stderr
    assert "wuxi" in proc.stderr


def test_missing_config_exits_2(tmp_path: Path) -> None:
    assert_one_line_error(cli("run", str(tmp_path / "nope.yaml"), "--out", str(tmp_path / "o")), "nope.yaml")


def test_misspelt_key_exits_2(sample, tmp_path: Path) -> None:
    data = yaml.safe_load(sample.config.read_text(encoding="utf-8"))
    data["walk"] = {"minuts": 15}
    bad = sample.config.with_name("bad.yaml")
    bad.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    assert_one_line_error(cli("check", str(bad)), "bad.yaml", "walk.minuts")


def test_facility_file_without_coordinates_exits_2_and_leaves_no_output(sample, tmp_path: Path) -> None:
    data = yaml.safe_load(sample.config.read_text(encoding="utf-8"))
    broken = sample.out_dir / "no_coords.csv"
    broken.write_text("名称,类型\n甲日间照料中心,日间照料中心\n", encoding="utf-8")
    data["facilities"] = {"path": broken.name, "crs": "gcj02"}
    cfg = sample.config.with_name("broken.yaml")
    cfg.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    out = tmp_path / "run"
    assert_one_line_error(cli("run", str(cfg), "--out", str(out)), "no_coords.csv")
    assert not out.exists()
    assert not any(p.name.startswith(".run.partial") for p in tmp_path.iterdir())


def test_bad_option_value_exits_2(sample, tmp_path: Path) -> None:
    assert_one_line_error(cli("run", str(sample.config), "--out", str(tmp_path / "o"), "--lang", "fr"), "--lang")
