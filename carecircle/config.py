"""The run configuration: one YAML file naming the inputs, the standards profile and the outputs.

The keys are a public interface (documented key by key in the README). Relative paths
resolve against the folder of the config file. Every problem is reported as one line naming
the file and the key, raised as :class:`~carecircle.errors.InputError`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import pyproj
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from carecircle.errors import InputError

#: Everything a run can write; ``output.formats`` picks a subset (summary.json is always written).
OUTPUT_FORMATS = (
    "summary",
    "population",
    "communities",
    "streets",
    "estates",
    "facilities",
    "isochrones",
    "actions",
    "map",
    "report",
    "shp",
    "rejected",
)


class _Section(BaseModel):
    # A misspelt key is an error, not a silently ignored default; NaN and inf are never a value.
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


def _lonlat(lon: float, lat: float, what: str) -> None:
    """Longitude/latitude in range and not (0, 0), the value a blank export cell becomes."""
    if not (-180 <= lon <= 180 and -90 <= lat <= 90):
        raise ValueError(f"{what} ({lon}, {lat}) is not a longitude/latitude in degrees")
    if lon == 0 and lat == 0:
        raise ValueError(f"{what} (0, 0) is not a place in China; give the real coordinates")


class NetworkConfig(_Section):
    """Where the walk network comes from: exactly one of ``osm``, ``lines``, ``place``, ``bbox``."""

    osm: Path | None = None
    lines: Path | None = None
    place: str | None = None
    bbox: tuple[float, float, float, float] | None = None  # west, south, east, north
    layer: str | None = None
    include_private: bool = False
    max_snap_m: float = Field(300.0, gt=0, le=10_000)
    min_component_nodes: int = Field(50, ge=1, le=1_000_000)
    # Walk rules of an OSM extract (README "Walk rules"): the network an older person walks.
    step_free: bool = False
    cycleways: bool | Literal["foot_yes"] = True
    pedestrian_areas: Literal["across", "outline", "none"] = "across"
    clip_margin_m: float | None = Field(None, ge=0, le=100_000)

    @model_validator(mode="after")
    def _one_source(self) -> "NetworkConfig":
        given = [k for k in ("osm", "lines", "place", "bbox") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of osm, lines, place, bbox")
        if self.bbox is not None:
            w, s, e, n = self.bbox
            _lonlat(w, s, "bbox corner")
            _lonlat(e, n, "bbox corner")
            if not (w < e and s < n):
                raise ValueError("bbox is [west, south, east, north] with west < east and south < north")
        return self


class FacilitiesConfig(_Section):
    """The facility list and how to read it (columns auto-detected when not named)."""

    path: Path
    crs: str = "wgs84"
    x: str | None = None
    y: str | None = None
    name: str | None = None
    type: str | None = None
    floor_area: str | None = None
    beds: str | None = None
    nursing_beds: str | None = None
    #: Places per day (服务能力), the capacity measures' supply (coverage/capacity.py): one column
    #: for every service, or per service (``{meal: 日供餐量, day_care: 托位}``).
    capacity: str | dict[str, str] | None = None
    address: str | None = None
    encoding: str | None = None
    sheet: str | None = None
    auto_fix: bool = False

    def columns(self) -> dict[str, str]:
        keys = ("x", "y", "name", "type", "floor_area", "beds", "nursing_beds", "address")
        out = {k: getattr(self, k) for k in keys if getattr(self, k) is not None}
        if isinstance(self.capacity, dict):
            out.update({f"capacity_{s}": col for s, col in self.capacity.items()})
        elif self.capacity is not None:
            out["capacity"] = self.capacity
        return out


class PopulationConfig(_Section):
    """Population as a raster, as points/polygons with counts, or spread over buildings."""

    raster: Path | None = None
    points: Path | None = None
    buildings: Path | None = None
    layer: str | None = None
    count_field: str | None = None
    elderly_field: str | None = None
    households_field: str | None = None
    elderly_share: float | None = Field(None, ge=0, le=1)
    elderly_raster: Path | None = None
    weight_field: str | None = None
    total_population: float | None = Field(None, gt=0, le=2e9)

    @model_validator(mode="after")
    def _one_source(self) -> "PopulationConfig":
        given = [k for k in ("raster", "points", "buildings") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of raster, points, buildings")
        if self.points is not None and not self.count_field:
            raise ValueError("points needs count_field (the column with the number of people)")
        if self.buildings is not None and (self.total_population is None or not self.weight_field):
            raise ValueError("buildings needs total_population and weight_field")
        if self.elderly_field is None and self.elderly_share is None and self.elderly_raster is None:
            raise ValueError("say how many are elderly: elderly_field, elderly_share or elderly_raster")
        return self


class CommunitiesConfig(_Section):
    """社区 polygons and the names of their fields."""

    path: Path
    name_field: str | None = None
    street_field: str | None = None
    households_field: str | None = None
    population_field: str | None = None
    elderly_field: str | None = None
    built_year_field: str | None = None
    #: The community's kind (社区 / 村); without it, read from the name's ending.
    kind_field: str | None = None
    #: Its 街道/镇's kind (街道, 镇, 乡, 主功能区 …) when no streets layer gives it.
    street_kind_field: str | None = None


class EstatesConfig(_Section):
    """小区 with households, build year and elderly-service floor space."""

    path: Path
    name_field: str | None = None
    community_field: str | None = None
    households_field: str | None = None
    built_year_field: str | None = None
    space_field: str | None = None


class StreetsConfig(_Section):
    """街道 polygons (optional: otherwise the communities' street field)."""

    path: Path
    name_field: str | None = None
    #: The 街道/镇's kind as written locally; without it, read from the name's ending.
    kind_field: str | None = None


class WalkConfig(_Section):
    """The walking circle: ``distance_m``, or ``minutes`` at ``speed_kmh``."""

    minutes: float | None = Field(None, gt=0, le=120)
    speed_kmh: float | None = Field(None, ge=0.5, le=20)
    distance_m: float | None = Field(None, gt=0, le=20_000)
    rings_minutes: list[Annotated[float, Field(gt=0, le=120)]] | None = None
    # Coverage at each of the profile's walk.speed_presets, and on the step-free network too.
    sensitivity: bool = False
    compare_step_free: bool = False

    @model_validator(mode="after")
    def _not_both(self) -> "WalkConfig":
        if self.distance_m is not None and (self.minutes is not None or self.speed_kmh is not None):
            raise ValueError("give distance_m or minutes/speed_kmh, not both")
        return self


class TilesConfig(_Section):
    """An intranet (or any XYZ) tile server for the map's basemap."""

    url: str = Field(..., min_length=8)
    attribution: str = Field(..., min_length=1)
    name: str = "底图"
    max_zoom: int = Field(19, ge=1, le=22)

    @field_validator("url")
    @classmethod
    def _xyz(cls, value: str) -> str:
        if not all(p in value for p in ("{x}", "{y}", "{z}")):
            raise ValueError(f"{value!r} needs {{x}}, {{y}} and {{z}} placeholders (an XYZ tile URL)")
        return value


class OutputConfig(_Section):
    """Which outputs to write and how."""

    formats: list[str] = Field(default_factory=lambda: list(OUTPUT_FORMATS))
    shapefile_crs: str = "auto"
    shapefile_encoding: Literal["UTF-8", "GBK", "utf-8", "gbk"] = "UTF-8"
    lang: Literal["zh", "en"] = "zh"
    basemap: Literal["osm", "amap", "tianditu"] = "osm"
    # Intranets have no CDN: Leaflet is inlined unless asked otherwise (--online).
    offline_map: bool = True
    tiles: TilesConfig | None = None
    tianditu_key: str | None = None
    #: ``shapefile_encoding: GBK`` and a name GBK cannot hold: ``error`` (stop before the
    #: analysis, naming file and line) or ``drop`` (remove the character, with a note).
    gbk_unencodable: Literal["error", "drop"] = "error"

    @field_validator("shapefile_crs")
    @classmethod
    def _known_crs(cls, value: str) -> str:
        if value.strip().lower() != "auto":
            try:
                pyproj.CRS.from_user_input(value)
            except pyproj.exceptions.CRSError:
                raise ValueError(f"{value!r} is not a CRS; use auto, EPSG:4326, EPSG:4490 or an EPSG code such as EPSG:4549") from None
        return value

    @field_validator("formats")
    @classmethod
    def _known_formats(cls, value: list[str]) -> list[str]:
        unknown = sorted(set(value) - set(OUTPUT_FORMATS))
        if unknown:
            raise ValueError(f"unknown format(s) {unknown}; choose from {list(OUTPUT_FORMATS)}")
        return value


class ScenarioFacility(_Section):
    """A planned facility added by a scenario."""

    name: str
    type: str
    lon: float
    lat: float
    crs: str = "wgs84"
    floor_area: float | None = Field(None, ge=0, le=1e7)
    beds: float | None = Field(None, ge=0, le=1e6)
    capacity: float | None = Field(None, ge=0, le=1e7)

    @model_validator(mode="after")
    def _on_earth(self) -> "ScenarioFacility":
        _lonlat(self.lon, self.lat, f"{self.name or 'facility'}: lon/lat")
        return self


class ScenarioConfig(_Section):
    """What-if: facilities added (planned) or removed (closing), by name."""

    add: list[ScenarioFacility] = Field(default_factory=list)
    remove: list[str] = Field(default_factory=list)


class CandidateGenerate(_Section):
    """Candidates spread along the walk network."""

    spacing_m: float = Field(100.0, ge=1, le=10_000)


class CandidatesConfig(_Section):
    """Candidate sites: a file (points or polygons, like ``facilities``) or ``generate``."""

    path: Path | None = None
    name_field: str | None = None
    x: str | None = None
    y: str | None = None
    crs: str = "wgs84"
    encoding: str | None = None
    sheet: str | None = None
    layer: str | None = None
    generate: CandidateGenerate | None = None

    @model_validator(mode="after")
    def _one_source(self) -> "CandidatesConfig":
        if (self.path is None) == (self.generate is None):
            raise ValueError("give exactly one of path, generate")
        return self


class SitingConfig(_Section):
    """Where to build next: choose new sites of one service among candidates (see the README)."""

    service: str
    candidates: CandidatesConfig
    objective: Literal["max_coverage", "min_sites"] = "max_coverage"
    new_sites: int | None = Field(None, ge=0, le=10_000)
    target_share: float | None = Field(None, ge=0, le=1)
    weight: Literal["communities", "elderly", "population"] = "communities"
    time_limit_s: float = Field(60.0, gt=0, le=86_400)
    capacity: float | None = Field(None, gt=0, le=1e7)
    floor_area: float | None = Field(None, ge=0, le=1e7)

    @model_validator(mode="after")
    def _objective_needs(self) -> "SitingConfig":
        if self.objective == "max_coverage" and self.new_sites is None:
            raise ValueError("max_coverage needs new_sites (how many sites to add)")
        if self.capacity is not None and (self.objective != "max_coverage" or self.weight == "communities"):
            raise ValueError("capacity works with objective max_coverage and weight elderly or population")
        return self


class RunConfig(_Section):
    """A whole run, as read from the YAML file."""

    profile: str = "national"
    network: NetworkConfig
    facilities: FacilitiesConfig
    population: PopulationConfig
    communities: CommunitiesConfig
    estates: EstatesConfig | None = None
    streets: StreetsConfig | None = None
    walk: WalkConfig = Field(default_factory=WalkConfig)
    output: OutputConfig = Field(default_factory=OutputConfig)
    scenario: ScenarioConfig | None = None
    siting: SitingConfig | None = None
    source: Path | None = Field(None, exclude=True)

    def input_files(self) -> list[Path]:
        """Every input file the config names (their folders are never an output folder)."""
        files = [getattr(owner, name) for owner, name, _ in _path_fields(self)]
        return files + ([Path(self.profile)] if _is_profile_path(self.profile) else [])

    def wants(self, fmt: str) -> bool:
        """Whether output ``fmt`` is requested (summary always is)."""
        return fmt == "summary" or fmt in self.output.formats


def _path_fields(model: BaseModel, prefix: str = ""):
    """Every input-file field below ``model``: ``(owning model, field name, dotted key)``."""
    for name in type(model).model_fields:
        value = getattr(model, name)
        if isinstance(value, Path) and name != "source":
            yield model, name, f"{prefix}{name}"
        elif isinstance(value, BaseModel):
            yield from _path_fields(value, f"{prefix}{name}.")


def _error_line(path: Path, err: ValidationError) -> str:
    first = err.errors()[0]
    key = ".".join(str(p) for p in first["loc"]) or "(top level)"
    msg = first["msg"].removeprefix("Value error, ")
    if first["type"] == "extra_forbidden":
        msg = "unknown key (see the README for the keys a run config takes)"
    elif first["type"] == "missing":
        msg = "required key is missing"
    more = len(err.errors()) - 1
    return f"{path}: {key}: {msg}" + (f" (and {more} more problem(s))" if more else "")


def parse_config(data: dict, *, path: Path) -> RunConfig:
    """Validate a config mapping; ``path`` is the file it came from (for messages and paths).

    Parameters
    ----------
    data : dict
        The parsed YAML.
    path : pathlib.Path
        The config file; relative paths resolve against its folder.

    Returns
    -------
    RunConfig
    """
    if not isinstance(data, dict):
        raise InputError(f"{path}: a run config is a YAML mapping of keys (profile, network, facilities, ...)")
    try:
        config = RunConfig.model_validate(data)
    except ValidationError as err:
        raise InputError(_error_line(path, err)) from None
    base = path.parent.resolve()
    if _is_profile_path(config.profile) and not Path(config.profile).is_absolute():
        config.profile = str(base / config.profile)
    for owner, name, key in _path_fields(config):
        file = getattr(owner, name)
        if not file.is_absolute():
            file = base / file
            setattr(owner, name, file)
        if not file.exists():
            raise InputError(f"{path}: {key}: file not found: {file}")
    config.source = path
    return config


def _is_profile_path(profile: str) -> bool:
    """A ``profile:`` that names a file (not a built-in profile), as coverage.profile decides."""
    return profile.endswith((".yaml", ".yml")) or "/" in profile or "\\" in profile


def load_config(path: str | Path) -> RunConfig:
    """Read and validate a run config YAML file.

    Parameters
    ----------
    path : str or pathlib.Path
        The YAML file.

    Returns
    -------
    RunConfig
        With every path made absolute.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: config file not found")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8-sig"))
    except UnicodeDecodeError:
        raise InputError(f"{path}: not UTF-8 text; save the config as UTF-8") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark is not None else ""
        raise InputError(f"{path}: {where}not valid YAML ({getattr(err, 'problem', err)})") from None
    return parse_config(data, path=path)
