"""Every word of the outputs, in Chinese and English: column labels, check labels and the
standards' text, layer names and legend texts.

The analysis emits keys and numbers (check keys, flags, values, units ``%`` / ``m²`` /
``count``); this module turns them into words with the run's profile (its names for its
services, centres and units) and the circle's minutes: :func:`column_labels` for every
table column, :func:`check_words` for every check, :func:`word_actions` for the action list
and :func:`word_flags` for the communities' ``flags`` text. It never loads a profile itself.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import pandas as pd

from carecircle.coverage.profile import Profile

# Columns of the layers the maps stage draws and exports besides the analysis tables
# (facilities, population points, isochrones) and the report's run parameters.
COLUMN_LABELS: dict[str, tuple[str, str]] = {
    "fid": ("设施编号", "facility id"),
    "source_row": ("源文件行号", "source row"),
    "name": ("名称", "name"),
    "type": ("类型", "type"),
    "address": ("地址", "address"),
    "floor_area_m2": ("建筑面积（m²）", "floor area (m²)"),
    "beds": ("床位", "beds"),
    "capacity": ("服务能力（位/日）", "capacity (places per day)"),
    "lon": ("经度", "longitude"),
    "lat": ("纬度", "latitude"),
    "snap_m": ("吸附距离（m）", "snap distance (m)"),
    "snapped": ("已吸附到路网", "snapped to network"),
    "pid": ("人口点编号", "population point id"),
    "people": ("人口", "people"),
    "elderly": ("老年人口（60+）", "elderly (60+)"),
    "facility_fid": ("设施编号", "facility id"),
    "service": ("服务", "service"),
    "kind": ("类别", "kind"),
    "cutoff_m": ("步行距离（m）", "walk distance (m)"),
    "minutes": ("步行时间（分钟）", "walk time (min)"),
    "population_covered_share": ("人口覆盖率", "population covered"),
    "elderly_covered_share": ("老年人覆盖率", "elderly covered"),
    # summary.json "parameters", shown in the report's overview
    "profile": ("标准配置", "standards profile"),
    "walk_distance_m": ("步行圈距离（m）", "walking-circle distance (m)"),
    "walk_minutes": ("步行时间（分钟）", "walk time (min)"),
    "walk_speed_kmh": ("步行速度（km/h）", "walking speed (km/h)"),
    "distance_search_limit_m": ("距离计算上限（m）", "distance search limit (m)"),
    "max_snap_m": ("最大吸附距离（m）", "max. snap distance (m)"),
    "min_component_nodes": ("路网孤岛最少节点数", "min. nodes of a network island"),
    "household_size": ("户均人口", "persons per household"),
    "analysis_crs": ("分析坐标系", "analysis CRS"),
    "scenario": ("规划情景", "scenario"),
}

# The population points' walk distance per service (the analysis labels its own per-service columns).
DIST_PATTERN = (re.compile(r"^dist_(.+)_m$"), ("至{zh}步行距离（m）", "walk to {en} (m)"))

# Layers the maps stage draws and exports where its own labels win over the analysis' (whose
# ``name`` is a community's and ``elderly`` a community's total).
OWN_LAYERS = frozenset({"facilities", "population", "uncovered", "isochrones"})

# Words of the map, the report and the tables that are not column names.
TEXT: dict[str, tuple[str, str]] = {
    "isochrone_dissolved": ("步行圈（合并）", "walking circle (dissolved)"),
    "isochrone_facility": ("步行圈（单个设施）", "walking circle (per facility)"),
    "isochrone_catchment": ("服务范围（最近设施）", "catchment (nearest facility)"),
    "walking_circle": ("{minutes}分钟步行圈", "{minutes}-minute walking circle"),
    "walking_circle_m": ("{metres}米步行圈", "{metres} m walking circle"),
    "communities_by_check": ("社区（按最严重问题着色）", "communities by worst failed check"),
    "compliant": ("达标", "compliant"),
    "elderly_density": ("老年人口密度（人/公顷）", "elderly density (per ha)"),
    "population_density": ("人口密度（人/公顷）", "population density (per ha)"),
    "uncovered": ("未覆盖老年人口", "elderly outside the circle"),
    "uncovered_people": ("未覆盖人口", "people outside the circle"),
    "streets": ("街道边界与考核", "sub-districts and scorecards"),
    "street_boundary": ("街道边界", "sub-district boundary"),
    "street_level": ("（全街道）", "(whole sub-district)"),
    "failed_checks": ("未达标项", "failed checks"),
    "now": ("现状", "now"),
    "required": ("标准", "required"),
    "short": ("缺口", "short"),
    "standard": ("标准", "standard"),
    "source": ("依据", "source"),
    "unreachable": ("不可达", "unreachable"),
    "minutes": ("分钟", "min"),
    "legend": ("图例", "legend"),
    "services": ("服务", "services"),
    "yes": ("是", "yes"),
    "no": ("否", "no"),
    "shared_site": ("同址多项服务：标记并排显示", "one site, several services: markers side by side"),
    "map_title": ("{place}{circle}养老服务圈", "{place} {circle} elderly-care circles"),
    "report_title": ("养老服务设施步行覆盖评估报告", "Elderly-care walking coverage report"),
    "overview": ("总体情况", "Overview"),
    "communities_total": ("社区总数", "communities"),
    "communities_flagged": ("存在问题的社区", "communities with a failed check"),
    "ranking": ("街道考核排名", "Sub-district ranking"),
    "scorecard": ("考核表", "Scorecard"),
    "coverage_chart": ("各项服务老年人覆盖率", "Elderly covered per service"),
    "shortfall_chart": ("各社区养老服务用房缺口（m²）", "Space shortfall per community (m²)"),
    "actions": ("问题清单", "Action list"),
    "sources": ("依据", "Sources"),
    "no_actions": ("无问题", "No failed checks"),
    "no_shortfall": ("无面积缺口", "No space shortfall"),
    "fields": ("字段说明", "fields"),
    "balance": ("供需比", "supply/demand"),
    "balance_layer": ("街道供需比：{service}", "sub-district supply/demand: {service}"),
    "balance_under": ("供给不足", "under-supplied"),
    "balance_balanced": ("供需平衡", "balanced"),
    "balance_over": ("供给富余", "over-supplied"),
    "balance_none": ("无数据", "no data"),
    "balance_chart": ("各街道每千名老人服务能力（2SFCA）", "Places per 1000 elderly per sub-district (2SFCA)"),
    "city_mean": ("全市平均", "city mean"),
    "column": ("字段", "column"),
}


def text(key: str, lang: str = "zh", **values) -> str:
    """A word of the outputs (map layer names, report headings) in ``lang``.

    Parameters
    ----------
    key : str
        A key of :data:`TEXT`.
    lang : {"zh", "en"}
    **values
        Fill the word's ``{placeholders}`` (``minutes``, ``place``...).

    Returns
    -------
    str
    """
    word = TEXT[key][1 if lang == "en" else 0]
    return word.format(**values) if values else word


def analysis_labels(profile: Profile, cutoff_m: float | None = None) -> dict[str, tuple[str, str]]:
    """``{column: (中文, English)}`` of every analysis column.

    Parameters
    ----------
    profile : Profile
        Names the services, the checks and the sub-district unit.
    cutoff_m : float, optional
        The run's walk circle (for the check texts); default the profile's.

    Returns
    -------
    dict
        The ``labels`` argument of :func:`carecircle.maps.export.write_tables`,
        :func:`~carecircle.maps.export.write_package`, :func:`carecircle.maps.html.build_map`
        and :func:`carecircle.maps.planning_report.write_report`.
    """
    zh, en = column_labels("zh", profile, cutoff_m), column_labels("en", profile, cutoff_m)
    return {col: (zh[col], en.get(col, zh[col])) for col in zh}


def profile_services(profile: Profile) -> dict[str, dict[str, str]]:
    """The services of ``profile`` and their names.

    Parameters
    ----------
    profile : Profile

    Returns
    -------
    dict
        ``{service key: {"label_zh", "label_en"}}`` in the profile's order: the ``services``
        argument of the writers, as :func:`analysis_labels` is their ``labels``.
    """
    return {k: {"label_zh": s.label_zh, "label_en": s.label_en} for k, s in profile.services.items()}


@dataclass(frozen=True)
class Labels:
    """Every label of one output in one language.

    Parameters
    ----------
    lang : {"zh", "en"}
    columns : mapping, optional
        The analysis labels, ``{column: (中文, English)}`` (:func:`analysis_labels` of the
        run's profile); when None only the profile-free labels (:data:`ANALYSIS_LABELS`).
    services : mapping, optional
        ``{service key: {"label_zh", "label_en"}}`` in map/legend order (none when None).
    """

    lang: str = "zh"
    columns: Mapping[str, tuple[str, str]] | None = None
    services: Mapping[str, Mapping[str, str]] | None = None

    def __post_init__(self) -> None:
        # Resolved once: the attributes are never None after construction.
        if self.columns is None:
            object.__setattr__(self, "columns", ANALYSIS_LABELS)
        if self.services is None:
            object.__setattr__(self, "services", {})

    def _pick(self, pair: tuple[str, str]) -> str:
        return pair[1] if self.lang == "en" else pair[0]

    def pair(self, column: str, *, own_first: bool = False) -> tuple[str, str]:
        """``(中文, English)`` of ``column``; the column name itself when nobody labels it.

        ``own_first``: the maps stage's own labels win (facility, population and isochrone layers).
        """
        tables = (COLUMN_LABELS, self.columns) if own_first else (self.columns, COLUMN_LABELS)
        for table in tables:
            if column in table:
                return tuple(table[column])
        match = DIST_PATTERN[0].match(column)
        if match and match.group(1) in self.services:
            spec = self.services[match.group(1)]
            zh, en = DIST_PATTERN[1]
            return zh.format(zh=spec["label_zh"]), en.format(en=spec["label_en"])
        return column, column

    def pairs(self, columns: Iterable[str], *, own_first: bool = False) -> dict[str, tuple[str, str]]:
        """``{column: (中文, English)}`` for ``columns``."""
        return {str(c): self.pair(str(c), own_first=own_first) for c in columns}

    def column(self, column: str, *, own_first: bool = False) -> str:
        """Label of ``column`` in this language."""
        return self._pick(self.pair(column, own_first=own_first))

    def check(self, check: str, default: str | None = None) -> str:
        """Label of a check key (a ``worst_check`` value, the suffix of a ``flag_<check>`` column);
        ``default`` (else the key) for a check nobody labels."""
        if not check:
            return self.text("compliant")
        column = f"flag_{check}"
        label = self.column(column)
        return label if label != column else (default if default is not None else check)

    def service(self, key: str) -> str:
        """The profile's label of service ``key`` (the key itself if nobody named it)."""
        spec = self.services.get(key)
        return key if spec is None else self._pick((spec["label_zh"], spec["label_en"]))

    def text(self, key: str, **values) -> str:
        """A word of the outputs in this language (:func:`text`)."""
        return text(key, self.lang, **values)

    def titled(self, base: str, detail: str) -> str:
        """"步行圈（合并）：助餐点" / "walking circle (dissolved): meal point"."""
        return f"{base}: {detail}" if self.lang == "en" else f"{base}：{detail}"

    def bracketed(self, base: str, detail: str) -> str:
        """"助餐点（3）" / "meal point (3)"."""
        return f"{base} ({detail})" if self.lang == "en" else f"{base}（{detail}）"


# ----------------------------------------------------------------------------- analysis words

#: Labels of the analysis columns that need no profile (communities, streets, estates, actions).
ANALYSIS_LABELS: dict[str, tuple[str, str]] = {
    # communities
    "name": ("社区名称", "community"), "street": ("所属街道", "sub-district"), "households": ("户数", "households"),
    "households_source": ("户数来源", "households source"), "households_new": ("新建小区户数", "households, new estates"),
    "households_existing": ("已建小区户数", "households, existing estates"), "population": ("人口", "population"),
    "elderly": ("老年人口", "elderly"), "n_points": ("人口点数", "population points"), "dist_basis": ("距离依据", "distance basis"),
    "nearest_basis": ("最近设施距离依据", "nearest-facility basis"),
    "community_kind": ("类型（城/乡）", "kind (urban / rural)"), "street_kind": ("街道类型", "sub-district kind"),
    "space_required_m2": ("应配养老用房面积（㎡）", "space required (m²)"), "space_target_m2": ("目标养老用房面积（㎡）", "space target (m²)"),
    "space_provided_m2": ("现有养老用房面积（㎡）", "space provided (m²)"), "space_provided_from": ("现有面积来源", "space provided from"),
    "space_shortfall_m2": ("养老用房缺口（㎡）", "space shortfall (m²)"),
    "space_target_shortfall_m2": ("距目标缺口（㎡）", "shortfall to target (m²)"), "largest_unit_m2": ("最大单处用房面积（㎡）", "largest unit (m²)"),
    "space_area_unknown": ("面积未知设施数", "facilities of unknown floor area"),
    "pooled_units": ("达规模集中用房处数", "pooled units"), "pooled_units_required": ("应集中配建处数", "pooled units required"),
    "n_stations": ("养老服务站（点）数", "care stations"), "largest_station_m2": ("最大站点面积（㎡）", "largest station (m²)"),
    "stations_area_unknown": ("面积未知站点数", "stations of unknown floor area"),
    "estates_listed": ("小区数", "estates"), "estates_covered": ("覆盖小区数", "estates covered"),
    "facilities_unknown_area": ("缺面积数据的设施", "facilities without a floor area"),
    "per_capita_required_m2": ("按人均标准应配面积（㎡）", "per-capita requirement (m²)"),
    "n_flags": ("问题数", "failed checks"), "worst_check": ("最严重问题", "worst check"), "flags": ("问题", "flags"),
    "failed_checks": ("未达标项（键）", "failed checks (keys)"), "unverified_checks": ("待核实项（键）", "unverified checks (keys)"),
    # streets
    "communities": ("社区数", "communities"), "communities_flagged": ("有问题社区数", "communities flagged"),
    "communities_with_station": ("有站点社区数", "communities with a station"), "has_street_centre": ("有综合养老服务中心", "has centre"),
    "n_street_centres": ("综合养老服务中心数", "centres"),
    "nearest_street_centre": ("最近综合养老服务中心", "nearest centre"),
    "nearest_street_centre_m": ("最近综合养老服务中心距离（米）", "nearest centre (m)"),
    "nearest_street_centre_basis": ("最近综合养老服务中心距离依据", "nearest-centre basis"),
    "nearest_centre": ("最近综合养老服务中心", "nearest centre"),
    "nearest_centre_m": ("最近综合养老服务中心距离（米）", "nearest centre (m)"),
    "space_estates_short": ("面积不足小区数", "estates short of space"),
    "care_floor_area_m2": ("养老服务设施建筑面积（㎡）", "care floor area (m²)"),
    # estates (estates.csv)
    "estate_class": ("新建/已建", "new / existing"), "per_estate": ("逐小区核算", "checked estate by estate"),
    "space_rate_m2_per_100hh": ("每百户标准（㎡）", "rate (m² per 100 households)"),
    "estate": ("小区名称", "estate"), "built_year": ("建成年份", "year built"),
    "n_large_centres": ("达规模日间照料中心数", "large centres"),
    "score": ("得分", "score"), "rank": ("排名", "rank"),
    # actions
    "community": ("社区", "community"), "check": ("检查项", "check"), "check_label": ("问题", "problem"), "value": ("现状值", "value"),
    "verdict": ("结论", "verdict"), "target_year": ("目标年份", "target year"),
    "required": ("标准值", "required"), "shortfall": ("缺口", "shortfall"), "unit": ("单位", "unit"),
    "elderly_affected": ("受影响老年人", "elderly affected"), "standard": ("标准", "standard"), "source": ("依据", "source"),
    "nearest_facility": ("最近设施", "nearest facility"), "nearest_facility_m": ("最近设施距离（米）", "nearest facility (m)"),
}

_SERVICE_LABELS = {
    "dist_{s}_mean_m": ("到{zh}平均步行距离（米）", "mean walk to {en} (m)"),
    "dist_{s}_p90_m": ("到{zh}步行距离90分位（米）", "worst-decile walk to {en} (m)"),
    "elderly_covered_share_{s}": ("{zh}老年人覆盖率", "elderly covered, {en}"),
    "population_covered_share_{s}": ("{zh}人口覆盖率", "population covered, {en}"),
    "nearest_{s}": ("最近{zh}", "nearest {en}"), "nearest_{s}_m": ("最近{zh}距离（米）", "nearest {en} (m)"),
    "communities_covered_{s}": ("{zh}覆盖社区数", "communities covered, {en}"),
    "coverage_rate_{s}": ("{zh}社区覆盖率", "community coverage, {en}"), "target_{s}": ("{zh}覆盖目标", "target, {en}"),
    "meets_target_{s}": ("{zh}达标", "meets target, {en}"), "n_present_{s}": ("社区内{zh}数", "{en}s inside"),
}

# Capacity columns (coverage/capacity.py), per service of profile.capacity.services.
_CAPACITY_LABELS = {
    "capacity_{s}": ("{zh}服务能力（位）", "{en} capacity (places)"),
    "capacity_basis_{s}": ("{zh}服务能力来源", "{en} capacity from"),
    "elderly_in_catchment_{s}": ("{zh}步行圈内老年人", "elderly within the circle of the {en}"),
    "load_{s}": ("{zh}饱和度", "{en} load (elderly ÷ places)"),
    "served_{s}": ("{zh}分配服务老年人", "elderly allocated to the {en}"),
    "supply_per_1000_elderly_{s}": ("每千名老人{zh}服务能力（2SFCA）", "{en} places per 1000 elderly (2SFCA)"),
    "supply_gaussian_per_1000_elderly_{s}": ("每千名老人{zh}服务能力（高斯2SFCA）", "{en} places per 1000 elderly (Gaussian 2SFCA)"),
    "no_capacity_in_reach_{s}": ("步行圈内无{zh}服务能力", "no {en} capacity within the circle"),
    "elderly_served_within_{s}": ("{zh}圈内可服务老年人", "elderly served by a {en} within the circle"),
    "elderly_served_beyond_{s}": ("{zh}圈外可服务老年人", "elderly served by a {en} beyond the circle"),
    "elderly_unserved_{s}": ("{zh}无法服务老年人", "elderly without a {en} place"),
    "supply_demand_ratio_{s}": ("{zh}供需比", "{en} supply/demand ratio"),
    "supply_demand_class_{s}": ("{zh}供需类型", "{en} supply/demand class"),
}

#: Verdicts of the action list.
VERDICT_WORDS = {"fail": ("未达标", "fails"), "unverified": ("待核实（缺面积数据）", "unverified (floor area unknown)"),
                 "reported": ("未设置（按比例考核）", "absent (plan target is a share)")}
#: Units of the action list (the analysis' unit keys).
UNIT_WORDS = {"%": ("%", "%"), "m²": ("m²", "m²"), "count": ("处", "sites")}
#: Community kinds.
KIND_WORDS = {"urban": ("城市社区", "urban communities"), "rural": ("农村社区（村）", "rural communities (villages)")}
#: Sub-district kinds as written locally, in English.
STREET_KIND_EN = {"街道": "jiedao (urban sub-district)", "镇": "town", "乡": "township", "乡镇": "town or township",
                  "主功能区": "main functional area", "城市街道": "urban jiedao"}


def _street_kinds(kinds, lang: int) -> str:
    return "、".join(kinds) if lang == 0 else ", ".join(STREET_KIND_EN.get(k, k) for k in kinds)


def _g(x: float) -> str:
    return f"{x:g}"


def _kinds(kinds, lang: int) -> str:
    """A scope's kinds as words ("" for every kind)."""
    if not kinds:
        return ""
    words = [KIND_WORDS[k][lang] if k in KIND_WORDS else k for k in kinds]
    return ("、".join(words) if lang == 0 else ", ".join(words))


def _space_standard(profile: Profile) -> tuple[str, str]:
    """The 每百户 m² standard as text (Chinese, English): new and existing, ranges, 逐小区."""
    sp = profile.space
    parts_zh, parts_en = [], []
    for r, zh, en in ((sp.new, f"新建（{sp.new_from_year}年起）", f"new (built {sp.new_from_year} on)"), (sp.existing, "已建", "existing")):
        if r.min_m2_per_100hh is None:
            parts_zh.append(f"{zh}：未规定")
            parts_en.append(f"{en}: not stated")
            continue
        rng = _g(r.min_m2_per_100hh)
        if r.target_m2_per_100hh != r.min_m2_per_100hh:
            rng += f"–{_g(r.target_m2_per_100hh)}"
        each_zh, each_en = ("，逐小区核算", ", estate by estate") if r.per_estate else ("", "")
        parts_zh.append(f"{zh}每百户 {rng} m²（≥ {_g(r.min_m2_per_100hh)} 达标{each_zh}）")
        parts_en.append(f"{en}: {rng} m² per 100 households (≥ {_g(r.min_m2_per_100hh)} complies{each_en})")
    zh, en = "；".join(parts_zh), "; ".join(parts_en)
    if sp.applies_to:
        zh, en = f"{zh}（适用于{_street_kinds(sp.applies_to, 0)}）", f"{en} (in {_street_kinds(sp.applies_to, 1)})"
    return zh, en


def check_words(profile: Profile, cutoff_m: float | None = None) -> dict[str, dict[str, tuple[str, str]]]:
    """Words of every check the profile can apply: ``{key: {"label": (zh, en), "standard": (zh, en)}}``.

    Parameters
    ----------
    profile : Profile
        Supplies the names of its services, centres and units and the numbers of its rules.
    cutoff_m : float, optional
        The run's walk circle in metres (default the profile's).

    Returns
    -------
    dict
    """
    cutoff = profile.walk_distance_m if cutoff_m is None else cutoff_m
    minutes, sub, unit = _g(profile.walk.minutes), profile.sub_district_label, profile.community_label
    thr = _g(profile.circle.min_covered_share * 100)
    sv = profile.services
    out: dict[str, dict[str, tuple[str, str]]] = {}
    circle_where = _kinds(profile.circle.applies_to if set(profile.circle.applies_to) != {"urban", "rural"} else None, 0)
    for s in profile.circle_services:
        spec, share = sv[s], _g(profile.target(s).share * 100)
        out[f"no_{s}"] = {
            "label": (f"{spec.label_zh}不在{minutes}分钟步行圈内", f"no {spec.label_en} within a {minutes}-minute walk"),
            "standard": (f"步行{_g(cutoff)}米内老年人占比 ≥ {thr}%；目标：{share}%的{unit}覆盖" + (f"（{circle_where}）" if circle_where else ""),
                         f"elderly within a {_g(cutoff)} m walk ≥ {thr}%; target: {share}% of communities covered"),
        }
    for key, rule in profile.presence.items():
        zh = "或".join(sv[s].label_zh for s in rule.services)
        en = " or ".join(sv[s].label_en for s in rule.services)
        out[key] = {"label": (f"{unit}内无{zh}", f"no {en} inside the community"),
                    "standard": (f"每个{_kinds(rule.applies_to, 0) or unit}内 ≥ 1 处", f"≥ 1 inside every {_kinds(rule.applies_to, 1) or 'community'}")}
    ec = profile.estate_coverage
    out["estate_coverage"] = {"label": ("助餐服务未覆盖社区内所有小区", "service does not reach every estate"), "standard": ("", "")}
    if ec is not None:
        zh = sv[ec.services[0]].label_zh
        en = sv[ec.services[0]].label_en
        out["estate_coverage"] = {"label": (f"{zh}未覆盖社区内所有小区", f"{en} does not reach every estate"),
                                  "standard": (f"{_g(ec.min_share * 100)}%的小区在{minutes}分钟步行圈内",
                                               f"{_g(ec.min_share * 100)}% of estates within a {minutes}-minute walk")}
    zh, en = _space_standard(profile)
    out["space"] = {"label": ("养老服务用房面积不足", "elderly-service floor space short"), "standard": (zh, en)}
    pl = profile.pooled
    if pl is not None:
        out["pooled_space"] = {
            "label": (f"未集中配建≥{_g(pl.min_m2)}㎡养老服务用房", f"too few pooled units of ≥ {_g(pl.min_m2)} m²"),
            "standard": (f"新建住宅每{_g(pl.min_households)}–{_g(pl.max_households)}户统一配建1处 ≥ {_g(pl.min_m2)} m²（按每{_g(pl.max_households)}户1处计）",
                         f"new housing: one unit of ≥ {_g(pl.min_m2)} m² per {_g(pl.min_households)}–{_g(pl.max_households)} households "
                         f"(counted as one per {_g(pl.max_households)})"),
        }
    else:
        out["pooled_space"] = {"label": ("未集中配建养老服务用房", "no pooled unit"), "standard": ("", "")}
    st = profile.station
    st_zh = "或".join(sv[s].label_zh for s in st.services)
    st_en = " or ".join(sv[s].label_en for s in st.services)
    out["no_station"] = {"label": (f"{unit}无{st_zh}", f"no {st_en} in the community"),
                         "standard": (f"每个{unit} ≥ 1 处", "≥ 1 per community")}
    size = _g(st.min_floor_area_m2) if st.min_floor_area_m2 is not None else ""
    out["station_size"] = {"label": (f"{st_zh}面积不足{size}㎡", f"{st_en} smaller than {size} m²"),
                           "standard": (f"≥ 1 处 ≥ {size} m²", f"≥ 1 of ≥ {size} m²")}
    pc = profile.per_capita
    v = _g(pc.min_m2_per_person) if pc is not None else ""
    where = (sub, "sub-district") if pc is not None and pc.level == "sub_district" else (unit, "community")
    out["per_capita"] = {"label": (f"人均养老服务设施建筑面积不足{v}㎡", f"floor space below {v} m² per person"),
                         "standard": (f"按{where[0]}人均建筑面积 ≥ {v} m²", f"floor area ≥ {v} m² per person, per {where[1]}")}
    sd = profile.sub_district
    for key, rule in sd.place_rules().items():
        zh = "或".join(sv[s].label_zh for s in rule.services)
        en = " or ".join(sv[s].label_en for s in rule.services)
        scopes_zh = "；".join(
            (f"{_street_kinds(sc.applies_to, 0)}：" if sc.applies_to else "")
            + ("每个 ≥ " + str(rule.min_count) + " 处" if sc.target_share is None else f"{_g(sc.target_share * 100)}%的{sub}建有")
            for sc in rule.scopes)
        scopes_en = "; ".join(
            (f"{_street_kinds(sc.applies_to, 1)}: " if sc.applies_to else "")
            + (f"≥ {rule.min_count} in every one" if sc.target_share is None else f"{_g(sc.target_share * 100)}% of them have one")
            for sc in rule.scopes)
        label = (f"{sub}无{zh}", f"no {en} in the sub-district") if rule.min_count == 1 else (
            f"{sub}{zh}不足{rule.min_count}处", f"fewer than {rule.min_count} {en}s in the sub-district")
        out[key] = {"label": label, "standard": (scopes_zh, scopes_en)}
    if "no_street_centre" not in out:
        c = sv[sd.centre_services[0]] if sd.centre_services else sv["street_centre"]
        out["no_street_centre"] = {"label": (f"{sub}无{c.label_zh}", f"no {c.label_en} in the sub-district"), "standard": ("", "")}
    lc = sd.large_centres
    if lc is not None:
        lab = sv[lc.services[0]]
        out["large_centres"] = {
            "label": (f"{_g(lc.min_floor_area_m2)}㎡以上{lab.label_zh}不足{lc.min_count}家",
                      f"fewer than {lc.min_count} {lab.label_en}s of ≥ {_g(lc.min_floor_area_m2)} m²"),
            "standard": (f"每个{sub} ≥ {lc.min_count} 家 ≥ {_g(lc.min_floor_area_m2)} m²",
                         f"≥ {lc.min_count} of ≥ {_g(lc.min_floor_area_m2)} m² per sub-district"),
        }
    else:
        out["large_centres"] = {"label": ("达规模日间照料中心不足", "too few large day-care centres"), "standard": ("", "")}
    return out


def column_labels(lang: str, profile: Profile, cutoff_m: float | None = None) -> dict[str, str]:
    """Header labels for every analysis column (communities, streets, estates, actions).

    Parameters
    ----------
    lang : {"zh", "en"}
    profile : Profile
        Supplies the service and check labels and the sub-district word.
    cutoff_m : float, optional

    Returns
    -------
    dict
        Column name → label.
    """
    i = 1 if lang == "en" else 0
    out = {k: v[i] for k, v in ANALYSIS_LABELS.items()}
    sd = profile.sub_district
    centre = profile.services[sd.centre_services[0]] if sd.centre_services else profile.services["street_centre"]
    if i == 0:
        out["street"] = f"所属{profile.sub_district_label}"
        out["street_kind"] = f"{profile.sub_district_label}类型"
        out["has_street_centre"] = f"{profile.sub_district_label}有{centre.label_zh}"
        out["n_street_centres"] = f"{centre.label_zh}数"
        for col in ("nearest_street_centre", "nearest_centre"):
            out[col] = f"最近{centre.label_zh}"
            out[f"{col}_m"] = f"最近{centre.label_zh}距离（米）"
        out["nearest_street_centre_basis"] = f"最近{centre.label_zh}距离依据"
    else:
        out["has_street_centre"] = f"has {centre.label_en}"
        out["n_street_centres"] = f"{centre.label_en}s"
    for s in profile.circle_services:
        spec = profile.services[s]
        for pat, lab in _SERVICE_LABELS.items():
            out[pat.format(s=s)] = lab[i].format(zh=spec.label_zh, en=spec.label_en)
    for s in profile.capacity.services:
        spec = profile.services[s]
        for pat, lab in _CAPACITY_LABELS.items():
            out[pat.format(s=s)] = lab[i].format(zh=spec.label_zh, en=spec.label_en)
    words = check_words(profile, cutoff_m)
    for key, w in words.items():
        out[f"flag_{key}"] = w["label"][i]
        out[f"scope_{key}"] = ("考核方式：" + w["label"][0]) if i == 0 else f"how asked: {w['label'][1]}"
        out[f"meets_{key}"] = ("达标：" + w["standard"][0]) if i == 0 else f"meets: {w['standard'][1]}"
        out[f"kind_share_{key}"] = ("同类达标比例：" + w["label"][0]) if i == 0 else f"share of its kind meeting: {w['label'][1]}"
    for key, rule in profile.presence.items():
        out[f"n_{key}"] = ("社区内" if i == 0 else "inside: ") + ("或".join if i == 0 else " or ".join)(
            getattr(profile.services[s], "label_zh" if i == 0 else "label_en") for s in rule.services)
    for key, rule in sd.rules.items():
        out[f"n_{key}"] = ("或".join if i == 0 else " or ".join)(
            getattr(profile.services[s], "label_zh" if i == 0 else "label_en") for s in rule.services) + ("数" if i == 0 else "s")
    return out


def word_actions(actions: pd.DataFrame, profile: Profile, lang: str = "zh", cutoff_m: float | None = None) -> pd.DataFrame:
    """The action list with words: ``check_label``, ``standard`` and the unit and verdict in ``lang``.

    Parameters
    ----------
    actions : DataFrame
        :func:`carecircle.coverage.standards.action_list` (keys and numbers).
    profile : Profile
    lang : {"zh", "en"}
    cutoff_m : float, optional

    Returns
    -------
    DataFrame
        ``actions`` with ``check_label`` after ``check``, ``standard`` before ``source``, and
        ``unit`` / ``verdict`` in words.
    """
    i = 1 if lang == "en" else 0
    words = check_words(profile, cutoff_m)
    out = actions.copy()
    key = out["check"].astype(str)
    label = key.map(lambda k: words[k]["label"][i] if k in words else k)
    city = (out["street"].fillna("").astype(str) == "") & (out["community"].fillna("").astype(str) == "")
    label = label.where(~city, label + ("（全市）" if i == 0 else " (city share)"))
    out.insert(out.columns.get_loc("check") + 1, "check_label", label.to_numpy())
    out.insert(out.columns.get_loc("source"), "standard", key.map(lambda k: words[k]["standard"][i] if k in words else "").to_numpy())
    out["unit"] = out["unit"].map(lambda u: UNIT_WORDS.get(u, (u, u))[i])
    out.loc[key == "large_centres", "unit"] = ("家", "centres")[i]
    if "verdict" in out.columns:
        out["verdict"] = out["verdict"].map(lambda v: VERDICT_WORDS.get(v, (v, v))[i])
    return out


def word_flags(communities: pd.DataFrame, profile: Profile, lang: str = "zh", cutoff_m: float | None = None) -> pd.DataFrame:
    """The communities with ``flags``: the labels of their failed checks (then the unverified
    ones, marked), joined by "；" ("; " in English)."""
    i = 1 if lang == "en" else 0
    words = check_words(profile, cutoff_m)
    sep = "; " if i else "；"
    mark = " (unverified)" if i else "（待核实）"

    def text(row_failed: str, row_unverified: str) -> str:
        failed = [words[k]["label"][i] for k in row_failed.split(";") if k in words]
        unv = [words[k]["label"][i] + mark for k in row_unverified.split(";") if k in words]
        return sep.join(failed + unv)

    out = communities.copy()
    failed = out.get("failed_checks", pd.Series("", index=out.index)).fillna("").astype(str)
    unverified = out.get("unverified_checks", pd.Series("", index=out.index)).fillna("").astype(str)
    out["flags"] = [text(f, u) for f, u in zip(failed, unverified)]
    return out


# ----------------------------------------------------------------------------- deliverables (issue 15)
# Words of the map's basemap, name and 小区 layers, the report's cover and conclusions, and the
# XLSX summaries; kept in one block of their own.
TEXT.update({
    "network": ("路网（步行）", "walk network"),
    "community_names": ("社区名称", "community names"),
    "estates": ("小区", "residential estates"),
    "estate_names": ("未达标小区名称", "names of estates short of space"),
    "estates_failing": ("养老服务用房不足的小区（{n}）", "estates short of care space ({n})"),
    "estate_short": ("养老服务用房缺口 {m2} m²", "care space short by {m2} m²"),
    "no_street_centre": ("未设街道综合养老服务中心", "no sub-district care centre"),
    "cover_city": ("城市/区域", "city / district"),
    "cover_profile": ("评估标准", "standards profile"),
    "cover_date": ("编制日期", "date"),
    "cover_circle": ("步行圈", "walking circle"),
    "city_map": ("全域概览图", "Overview map"),
    "conclusions": ("结论与建议", "Findings and recommendations"),
    "street_summary": ("本{unit}共有社区 {n} 个，其中 {flagged} 个存在未达标项。",
                       "{n} communities in this {unit}, {flagged} with a failed check."),
    "street_coverage": ("老年人步行圈覆盖率：{shares}。", "Elderly within the walking circle: {shares}."),
    "finding": ("{where}：{check}，现状 {value}，标准 {required}{short}", "{where}: {check}, now {value}, required {required}{short}"),
    "finding_short": ("，缺口 {shortfall}", ", short by {shortfall}"),
    "finding_nearest": ("；最近设施 {facility}，步行 {metres} m", "; nearest facility {facility}, {metres} m walk"),
    "priority": ("建议优先解决{where}的问题（涉及老年人 {elderly} 人）。", "Start with {where} ({elderly} elderly affected)."),
    "recommend_space": ("补足养老服务用房面积缺口共 {m2}。", "Close the care-space shortfall of {m2} in all."),
    "estate_check": ("小区养老服务用房不足", "estate short of care space"),
    "recommend_circle": ("在未覆盖社区就近增设{services}，使步行圈覆盖全部社区。",
                         "Add {services} near the communities outside the circle so every community is covered."),
    "all_compliant": ("各项考核均已达标。", "Every check is met."),
    "summary_sheet": ("汇总", "summary"),
    "coverage_by_street": ("各{unit}老年人覆盖率", "Elderly covered per {unit}"),
    "item": ("项目", "item"),
    "value": ("数值", "value"),
    "no_cjk_font": ("未找到中文字体，报告图表已省略", "no Chinese font: charts left out"),
    "rows": ("行数", "rows"),
    "count_yes": ("{column}：是", "{column}: yes"),
    "total_of": ("{column}合计", "total {column}"),
})

#: Chinese values of the codes the tables carry, per column (shown in Chinese sheets only).
CODE_VALUES: dict[str, dict[str, tuple[str, str]]] = {
    "estate_class": {"new": ("新建", "new"), "existing": ("已建", "existing")},
    "dist_basis": {"population": ("人口点", "population points"),
                   "representative_point": ("社区内点", "a point inside the community")},
    "nearest_basis": {"walk": ("步行距离", "walk"), "straight_line": ("直线距离", "straight line")},
    "nearest_street_centre_basis": {"walk": ("步行距离", "walk"), "straight_line": ("直线距离", "straight line")},
    "households_source": {"estates": ("小区汇总", "sum of estates"), "population": ("按人口推算", "from population"),
                          "community": ("社区填报", "community layer")},
    "space_provided_from": {"estates": ("小区配建", "estates"), "facilities": ("设施建筑面积", "facility floor area")},
    "kind": {"dissolved": ("合并", "dissolved"), "facility": ("单个设施", "per facility"), "catchment": ("服务范围", "catchment")},
}


def circle_words(minutes: float | None, distance_m: float, lang: str = "zh") -> str:
    """The run's circle as it is written in labels: "10分钟", or "800米" when given as a distance.

    Parameters
    ----------
    minutes : float or None
        The circle in minutes; None when the run gave it as a distance.
    distance_m : float
        The circle's network distance (rounded to a whole metre when shown).
    lang : {"zh", "en"}

    Returns
    -------
    str
    """
    if minutes is not None:
        return f"{minutes:g}-minute" if lang == "en" else f"{minutes:g}分钟"
    return f"{distance_m:,.0f} m" if lang == "en" else f"{distance_m:,.0f}米"


def circle_rewriter(profile_minutes: float, minutes: float | None, distance_m: float):
    """A function that rewrites the profile's circle ("15分钟", "15-minute") in a text as the run's.

    The analysis names its checks after the profile's circle; a run may walk a different one
    (``walk.minutes`` or ``walk.distance_m``), and every label must say the circle it used.

    Parameters
    ----------
    profile_minutes : float
        The profile's circle, as the analysis' words state it.
    minutes, distance_m
        The run's circle.

    Returns
    -------
    callable
        ``str -> str``; other values are returned as they are.
    """
    old = (circle_words(profile_minutes, 0, "zh"), circle_words(profile_minutes, 0, "en"))
    new = (circle_words(minutes, distance_m, "zh"), circle_words(minutes, distance_m, "en"))

    def rewrite(text):
        if not isinstance(text, str) or old == new:
            return text
        return text.replace(old[0], new[0]).replace(old[1], new[1])

    return rewrite


def follow_circle(labels: Mapping[str, tuple[str, str]], profile_minutes: float, minutes: float | None,
                  distance_m: float) -> dict[str, tuple[str, str]]:
    """``labels`` with the profile's circle ("15分钟") replaced by the run's ("10分钟", "800米").

    Parameters
    ----------
    labels : mapping
        ``{column: (中文, English)}`` (:func:`analysis_labels`).
    profile_minutes : float
    minutes, distance_m
        See :func:`circle_rewriter`.

    Returns
    -------
    dict
    """
    rewrite = circle_rewriter(profile_minutes, minutes, distance_m)
    return {k: (rewrite(zh), rewrite(en)) for k, (zh, en) in labels.items()}


# ----------------------------------------------------------------------------- walking speeds (issue 12)
# The report's sensitivity and step-free tables (summary.json speed_sensitivity / step_free_comparison).
TEXT.update({
    "speed_sensitivity": ("步速敏感性（老年人步行较慢时的覆盖率）", "Walking-speed sensitivity (coverage for slower walkers)"),
    "step_free_comparison": ("无障碍路网对比（不含台阶）", "Step-free network compared (no steps)"),
    "network_standard": ("常规步行路网", "walk network as configured"),
    "network_step_free": ("无障碍路网", "step-free network"),
})
COLUMN_LABELS.update({
    "preset": ("步速设定", "speed preset"), "speed_kmh": ("步速（km/h）", "speed (km/h)"),
    "distance_m": ("步行距离（米）", "walk distance (m)"),
    "network_kind": ("路网", "network"),
})

