"""The outputs of a real run, as their users open them: the real CLI on the sample district
(English, Amap basemap, offline map), then map.html in headless chromium, the report's
headers, and the shapefile package read back with pyogrio — once with UTF-8 DBFs, once with
GBK (``output: {shapefile_encoding: GBK}``)."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pyogrio
import pytest

from carecircle.coverage.profile import load_profile
from carecircle.maps.labels import column_labels
from carecircle.layers import crs as ccrs
from carecircle.maps import html as H
from clitools import cli
from fixtures_maps import CHROMIUM, browser_probe, layer_features

CJK = re.compile(r"[\u3400-\u9fff\uff08\uff09\u3001\uff1a]")


def _run(config: Path, out: Path, *args: str) -> Path:
    run = cli("run", config, "--out", out, *args, timeout=300)
    assert run.returncode == 0, f"carecircle run failed ({run.returncode}):\n{run.stdout[-2000:]}\n{run.stderr[-2000:]}"
    return out


@pytest.fixture(scope="module")
def sample(sample_district) -> Path:
    return sample_district.out_dir


@pytest.fixture(scope="module")
def out(sample, tmp_path_factory) -> Path:
    """A whole run: English, Amap (GCJ-02 overlays), offline map, UTF-8 shapefiles."""
    return _run(sample / "config.yaml", tmp_path_factory.mktemp("run") / "en", "--lang", "en", "--basemap", "amap", "--offline")


@pytest.fixture(scope="module")
def out_gbk(sample, tmp_path_factory) -> Path:
    """The same inputs with GBK shapefiles (only the tables and the package, to stay quick)."""
    text = (sample / "config.yaml").read_text(encoding="utf-8")
    config = sample / "config_gbk.yaml"
    config.write_text(re.sub(r"^output:.*$", "output: {shapefile_crs: auto, shapefile_encoding: GBK, "
                             "formats: [communities, shp]}", text, flags=re.M), encoding="utf-8")
    return _run(config, tmp_path_factory.mktemp("run") / "gbk")


def _facilities(out: Path) -> pd.DataFrame:
    return pyogrio.read_dataframe(out / "facilities.gpkg")


# ----------------------------------------------------------------------------- map.html


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium: install Debian's chromium (.ci/run does) to run the browser part")
def test_map_opens_without_errors_with_english_layers(out, tmp_path):
    result = browser_probe(out / "map.html", tmp_path)
    assert result.get("exception") is None and result["errors"] == []
    assert result["leaflet"] == "object"
    fac = _facilities(out)
    services = load_profile("wuxi").services
    expected = ["Amap", "communities by worst failed check", "sub-districts and scorecards"]
    expected += [f"walking circle (dissolved): {services[s].label_en}" for s in ("day_care", "meal")]
    expected += [f"{services[s].label_en} ({int(fac[s].sum())})" for s in services if fac[s].any()]
    assert set(expected) <= set(result["layers"])
    assert not any(CJK.search(name) for name in result["layers"])
    # A facility offering day care and meals: two markers, side by side on one row.
    both = fac.loc[fac["day_care"] & fac["meal"], "name"].tolist()
    assert both, "the sample district has combined day-care and meal sites"
    for name in both:
        (a, b) = sorted(result["sites"][name])
        assert b[0] - a[0] == pytest.approx(H.MARKER_SPACING_PX, abs=1.0) and b[1] == pytest.approx(a[1], abs=0.5)


def test_map_overlays_are_shifted_to_gcj02(out):
    page = (out / "map.html").read_text(encoding="utf-8")
    fac = _facilities(out).set_index("name")
    label = load_profile("wuxi").services["day_care"].label_en
    (layer,) = [k for k in layer_features(page) if k.startswith(f"{label} (")]
    feats = layer_features(page)[layer]
    assert len(feats) == int(fac["day_care"].sum())
    for f in feats:
        row = fac.loc[f["properties"]["_tip"]]
        lon, lat = ccrs.from_wgs84(np.array([row.geometry.x]), np.array([row.geometry.y]), "gcj02")
        assert f["geometry"]["coordinates"] == pytest.approx([lon[0], lat[0]], abs=1.5e-6)
        # ... and really moved: GCJ-02 is a few hundred metres off WGS-84 here.
        assert abs(f["geometry"]["coordinates"][0] - row.geometry.x) > 1e-3


# ----------------------------------------------------------------------------- report.html


class _Headers(HTMLParser):
    def __init__(self):
        super().__init__()
        self.th, self.h, self._in = [], [], None

    def handle_starttag(self, tag, attrs):
        if tag in ("th", "h1", "h2", "h3"):
            self._in = tag
            (self.th if tag == "th" else self.h).append("")

    def handle_endtag(self, tag):
        if tag == self._in:
            self._in = None

    def handle_data(self, data):
        if self._in:
            (self.th if self._in == "th" else self.h)[-1] += data


def test_report_headers_are_english(out):
    page = _Headers()
    page.feed((out / "report.html").read_text(encoding="utf-8"))
    assert not [t for t in page.th if CJK.search(t)]
    en = column_labels("en", load_profile("wuxi"))
    for col in ("rank", "score", "communities_flagged", "elderly_covered_share_day_care", "space_shortfall_m2"):
        assert en[col] in page.th
    assert {"Overview", "Sub-district ranking", "Scorecard"} <= set(page.h)
    streets = pd.read_csv(out / "streets.csv", encoding="utf-8-sig")["street"]
    assert set(streets) <= set(page.h)  # one section per sub-district, named as in the data


# ----------------------------------------------------------------------------- shapefile package


def _aliases(out: Path) -> pd.DataFrame:
    return pd.read_csv(out / "shp" / "fields.csv", encoding="utf-8-sig")


def _communities_shp(out: Path) -> pd.DataFrame:
    """communities.shp with its DBF fields renamed to the full columns by the alias table."""
    fields = _aliases(out)
    to_column = dict(fields.loc[fields["layer"] == "communities", ["field", "column"]].to_numpy())
    return pyogrio.read_dataframe(out / "shp" / "communities.shp").rename(columns=to_column)


def test_alias_table_maps_every_dbf_field_to_its_column(out):
    fields = _aliases(out)
    for shp in sorted((out / "shp").glob("*.shp")):
        info = pyogrio.read_info(shp)
        assert info["crs"] == "EPSG:4549"  # auto: CGCS2000 3° zone at 120° E
        rows = fields[fields["layer"] == shp.stem]
        assert rows["field"].tolist() == info["fields"].tolist()
        assert all(len(f.encode()) <= 10 for f in info["fields"])
        assert rows["label_zh"].notna().all() and rows["label_en"].notna().all()
    com = fields[fields["layer"] == "communities"]
    full = pd.read_csv(out / "communities.csv", encoding="utf-8-sig", nrows=0).columns
    # Every column of the table is in the package (a long text may continue in <column>_partN).
    assert set(full) <= set(com["column"]) and set(com["column"].str.replace(r"_part\d+$", "", regex=True)) <= set(full)
    zh = column_labels("zh", load_profile("wuxi"))
    assert dict(com[["column", "label_zh"]].to_numpy())["space_shortfall_m2"] == zh["space_shortfall_m2"]


def _assert_same_as_csv(out: Path) -> None:
    csv = pd.read_csv(out / "communities.csv", encoding="utf-8-sig", keep_default_na=False, na_values=[""])
    shp = _communities_shp(out)
    parts = sorted(c for c in shp.columns if re.search(r"_part\d+$", str(c)))
    for col in parts:  # a split text is the concatenation of its parts
        base = re.sub(r"_part\d+$", "", col)
        shp[base] = shp[base].fillna("") + shp[col].fillna("")
    assert len(shp) == len(csv)
    for col in csv.columns:
        a, b = csv[col], shp[col]
        if a.dtype == bool or (a.notna().any() and set(a.dropna().astype(str)) <= {"true", "false"}):
            assert a.astype(str).str.lower().tolist() == b.astype(bool).astype(str).str.lower().tolist(), col
        elif pd.api.types.is_numeric_dtype(a):
            np.testing.assert_allclose(b.to_numpy(dtype=float), a.to_numpy(dtype=float), rtol=1e-9, equal_nan=True, err_msg=col)
        else:
            assert a.fillna("").tolist() == b.fillna("").tolist(), col


def test_communities_shp_equals_csv_in_utf8(out):
    assert (out / "shp" / "communities.cpg").read_text() == "UTF-8"
    _assert_same_as_csv(out)
    assert _communities_shp(out)["name"].str.contains("社区").all()


def test_communities_shp_equals_csv_in_gbk(out_gbk):
    shp = out_gbk / "shp" / "communities"
    assert shp.with_suffix(".cpg").read_text() == "936"
    assert shp.with_suffix(".dbf").read_bytes()[29] == 0x4D  # DBF language driver: code page 936
    names = pd.read_csv(out_gbk / "communities.csv", encoding="utf-8-sig")["name"]
    # The bytes on disk are GBK: a reader that knows nothing but the code page gets the names back.
    raw = shp.with_suffix(".dbf").read_bytes()
    assert all(n.encode("gbk") in raw for n in names) and not any(n.encode("utf-8") in raw for n in names)
    _assert_same_as_csv(out_gbk)
    assert pyogrio.read_info(shp.with_suffix(".shp"))["crs"] == "EPSG:4549"
