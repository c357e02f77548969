"""Outputs a bureau forwards as they are (issue 15): fonts that really draw Chinese, the map's
vector basemap and 小区 layer, the A4 report in PDF and Word, Excel that prints, values rounded
to what they mean, labels that say the run's circle."""

from __future__ import annotations

import json

import matplotlib
import numpy as np
import openpyxl
import pandas as pd
import pytest
import shapely
from matplotlib import font_manager
from shapely.geometry import box

from carecircle.maps import export as E
from carecircle.maps import fonts as F
from carecircle.maps import html as H
from carecircle.maps import labels as L
from carecircle.maps import planning_report as R
from carecircle.maps.report_docx import docx_text
from fixtures_maps import CRS, LABELS, map_args, small_inputs

HAS_CJK = F.cjk_font_or_none() is not None
NO_CJK = "no font that draws Chinese (Debian: apt-get install fonts-noto-cjk; .ci/run installs it)"
LAST_RESORT = f"{matplotlib.get_data_path()}/fonts/ttf/LastResortHE-Regular.ttf"


# ----------------------------------------------------------------------------- fonts


def test_last_resort_is_never_a_cjk_font(monkeypatch):
    # matplotlib's Last Resort maps every CJK code point — all to the same placeholder box.
    from fontTools.ttLib import TTFont

    cmap = TTFont(LAST_RESORT).getBestCmap()
    assert all(ord(c) in cmap for c in F.CJK_PROBE)
    assert len({cmap[ord(c)] for c in F.CJK_PROBE}) == 1
    assert not F.draws_text(LAST_RESORT, 0, F.CJK_PROBE)
    assert F.is_placeholder("Last Resort High-Efficiency")
    F.find_cjk_font.cache_clear()
    try:
        monkeypatch.setattr(font_manager.fontManager, "ttflist", [f for f in font_manager.fontManager.ttflist
                                                                  if "DejaVu" in f.name or "Last Resort" in f.name])
        with pytest.raises(F.NoCJKFont, match="fonts-noto-cjk"):
            F.find_cjk_font()
    finally:
        monkeypatch.undo()
        F.find_cjk_font.cache_clear()


@pytest.mark.skipif(not HAS_CJK, reason=NO_CJK)
def test_a_real_cjk_font_draws_the_probe():
    entry = F.find_cjk_font()
    assert F.draws_text(entry.fname, getattr(entry, "index", 0), "养老服务设施")
    assert not F.is_placeholder(entry.name)


def test_report_without_a_cjk_font_says_so_once_and_has_no_charts(tmp_path, monkeypatch):
    monkeypatch.setattr(R, "cjk_font_or_none", lambda: None)
    monkeypatch.setattr(R, "find_cjk_font", lambda: (_ for _ in ()).throw(F.NoCJKFont("no font; " + F.INSTALL_HINT)))
    monkeypatch.setattr(R, "find_chromium", lambda: None)
    said = []
    d = small_inputs()
    path = R.write_report(tmp_path, streets=d["streets"], communities=d["communities"], actions=d["actions"],
                          summary=d["summary"], services=d["services"], log=said.append)
    page = path.read_text(encoding="utf-8")
    assert "<img" not in page and L.text("no_cjk_font") in page
    assert len([s for s in said if "fonts-noto-cjk" in s]) == 1 and len(said) == 1
    assert (tmp_path / "report.docx").exists() and not (tmp_path / "report.pdf").exists()


def test_no_browser_is_said_once(tmp_path, monkeypatch):
    monkeypatch.setattr(R, "find_chromium", lambda: None)
    said = []
    d = small_inputs()
    R.write_report(tmp_path, streets=d["streets"], communities=d["communities"], actions=d["actions"],
                   summary=d["summary"], services=d["services"], log=said.append, docx=False, pdf=None)
    if HAS_CJK:
        assert len(said) == 1 and "Chromium-family" in said[0] and "Edge" in said[0]
    assert not (tmp_path / "report.pdf").exists()


def test_browser_search_knows_windows_and_macos_paths(monkeypatch):
    monkeypatch.setattr(R.sys, "platform", "win32")
    monkeypatch.setenv("PROGRAMFILES(X86)", r"C:\Program Files (x86)")
    assert any(str(p).endswith("msedge.exe") for p in R.browser_paths())
    monkeypatch.setattr(R.sys, "platform", "darwin")
    assert any("Google Chrome.app" in str(p) for p in R.browser_paths())


# ----------------------------------------------------------------------------- report: Word and PDF


def _estates(communities) -> pd.DataFrame:
    import geopandas as gpd

    chun = communities[communities["name"] == "春潮社区"].iloc[0]
    x0, y0, _, _ = chun.geometry.bounds
    return gpd.GeoDataFrame({
        "estate": ["锦绣华庭", "春潮花园"], "community": ["春潮社区"] * 2, "street": [chun["street"]] * 2,
        "households": [1200, 800], "built_year": [2019, 1998], "estate_class": ["new", "existing"],
        "space_required_m2": [252.0, 0.0], "space_provided_m2": [40.0, 0.0], "space_shortfall_m2": [212.0, 0.0],
        "flag_space": [True, False],
    }, geometry=[box(x0 + 20, y0 + 20, x0 + 120, y0 + 120), box(x0 + 150, y0 + 20, x0 + 250, y0 + 120)], crs=CRS)


@pytest.fixture(scope="module")
def report_dir(tmp_path_factory):
    d = small_inputs()
    out = tmp_path_factory.mktemp("report")
    summary = {**d["summary"], "parameters": {"walk_distance_m": 1000.0, "walk_minutes": 15.0, "walk_speed_kmh": 4.0}}
    R.write_report(out, streets=d["streets"], communities=d["communities"], actions=d["actions"], summary=summary,
                   services=d["services"], estates=_estates(d["communities"]), facilities=d["facilities"],
                   log=lambda _line: None)
    return out


def test_docx_has_the_reports_content_on_a4(report_dir):
    from docx import Document
    from docx.shared import Mm

    doc = Document(str(report_dir / "report.docx"))
    section = doc.sections[0]
    assert abs(section.page_width - Mm(210)) < Mm(1) and abs(section.page_height - Mm(297)) < Mm(1)
    headings = [p.text for p in doc.paragraphs if p.style.name.startswith("Heading")]
    assert {"梅村街道", "旺庄街道", "结论与建议", "问题清单", "街道考核排名"} <= set(headings)
    text = docx_text(report_dir / "report.docx")
    # The failing estate is named with its community and numbers, as in report.html.
    assert "锦绣华庭（春潮社区）" in text and "212 m²" in text
    assert "春潮社区" in text and "200.5 m²" in text
    # A page number field in the footer, not a typed number.
    assert 'w:instr="PAGE"' in section.footer._element.xml
    if HAS_CJK:
        assert len(doc.inline_shapes) >= 1 + 2 + 3  # overview map, 梅村 (map, coverage), 旺庄 (map, coverage, shortfall)


def test_html_report_is_a4_with_cover_and_conclusions(report_dir):
    page = (report_dir / "report.html").read_text(encoding="utf-8")
    assert "@page{size:A4" in page and "counter(page)" in page and "break-inside:avoid" in page
    assert '<div class="cover">' in page and "15分钟（1,000 m）" in page
    assert page.count("<h3>结论与建议</h3>") == 2
    # 南星社区 lacks day care: the finding states the value, the standard and the nearest centre.
    assert "南星社区：" in page and "最近设施" in page


@pytest.mark.skipif(R.find_chromium() is None, reason="no chromium to print the PDF (Debian: apt-get install chromium)")
@pytest.mark.skipif(not HAS_CJK, reason=NO_CJK)
def test_pdf_is_a4_numbered_and_has_no_empty_page(report_dir):
    from pypdf import PdfReader

    pdf = PdfReader(str(report_dir / "report.pdf"))
    assert len(pdf.pages) >= 4  # cover, overview, ranking, two streets
    for i, page in enumerate(pdf.pages, start=1):
        assert (round(float(page.mediabox.width)), round(float(page.mediabox.height))) == (595, 842)
        text = page.extract_text() or ""
        assert len(text.strip()) > 10, f"page {i} is empty"
        if i > 1:
            assert f"{i} / {len(pdf.pages)}" in text


# ----------------------------------------------------------------------------- tables


def test_values_are_rounded_to_what_they_mean(tmp_path):
    frame = pd.DataFrame({
        "name": ["甲", "乙"], "elderly_covered_share_meal": [0.9538324420677362, 1.0],
        "nearest_meal_m": [123.456, np.inf], "households": [1234.6, np.nan], "built_year": [1998.0, 2004.0],
        "space_shortfall_m2": [158.54999, 0.0], "flag_space": [True, False],
    })
    out = E.rounded(frame)
    assert out["elderly_covered_share_meal"].tolist() == [0.9538, 1.0]
    assert out["nearest_meal_m"].iloc[0] == 123.5 and np.isinf(out["nearest_meal_m"].iloc[1])
    assert out["households"].dtype == "Int64" and out["households"].iloc[0] == 1235 and pd.isna(out["households"].iloc[1])
    assert out["built_year"].tolist() == [1998, 2004]
    E.write_tables(tmp_path, {"t": frame})
    line = (tmp_path / "t.csv").read_text(encoding="utf-8-sig").splitlines()[1]
    assert line == "甲,0.9538,123.5,1235,1998,158.5,true"
    assert E.round_value("walk_distance_m", 1000.0000000000001) == 1000.0
    assert E.round_value("elderly_covered_share", 0.95383244) == 0.9538 and E.round_value("communities", 12.0) == 12 and E.round_value("flagged", 2) == 2


def test_walk_of_15_minutes_at_4_kmh_is_exactly_1000_m():
    from carecircle.config import RunConfig
    from carecircle.coverage.profile import load_profile
    from carecircle.pipeline import resolve_walk

    cfg = RunConfig.model_validate({"network": {"osm": "x.osm"}, "facilities": {"path": "f.csv"},
                                    "population": {"raster": "p.tif", "elderly_share": 0.2}, "communities": {"path": "c.gpkg"}})
    walk = resolve_walk(cfg, load_profile("national"))
    assert walk.distance_m == 1000.0 and walk.rings_m[-1] == 1000.0
    assert json.dumps(walk.distance_m) == "1000.0"


@pytest.fixture(scope="module")
def books(tmp_path_factory):
    d = small_inputs()
    out = tmp_path_factory.mktemp("xlsx")
    tables = {"communities": d["communities"], "streets": d["streets"], "actions": d["actions"],
              "estates": _estates(d["communities"])}
    written = E.write_tables(out, tables, labels=LABELS, services=d["services"])
    return {name: openpyxl.load_workbook(p["xlsx"]) for name, p in written.items()}, d


def _column(sheet, header: str) -> int:
    return [c.value for c in sheet[1]].index(header) + 1


def test_xlsx_prints_and_reads(books):
    wb, d = books
    book = wb["communities"]
    assert book.sheetnames == ["汇总", "communities", "字段说明"]
    sheet = book["communities"]
    assert all(c.font.bold for c in sheet[1]) and sheet.freeze_panes == "A2"
    assert sheet.auto_filter.ref == sheet.dimensions
    assert sheet.page_setup.orientation == "landscape" and sheet.page_setup.fitToWidth == 1
    assert sheet.sheet_properties.pageSetUpPr.fitToPage and sheet.print_title_rows == "$1:$1"
    share = _column(sheet, "日间照料中心老年人覆盖率")
    assert sheet.cell(2, share).number_format == "0.0%" and isinstance(sheet.cell(2, share).value, float)
    hh = _column(sheet, "户数")
    assert sheet.cell(2, hh).number_format == "#,##0" and isinstance(sheet.cell(2, hh).value, int)
    # Booleans and codes as words in a Chinese sheet.
    flag = _column(sheet, L.Labels("zh", LABELS).column("flag_no_day_care"))
    assert {sheet.cell(r, flag).value for r in range(2, sheet.max_row + 1)} <= {"是", "否"}
    worst = _column(sheet, L.Labels("zh", LABELS).column("worst_check"))
    words = {sheet.cell(r, worst).value for r in range(2, sheet.max_row + 1)}
    assert "达标" in words and not words & {"no_day_care", "no_meal", "space"}
    # Widths from content: the name column fits the longest name (CJK characters count double).
    name = _column(sheet, "社区名称")
    longest = max(2 * len(str(v)) for v in d["communities"]["name"])
    assert sheet.column_dimensions[openpyxl.utils.get_column_letter(name)].width >= longest
    est = wb["estates"]["estates"]
    assert {est.cell(r, _column(est, L.Labels("zh", LABELS).column("estate_class"))).value for r in (2, 3)} == {"新建", "已建"}


def test_streets_xlsx_has_a_coverage_chart_on_its_summary(books):
    wb, d = books
    summary = wb["streets"]["汇总"]
    assert wb["streets"].sheetnames[0] == "汇总"
    assert len(summary._charts) == 1
    rows = {r[0].value: r[1].value for r in summary.iter_rows(min_row=2)}
    assert rows["行数"] == len(d["streets"])


# ----------------------------------------------------------------------------- labels follow the circle


def test_labels_say_the_runs_circle():
    from carecircle.coverage.profile import load_profile

    profile = load_profile("national")
    base = L.analysis_labels(profile)
    ten = L.follow_circle(base, profile.walk.minutes, 10.0, 666.7)
    said = [zh for zh, _ in ten.values() if "分钟" in zh]
    assert said and all("15分钟" not in zh for zh, _ in ten.values())
    assert any("10分钟" in zh for zh in said) and any("10-minute" in en for _, en in ten.values())
    metres = L.follow_circle(base, profile.walk.minutes, None, 800.0)
    assert any("800米" in zh for zh, _ in metres.values()) and not any("15分钟" in zh for zh, _ in metres.values())
    assert L.circle_words(None, 1234.4) == "1,234米" and L.circle_words(10.0, 0, "en") == "10-minute"


def test_report_of_a_10_minute_run_says_10_minutes(tmp_path, monkeypatch):
    from carecircle.coverage.profile import load_profile

    monkeypatch.setattr(R, "find_chromium", lambda: None)
    d = small_inputs()
    profile = load_profile("national")
    labels = L.follow_circle(L.analysis_labels(profile), profile.walk.minutes, 10.0, 666.7)
    summary = {**d["summary"], "parameters": {"walk_distance_m": 666.7, "walk_minutes": 10.0}}
    path = R.write_report(tmp_path, streets=d["streets"], communities=d["communities"], actions=d["actions"],
                          summary=summary, services=d["services"], labels=labels, log=lambda _l: None, docx=False)
    page = path.read_text(encoding="utf-8")
    assert "10分钟" in page and "15分钟" not in page


# ----------------------------------------------------------------------------- map


def grid_network(communities, step: float = 120.0):
    """A street grid over the communities: lines every ``step`` metres, the middle one a primary road."""
    import geopandas as gpd

    x0, y0, x1, y1 = communities.total_bounds
    xs, ys = np.arange(x0, x1 + 1, step), np.arange(y0, y1 + 1, step)
    lines = [shapely.LineString([(x, y0), (x, y1)]) for x in xs] + [shapely.LineString([(x0, y), (x1, y)]) for y in ys]
    highway = ["residential"] * len(lines)
    highway[len(xs) // 2] = "primary"
    return gpd.GeoDataFrame({"highway": highway}, geometry=lines, crs=CRS)


def test_map_layers_for_network_names_estates_and_the_missing_centre():
    from fixtures_maps import layer_names

    d = small_inputs()
    streets = d["streets"].copy()
    page = H.build_map(**map_args(d, streets=streets, network=grid_network(d["communities"]),
                                  estates=_estates(d["communities"]))).get_root().render()
    names = layer_names(page)
    # Only the failing 小区 in this sample: the all-estates layer holds the other one.
    assert {"路网（步行）", "社区名称", "小区", "养老服务用房不足的小区（1）", "未达标小区名称"} <= set(names)
    # Uncovered elderly are shown when the map opens.
    assert "未覆盖老年人口：日间照料中心" in names
    # Names bound feature by feature (a layer-wide tooltip would show once).
    assert page.count("bindTooltip(f.properties._name") == 2 and json.dumps("锦绣华庭")[1:-1] in page
    legend = page[page.index('<div class="cc-legend">'):]
    legend = legend[:legend.index("</div></div>") if "</div></div>" in legend else None]
    assert "养老服务用房不足的小区（1）" in page
    if not streets["has_street_centre"].all():
        assert "未设街道综合养老服务中心" in page and H.NO_CENTRE_COLOUR in page
    # One colour, one meaning: no service colour is also a check colour.
    assert not set(H.SERVICE_COLOURS) & set(H.CHECK_COLOURS.values())


def test_a_10_minute_run_says_10_minutes_in_its_tables(tmp_path):
    import yaml

    from carecircle.config import load_config
    from carecircle.layers.sample import generate_sample
    from carecircle.pipeline import run

    sample = generate_sample(tmp_path / "in")
    cfg = yaml.safe_load(sample.config.read_text(encoding="utf-8"))
    cfg["walk"] = {"minutes": 10}
    cfg["output"] = {**cfg.get("output", {}), "formats": ["actions", "communities", "streets"]}
    ten = sample.config.with_name("ten.yaml")
    ten.write_text(yaml.safe_dump(cfg, allow_unicode=True), encoding="utf-8")
    summary = run(load_config(ten), tmp_path / "out", log=lambda _l: None)
    assert summary["parameters"]["walk_distance_m"] == 666.7  # 10 min at 4 km/h, to 0.1 m
    actions = pd.read_csv(tmp_path / "out" / "actions.csv", encoding="utf-8-sig")
    circle = actions["check_label"][actions["check"].isin(["no_day_care", "no_meal"])]
    assert len(circle) and circle.str.contains("10分钟").all()
    heads = [c.value for c in openpyxl.load_workbook(tmp_path / "out" / "communities.xlsx").worksheets[1][1]]
    text = "".join(str(h) for h in heads) + "".join(actions["check_label"].astype(str))
    assert "15分钟" not in text and any("10分钟" in str(h) for h in heads)


def test_offline_map_by_default_and_intranet_tiles_checked():
    from pydantic import ValidationError

    from carecircle.config import OutputConfig

    assert OutputConfig().offline_map is True and OutputConfig().tiles is None
    tiles = OutputConfig.model_validate({"tiles": {"url": "http://gis.local/{z}/{x}/{y}.png", "attribution": "规划院"}}).tiles
    assert tiles.url.endswith("{y}.png") and tiles.attribution == "规划院"
    with pytest.raises(ValidationError, match="placeholders"):
        OutputConfig.model_validate({"tiles": {"url": "http://gis.local/tiles.png", "attribution": "x"}})
    with pytest.raises(Exception, match="32 hexadecimal"):
        H.check_basemap("tianditu", tianditu_token="not-a-key")
    H.check_basemap("tianditu", tiles={"url": "http://gis.local/{z}/{x}/{y}.png"})  # an intranet server needs no key


def test_progress_lines_carry_their_stage_time(monkeypatch):
    import io
    import time

    from rich.console import Console

    from carecircle import cli

    buf = io.StringIO()
    monkeypatch.setattr(cli, "console", Console(file=buf, width=200))
    with cli._Progress() as progress:
        progress("路网 network: 3 nodes")
        time.sleep(0.25)
        progress("可达性 coverage")
    lines = [line for line in buf.getvalue().splitlines() if "·" in line]
    assert len(lines) == 2
    took = float(lines[1].rsplit(" ", 2)[-2])
    assert 0.2 <= took < 2.0
