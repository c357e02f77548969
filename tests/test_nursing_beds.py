"""护理型床位: read from the facility list and checked against each plan's city target."""

from __future__ import annotations

import pandas as pd
import pyproj
import pytest

from carecircle.coverage.profile import load_profile
from carecircle.coverage.standards import _beds
from carecircle.layers.facilities import DEFAULT_KEYWORDS, read_facilities

UTM51 = pyproj.CRS("EPSG:32651")


def _list(tmp_path, header: str, rows: list[str]):
    p = tmp_path / "fac.csv"
    p.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    return read_facilities(p, target_crs=UTM51, keywords=DEFAULT_KEYWORDS)[0]


def test_nursing_beds_read_beside_beds_and_checked_against_the_plan(tmp_path):
    fac = _list(tmp_path, "名称,类型,经度,纬度,床位数,护理型床位数",
                ["甲护理院,养老机构,120.35,31.54,100,80", "乙敬老院,养老机构,120.36,31.55,60,30"])
    assert fac["beds"].tolist() == [100, 60] and fac["nursing_beds"].tolist() == [80, 30]
    com = pd.DataFrame({"elderly": [2000.0, 2000.0]})
    # (80 + 30) / 160 = 68.75 %: short of Wuxi's 70 %, above Tongxiang's 60 %.
    wx, tx = _beds(fac, com, load_profile("wuxi")), _beds(fac, com, load_profile("tongxiang"))
    assert wx["nursing_share"] == pytest.approx(110 / 160) and wx["meets_nursing"] is False
    assert tx["meets_nursing"] is True and "nursing_share" in tx["checked"]
    assert wx["per_1000_elderly"] == pytest.approx(160 / 4000 * 1000)


def test_a_list_with_only_nursing_beds_does_not_count_them_as_all_beds(tmp_path):
    fac = _list(tmp_path, "名称,类型,经度,纬度,护理型床位", ["甲护理院,养老机构,120.35,31.54,80"])
    assert fac["nursing_beds"].tolist() == [80] and fac["beds"].isna().all()


def test_no_nursing_column_is_not_checked(tmp_path):
    fac = _list(tmp_path, "名称,类型,经度,纬度,床位数", ["甲护理院,养老机构,120.35,31.54,100"])
    out = _beds(fac, pd.DataFrame({"elderly": [1000.0]}), load_profile("wuxi"))
    assert "nursing_beds" not in fac.columns and out["nursing_share"] is None and "no nursing-bed column" in out["nursing_reason"]
