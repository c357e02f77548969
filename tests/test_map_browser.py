"""map.html in a real browser: headless Debian chromium opens the offline map with the
network cut, and the page itself reports JavaScript errors, the layer control's entries and
what a hostile facility name turns into once its popup and tooltip are open."""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from matplotlib import image as mpimg

from carecircle.maps import html as H
from fixtures_maps import EVIL, small_inputs

pytestmark = pytest.mark.browser

CHROMIUM = next((p for p in (shutil.which("chromium"), shutil.which("chromium-browser"), "/usr/bin/chromium")
                 if p and Path(p).exists()), None)
if CHROMIUM is None:
    pytest.skip("no chromium: install Debian's chromium (.ci/run does) to run the browser test", allow_module_level=True)

# Collects errors before any other script runs; alert() counts as one (an injected handler firing).
COLLECT = """<script>window.__errors=[];
window.onerror=function(m,s,l){window.__errors.push(String(m)+' line '+l);};
window.addEventListener('unhandledrejection',function(e){window.__errors.push('rejection '+e.reason);});
window.alert=function(x){window.__errors.push('alert '+x);};</script>"""
# After load: the layer control's entries, then open the popup and tooltip of the marker whose
# name is hostile, and write everything into the DOM for --dump-dom.
REPORT = """<script>window.addEventListener('load',function(){setTimeout(function(){
var r={leaflet:typeof L};
try{
 r.layers=Array.prototype.map.call(document.querySelectorAll('.leaflet-control-layers-list label > span > span'),
   function(s){return s.textContent.trim();});
 var evil=null;
 Object.keys(window).filter(function(k){return k.indexOf('geo_json_')===0;}).forEach(function(k){
   var g=window[k]; if(!g||!g.eachLayer)return;
   g.eachLayer(function(l){var p=l.feature&&l.feature.properties;
     if(!evil&&l.getLatLng&&p&&p._popup&&p._tip.indexOf('onerror')>=0){evil=l;}});});
 if(evil){
   evil.fire('click',{latlng:evil.getLatLng()},true);
   var pc=document.querySelector('.leaflet-popup-content');
   r.popup_text=pc&&pc.textContent; r.popup_imgs=pc?pc.querySelectorAll('img').length:-1;
   evil.fire('mouseover',{latlng:evil.getLatLng()},true);
   var tc=document.querySelector('.leaflet-tooltip');
   r.tip_text=tc&&tc.textContent; r.tip_imgs=tc?tc.querySelectorAll('img').length:-1;}
 r.paths=document.querySelectorAll('.leaflet-overlay-pane canvas, .leaflet-overlay-pane path').length;
 r.markers=document.querySelectorAll('.leaflet-marker-pane .cc-icon').length;
}catch(e){r.exception=String(e);}
r.errors=window.__errors;
var o=document.createElement('pre');o.id='cc-result';o.textContent=JSON.stringify(r);document.body.appendChild(o);
},800);});</script>"""


def chromium(tmp_path: Path, url: str, *extra: str) -> subprocess.CompletedProcess:
    cmd = [
        CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}",
        # No network at all: the offline map must not need it (tiles simply stay blank).
        "--host-resolver-rules=MAP * ~NOTFOUND",
        "--virtual-time-budget=5000", "--window-size=1200,900", *extra, url,
    ]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=180)


@pytest.fixture(scope="module")
def map_file(tmp_path_factory) -> Path:
    d = small_inputs()
    m = H.build_map(facilities=d["facilities"], communities=d["communities"], streets=d["streets"],
                    isochrones=d["isochrones"], population=d["population"], services=d["services"],
                    cutoff_m=d["cutoff_m"], title="测试地图", cluster_threshold=2)
    return H.write_map(m, tmp_path_factory.mktemp("map") / "map.html", offline=True)


def test_map_runs_without_errors_and_lists_its_layers(map_file, tmp_path):
    page = map_file.read_text(encoding="utf-8")
    probe = tmp_path / "probe.html"
    probe.write_text(page.replace("<head>", "<head>" + COLLECT, 1).replace("</body>", REPORT + "</body>", 1), encoding="utf-8")
    run = chromium(tmp_path, probe.as_uri(), "--dump-dom")
    found = re.search(r'<pre id="cc-result">(.*?)</pre>', run.stdout, re.S)
    assert found, f"the page did not report back; chromium stderr: {run.stderr[-2000:]}"
    result = json.loads(html.unescape(found.group(1)))
    assert result.get("exception") is None
    assert result["errors"] == []
    assert result["leaflet"] == "object"
    assert result["layers"] == H.layer_names(page)
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
