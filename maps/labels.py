"""The words of the maps stage: its own columns, layer names and legend texts, in Chinese and
English, and one lookup that joins them to the analysis' labels.

The analysis tables (communities, streets, actions) are labelled by the analysis stage itself,
:func:`carecircle.coverage.standards.column_labels`, which knows the profile's service names,
its checks and its sub-district word; this module does not repeat those labels. What is
labelled here is what only the maps stage shows: facility, population-point and isochrone
columns, ``dist_<service>_m`` of the population points, the run parameters of the report's
overview, and the texts of layers, legends and headings.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from carecircle.coverage import standards
from carecircle.coverage.profile import Profile, load_profile

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


@functools.lru_cache(maxsize=None)
def _default_profile() -> Profile:
    return load_profile("national")


def analysis_labels(profile: Profile | None = None) -> dict[str, tuple[str, str]]:
    """``{column: (中文, English)}`` of every analysis column, from the analysis stage.

    Parameters
    ----------
    profile : Profile, optional
        Names the services, the checks and the sub-district unit; ``national`` when None.

    Returns
    -------
    dict
        The ``labels`` argument of :func:`carecircle.maps.export.write_tables`,
        :func:`~carecircle.maps.export.write_package`, :func:`carecircle.maps.html.build_map`
        and :func:`carecircle.maps.planning_report.write_report`.
    """
    zh, en = standards.column_labels("zh", profile), standards.column_labels("en", profile)
    return {col: (zh[col], en.get(col, zh[col])) for col in zh}


def profile_services(profile: Profile | None = None) -> dict[str, dict[str, str]]:
    """The services of ``profile`` and their names.

    Parameters
    ----------
    profile : Profile, optional
        ``national`` when None.

    Returns
    -------
    dict
        ``{service key: {"label_zh", "label_en"}}`` in the profile's order: the ``services``
        argument of the writers, as :func:`analysis_labels` is their ``labels``.
    """
    profile = profile or _default_profile()
    return {k: {"label_zh": s.label_zh, "label_en": s.label_en} for k, s in profile.services.items()}


@functools.lru_cache(maxsize=1)
def _default_analysis_labels() -> dict[str, tuple[str, str]]:
    return analysis_labels(_default_profile())


@dataclass(frozen=True)
class Labels:
    """Every label of one output in one language.

    Parameters
    ----------
    lang : {"zh", "en"}
    columns : mapping, optional
        The analysis labels, ``{column: (中文, English)}`` (:func:`analysis_labels` of the
        run's profile); the ``national`` profile's when None.
    services : mapping, optional
        ``{service key: {"label_zh", "label_en"}}`` in map/legend order; the ``national``
        profile's when None.
    """

    lang: str = "zh"
    columns: Mapping[str, tuple[str, str]] | None = None
    services: Mapping[str, Mapping[str, str]] | None = None

    def __post_init__(self) -> None:
        # Resolved once: the attributes are never None after construction.
        if self.columns is None:
            object.__setattr__(self, "columns", _default_analysis_labels())
        if self.services is None:
            object.__setattr__(self, "services", profile_services())

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
