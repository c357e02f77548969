"""Standards profiles: built-ins, numbers against STANDARDS.md and the seeds, extends, errors."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from conftest import SHARED

from carecircle.coverage.profile import Profile, list_profiles, load_profile
from carecircle.errors import InputError

CITIES = ["kunshan", "rugao", "wuxi", "tongxiang", "shijiazhuang"]
SEEDS = {
    "kunshan": "000_3ea025f13987f26d.txt", "rugao": "001_4f30a381c0252c0e.txt", "wuxi": "002_cee989169cb5fa37.txt",
    "tongxiang": "003_5def2849daa92525.txt", "shijiazhuang": "004_475ba5edab1245ed.txt",
}


def test_builtins_load_with_shared_attributes():
    assert set(list_profiles()) == {"national", "national_gb50180_5min", *CITIES}
    for name in list_profiles():
        p = load_profile(name)
        assert isinstance(p, Profile) and p.name == name
        if name == "national_gb50180_5min":
            # GB 50180's day-care reading, a named variant: 5 min at 3.6 km/h = 300 m.
            assert p.walk_distance_m == pytest.approx(300.0)
            continue
        assert p.walk.minutes == 15 and p.walk.speed_kmh == 4.0
        assert p.walk_distance_m == pytest.approx(1000.0)  # 15 min × 4 km/h
        assert p.circle_services == ["day_care", "meal"]
        assert {"day_care", "meal", "street_centre", "institution"} <= set(p.services)
        for spec in p.services.values():
            assert spec.label_zh and spec.label_en and spec.keywords
        assert p.elderly_age == 60


def test_titles_and_sub_district_labels():
    want = {
        "national": ("全国通用", "街道"), "kunshan": ("昆山市", "区镇"), "rugao": ("如皋市", "镇（区、街道）"),
        "wuxi": ("无锡市", "街道（镇）"), "tongxiang": ("桐乡市", "镇（街道）"), "shijiazhuang": ("石家庄市", "街道（乡镇）"),
    }
    for name, (title, label) in want.items():
        p = load_profile(name)
        assert (p.title, p.sub_district_label) == (title, label)


def test_every_number_in_builtin_yaml_has_a_comment_or_source():
    """Each line holding a number carries a source: an inline/preceding comment or a source text."""
    folder = Path(__file__).resolve().parents[1] / "configs" / "profiles"
    for path in folder.glob("*.yaml"):
        lines = path.read_text(encoding="utf-8").splitlines()
        for i, line in enumerate(lines):
            body = line.split("#", 1)[0]
            if not re.search(r":\s*-?\d", body) or "source" in body:
                continue
            context = "\n".join(lines[max(0, i - 4): i + 1])
            assert "#" in context, f"{path.name}:{i + 1}: number without a source comment: {line.strip()}"


# --- numbers against STANDARDS.md -------------------------------------------------------


def _standards_table() -> dict[str, dict[str, str]]:
    text = (SHARED / "STANDARDS.md").read_text(encoding="utf-8")
    section = text.split("## 2.", 1)[1].split("## 3.", 1)[0]
    rows = [r for r in section.splitlines() if r.startswith("|")]
    header = [c.strip() for c in rows[0].strip("|").split("|")]
    cols = dict(zip(header[1:], ["kunshan", "rugao", "wuxi", "tongxiang", "shijiazhuang"]))
    table = {}
    for r in rows[2:]:
        cells = [c.strip() for c in r.strip("|").split("|")]
        table[cells[0]] = {cols[h]: c for h, c in zip(header[1:], cells[1:])}
    return table


def _numbers(cell: str) -> list[float]:
    return [float(x) for x in re.findall(r"\d+(?:\.\d+)?", cell)]


@pytest.mark.shared
def test_profile_numbers_match_standards_table():
    if not (SHARED / "STANDARDS.md").is_file():
        pytest.skip("../shared/STANDARDS.md absent: cannot compare profile numbers")
    t = _standards_table()
    new = t["space, **new** estates (m²/100 hh)"]
    old = t["space, **existing** estates (m²/100 hh)"]
    for city in CITIES:
        p = load_profile(city)
        # New estates: the cell's first number(s) are min (and target for a range).
        nums = _numbers(new[city].split("(")[0].split(",")[0])
        if city in ("tongxiang", "shijiazhuang"):  # "—" / "meets standard": no per-100-hh number
            assert p.space.new.min_m2_per_100hh is None
        elif "–" in new[city].split(" ")[0]:
            assert [p.space.new.min_m2_per_100hh, p.space.new.target_m2_per_100hh] == nums[:2]
        else:
            assert p.space.new.min_m2_per_100hh == nums[0] == p.space.new.target_m2_per_100hh
        cell = old[city]
        if "no number" in cell or cell == "—" or "fill gaps" in cell:
            assert p.space.existing.min_m2_per_100hh is None
        elif "–" in cell:
            assert [p.space.existing.min_m2_per_100hh, p.space.existing.target_m2_per_100hh] == _numbers(cell)[:2]
        else:
            assert p.space.existing.min_m2_per_100hh == _numbers(cell)[0]
    # Kunshan: the general 50 m² per 100 hh community space does not count.
    assert "50 m²/100 hh community space does **not** count" in new["kunshan"]
    assert load_profile("kunshan").space.new.min_m2_per_100hh == 30
    # Per-capita row: Rugao land 0.2, Shijiazhuang floor area 0.1.
    per = t["per-capita standard"]
    assert "land" in per["rugao"] and _numbers(per["rugao"]) == [0.2]
    assert (load_profile("rugao").per_capita.min_m2_per_person, load_profile("rugao").per_capita.measure) == (0.2, "land")
    assert "floor area" in per["shijiazhuang"] and _numbers(per["shijiazhuang"]) == [0.1]
    sjz = load_profile("shijiazhuang")
    assert (sjz.per_capita.min_m2_per_person, sjz.per_capita.measure) == (0.1, "floor_area")
    for city in ("kunshan", "wuxi", "tongxiang"):
        assert per[city] == "—" and load_profile(city).per_capita is None
    # Minimum facility size row.
    size = t["minimum facility size"]
    ks = load_profile("kunshan").sub_district.large_centres
    assert _numbers(size["kunshan"])[:3] == [2, 3, 500] and (ks.min_count, ks.min_floor_area_m2) == (2, 500)
    assert 1200 in _numbers(size["rugao"]) and load_profile("rugao").pooled.min_m2 == 1200
    assert _numbers(t["space, **new** estates (m²/100 hh)"]["rugao"])[1:4] == [1200, 3000, 4000]
    rg = load_profile("rugao").pooled
    assert (rg.min_households, rg.max_households) == (3000, 4000)
    assert _numbers(size["shijiazhuang"]) == [200] and sjz.station.min_floor_area_m2 == 200
    # Household size row and the §5 defaults.
    hh = t["household size (persons)"]
    assert _numbers(hh["wuxi"]) == [2.56] and load_profile("wuxi").household_size == 2.56
    text = (SHARED / "STANDARDS.md").read_text(encoding="utf-8")
    assert "2.62 persons" in text and load_profile("national").household_size == 2.62
    assert "15 min at 4.0 km/h = 1000 m" in text
    # §5 "new" estate: SJZ 2014 (its audit window); the Jiangsu plans take the plan year.
    assert "SJZ 2014 (its audit window" in text and sjz.space.new_from_year == 2014
    assert "the plan year" in text
    assert [load_profile(c).space.new_from_year for c in ("kunshan", "rugao", "wuxi")] == [2022, 2022, 2021]
    # Sub-district unit row.
    unit = t["sub-district unit"]
    assert unit["kunshan"].startswith(load_profile("kunshan").sub_district_label)
    assert unit["tongxiang"] == load_profile("tongxiang").sub_district_label


@pytest.mark.shared
@pytest.mark.parametrize("city, phrase, value", [
    ("kunshan", "新建住宅区按照每百户不少于 30 平方米的标准", lambda p: p.space.new.min_m2_per_100hh == 30),
    ("kunshan", "原城乡社区配套用房每百户 50 平方米另计", lambda p: p.space.new.min_m2_per_100hh == 30),
    ("kunshan", "已经建成的住宅区按照每百户不小于 20 平方米的标准", lambda p: p.space.existing.min_m2_per_100hh == 20),
    ("kunshan", "每个区镇都建有2到3家500平方米以上的三星级日间照料中心", lambda p: p.sub_district.large_centres.min_floor_area_m2 == 500),
    ("kunshan", "村（社区）开展助餐服务占比（%）\t100", lambda p: p.target("meal").share == 1.0),
    ("rugao", "按照3000-4000户，每百户不少于30平方米的标准统一配建不少于1200平方米", lambda p: p.pooled.min_m2 == 1200),
    ("rugao", "人均用地不少于0.2平方米", lambda p: p.per_capita.min_m2_per_person == 0.2),
    ("rugao", "打造“一公里”居家养老服务圈", lambda p: p.walk_distance_m == 1000),
    ("wuxi", "新建住宅小区按每百户20至30平方米配套建设", lambda p: (p.space.new.min_m2_per_100hh, p.space.new.target_m2_per_100hh) == (20, 30)),
    ("wuxi", "已建成的住宅区按每百户15至20平方米的标准", lambda p: (p.space.existing.min_m2_per_100hh, p.space.existing.target_m2_per_100hh) == (15, 20)),
    ("wuxi", "平均家庭规模为2.56人", lambda p: p.household_size == 2.56),
    ("tongxiang", "形成城乡“十五分钟养老服务圈”", lambda p: p.walk.minutes == 15),
    ("shijiazhuang", "每个社区建设不少于1处200平方米及以上的社区日间照料站（点）", lambda p: p.station.min_floor_area_m2 == 200 and p.station.required),
    ("shijiazhuang", "人均建筑面积不少于0.1平方米", lambda p: p.per_capita.min_m2_per_person == 0.1),
    ("shijiazhuang", "全面清查2014年以来新建城区", lambda p: p.space.new_from_year == 2014),
    ("shijiazhuang", "一街道一中心，一社区一站（点）", lambda p: p.sub_district.centre_required),
])
def test_numbers_quote_the_seed_plans(city, phrase, value):
    seed = SHARED / "seeds" / SEEDS[city]
    if not seed.is_file():
        pytest.skip("../shared/seeds absent: cannot check the quoted phrases")
    assert phrase in seed.read_text(encoding="utf-8")
    assert value(load_profile(city))


def test_sources_are_attached_to_every_applied_standard():
    for name in CITIES:
        p = load_profile(name)
        assert p.document and p.walk.source
        for s in p.circle_services:
            assert p.target(s).source
        for r in (p.space.new, p.space.existing):
            assert r.source
        if p.station.required or p.station.min_floor_area_m2 is not None:
            assert p.station.source
        if p.sub_district.centre_required:
            assert p.sub_district.centre_source


# --- extends, overrides, errors ---------------------------------------------------------


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_extends_deep_merges_and_overrides(tmp_path):
    path = _write(tmp_path, "xinwu.yaml", "extends: wuxi\ntitle: 新吴区\nspace:\n  new:\n    min_m2_per_100hh: 25\nwalk: {speed_kmh: 3.2}\n")
    p = load_profile(path)
    assert p.name == "xinwu" and p.title == "新吴区"
    assert p.space.new.min_m2_per_100hh == 25 and p.space.new.target_m2_per_100hh == 30  # sibling key kept
    assert p.space.existing.min_m2_per_100hh == 15  # untouched branch kept
    assert p.household_size == 2.56 and p.walk.minutes == 15
    assert p.walk_distance_m == pytest.approx(15 * 3.2 * 1000 / 60)
    assert p.sub_district_label == "街道（镇）"


def test_extends_a_file_relative_to_the_child(tmp_path):
    (tmp_path / "sub").mkdir()
    _write(tmp_path, "base.yaml", "extends: national\nname: base\nhousehold_size: 3.0\n")
    child = _write(tmp_path / "sub", "child.yaml", "extends: ../base.yaml\ncircle: {min_covered_share: 0.8}\n")
    p = load_profile(child)
    assert (p.name, p.household_size, p.circle.min_covered_share) == ("child", 3.0, 0.8)


def test_lists_replace_rather_than_merge(tmp_path):
    p = load_profile(_write(tmp_path, "p.yaml", "extends: national\nspace: {facility_services: [day_care]}\n"))
    assert p.space.facility_services == ["day_care"]


@pytest.mark.parametrize("text, message", [
    ("extends: wuxi\nspace:\n  new:\n    min_m2_per_100hh: -5\n", "myprofile.yaml: space.new.min_m2_per_100hh: must be ≥ 0"),
    ("extends: wuxi\nspace:\n  nw: {}\n", "myprofile.yaml: space.nw: unknown key"),
    ("extends: wuxi\nwalk: {minutes: 0}\n", "myprofile.yaml: walk.minutes: must be > 0"),
    ("extends: wuxi\ncircle: {min_covered_share: 1.5}\n", "myprofile.yaml: circle.min_covered_share: must be ≤ 1"),
    ("extends: wuxi\nspace: {new: {min_m2_per_100hh: 35}}\n", "myprofile.yaml: space.new: target_m2_per_100hh must be ≥ min_m2_per_100hh"),
    ("extends: wuxi\nstation: {services: [day_care, bus]}\n", "myprofile.yaml: station.services: unknown service bus"),
    ("extends: wuxi\nspace: {count_facilities: nearby}\n", "myprofile.yaml: space.count_facilities: must be one of 'inside' or 'circle'"),
    ("extends: nowhere\n", "profile 'nowhere': no such built-in profile"),
    ("title: x\nservices: {}\n", "myprofile.yaml: services: missing day_care, meal, street_centre, institution"),
    ("extends: wuxi\n  bad: [\n", "myprofile.yaml: not valid YAML"),
    ("- a\n- b\n", "myprofile.yaml: a profile must be a mapping"),
])
def test_validation_errors_are_one_line_naming_file_and_key(tmp_path, text, message):
    path = _write(tmp_path, "myprofile.yaml", text)
    with pytest.raises(InputError) as err:
        load_profile(path)
    assert str(err.value).startswith(message), str(err.value)
    assert "\n" not in str(err.value)


def test_unknown_builtin_and_missing_file_and_cycle(tmp_path):
    with pytest.raises(InputError, match="no such built-in profile; choose one of kunshan, national"):
        load_profile("beijing")
    with pytest.raises(InputError, match="nothere.yaml: profile file not found"):
        load_profile(tmp_path / "nothere.yaml")
    _write(tmp_path, "a.yaml", "extends: b.yaml\n")
    _write(tmp_path, "b.yaml", "extends: a.yaml\n")
    with pytest.raises(InputError, match="circular"):
        load_profile(tmp_path / "a.yaml")
