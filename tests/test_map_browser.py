"""map.html in a real browser: headless Debian chromium opens the offline map with the
network cut, and the page itself reports JavaScript errors, the layer control's entries and
what a hostile facility name turns into once its popup and tooltip are open."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from matplotlib import image as mpimg

from carecircle.maps import html as H
from fixtures_maps import CHROMIUM, EVIL, browser_probe, chromium, layer_names, map_args, small_inputs

pytestmark = pytest.mark.browser

if CHROMIUM is None:
    pytest.skip("no chromium: install Debian's chromium (.ci/run does) to run the browser test", allow_module_level=True)


@pytest.fixture(scope="module")
def map_file(tmp_path_factory) -> Path:
    m = H.build_map(**map_args(small_inputs(), title="测试地图", cluster_threshold=2))
    return H.write_map(m, tmp_path_factory.mktemp("map") / "map.html", offline=True)


def test_map_runs_without_errors_and_lists_its_layers(map_file, tmp_path):
    page = map_file.read_text(encoding="utf-8")
    result = browser_probe(map_file, tmp_path)
    assert result.get("exception") is None
    assert result["errors"] == []
    assert result["leaflet"] == "object"
    assert result["layers"] == layer_names(page)
    assert "社区（按最严重问题着色）" in result["layers"] and "助餐点（3）" in result["layers"]
    # The hostile name is shown as text; no element was built from it, no handler ran.
    assert EVIL in result["popup_text"] and result["popup_imgs"] == 0
    assert EVIL in result["tip_text"] and result["tip_imgs"] == 0
    assert result["markers"] >= 2 and result["paths"] >= 1


def test_screenshot_is_not_blank(map_file, tmp_path):
    shot = tmp_path / "map.png"
    chromium(tmp_path, map_file.as_uri(), f"--screenshot={shot}")
    assert shot.exists(), "chromium wrote no screenshot"
    pixels = mpimg.imread(shot)[..., :3]
    assert pixels.shape[:2] == (900, 1200)
    colours = np.unique((pixels * 255).astype(np.uint8).reshape(-1, 3), axis=0)
    assert len(colours) > 50
    # With no tiles the background is Leaflet's flat grey: the overlays must cover a good part.
    background = np.all(np.abs(pixels - pixels[-5, 600]) < 0.02, axis=-1)
    assert background.mean() < 0.8
    # The communities without a day-care centre are drawn in their red (blended over grey).
    red = (pixels[..., 0] > 0.75) & (pixels[..., 1] < 0.55) & (pixels[..., 2] < 0.55)
    assert red.mean() > 0.02


def _street_share(png: Path) -> float:
    """Share of pixels in the network's greys: darker than Leaflet's empty background (#ddd),
    neutral (r ≈ g ≈ b), lighter than text; antialiased 1-px lines included."""
    pixels = (mpimg.imread(png)[..., :3] * 255).astype(int)
    neutral = (pixels.max(axis=-1) - pixels.min(axis=-1)) <= 10
    level = pixels.mean(axis=-1)
    return float((neutral & (level >= 100) & (level <= 205)).mean())


def test_streets_drawn_with_no_tiles_and_no_cdn(tmp_path):
    """The offline map, network cut: Leaflet runs from the page itself and the walk network is drawn
    as the basemap (the OSM tiles cannot load), so the screenshot shows the streets' greys."""
    from test_deliverables import grid_network

    d = small_inputs()
    net = grid_network(d["communities"], step=60.0)
    # Only the network on the map: no communities' fill over the lines.
    empty = d["communities"].iloc[0:0]
    shots = {}
    for name, network in (("with", net), ("without", None)):
        m = H.build_map(**map_args(d, communities=empty, streets=None, isochrones=None, population=None,
                                   network=network))
        path = H.write_map(m, tmp_path / f"{name}.html", offline=True)
        page = path.read_text(encoding="utf-8")
        assert "<script src=" not in page and 'rel="stylesheet" href="http' not in page
        if name == "with":
            result = browser_probe(path, tmp_path)
            assert result["errors"] == [] and result["leaflet"] == "object"
            assert "路网（步行）" in result["layers"]
        shots[name] = tmp_path / f"{name}.png"
        chromium(tmp_path, path.as_uri(), f"--screenshot={shots[name]}")
        assert shots[name].exists()
    drawn, blank = _street_share(shots["with"]), _street_share(shots["without"])
    # A 60 m grid over the district: a few percent of the window is street; the map without
    # the network has only the legend's and controls' few grey pixels.
    assert drawn > 0.02 and drawn > 5 * blank, (drawn, blank)
