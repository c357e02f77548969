"""The Python API: the README's example runs as written, and `import carecircle` stays light."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pyogrio
import pytest

import carecircle

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_example() -> str:
    """The ```python block of the README's "Python API" section."""
    section = README.read_text(encoding="utf-8").split("\n## Python API\n", 1)[1].split("\n## ", 1)[0]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_readme_example_finds_the_documented_gaps(tmp_path, monkeypatch, capsys, sample_district):
    monkeypatch.chdir(tmp_path)
    scope: dict = {}
    exec(compile(readme_example(), str(README), "exec"), scope)
    # The gaps the generator built into the district (layers/sample.py), by community.
    expected = {(g.community, g.check) for g in sample_district.gaps if g.community is not None}
    assert expected == {("春潮社区", "space"), ("丽景社区", "no_meal")}
    flagged = scope["flagged"]
    assert set(zip(flagged["name"], flagged["worst_check"])) == expected
    assert "春潮社区" in capsys.readouterr().out
    # The written layer holds every community with its flags.
    written = pyogrio.read_dataframe(tmp_path / "communities.gpkg")
    assert sorted(written["name"]) == sorted(scope["communities"]["name"])
    assert set(written.loc[written["n_flags"] > 0, "name"]) == {c for c, _ in expected}


def test_names_resolve_to_the_stage_functions():
    from carecircle.coverage import analysis
    from carecircle.layers import osm
    from carecircle.maps import export

    assert carecircle.read_osm is osm.read_osm
    assert carecircle.analyse is analysis.analyse
    assert carecircle.write_geopackage is export.write_geopackage
    assert {"read_facilities", "analyse", "write_map", "run"} <= set(dir(carecircle))
    with pytest.raises(AttributeError, match="no attribute 'nonsense'"):
        carecircle.nonsense  # noqa: B018


def _modules_after(statement: str) -> set[str]:
    code = f"import sys; {statement}; print(' '.join(sorted(sys.modules)))"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(proc.stdout.split())


HEAVY = {"folium", "branca", "matplotlib", "rasterio", "osmnx", "networkx", "fontTools"}


def test_import_carecircle_loads_no_stage():
    loaded = _modules_after("import carecircle")
    assert not loaded & (HEAVY | {"numpy", "pandas", "geopandas", "shapely", "scipy"})


def test_command_line_loads_no_analysis_library():
    # `carecircle --help` must start fast: the analysis stack loads with the subcommand.
    loaded = _modules_after("import carecircle.cli")
    assert not loaded & (HEAVY | {"numpy", "pandas", "geopandas", "shapely", "scipy", "pyproj"})


def test_table_only_pipeline_loads_no_map_raster_or_download_library():
    loaded = _modules_after("import carecircle.pipeline")
    assert not loaded & HEAVY
