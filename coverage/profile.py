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


class Target(_Model):
    """A plan's target for the share of communities covered by a service (0–1)."""

    share: float = Field(1.0, ge=0, le=1)
    source: str = ""


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


class Pooled(_Model):
    """Rugao's pooled rule: one ≥ ``min_m2`` unit per ``min_households``–``max_households`` new households."""

    min_households: float = Field(gt=0)
    max_households: float = Field(gt=0)
    min_m2: float = Field(ge=0)
    source: str = ""


class Station(_Model):
    """"One station per community" (一社区一站) and an optional minimum station size."""

    #: Facilities with any of these flags inside a community count as its station.
    services: list[str] = Field(default_factory=lambda: ["day_care", "meal"])
    required: bool = False
    min_floor_area_m2: float | None = Field(None, ge=0)
    source: str = ""


class PerCapita(_Model):
    """A per-person standard. Only ``floor_area`` can be checked against facility floor area;
    a ``land`` standard is kept for the record and reported as not checked."""

    min_m2_per_person: float = Field(ge=0)
    measure: Literal["floor_area", "land"] = "floor_area"
    source: str = ""


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
