"""Run-config validation: the public keys, path resolution and one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from carecircle.config import load_config, parse_config
from carecircle.coverage.profile import load_profile
from carecircle.errors import InputError
from carecircle.pipeline import resolve_walk

# The form the pipeline issue fixes as the public interface.
PUBLIC_FORM = """
profile: wuxi
network: {lines: roads.gpkg}
facilities: {path: fac.csv, crs: EPSG:32650, x: x, y: y, name: 名称, type: 类型, floor_area: 建筑面积}
population: {points: pop.gpkg, count_field: people, elderly_field: elderly}
communities: {path: com.gpkg, name_field: name, street_field: street, households_field: households,
              elderly_field: elderly, built_year_field: built_year}
walk: {distance_m: 1000}
output: {formats: [summary, population], shapefile_crs: EPSG:4549, shapefile_encoding: GBK}
"""


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    for name in ("roads.gpkg", "fac.csv", "pop.gpkg", "com.gpkg"):
        (tmp_path / name).write_bytes(b"")
    return tmp_path


def write(folder: Path, text: str, name: str = "run.yaml") -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def test_public_form_parses_and_resolves_paths(folder: Path) -> None:
    cfg = load_config(write(folder, PUBLIC_FORM))
    assert cfg.profile == "wuxi"
    assert cfg.network.lines == folder.resolve() / "roads.gpkg"
    assert cfg.facilities.columns() == {"x": "x", "y": "y", "name": "名称", "type": "类型", "floor_area": "建筑面积"}
    assert cfg.facilities.crs == "EPSG:32650"
    assert cfg.population.points == folder.resolve() / "pop.gpkg"
    assert cfg.output.formats == ["summary", "population"]
    assert cfg.output.shapefile_encoding == "GBK"
    assert cfg.wants("summary") and cfg.wants("population") and not cfg.wants("map")


def test_relative_paths_follow_the_config_not_the_cwd(folder: Path, monkeypatch) -> None:
    sub = folder / "configs"
    sub.mkdir()
    text = PUBLIC_FORM.replace("roads.gpkg", "../roads.gpkg").replace("fac.csv", "../fac.csv") \
        .replace("pop.gpkg", "../pop.gpkg").replace("com.gpkg", "../com.gpkg")
    monkeypatch.chdir("/")
    cfg = load_config(write(sub, text))
    assert cfg.communities.path.resolve() == (folder / "com.gpkg").resolve()


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (lambda d: d["walk"].update(distanc_m=1), "walk.distanc_m: unknown key"),
        (lambda d: d["walk"].update(minutes=15), "walk: give distance_m or minutes/speed_kmh, not both"),
        (lambda d: d.pop("facilities"), "facilities: required key is missing"),
        (lambda d: d["network"].update(osm="x.osm"), "network: give exactly one of osm, lines, place, bbox"),
        (lambda d: d["population"].pop("count_field"), "population: points needs count_field"),
        (lambda d: d["population"].pop("elderly_field"), "population: say how many are elderly"),
        (lambda d: d["output"].update(formats=["summary", "pdf"]), "output.formats: unknown format(s) ['pdf']"),
        (lambda d: d["output"].update(shapefile_encoding="latin1"), "output.shapefile_encoding"),
        (lambda d: d["facilities"].update(path="nope.csv"), "facilities.path: file not found"),
    ],
)
def test_errors_name_the_file_and_key(folder: Path, edit, expected: str) -> None:
    data = yaml.safe_load(PUBLIC_FORM)
    edit(data)
    path = folder / "run.yaml"
    with pytest.raises(InputError) as err:
        parse_config(data, path=path)
    message = str(err.value)
    assert message.startswith(f"{path}: ")
    assert expected in message
    assert "\n" not in message


def test_yaml_syntax_error_gives_the_line(folder: Path) -> None:
    path = write(folder, "profile: wuxi\nnetwork: {lines: roads.gpkg\nfacilities: 3\n")
    with pytest.raises(InputError, match=r"run\.yaml: line \d+: not valid YAML"):
        load_config(path)


def test_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="config file not found"):
        load_config(tmp_path / "absent.yaml")


def test_walk_distance_and_rings(folder: Path) -> None:
    wuxi = load_profile("wuxi")
    data = yaml.safe_load(PUBLIC_FORM)
    data["walk"] = {}
    walk = resolve_walk(parse_config(data, path=folder / "run.yaml"), wuxi)
    # 15 min at 4.0 km/h (the documented default) = 1000 m; rings at 5 and 10 minutes.
    assert walk.distance_m == pytest.approx(wuxi.walk.minutes * wuxi.walk.speed_kmh * 1000 / 60)
    data["walk"] = {"minutes": 15, "speed_kmh": 3.6}
    walk = resolve_walk(parse_config(data, path=folder / "run.yaml"), wuxi)
    assert walk.distance_m == pytest.approx(900.0)
    assert walk.rings_m == pytest.approx([300.0, 600.0, 900.0])
    data["walk"] = {"distance_m": 1200}
    walk = resolve_walk(parse_config(data, path=folder / "run.yaml"), wuxi)
    assert walk.distance_m == 1200 and walk.minutes is None
    assert walk.rings_m == pytest.approx([400.0, 800.0, 1200.0])


@pytest.mark.parametrize(
    ("key", "value"),
    [("time_limit_s", 1e308), ("time_limit_s", 0), ("new_sites", 10**6), ("capacity", 1e12), ("floor_area", -1)],
)
def test_siting_numbers_are_in_range(folder: Path, key: str, value) -> None:
    data = yaml.safe_load(PUBLIC_FORM)
    data["siting"] = {"service": "meal", "candidates": {"generate": {"spacing_m": 100}}, "new_sites": 3, key: value}
    with pytest.raises(InputError, match=rf"siting\.{key}"):
        parse_config(data, path=folder / "run.yaml")


def test_generated_candidate_spacing_is_in_range(folder: Path) -> None:
    data = yaml.safe_load(PUBLIC_FORM)
    data["siting"] = {"service": "meal", "candidates": {"generate": {"spacing_m": 0.001}}, "new_sites": 3}
    with pytest.raises(InputError, match=r"siting\.candidates\.generate\.spacing_m"):
        parse_config(data, path=folder / "run.yaml")
