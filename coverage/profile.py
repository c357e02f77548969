"""Standards profiles: the numbers a city's plan checks, as a validated model.

A profile is a YAML file in ``configs/profiles/`` (``national`` plus one per seed city) or a
user file that ``extends:`` a built-in profile (or another file) and overrides any key; the
two are deep-merged (mappings merge key by key, lists and scalars replace). Every number in a
built-in profile carries a comment naming its source document and the Chinese phrase it comes
from, and every checked standard carries that phrase as data (``source``) so that the action
list can print it next to each verdict.

Ranges stay ranges: a :class:`SpaceRate` has ``min_m2_per_100hh`` (compliance, flags a
community) and ``target_m2_per_100hh`` (the plan's upper bound, reported as a second
shortfall). A standard the plan does not state is ``null`` and its check is skipped, never
replaced by a guessed number.
"""

from __future__ import annotations

import importlib.resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from carecircle.errors import InputError

#: Kinds of community: 社区 are urban, 村 rural (``communities.kind_field`` or the name's ending).
CommunityKind = Literal["urban", "rural"]

#: Service keys every profile must define (the facility loader writes one bool column each).
REQUIRED_SERVICES = ("day_care", "meal", "street_centre", "institution")


class _Model(BaseModel):
    # Unknown keys are typos in a user profile: reject them instead of silently ignoring.
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class SpeedPreset(_Model):
    """A walking speed the circle is tested at (the run config's ``walk.sensitivity``)."""

    name: str
    speed_kmh: float = Field(gt=0)
    source: str = ""


class Walk(_Model):
    """The walking circle: ``minutes`` at ``speed_kmh`` gives the network distance.

    ``speed_presets`` are the speeds of the sensitivity table (older people walk slower).
    """

    minutes: float = Field(15.0, gt=0, le=120)
    speed_kmh: float = Field(4.0, ge=0.5, le=20)
    source: str = ""
    speed_presets: list[SpeedPreset] = Field(default_factory=list)


class ServiceSpec(_Model):
    """One facility service (a bool column on the facilities table)."""

    label_zh: str
    label_en: str
    keywords: list[str] = Field(default_factory=list)
    #: The walking-circle check (``flag_no_<key>``) applies to this service.
    circle: bool = False
    #: A name holding one of these is not this service even when a keyword matches
    #: ("社区综合养老服务中心" is a community tier, not the 街道 centre; "中央厨房" is a kitchen).
    exclude: list[str] = Field(default_factory=list)


class CircleRule(_Model):
    """When a community counts as inside the walking circle of a service.

    ``flag_no_<s>`` is set when the elderly-weighted share of the community's population
    points within the walk distance of an ``s`` facility is below ``min_covered_share``.
    Default 0.5: a community "has" the service when most of its elderly can walk to it; the
    plans count communities (村（社区）… 占比), so a community-level verdict is needed, and a
    majority rule is robust to a few outlying population cells at the community edge.
    """

    min_covered_share: float = Field(0.5, ge=0, le=1)
    source: str = ""
    #: Community kinds the circle checks apply to (SJZ's 一刻钟 circle is urban only).
    applies_to: list[CommunityKind] = Field(default_factory=lambda: ["urban", "rural"])


class Target(_Model):
    """A plan's target for the share of communities covered by a service (0–1)."""

    share: float = Field(1.0, ge=0, le=1)
    source: str = ""
    #: What the plan's indicator counts: ``circle`` (within the walking circle) or
    #: ``presence`` (the community runs the service itself: "开展…服务占比", "建成率").
    measure: Literal["circle", "presence"] = "circle"
    #: The year the plan sets for the target.
    year: int | None = Field(None, ge=1900, le=2100)


class SpaceRate(_Model):
    """每百户 m² of elderly-service rooms: ``min`` is compliance, ``target`` the upper bound."""

    min_m2_per_100hh: float | None = Field(None, ge=0)
    target_m2_per_100hh: float | None = Field(None, ge=0)
    #: Checked estate by estate (逐小区): each 小区 of this class must meet the rate on its
    #: own, so one estate's surplus does not offset another's deficit. ``false`` pools the
    #: class over the community (the plan lets rooms be shared, e.g. Wuxi's 调剂). Applies
    #: where the community's provided space comes from the 小区 ``space_m2`` (see
    #: ``space.provided_from``); facility floor area cannot be split between estates.
    per_estate: bool = False
    source: str = ""

    @model_validator(mode="after")
    def _target_not_below_min(self) -> SpaceRate:
        if self.target_m2_per_100hh is None:
            self.target_m2_per_100hh = self.min_m2_per_100hh
        elif self.min_m2_per_100hh is not None and self.target_m2_per_100hh < self.min_m2_per_100hh:
            raise ValueError("target_m2_per_100hh must be ≥ min_m2_per_100hh")
        return self


class Space(_Model):
    """The floor-space standard and how provided space is counted."""

    new: SpaceRate = Field(default_factory=SpaceRate)
    existing: SpaceRate = Field(default_factory=SpaceRate)
    #: Estates (or communities) built in or after this year are "new".
    new_from_year: int = Field(2014, ge=1900, le=2100)
    #: How an estate/community with unknown build year is treated ("existing" is the lower
    #: requirement, so unknown ages never create a shortfall the data cannot prove).
    unknown_year_as: Literal["existing", "new"] = "existing"
    #: Where provided space comes from: ``auto`` uses the 小区 ``space_m2`` where a community
    #: has at least one estate with a known value, else the floor area of qualifying
    #: facilities; ``estates`` / ``facilities`` force one source.
    provided_from: Literal["auto", "estates", "facilities"] = "auto"
    #: Facilities carrying any of these service flags count as elderly-service space.
    facility_services: list[str] = Field(default_factory=lambda: ["day_care", "meal", "street_centre"])
    #: ``inside``: facilities inside the community polygon; ``circle``: facilities within the
    #: walk distance of the community's representative point.
    count_facilities: Literal["inside", "circle"] = "inside"
    #: Sub-district kinds the floor-space rules apply to (None: everywhere). Rugao: 城市街道
    #: and 主功能区 only.
    applies_to: list[str] | None = None
    #: Where the cut-off year comes from (quoted in the README's profile tables).
    new_from_year_source: str = ""


class Pooled(_Model):
    """Rugao's pooled rule: one ≥ ``min_m2`` unit per ``min_households``–``max_households`` new households."""

    min_households: float = Field(gt=0)
    max_households: float = Field(gt=0)
    min_m2: float = Field(ge=0)
    source: str = ""
    #: Sub-district kinds the rule applies to (None: everywhere).
    applies_to: list[str] | None = None


class Station(_Model):
    """"One station per community" (一社区一站) and an optional minimum station size."""

    #: Facilities with any of these flags inside a community count as its station. Day
    #: care only: a meal-only point is not a "日间照料中心/站".
    services: list[str] = Field(default_factory=lambda: ["day_care"])
    required: bool = False
    min_floor_area_m2: float | None = Field(None, ge=0)
    source: str = ""
    #: Community kinds the station and station-size checks apply to.
    applies_to: list[CommunityKind] = Field(default_factory=lambda: ["urban", "rural"])


class PerCapita(_Model):
    """A per-person standard. Only ``floor_area`` can be checked against facility floor area;
    a ``land`` standard is kept for the record and reported as not checked."""

    min_m2_per_person: float = Field(ge=0)
    measure: Literal["floor_area", "land"] = "floor_area"
    source: str = ""
    #: Where it is checked: "分区分级" (SJZ, 国发〔2013〕35号) sets it per sub-district, street
    #: centre and community stations together, not per community.
    level: Literal["community", "sub_district"] = "sub_district"


class Presence(_Model):
    """A community check that the community has a service itself (a facility inside it).

    ``flag_<key>`` is set when no facility with any of ``services`` lies inside a community
    of a kind in ``applies_to``. Plans that count "开展…服务占比" or "建成率" (Kunshan,
    Rugao) and Shijiazhuang's rural 互助幸福院 / 邻里互助点 are presence checks.
    """

    services: list[str]
    applies_to: list[CommunityKind] = Field(default_factory=lambda: ["urban", "rural"])
    source: str = ""
    year: int | None = Field(None, ge=1900, le=2100)


class EstateCoverage(_Model):
    """Shijiazhuang's "覆盖社区内所有居住小区": every 小区 within the circle of ``services``.

    An estate is covered when the elderly-weighted share of the population points inside it
    within the walk is ≥ ``circle.min_covered_share`` (estates without points: their
    representative point's community row decides nothing and they are not counted).
    """

    services: list[str]
    min_share: float = Field(1.0, ge=0, le=1)
    applies_to: list[CommunityKind] = Field(default_factory=lambda: ["urban", "rural"])
    source: str = ""


class Scope(_Model):
    """Where a sub-district rule applies and what it asks there.

    ``applies_to``: sub-district kinds as written locally (街道, 镇, 乡, 乡镇, 主功能区 …;
    None: every kind). ``target_share`` None: every such place must meet the rule (a place
    that does not fails); a number: the share of such places meeting it is a city-level
    check (a single place without is reported, not flagged).
    """

    applies_to: list[str] | None = None
    target_share: float | None = Field(None, ge=0, le=1)
    source: str = ""
    year: int | None = Field(None, ge=1900, le=2100)


class PlaceRule(_Model):
    """At least ``min_count`` facilities with any of ``services`` inside a sub-district."""

    services: list[str]
    min_count: int = Field(1, ge=1)
    scopes: list[Scope] = Field(default_factory=lambda: [Scope()])


class LargeCentres(_Model):
    """At least ``min_count`` facilities of ``services`` with ≥ ``min_floor_area_m2`` per sub-district."""

    services: list[str] = Field(default_factory=lambda: ["day_care"])
    min_floor_area_m2: float = Field(ge=0)
    min_count: int = Field(ge=1)
    source: str = ""


class SubDistrict(_Model):
    """Checks per sub-district (街道/镇): one centre each, optionally large centres."""

    #: Facilities with any of these flags count as the sub-district centre.
    centre_services: list[str] = Field(default_factory=lambda: ["street_centre"])
    centre_required: bool = False
    centre_source: str = ""
    large_centres: LargeCentres | None = None
    #: Where the centre rule applies (default: every sub-district, ``centre_source``).
    centre_scopes: list[Scope] | None = None
    #: Further presence/count rules per sub-district, keyed by check name (Wuxi's
    #: ``meal_centre``, Rugao's ``elder_homes`` ≥ 2 长者之家).
    rules: dict[str, PlaceRule] = Field(default_factory=dict)
    #: Kinds of named places the plan states (Rugao: 长江镇 is a 主功能区).
    kinds_by_name: dict[str, str] = Field(default_factory=dict)

    def centre_rule(self) -> PlaceRule | None:
        """The "one centre per sub-district" rule, or None when not required."""
        if not self.centre_required or not self.centre_services:
            return None
        scopes = self.centre_scopes or [Scope(source=self.centre_source)]
        return PlaceRule(services=list(self.centre_services), min_count=1, scopes=scopes)

    def place_rules(self) -> dict[str, PlaceRule]:
        """Every sub-district presence rule by check key, the centre first."""
        centre = self.centre_rule()
        return ({"no_street_centre": centre} if centre is not None else {}) | dict(self.rules)


class Beds(_Model):
    """City-level bed targets: beds per 1000 elderly and the 护理型床位 share."""

    per_1000_elderly: float | None = Field(None, ge=0)
    per_1000_source: str = ""
    nursing_share: float | None = Field(None, ge=0, le=1)
    nursing_source: str = ""
    year: int | None = Field(None, ge=1900, le=2100)


class CapacitySupply(_Model):
    """Where one service's capacity (places: seats, meals or beds per day) comes from.

    Per facility, the first of ``columns`` with a known value is used: ``capacity`` (the
    facilities' ``capacity`` column, e.g. 日供餐量 or 托位), ``beds``, or ``floor_area``
    divided by ``m2_per_place``. A facility with none of them has no capacity: it is listed
    and left out of the capacity measures, never counted as 0 or as unlimited.
    """

    columns: list[Literal["capacity", "beds", "floor_area"]] = Field(default_factory=lambda: ["capacity"])
    #: Floor area per place (m²), for ``floor_area``; its document in ``m2_per_place_source``,
    #: or the words "local assumption" when no document states it.
    m2_per_place: float | None = Field(None, gt=0)
    m2_per_place_source: str = ""

    @model_validator(mode="after")
    def _norm_given(self) -> CapacitySupply:
        if "floor_area" in self.columns and self.m2_per_place is None:
            raise ValueError("columns: floor_area needs m2_per_place (m² of floor area per place)")
        if not self.columns:
            raise ValueError("columns: name at least one of capacity, beds, floor_area")
        return self


class Decay(_Model):
    """The distance decay of the Gaussian E2SFCA, zero beyond ``reach_m``.

    ``dai``: G(d) = (e^(−½(d/d₀)²) − e^(−½)) / (1 − e^(−½)) with d₀ = ``reach_m`` (Dai 2010,
    the form the Chinese 养老设施 accessibility studies use: 1 at the door, 0 at the reach).
    ``plain``: e^(−d²/2σ²) with σ = ``sigma_m`` (pysal ``access`` ``weights.gaussian``).
    """

    form: Literal["dai", "plain"] = "dai"
    #: Catchment of the decay (m); null is the walking circle.
    reach_m: float | None = Field(None, gt=0)
    sigma_m: float | None = Field(None, gt=0)
    source: str = ""

    @model_validator(mode="after")
    def _sigma_given(self) -> Decay:
        if self.form == "plain" and self.sigma_m is None:
            raise ValueError("sigma_m: required for form plain")
        return self


class Balance(_Model):
    """供需比 classes per sub-district: supply per 1000 elderly ÷ a base.

    The base is ``norm_per_1000_elderly[service]`` when the profile states one, else the
    city mean; below ``under_below`` is under-supplied, above ``over_above`` over-supplied.
    """

    under_below: float = Field(0.8, ge=0)
    over_above: float = Field(1.2, ge=0)
    norm_per_1000_elderly: dict[str, float] = Field(default_factory=dict)
    source: str = ""

    @model_validator(mode="after")
    def _ordered(self) -> Balance:
        if self.over_above < self.under_below:
            raise ValueError("over_above must be ≥ under_below")
        return self


class Capacity(_Model):
    """Capacity against demand (2SFCA, Gaussian E2SFCA, load, allocation): see coverage/capacity.py."""

    services: dict[str, CapacitySupply] = Field(default_factory=lambda: {"day_care": CapacitySupply(), "meal": CapacitySupply()})
    decay: Decay = Field(default_factory=Decay)
    balance: Balance = Field(default_factory=Balance)


class Profile(_Model):
    """A validated standards profile (see the module docstring)."""

    name: str
    title: str
    document: str = ""
    sub_district_label: str = "街道"
    community_label: str = "社区"
    elderly_age: int = Field(60, ge=0)
    household_size: float = Field(2.62, gt=0)
    household_size_source: str = ""
    walk: Walk = Field(default_factory=Walk)
    services: dict[str, ServiceSpec]
    circle: CircleRule = Field(default_factory=CircleRule)
    coverage_targets: dict[str, Target] = Field(default_factory=dict)
    space: Space = Field(default_factory=Space)
    pooled: Pooled | None = None
    station: Station = Field(default_factory=Station)
    per_capita: PerCapita | None = None
    sub_district: SubDistrict = Field(default_factory=SubDistrict)
    capacity: Capacity = Field(default_factory=Capacity)
    #: Community presence checks (a facility of the service inside the community).
    presence: dict[str, Presence] = Field(default_factory=dict)
    estate_coverage: EstateCoverage | None = None
    beds: Beds = Field(default_factory=Beds)
    #: The plan's target year for its indicators (a rule's own ``year`` wins).
    target_year: int | None = Field(None, ge=1900, le=2100)

    @model_validator(mode="after")
    def _services_known(self) -> Profile:
        missing = [k for k in REQUIRED_SERVICES if k not in self.services]
        if missing:
            raise ValueError(f"services: missing {', '.join(missing)}; every profile defines {', '.join(REQUIRED_SERVICES)}")
        refs = {
            "space.facility_services": self.space.facility_services,
            "station.services": self.station.services,
            "sub_district.centre_services": self.sub_district.centre_services,
            "coverage_targets": list(self.coverage_targets),
            "capacity.services": list(self.capacity.services),
            "capacity.balance.norm_per_1000_elderly": list(self.capacity.balance.norm_per_1000_elderly),
        }
        if self.sub_district.large_centres is not None:
            refs["sub_district.large_centres.services"] = self.sub_district.large_centres.services
        for key, rule in self.sub_district.rules.items():
            refs[f"sub_district.rules.{key}.services"] = rule.services
        for key, rule in self.presence.items():
            refs[f"presence.{key}.services"] = rule.services
        if self.estate_coverage is not None:
            refs["estate_coverage.services"] = self.estate_coverage.services
        for key, names in refs.items():
            unknown = [s for s in names if s not in self.services]
            if unknown:
                raise ValueError(f"{key}: unknown service {', '.join(unknown)}; known: {', '.join(self.services)}")
        return self

    @property
    def walk_distance_m(self) -> float:
        """Walk-circle network distance in metres (minutes × speed)."""
        return self.walk.minutes * self.walk.speed_kmh * 1000.0 / 60.0

    @property
    def circle_services(self) -> list[str]:
        """Service keys the walking-circle check applies to, in profile order."""
        return [k for k, s in self.services.items() if s.circle]

    def target(self, service: str) -> Target:
        """The coverage target for ``service`` (100 % when the profile names none)."""
        return self.coverage_targets.get(service, Target())


def _profiles_dir():
    return importlib.resources.files("carecircle.configs") / "profiles"


def list_profiles() -> list[str]:
    """Names of the built-in profiles.

    Returns
    -------
    list of str
        Sorted file stems of ``configs/profiles/*.yaml``.
    """
    return sorted(p.name[:-5] for p in _profiles_dir().iterdir() if p.name.endswith(".yaml"))


def _deep_merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def _read_yaml(source, label: str) -> dict:
    try:
        data = yaml.safe_load(source.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"{label}: profile file not found; give a built-in name ({', '.join(list_profiles())}) or a YAML path") from None
    except IsADirectoryError:
        raise InputError(f"{label}: is a folder; give the profile's YAML file") from None
    except UnicodeDecodeError:
        raise InputError(f"{label}: not UTF-8 text; save the profile as UTF-8") from None
    except yaml.YAMLError as exc:
        raise InputError(f"{label}: not valid YAML ({' '.join(str(exc).split())})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise InputError(f"{label}: a profile must be a mapping of keys, got {type(data).__name__}")
    return data


def _resolve(name_or_path: str | Path, base_dir: Path | None) -> tuple[Any, str]:
    """A built-in name or a file path → (traversable, label used in messages)."""
    text = str(name_or_path)
    if not text.endswith((".yaml", ".yml")) and "/" not in text and "\\" not in text:
        builtin = _profiles_dir() / f"{text}.yaml"
        if builtin.is_file():
            return builtin, f"{text}.yaml"
        raise InputError(f"profile {text!r}: no such built-in profile; choose one of {', '.join(list_profiles())} or give a YAML path")
    path = Path(text)
    if not path.is_absolute() and base_dir is not None:
        path = base_dir / path
    return path, path.name


def _load_raw(name_or_path: str | Path, base_dir: Path | None, seen: tuple[str, ...]) -> tuple[dict, str]:
    source, label = _resolve(name_or_path, base_dir)
    key = str(source)
    if key in seen:
        raise InputError(f"{label}: extends: circular chain ({' → '.join(seen + (key,))})")
    data = _read_yaml(source, label)
    parent = data.pop("extends", None)
    if parent is None:
        return data, label
    # A profile that extends another is a new profile: it is named after its own file
    # unless it says otherwise, never after its parent.
    data.setdefault("name", Path(label).stem)
    if not isinstance(parent, str):
        raise InputError(f"{label}: extends: must be a profile name or a YAML path")
    parent_dir = Path(str(source)).parent if isinstance(source, Path) else None
    base, _ = _load_raw(parent, parent_dir, seen + (key,))
    return _deep_merge(base, data), label


_MESSAGES = {
    "greater_than_equal": lambda e: f"must be ≥ {e['ctx']['ge']}",
    "greater_than": lambda e: f"must be > {e['ctx']['gt']}",
    "less_than_equal": lambda e: f"must be ≤ {e['ctx']['le']}",
    "missing": lambda e: "required key missing",
    "extra_forbidden": lambda e: "unknown key (check the spelling against configs/profiles/national.yaml)",
    "literal_error": lambda e: f"must be one of {e['ctx']['expected']}",
}


def _error_line(label: str, exc: ValidationError) -> str:
    err = exc.errors()[0]
    loc = ".".join(str(p) for p in err["loc"])
    make = _MESSAGES.get(err["type"])
    msg = make(err) if make else err["msg"].removeprefix("Value error, ")
    more = f" (+{exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    return f"{label}: {loc + ': ' if loc else ''}{msg}{more}"


def load_profile(name_or_path: str | Path) -> Profile:
    """Load and validate a standards profile.

    Parameters
    ----------
    name_or_path : str or Path
        A built-in name (``national``, ``kunshan``, ``rugao``, ``wuxi``, ``tongxiang``,
        ``shijiazhuang``) or a YAML file. A file may say ``extends: wuxi`` (or a path,
        relative to the file) and override any key.

    Returns
    -------
    Profile

    Raises
    ------
    InputError
        One line naming the file and the key path, e.g.
        ``myprofile.yaml: space.new.min_m2_per_100hh: must be ≥ 0``.
    """
    data, label = _load_raw(name_or_path, None, ())
    data.setdefault("name", Path(label).stem)
    try:
        return Profile.model_validate(data)
    except ValidationError as exc:
        raise InputError(_error_line(label, exc)) from None
