"""Chinese and English labels for the columns and checks the outputs show.

One table serves the map popups, the report, the XLSX headers and the shapefile field-alias
table, so a column is called the same thing everywhere. Columns that carry a service key
(``dist_day_care_m``, ``elderly_covered_share_meal`` ...) are labelled from patterns with
the service's own label from the profile.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

# Fixed columns of the data contracts (CONTRACT.md): column -> (中文, English).
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
    "street": ("街道", "sub-district"),
    "community": ("社区", "community"),
    "households": ("户数", "households"),
    "population": ("人口", "population"),
    "built_year": ("建成年份", "year built"),
    "space_m2": ("养老服务用房（m²）", "elderly-service space (m²)"),
    "space_required_m2": ("应配养老服务用房（m²）", "space required (m²)"),
    "space_provided_m2": ("已配养老服务用房（m²）", "space provided (m²)"),
    "space_shortfall_m2": ("养老服务用房缺口（m²）", "space shortfall (m²)"),
    "flag_space": ("用房面积不达标", "space below standard"),
    "n_flags": ("问题数", "failed checks"),
    "worst_check": ("最严重问题", "worst failed check"),
    "flags": ("问题", "failed checks (labels)"),
    "communities": ("社区数", "communities"),
    "communities_flagged": ("存在问题的社区数", "communities flagged"),
    "has_street_centre": ("有街道综合养老服务中心", "has a sub-district centre"),
    "score": ("得分", "score"),
    "rank": ("排名", "rank"),
    "check": ("检查项", "check"),
    "check_label": ("检查项名称", "check (label)"),
    "value": ("现状值", "value"),
    "required": ("标准值", "required"),
    "shortfall": ("缺口", "shortfall"),
    "unit": ("单位", "unit"),
    "elderly_affected": ("涉及老年人口", "elderly affected"),
    "standard": ("标准", "standard"),
    "source": ("依据", "source"),
    "nearest_facility": ("最近设施", "nearest facility"),
    "nearest_facility_m": ("最近设施距离（m）", "nearest facility (m)"),
    "facility_fid": ("设施编号", "facility id"),
    "population_covered_share": ("人口覆盖率", "population covered"),
    "elderly_covered_share": ("老年人覆盖率", "elderly covered"),
    "profile": ("标准配置", "standards profile"),
    "walk_distance_m": ("步行距离（m）", "walk distance (m)"),
    "walk_minutes": ("步行时间（分钟）", "walk time (min)"),
    "speed_kmh": ("步行速度（km/h）", "walking speed (km/h)"),
    "service": ("服务", "service"),
    "kind": ("类别", "kind"),
    "cutoff_m": ("步行距离（m）", "walk distance (m)"),
    "minutes": ("步行时间（分钟）", "walk time (min)"),
}

# Columns that name a service: regex with one group for the key -> (中文, English) templates.
SERVICE_PATTERNS: list[tuple[re.Pattern, tuple[str, str]]] = [
    (re.compile(r"^dist_(.+)_mean_m$"), ("{zh}平均步行距离（m）", "mean walk to {en} (m)")),
    (re.compile(r"^dist_(.+)_p90_m$"), ("{zh}步行距离90分位（m）", "90th percentile walk to {en} (m)")),
    (re.compile(r"^dist_(.+)_m$"), ("至{zh}步行距离（m）", "walk to {en} (m)")),
    (re.compile(r"^elderly_covered_share_(.+)$"), ("{zh}老年人覆盖率", "elderly covered by {en}")),
    (re.compile(r"^population_covered_share_(.+)$"), ("{zh}人口覆盖率", "population covered by {en}")),
    (re.compile(r"^communities_covered_(.+)$"), ("{zh}覆盖社区数", "communities covered by {en}")),
    (re.compile(r"^nearest_(.+)_m$"), ("最近{zh}距离（m）", "nearest {en} (m)")),
    (re.compile(r"^nearest_(.+)$"), ("最近{zh}", "nearest {en}")),
    (re.compile(r"^flag_no_(.+)$"), ("步行圈内无{zh}", "no {en} within the circle")),
]

# Check keys (``worst_check`` values, ``flag_<check>`` columns) that are not ``no_<service>``.
CHECK_LABELS: dict[str, tuple[str, str]] = {
    "space": ("养老服务用房面积不足", "elderly-service space below standard"),
    "space_min": ("单处用房面积不足", "facility below minimum size"),
    "per_capita": ("人均面积不足", "per-capita space below standard"),
    "pooled": ("集中配建面积不足", "pooled space below standard"),
    "station": ("社区无养老服务站", "no community station"),
    "street_centre": ("街道无综合养老服务中心", "no sub-district centre"),
}

# Fallback labels for the service keys of the contract when no profile is passed.
DEFAULT_SERVICES: dict[str, dict[str, str]] = {
    "day_care": {"label_zh": "日间照料中心", "label_en": "day care"},
    "meal": {"label_zh": "助餐点", "label_en": "meal point"},
    "street_centre": {"label_zh": "街道综合养老服务中心", "label_en": "sub-district centre"},
    "institution": {"label_zh": "养老机构", "label_en": "care institution"},
}

# Words of the map, the report and the tables that are not column names.
TEXT: dict[str, tuple[str, str]] = {
    "facilities": ("设施", "facilities"),
    "isochrone_dissolved": ("步行圈（合并）", "walking circle (dissolved)"),
    "isochrone_facility": ("步行圈（单个设施）", "walking circle (per facility)"),
    "isochrone_catchment": ("服务范围（最近设施）", "catchment (nearest facility)"),
    "communities_by_check": ("社区（按最严重问题着色）", "communities by worst failed check"),
    "compliant": ("达标", "compliant"),
    "elderly_density": ("老年人口密度（人/公顷）", "elderly density (per ha)"),
    "population_density": ("人口密度（人/公顷）", "population density (per ha)"),
    "uncovered": ("未覆盖老年人口", "elderly outside the circle"),
    "uncovered_people": ("未覆盖人口", "people outside the circle"),
    "streets": ("街道边界与考核", "sub-districts and scorecards"),
    "unreachable": ("不可达", "unreachable"),
    "minutes": ("分钟", "min"),
    "legend": ("图例", "legend"),
    "services": ("服务", "services"),
    "yes": ("是", "yes"),
    "no": ("否", "no"),
    "report_title": ("养老服务设施步行覆盖评估报告", "Elderly-care walking coverage report"),
    "overview": ("总体情况", "Overview"),
    "ranking": ("街道考核排名", "Sub-district ranking"),
    "scorecard": ("考核表", "Scorecard"),
    "coverage_chart": ("各项服务老年人覆盖率", "Elderly covered per service"),
    "shortfall_chart": ("各社区养老服务用房缺口（m²）", "Space shortfall per community (m²)"),
    "actions": ("问题清单", "Action list"),
    "no_actions": ("无问题", "No failed checks"),
    "no_shortfall": ("无面积缺口", "No space shortfall"),
    "parameters": ("参数", "Parameters"),
    "fields": ("字段说明", "fields"),
    "column": ("字段", "column"),
}


def _pick(pair: tuple[str, str], lang: str) -> str:
    return pair[1] if lang == "en" else pair[0]


def text(key: str, lang: str = "zh") -> str:
    """A word of the outputs (map layer names, report headings) in ``lang``."""
    return _pick(TEXT[key], lang)


def service_label(key: str, services: Mapping[str, Mapping[str, str]] | None, lang: str = "zh") -> str:
    """The profile's label of service ``key`` (the key itself if nobody named it)."""
    spec = (services or {}).get(key) or DEFAULT_SERVICES.get(key)
    if spec is None:
        return key
    return spec["label_en"] if lang == "en" else spec["label_zh"]


def column_label_pair(column: str, services: Mapping[str, Mapping[str, str]] | None = None) -> tuple[str, str]:
    """``(中文, English)`` label of a contract column; the column name when it is unknown."""
    if column in COLUMN_LABELS:
        return COLUMN_LABELS[column]
    for pattern, (zh, en) in SERVICE_PATTERNS:
        match = pattern.match(column)
        if match:
            key = match.group(1)
            return (zh.format(zh=service_label(key, services, "zh")), en.format(en=service_label(key, services, "en")))
    if column.startswith("flag_"):
        return check_label_pair(column[len("flag_"):], services)
    return (column, column)


def column_label(column: str, services: Mapping[str, Mapping[str, str]] | None = None, lang: str = "zh") -> str:
    """Label of ``column`` in ``lang`` ("zh" or "en")."""
    return _pick(column_label_pair(column, services), lang)


def column_labels(columns: Iterable[str], services: Mapping[str, Mapping[str, str]] | None = None) -> dict[str, tuple[str, str]]:
    """``{column: (中文, English)}`` for ``columns``: the ``labels`` argument of the exporters."""
    return {str(c): column_label_pair(str(c), services) for c in columns}


def check_label_pair(check: str, services: Mapping[str, Mapping[str, str]] | None = None) -> tuple[str, str]:
    """``(中文, English)`` label of a check key (``worst_check`` value or ``flag_<check>`` suffix)."""
    if check in CHECK_LABELS:
        return CHECK_LABELS[check]
    if check.startswith("no_"):
        key = check[len("no_"):]
        return (f"步行圈内无{service_label(key, services, 'zh')}", f"no {service_label(key, services, 'en')} within the circle")
    return (check, check)


def check_label(check: str, services: Mapping[str, Mapping[str, str]] | None = None, lang: str = "zh") -> str:
    """Label of a check key in ``lang``."""
    return _pick(check_label_pair(check, services), lang)
