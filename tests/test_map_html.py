"""The interactive map, read back from the generated HTML: layers, escaping, GCJ-02 shift,
clustering, offline assets and the size budget."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
from shapely.geometry import Point

from carecircle.errors import InputError
from carecircle.coverage.profile import load_profile
from carecircle.maps import html as H
from carecircle.maps import labels as L
from fixtures_maps import (
    LABELS,
    EVIL, CRS, district_inputs, gcj02_reference, layer_features, layer_names, map_args, overlay_vars,
    small_inputs, web_mercator_pixel,
)

LAYERS_ZH = [
    "老年人口密度（人/公顷）",
    "步行圈（合并）：日间照料中心", "步行圈（合并）：助餐点",
    "步行圈（单个设施）：日间照料中心", "步行圈（单个设施）：助餐点",
    "社区（按最严重问题着色）", "街道边界与考核",
    "未覆盖老年人口：日间照料中心", "未覆盖老年人口：助餐点", "社区名称",
    # 2 day-care centres, 3 meal points, 1 street centre, no institution (no empty layer).
    "日间照料中心（2）", "助餐点（3）", "街道综合养老服务中心（1）",
]


@pytest.fixture(scope="module")
def inputs():
    return small_inputs()


def render(inputs, **kw) -> str:
    return H.build_map(**map_args(inputs, **kw)).get_root().render()


@pytest.fixture(scope="module")
def page(inputs):
    return render(inputs, title="新吴区 <script>x</script>")


class _Tags(HTMLParser):
    """Start tags and text of an HTML fragment, as a browser's parser would see them."""

    def __init__(self):
        super().__init__()
        self.tags, self.text = [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)

    def handle_data(self, data):
        self.text.append(data)


def parse(fragment: str) -> _Tags:
    p = _Tags()
    p.feed(fragment)
    return p


def test_layer_control_lists_every_layer_in_chinese(page):
    assert layer_names(page) == ["OpenStreetMap", *LAYERS_ZH]
    assert list(overlay_vars(page)) == LAYERS_ZH


def test_layer_names_in_english(inputs):
    names = layer_names(render(inputs, lang="en"))
    assert "communities by worst failed check" in names
    assert "day care (2)" in names and "walking circle (dissolved): meal point" in names
    assert not any(re.search(r"[\u4e00-\u9fff]", n) for n in names)


def test_hostile_facility_name_is_text_in_popups_and_tooltips(page):
    feats = [f for fs in layer_features(page).values() for f in fs]
    hits = [f for f in feats if "onerror" in f["properties"].get("_tip", "")]
    # The day-care marker, its two walking-circle tooltips; popups and tooltips both.
    assert len(hits) >= 2
    for f in hits:
        for key in ("_tip", "_popup"):
            if key in f["properties"]:
                fragment = parse(f["properties"][key])  # what innerHTML will build
                assert "img" not in fragment.tags
                assert EVIL in "".join(fragment.text)
    # Nowhere in the page does the raw tag appear (JSON escapes < too, belt and braces).
    assert EVIL not in page
    # The title is text too.
    assert "<script>x</script>" not in page and "新吴区 &lt;script&gt;x&lt;/script&gt;" in page


def test_communities_coloured_by_worst_check(page, inputs):
    feats = layer_features(page)["社区（按最严重问题着色）"]
    colour = {parse(f["properties"]["_popup"]).text[0]: f["properties"]["_colour"] for f in feats}
    assert colour["新华社区"] == H.CHECK_COLOURS[""]
    assert colour["南星社区"] == colour["湘江社区"] == H.CHECK_COLOURS["no_day_care"]
    assert colour["锡梅社区"] == H.CHECK_COLOURS["no_meal"]
    assert colour["春潮社区"] == H.CHECK_COLOURS["space"]
    # The legend names each check present, in Chinese, as the analysis stage labels it.
    zh = L.column_labels("zh", load_profile("national"))
    for label in ("达标", zh["flag_no_day_care"], zh["flag_no_meal"], zh["flag_space"]):
        assert label in page
    assert "日间照料中心不在15分钟步行圈内" in page


def test_check_styles_give_new_checks_palette_colours_and_list_the_checks_present():
    """The map and the report colour communities with this one function."""
    fill, legend = H.check_styles(pd.Series(["space", "", "zz_new", "aa_new", "space"]), L.Labels("zh", LABELS))
    # Checks the contract does not name take the palette in key order.
    assert fill.tolist() == [H.CHECK_COLOURS["space"], H.CHECK_COLOURS[""], H.OTHER_CHECK_COLOURS[1],
                             H.OTHER_CHECK_COLOURS[0], H.CHECK_COLOURS["space"]]
    # Only the checks present, compliant first; a check nobody labels is shown by its key.
    assert legend == [("达标", H.CHECK_COLOURS[""]), (L.Labels("zh", LABELS).check("space"), H.CHECK_COLOURS["space"]),
                      ("aa_new", H.OTHER_CHECK_COLOURS[0]), ("zz_new", H.OTHER_CHECK_COLOURS[1])]


def test_uncovered_points_are_those_beyond_the_cutoff():
    x, y = 320000.0, 3490000.0
    dist = [500.0, 1000.0, 1000.1, np.nan, np.inf, 10.0]
    elderly = [3.0, 3.0, 4.0, 5.0, 6.0, 0.0]
    pop = gpd.GeoDataFrame({"people": [10.0] * 6, "elderly": elderly, "dist_day_care_m": dist,
                            "dist_meal_m": [0.0] * 6},
                           geometry=[Point(x + 100 * i, y) for i in range(6)], crs=CRS)
    d = small_inputs()
    page = render(d, population=pop, isochrones=None, streets=None)
    layers = layer_features(page)
    # 1000.1 m, unreachable (NaN) and inf are outside a 1000 m circle; 0 elderly is not drawn.
    uncovered = layers["未覆盖老年人口：日间照料中心"]
    assert len(uncovered) == 3
    assert sorted(parse(f["properties"]["_tip"]).text[0] for f in uncovered) == [
        "老年人口（60+） 4 · 至日间照料中心步行距离（m） 1,000 m", "老年人口（60+） 5 · 至日间照料中心步行距离（m） 不可达",
        "老年人口（60+） 6 · 至日间照料中心步行距离（m） 不可达"]
    assert "未覆盖老年人口：助餐点" not in layers  # everyone has a meal point at 0 m


def _facility_point(page: str, layer: str) -> tuple[float, float]:
    feats = layer_features(page)[layer]
    (f,) = [f for f in feats if "onerror" in f["properties"]["_tip"]]
    return tuple(f["geometry"]["coordinates"])


def test_amap_overlay_lands_on_the_basemap_pixel(inputs):
    """Amap draws a place at its GCJ-02 coordinate. The overlay vertex of a facility at WGS-84
    (lon, lat) must fall on the same zoom-18 tile pixel as the GCJ-02 position computed by an
    independent implementation; on OSM it must stay at its WGS-84 pixel."""
    fac = inputs["facilities"]
    row = fac[fac["name"] == EVIL].iloc[0]
    wgs = (row["lon"], row["lat"])
    gcj = gcj02_reference(*wgs)
    layer = "日间照料中心（2）"
    amap_xy = _facility_point(render(inputs, basemap="amap"), layer)
    osm_xy = _facility_point(render(inputs, basemap="osm"), layer)
    z = 18
    px_amap, px_gcj = web_mercator_pixel(*amap_xy, z), web_mercator_pixel(*gcj, z)
    assert abs(px_amap[0] - px_gcj[0]) < 1 and abs(px_amap[1] - px_gcj[1]) < 1
    px_osm, px_wgs = web_mercator_pixel(*osm_xy, z), web_mercator_pixel(*wgs, z)
    assert abs(px_osm[0] - px_wgs[0]) < 1 and abs(px_osm[1] - px_wgs[1]) < 1
    # The shift is real: in Wuxi GCJ-02 is several hundred metres (hundreds of pixels) off.
    assert np.hypot(px_gcj[0] - px_wgs[0], px_gcj[1] - px_wgs[1]) > 300


def test_amap_shifts_polygons_too_and_only_amap(inputs):
    com = inputs["communities"]
    corner = np.asarray(com.geometry.iloc[0].exterior.coords[0])
    wgs = gpd.GeoSeries([Point(corner)], crs=CRS).to_crs(4326).iloc[0]
    gcj = gcj02_reference(wgs.x, wgs.y)

    def nearest_vertex(page, target):
        feats = layer_features(page)["社区（按最严重问题着色）"]
        ring = np.asarray(feats[0]["geometry"]["coordinates"][0])
        return ring[np.argmin(np.hypot(*(ring - target).T))]

    for basemap, expected in (("amap", gcj), ("osm", (wgs.x, wgs.y)), ("tianditu", (wgs.x, wgs.y))):
        kw = {"tianditu_token": "0123456789abcdef0123456789abcdef"} if basemap == "tianditu" else {}
        got = nearest_vertex(render(inputs, basemap=basemap, **kw), np.asarray(expected))
        assert np.allclose(got, expected, atol=2e-6), basemap


def test_basemap_tiles(inputs, monkeypatch):
    assert "autonavi.com" in render(inputs, basemap="amap")
    assert "openstreetmap" in render(inputs).lower()
    monkeypatch.delenv(H.TIANDITU_TOKEN_ENV, raising=False)
    with pytest.raises(InputError, match="TIANDITU_TOKEN"):
        render(inputs, basemap="tianditu")
    monkeypatch.setenv(H.TIANDITU_TOKEN_ENV, "abc123")
    with pytest.raises(InputError, match="32 hexadecimal"):
        render(inputs, basemap="tianditu")
    key = "4267820f43926eaf808d61dc07269beb"
    monkeypatch.setenv(H.TIANDITU_TOKEN_ENV, key)
    page = render(inputs, basemap="tianditu")
    assert "tianditu.gov.cn/vec_w" in page and f"tk={key}" in page and "cva_w" in page
    # An intranet tile server replaces the public tiles, and needs no key.
    page = render(inputs, basemap="tianditu", tiles={"url": "http://gis.local/tiles/{z}/{x}/{y}.png",
                                                     "attribution": "市规划院"})
    assert "gis.local/tiles" in page and "tianditu.gov.cn" not in page
    assert "市规划院".encode("unicode_escape").decode() in page  # folium writes options as ASCII JSON
    with pytest.raises(InputError, match="basemap"):
        render(inputs, basemap="baidu")


def test_facility_popup_fields(page):
    feats = layer_features(page)["街道综合养老服务中心（1）"]
    text = parse(feats[0]["properties"]["_popup"]).text
    assert text[0] == "梅村街道综合养老服务中心"
    for label in ("类型", "建筑面积（m²）", "床位", "地址", "服务"):
        assert label in text
    assert "无锡市新吴区长江路5号" in text


def test_markers_cluster_above_threshold(inputs):
    page = render(inputs, cluster_threshold=2)
    vars_ = overlay_vars(page)
    assert vars_["助餐点（3）"].startswith("marker_cluster_")  # 3 > 2
    assert vars_["日间照料中心（2）"].startswith("feature_group_")  # 2 is not above 2
    assert len(layer_features(page)["助餐点（3）"]) == 3
    assert "leaflet.markercluster" in page
    assert "leaflet.markercluster" not in render(inputs)


def test_only_leaflet_is_loaded_and_offline_inlines_it(inputs, tmp_path):
    m = H.build_map(**{k: inputs[k] for k in ("facilities", "communities", "services", "cutoff_m")}, cluster_threshold=1)
    online = H.write_map(m, tmp_path / "map.html").read_text(encoding="utf-8")
    scripts = re.findall(r'<script src="([^"]+)"', online)
    assert [s.rsplit("/", 1)[-1] for s in scripts] == ["leaflet.js", "leaflet.markercluster.js"]
    offline = H.write_map(m, tmp_path / "offline.html", offline=True).read_text(encoding="utf-8")
    assert not re.search(r'<script[^>]+src=|<link[^>]+href="https?:', offline)
    assert "Leaflet 1.9.3" in offline and "markerClusterGroup" in offline and ".leaflet-container" in offline


def test_offline_refuses_an_asset_it_cannot_inline():
    with pytest.raises(InputError, match="not available offline"):
        H.inline_assets('<script src="https://example.invalid/x.js"></script>')


def test_density_image_covers_the_population(page, inputs):
    bounds = json.loads(re.search(r"L\.imageOverlay\(\s*\"data:image/png;base64,[^\"]+\",\s*(\[\[.*?\]\])", page, re.S).group(1))
    (south, west), (north, east) = bounds
    ll = inputs["population"].to_crs(4326)
    assert south < ll.geometry.y.min() and north > ll.geometry.y.max()
    assert west < ll.geometry.x.min() and east > ll.geometry.x.max()


def test_missing_column_is_an_input_error(inputs):
    with pytest.raises(InputError, match="worst_check"):
        render(inputs, communities=inputs["communities"].drop(columns="worst_check"))


def test_whole_district_stays_within_the_size_budget(tmp_path):
    """~200 communities with 400-vertex outlines, 600 facilities, 22,500 population cells and
    per-facility walking circles: map.html must stay under SIZE_BUDGET_BYTES."""
    d = district_inputs()
    m = H.build_map(**map_args(d))
    size = H.write_map(m, tmp_path / "map.html").stat().st_size
    offline = H.write_map(m, tmp_path / "offline.html", offline=True).stat().st_size
    print(f"district map.html: {size / 2**20:.2f} MiB online, {offline / 2**20:.2f} MiB offline")
    assert offline < H.SIZE_BUDGET_BYTES
    page = (tmp_path / "map.html").read_text(encoding="utf-8")
    vars_ = overlay_vars(page)
    # Hundreds of facilities per service: clustered.
    assert all(v.startswith("marker_cluster_") for k, v in vars_.items() if k.startswith(("日间照料中心", "助餐点")))


def test_analysis_columns_are_labelled_by_the_analysis_stage():
    prof = load_profile("wuxi")
    for lang in ("zh", "en"):
        lab = L.Labels(lang, L.analysis_labels(prof), L.profile_services(prof))
        theirs = L.column_labels(lang, prof)
        assert {c: lab.column(c) for c in theirs} == theirs
    # The maps stage labels only what it adds; the two it shares are its own layers' meaning
    # (a facility's name, a population point's elderly), used there only.
    assert set(L.COLUMN_LABELS) & set(L.column_labels("zh", load_profile("national"))) == {"name", "elderly"}
    lab = L.Labels("zh", L.analysis_labels(prof), L.profile_services(prof))
    assert lab.column("name") == "社区名称" and lab.column("name", own_first=True) == "名称"
    assert lab.column("dist_meal_m") == "至助餐点步行距离（m）"
    assert lab.check("no_meal") == "助餐点不在15分钟步行圈内" and lab.check("") == "达标"
    assert lab.check("a_new_check", "某项新检查") == "某项新检查" and lab.check("a_new_check") == "a_new_check"


def test_marker_offsets_put_a_sites_services_side_by_side():
    offered = np.array([[True, True, False], [False, True, False], [True, True, True], [False, False, True]])
    off = H.marker_offsets(offered, spacing=10.0)
    assert off[0, :2].tolist() == [-5.0, 5.0]          # two services: either side of the point
    assert off[1, 1] == 0.0 and off[3, 2] == 0.0       # one service: on the point
    assert off[2].tolist() == [-10.0, 0.0, 10.0]


def test_facility_with_two_services_is_in_both_layers_at_its_point(page):
    layers = layer_features(page)
    at = {name: [f["geometry"]["coordinates"] for f in layers[name]
                 if parse(f["properties"]["_tip"]).text[0] == "梅村日间照料中心"] for name in ("日间照料中心（2）", "助餐点（3）")}
    assert len(at["日间照料中心（2）"]) == 1 and at["日间照料中心（2）"] == at["助餐点（3）"]
    # Two icon anchors per layer pair: the shared site's markers are shifted by ∓7.5 px, the others not.
    anchors = re.findall(r'"iconAnchor": \[([-\d.]+), 9\]', page)
    assert {"1.5", "16.5", "9.0"} <= set(anchors)


def test_popups_state_failed_checks_with_standard_and_source(inputs):
    page = render(inputs, actions=inputs["actions"])
    layers = layer_features(page)
    com = {parse(f["properties"]["_popup"]).text[0]: parse(f["properties"]["_popup"]).text
           for f in layers["社区（按最严重问题着色）"]}
    zh = L.column_labels("zh", load_profile("national"))
    # The check named as the analysis labels its key; the value, the standard and its source with it.
    assert {zh["flag_no_meal"], "现状 25%，标准 50%，缺口 25%", "标准：步行1000米内老年人占比 ≥ 50%",
            "依据：无锡市养老服务设施布局规划"} <= set(com["锡梅社区"])
    assert zh["flag_space"] not in com["锡梅社区"] and zh["flag_space"] in com["春潮社区"]
    assert "达标" in com["新华社区"] and "未达标项" not in com["新华社区"]
    streets = {parse(f["properties"]["_popup"]).text[0]: parse(f["properties"]["_popup"]).text for f in layers["街道边界与考核"]}
    assert "现状 0 处，标准 1 处，缺口 1 处" in streets["旺庄街道"]
    assert "依据：《无锡市“十四五”养老服务发展规划》" in streets["旺庄街道"]
    assert "未达标项" not in streets["梅村街道"]  # its failures are its communities', not its own
    en = render(inputs, actions=inputs["actions"], lang="en")
    text = parse(layer_features(en)["communities by worst failed check"][2]["properties"]["_popup"]).text
    assert "now 25%, required 50%, short 25%" in text and "failed checks" in text


def test_services_offered_on_the_map_never_share_a_symbol():
    # A profile with eight services, of which the first, the seventh and the eighth are
    # offered here: cycling the six symbols over the profile's list would give the first
    # and the seventh the same one.
    services = {f"s{i}": {} for i in range(8)}
    facilities = pd.DataFrame({"s0": [True, False, False], "s6": [False, True, None], "s7": [False, False, True],
                               "s3": [False, False, False]})
    styles = H._service_styles(services, facilities)
    assert set(styles) == set(services)
    shown = [styles[k] for k in ("s0", "s6", "s7")]
    assert len(set(shown)) == 3
    assert len({c for c, _ in shown}) == 3 and len({s for _, s in shown}) == 3
