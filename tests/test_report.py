"""The per-street report: a real CJK font (checked glyph by glyph), one section per 街道 with
its scorecard, charts and action list, escaped text, and a PDF when chromium is there."""

from __future__ import annotations

import base64
import io
import logging
import re
import warnings
from html.parser import HTMLParser

import pytest
from fontTools.ttLib import TTFont
from matplotlib import font_manager
from matplotlib import image as mpimg

from carecircle.maps import planning_report as R
from carecircle.maps.fonts import cjk_font_or_none
from fixtures_maps import EVIL, LABELS, small_inputs

needs_cjk = pytest.mark.skipif(cjk_font_or_none() is None,
                               reason="no font that draws Chinese (Debian: apt-get install fonts-noto-cjk; .ci/run installs it)")


class _Page(HTMLParser):
    """Sections (h2 text -> tags/text inside) of the report page."""

    def __init__(self):
        super().__init__()
        self.sections, self.current, self.in_h2, self.imgs = {}, None, False, {}

    def handle_starttag(self, tag, attrs):
        if tag == "h2":
            self.in_h2 = True
        elif tag == "img" and self.current is not None:
            self.imgs.setdefault(self.current, []).append(dict(attrs)["src"])
        elif self.current is not None:
            self.sections[self.current]["tags"].append(tag)

    def handle_endtag(self, tag):
        if tag == "h2":
            self.in_h2 = False

    def handle_data(self, data):
        if self.in_h2:
            self.current = data
            self.sections[data] = {"tags": [], "text": []}
        elif self.current is not None:
            self.sections[self.current]["text"].append(data)


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    d = small_inputs()
    out = tmp_path_factory.mktemp("report")
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    logging.getLogger("matplotlib").addHandler(handler)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            path = R.write_report(out, streets=d["streets"], communities=d["communities"], actions=d["actions"],
                                  summary=d["summary"], services=d["services"], labels=d["labels"])
    finally:
        logging.getLogger("matplotlib").removeHandler(handler)
    page = _Page()
    page.feed(path.read_text(encoding="utf-8"))
    return {"path": path, "page": page, "warnings": caught, "logs": records, "inputs": d}


@needs_cjk
def test_font_has_cjk_glyphs():
    entry = R.find_cjk_font()
    # Read the resolved file ourselves: every character of a Chinese heading is in its cmap.
    font = TTFont(entry.fname, fontNumber=getattr(entry, "index", 0))
    cmap = font.getBestCmap()
    assert all(ord(c) in cmap for c in "养老服务设施覆盖率缺口街道社区")
    # And matplotlib resolves the family name to that same file.
    assert font_manager.findfont(font_manager.FontProperties(family=entry.name), fallback_to_default=False) == entry.fname


@needs_cjk
def test_no_tofu_while_drawing(report):
    glyph = [w for w in report["warnings"] if "missing from" in str(w.message) or "Glyph" in str(w.message)]
    assert glyph == []
    assert not [r for r in report["logs"] if "findfont" in r.getMessage() and "not found" in r.getMessage()]


def test_no_cjk_font_fails_loudly(monkeypatch):
    R.find_cjk_font.cache_clear()
    try:
        monkeypatch.setattr(font_manager.fontManager, "ttflist",
                            [f for f in font_manager.fontManager.ttflist if "DejaVu" in f.name])
        with pytest.raises(RuntimeError, match="fonts-noto-cjk"):  # NoCJKFont is a RuntimeError
            R.find_cjk_font()
    finally:
        monkeypatch.undo()
        R.find_cjk_font.cache_clear()


@needs_cjk
def test_one_section_per_street_with_scorecard_charts_and_actions(report):
    sections = report["page"].sections
    assert {"梅村街道", "旺庄街道", "总体情况", "街道考核排名"} <= set(sections)
    mei = "".join(sections["梅村街道"]["text"])
    # 梅村: 3 communities, 2 flagged (南星 no day care, 锡梅 no meal), no space shortfall.
    assert re.search(r"社区数3", mei) and re.search(r"有问题社区数2", mei)
    assert "南星社区" in mei and "锡梅社区" in mei and "湘江社区" not in mei
    assert "无面积缺口" in mei
    imgs = report["page"].imgs
    assert len(imgs["梅村街道"]) == 2  # map + coverage; no shortfall chart
    assert len(imgs["旺庄街道"]) == 3  # 春潮社区 falls short of space
    wang = "".join(sections["旺庄街道"]["text"])
    assert "湘江社区" in wang and "春潮社区" in wang


def test_action_rows_state_value_standard_and_source(report):
    wang = report["page"].sections["旺庄街道"]["text"]
    # 春潮社区: 200 m² provided of 400.5 m² required, 200.5 m² short; units with the numbers.
    row = wang[wang.index("养老服务用房面积不足"):]
    assert row[row.index("200 m²"):][:3] == ["200 m²", "400.5 m²", "200.5 m²"]
    # The sub-district's own check: no community, its value in 处 and the standard beneath.
    at = wang.index(LABELS["flag_no_street_centre"][0])
    assert wang[at - 1] == "（全街道）" and "标准：每个街道 ≥ 1 处" in wang[at:at + 5]
    # Sources once each, numbered, below the table; each check points at its note.
    notes = wang[wang.index("依据") + 1:]
    assert notes[:2] == ["无锡市养老服务设施布局规划", "《无锡市“十四五”养老服务发展规划》"]
    assert "[2]" in wang[at:at + 3]
    # The title names the place; parameters are labelled, not raw keys.
    assert R.report_title({"profile": {"title": "无锡市"}}) == "无锡市养老服务设施步行覆盖评估报告"
    overview = "".join(report["page"].sections["总体情况"]["text"])
    assert "步行圈距离（m）1,000" in overview and "walk_minutes" not in overview


@needs_cjk
def test_charts_are_real_images(report):
    for src in [s for ss in report["page"].imgs.values() for s in ss]:
        png = base64.b64decode(src.split(",", 1)[1])
        pixels = mpimg.imread(io.BytesIO(png), format="png")[..., :3]
        assert pixels.shape[0] > 100 and pixels.shape[1] > 100
        assert (pixels.min(axis=-1) < 0.9).mean() > 0.02  # something is drawn


def test_untrusted_text_is_escaped(report):
    html_text = report["path"].read_text(encoding="utf-8")
    assert EVIL not in html_text
    wang = report["page"].sections["旺庄街道"]
    assert EVIL in "".join(wang["text"]) and "img" not in wang["tags"]


def test_english_report(tmp_path):
    d = small_inputs()
    path = R.write_report(tmp_path, streets=d["streets"], communities=d["communities"], actions=d["actions"],
                          summary={}, services=d["services"], labels=d["labels"], lang="en", pdf=False)
    text = path.read_text(encoding="utf-8")
    assert "Sub-district ranking" in text and "elderly covered, day-care centre" in text
    assert "(whole sub-district)" in text and "Sources" in text
    assert not (tmp_path / "report.pdf").exists()


@needs_cjk
@pytest.mark.skipif(R.find_chromium() is None, reason="no chromium to print the PDF (Debian: apt-get install chromium)")
def test_pdf_printed_with_the_cjk_font(report):
    pdf = report["path"].with_suffix(".pdf").read_bytes()
    assert pdf[:4] == b"%PDF"
    # Chromium embeds the fonts it drew with: the CJK face is among them.
    assert re.search(rb"NotoSansCJK|SourceHanSans|WenQuanYi|YaHei", pdf)
