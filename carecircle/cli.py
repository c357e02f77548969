"""The ``carecircle`` command line.

Subcommands mirror the library: ``run`` (the pipeline), ``demo`` (sample district + run),
``sample`` (write the sample district only), ``site`` (where to build next), ``check`` (validate a
config), ``compare`` (two or more runs), ``profiles`` (list or show the standards profiles),
``batch`` (many runs on Dask).

Exit codes: 0 success; 2 bad input or config (one line naming the file, row or key; no
traceback); 1 internal error; 130 / 143 stopped by Ctrl-C / SIGTERM (a run leaves no half-written folder).

Everything echoed is printed literally (no rich markup is read from a path, a header or a
profile title) and without the control characters (ANSI/OSC escapes) an input file may carry.
"""

from __future__ import annotations

import os
import re
import signal
import sys
import time
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.text import Text

from carecircle.errors import InputError

app = typer.Typer(
    name="carecircle",
    help=(
        "15分钟养老服务圈 — elderly-care walking coverage for Chinese cities.\n\n"
        "Start with `carecircle demo --out out/demo`, then `carecircle run CONFIG.yaml --out DIR` "
        "on your own data (see the README for every config key)."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console(stderr=True, soft_wrap=True)  # one error = one line, whatever the width


# ANSI CSI and OSC escape sequences, then any other C0/C1 control or bidi-override character.
_ESCAPES = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b[@-_]?")
_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def plain(text: object) -> str:
    """``text`` as one printable line: escape sequences and control characters removed.

    Parameters
    ----------
    text : object
        Anything; ``str()`` of it is cleaned.

    Returns
    -------
    str
    """
    out = _ESCAPES.sub("", str(text)).replace("\t", " ").replace("\n", " ")
    return _CONTROLS.sub("", out)


def _say(*parts: str | tuple[str, str]) -> None:
    """Print ``parts`` (text, or ``(text, style)``) literally, input-derived text cleaned."""
    console.print(Text.assemble(*[(plain(p[0]), p[1]) if isinstance(p, tuple) else plain(p) for p in parts]),
                  highlight=False)


def _version(value: bool) -> None:
    if value:
        from carecircle import __version__

        typer.echo(f"carecircle {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version and exit."),
) -> None:
    """15分钟养老服务圈 — elderly-care walking coverage for Chinese cities."""


def _log(line: str) -> None:
    _say(("·", "dim"), " ", line)


class _Progress:
    """Progress lines with the time each stage took, a spinner while the next one runs.

    The pipeline logs one line at the end of each stage (OSM read, snapping and searches,
    isochrones, tables, map, report/PDF, package), so the time since the previous line is
    that stage's.
    """

    def __init__(self) -> None:
        self.start = self.last = time.perf_counter()
        self.status = console.status("[dim]…[/dim]", spinner="dots")

    def __call__(self, line: str) -> None:
        now = time.perf_counter()
        self.status.stop()
        _say(("·", "dim"), " ", line, (f" {now - self.last:,.1f} s", "dim"))
        self.last = now
        self.status.start()

    def __enter__(self) -> "_Progress":
        self.status.start()
        return self

    def __exit__(self, *exc) -> None:
        self.status.stop()


#: The outputs named at the end of a run, in the order a planner opens them.
OUTPUTS_SHOWN = [("map.html", "交互地图 map"), ("report.pdf", "报告 report (PDF)"), ("report.docx", "报告 report (Word)"),
                 ("report.html", "报告 report (HTML)"), ("communities.xlsx", "社区表 communities"),
                 ("streets.xlsx", "街道考核表 scorecards"), ("actions.xlsx", "问题清单 action list"),
                 ("estates.xlsx", "小区表 estates"), ("shp.zip", "规划数据包 shapefiles"), ("summary.json", "summary.json")]


def _report(summary: dict, out: Path, gaps: int = 8) -> None:
    """The closing lines of a run: coverage per service, the gaps found, where each output is."""
    for key, s in summary["services"].items():
        if s["circle_check"] and s["elderly_covered_share"] is not None:
            _say(f"  {s['label_zh']} {key}: 老年人覆盖 {s['elderly_covered_share']:.1%} elderly covered")
    com = summary["communities"]
    _say(f"  社区 communities flagged: {com['flagged']} of {com['total']}")
    actions = out / "actions.csv"
    if actions.exists():
        import pandas as pd

        acts = pd.read_csv(actions, encoding="utf-8-sig")
        if len(acts):
            _say(f"  问题 gaps ({len(acts)}, actions.xlsx):")
        # The first few, community- and 街道-level alike, in the action list's order.
        for _, a in acts.head(gaps).iterrows():
            where = a["community"] if isinstance(a.get("community"), str) else f"{a['street']}（全街道）"
            if isinstance(a.get("estate"), str) and a["estate"]:
                where = f"{where} · {a['estate']}"
            what = a.get("check_label") if isinstance(a.get("check_label"), str) else a.get("check")
            _say(f"    {a['street']} · {where}: {what}")
    for name, what in OUTPUTS_SHOWN:
        if (out / name).exists():
            # Padded by display width: a Chinese character takes two columns.
            pad = 26 - sum(2 if ord(ch) > 0x2E7F else 1 for ch in what)
            _say(f"  {what}{' ' * max(pad, 1)}{out / name}")
    _say(("完成 done", "bold green"), f" → {out}  ({summary.get('runtime_s', 0):,.1f} s)")


@app.command()
def run(
    config: Path = typer.Argument(..., help="Run config YAML (see README: profile, network, facilities, population, communities, ...)."),
    out: Path = typer.Option(..., "--out", "-o", help=(
        "Output folder: new, empty, or an earlier carecircle output (replaced when the run completes); "
        "any other folder is refused, nothing is deleted.")),
    lang: Optional[str] = typer.Option(None, "--lang", help="zh (default) or en: labels, headers, legends."),
    basemap: Optional[str] = typer.Option(None, "--basemap", help="osm (default), amap (GCJ-02 overlays) or tianditu."),
    offline: Optional[bool] = typer.Option(None, "--offline/--online",
                                           help="Inline the map's JS/CSS (default, works on intranets) or load them from the CDN."),
) -> None:
    """Analyse coverage and standards for the inputs named in CONFIG and write every output to OUT.

    A minimal CONFIG (paths relative to the config file):

        profile: wuxi
        network: {osm: district.osm.pbf}          # or {lines: roads.shp}
        facilities: {path: 设施.csv, crs: gcj02}   # Amap coordinates
        population: {raster: pop.tif, elderly_share: 0.2}
        communities: {path: 社区.gpkg}

    OUT receives summary.json, map.html, report.html, communities / streets / actions tables
    (CSV + XLSX), population / facilities / isochrones GeoPackages and shp/ for ArcGIS.
    `carecircle sample DIR` writes a complete example config with its files.
    """
    from carecircle.config import load_config
    from carecircle.pipeline import run as run_pipeline

    cfg = load_config(config)
    with _Progress() as progress:
        summary = run_pipeline(cfg, out, lang=_choice(lang, ("zh", "en"), "--lang"),
                               basemap=_choice(basemap, ("osm", "amap", "tianditu"), "--basemap"), offline=offline,
                               log=progress)
    _report(summary, out)


@app.command()
def site(
    config: Path = typer.Argument(..., help="Run config YAML with a `siting:` section (service, candidates, objective, ...)."),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder (replaced when the run completes)."),
    lang: Optional[str] = typer.Option(None, "--lang", help="zh (default) or en."),
) -> None:
    """Where to build next: choose new sites among candidates, keeping the existing facilities.

    Writes the run's outputs plus sites.csv / sites.xlsx / sites.gpkg (WGS-84; the CSV also
    in GCJ-02), sites_scenario.yaml (`carecircle run` it to see the after-state) and the
    `siting` block of summary.json. In CONFIG:

        siting:
          service: meal                          # a circle service of the profile
          candidates: {path: 候选地块.gpkg, name_field: 名称}   # or {generate: {spacing_m: 100}}
          objective: max_coverage                # or min_sites (with target_share)
          new_sites: 5
          weight: communities                    # or elderly, population
          time_limit_s: 60
    """
    from carecircle.config import load_config
    from carecircle.siting import site as run_site

    summary = run_site(load_config(config), out, lang=_choice(lang, ("zh", "en"), "--lang"), log=_log)
    s = summary["siting"]
    proof = "最优 optimal" if s["optimal"] else f"gap {s['gap']}"
    console.print(f"  建议选址 sites: {s['new_sites']} ({s['objective']}, {s['weight']}: value {s['value']:g}, "
                  f"{proof}, {s['solver']}, {s['solve_s']:.1f} s)")
    _report(summary, out)


@app.command()
def demo(
    out: Path = typer.Option(Path("out/demo"), "--out", "-o", help="Output folder; the sample inputs are written beside it, to OUT-input."),
    lang: Optional[str] = typer.Option(None, "--lang", help="zh (default) or en."),
    seed: int = typer.Option(20261122, help="Seed of the sample district generator."),
) -> None:
    """Generate the sample district (a Wuxi-like 3 × 3 km district with documented gaps) and analyse it."""
    from carecircle.config import load_config
    from carecircle.layers.sample import generate_sample
    from carecircle.pipeline import run as run_pipeline

    from carecircle import outdir

    inputs = outdir.write_folder(out.parent / f"{out.name}-input", lambda tmp: generate_sample(tmp, seed=seed), log=_log)
    _log(f"样例片区 sample district → {inputs}")
    # The demo's map must open anywhere, intranet included: JS and CSS inlined.
    with _Progress() as progress:
        summary = run_pipeline(load_config(inputs / "config.yaml"), out, lang=_choice(lang, ("zh", "en"), "--lang"),
                               offline=True, log=progress)
    _report(summary, out)


@app.command()
def sample(
    out: Path = typer.Argument(..., help="Folder to write the sample inputs and config.yaml into."),
    seed: int = typer.Option(20261122, help="Seed of the generator."),
) -> None:
    """Write the sample district's input files (OSM, raster, CSV, GeoPackages, config.yaml).

    OUT must be new, empty or an earlier sample folder: nothing of yours is overwritten.
    """
    from carecircle import outdir
    from carecircle.layers.sample import generate_sample

    folder = outdir.write_folder(out, lambda tmp: generate_sample(tmp, seed=seed), log=_log)
    _say(f"sample district → {out}; run it with: carecircle run {folder / 'config.yaml'} --out out/sample")


@app.command()
def check(
    config: Path = typer.Argument(..., help="Run config YAML."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Also check that a run may write into this folder."),
    basemap: Optional[str] = typer.Option(None, "--basemap", help="osm, amap or tianditu (as for run)."),
) -> None:
    """Check everything `run` would refuse before its analysis: config, profile, every input layer
    (files, columns, CRS names), the basemap key, GBK names and, with --out, the output folder.

    "ok" means `carecircle run CONFIG --out OUT` gets past loading.
    """
    from carecircle import outdir
    from carecircle.config import load_config
    from carecircle.pipeline import prepare_inputs

    cfg = load_config(config)
    if out is not None:
        outdir.check_writable(outdir.check_target(out, config_file=cfg.source, inputs=cfg.input_files()))
    profile, _, inputs = prepare_inputs(cfg, basemap=_choice(basemap, ("osm", "amap", "tianditu"), "--basemap"), log=_log)
    rows = ", ".join(f"{name} {rep.kept:,}/{rep.read:,}" for name, rep in inputs.reports.items())
    _say(f"ok: {config} (profile {profile.name} {profile.title}; rows kept/read: {rows})")


@app.command()
def compare(
    runs: list[Path] = typer.Argument(..., help="Output folders of two or more runs; the first is the baseline."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Folder for compare.csv / .xlsx / .json (default: LAST_RUN/compare)."),
    lang: str = typer.Option("zh", "--lang", help="zh or en."),
) -> None:
    """What changes from the first run to each other: communities newly covered, shortfalls closed, per-street deltas."""
    from rich.table import Table

    from carecircle import outdir
    from carecircle.compare import compare_many, runs_overview, write_comparison

    lang = _choice(lang, ("zh", "en"), "--lang")
    results = compare_many(runs)
    overview = runs_overview(runs)
    # Written like a run's outputs; the compared runs themselves are never replaced.
    target = outdir.write_folder(out or (runs[-1] / "compare"),
                                 lambda tmp: write_comparison(results if len(results) > 1 else results[0], tmp,
                                                              lang=lang, overview=overview),
                                 inputs=[r / "summary.json" for r in runs], log=_log)
    # Short headers: the table must fit an 80-column console (the XLSX has the full ones).
    short = {"run": "方案 run", "communities_flagged": "问题社区 flagged", "space_shortfall_m2": "用房缺口 m²"}
    table = Table(*[short.get(c, c.replace("elderly_covered_share_", "老年人覆盖 ")) for c in overview.columns],
                  show_edge=False)
    for _, row in overview.iterrows():
        table.add_row(*[str(v) if c == "run" else "—" if _isna(v) else f"{v:.1%}" if "share" in c
                        else f"{v:,.0f}" for c, v in row.items()])
    Console(soft_wrap=True).print(table)
    for r in results:
        gained = sum(v["newly_covered"] for v in r.counts.get("services", {}).values())
        closed = r.counts.get("space", {}).get("shortfalls_closed", 0)
        _say(f"  {Path(r.run_b).name} vs {Path(r.run_a).name}: 新覆盖 {gained} newly covered, "
             f"缺口消除 {closed} shortfalls closed")
    _say(f"comparison → {target} (compare.xlsx, compare.csv, compare.json)")


def _isna(value) -> bool:
    """NaN or None (pandas imported only when compare runs)."""
    return value is None or (isinstance(value, float) and value != value)


@app.command()
def profiles(name: Optional[str] = typer.Argument(None, help="Show one profile in full.")) -> None:
    """List the built-in standards profiles, or show one."""
    import json

    from carecircle.coverage.profile import list_profiles, load_profile

    if name is None:
        for key in list_profiles():
            p = load_profile(key)
            typer.echo(f"{key:14s} {p.title}  ({p.walk.minutes:g} min at {p.walk.speed_kmh:g} km/h)")
        return
    typer.echo(json.dumps(load_profile(name).model_dump(mode="json"), ensure_ascii=False, indent=2))


@app.command()
def batch(
    batch_file: Path = typer.Argument(..., help="Batch YAML: runs: [{name, config, overrides}] or config: + tiles: {by: streets | grid_m: M}."),
    out: Path = typer.Option(..., "--out", "-o", help="Batch folder: OUT/<name>/ per run, province outputs at the top."),
    scheduler: Optional[str] = typer.Option(None, "--scheduler", help="Address of a running Dask scheduler (tcp://host:8786)."),
    resume: bool = typer.Option(False, "--resume", help="Rerun only the runs that failed or are missing."),
    workers: Optional[int] = typer.Option(None, "--workers", min=1, help="Local worker processes (default: one per core)."),
) -> None:
    """Run many districts (or one region in tiles) on dask.distributed and merge the outputs.

    A failed run is reported with its name and error while the others go on; the batch then
    exits with 2, listing the failures (rerun them with --resume).
    """
    from carecircle.batch import run_batch

    result = run_batch(batch_file, out, scheduler=scheduler, workers=workers, resume=resume, log=_log)
    if result.failures:
        for rec in result.failures:
            _say(("carecircle: failed:", "bold red"), f" {rec['name']}: {rec['error']}")
        _say(f"{len(result.failures)} of {len(result.tasks)} run(s) failed; fix them and rerun with --resume")
        raise typer.Exit(2)
    _say(("完成 done", "bold green"), f" {len(result.tasks)} run(s) → {out}  (overview: {out / 'overview.html'})")


def _choice(value: str | None, allowed: tuple[str, ...], option: str) -> str | None:
    if value is not None and value not in allowed:
        raise InputError(f"{option}: {value!r} is not one of {', '.join(allowed)}")
    return value


def main() -> None:
    """Entry point: map errors to exit codes (2 bad input, 1 internal) with one-line messages.

    typer handles its own usage errors (exit 2) and ``--help`` by raising SystemExit, which
    passes through; everything else is caught here. Ctrl-C and SIGTERM are turned into one
    exception (typer would swallow a KeyboardInterrupt silently) so that the run removes its
    staging folder and its chromium child on the way out and says so in one line.
    """
    from carecircle import outdir

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, outdir.raise_on_signal)
    try:
        app()
    except InputError as err:
        _say(("carecircle: error:", "bold red"), " ", str(err))
        sys.exit(2)
    except KeyboardInterrupt:
        _say(("carecircle: stopped", "bold red"), " (Ctrl-C)")
        sys.exit(130)
    except outdir.Interrupted as err:
        # A run's earlier output is untouched and its staging folder gone (carecircle.outdir).
        _say(("carecircle: stopped", "bold red"), f" ({'Ctrl-C' if err.signum == signal.SIGINT else err})")
        sys.exit(err.exit_code)
    except Exception as err:  # noqa: BLE001 - the last line of defence: exit 1, say how to report
        _say(("carecircle: internal error:", "bold red"), f" {type(err).__name__}: {err} "
             "(set CARECIRCLE_DEBUG=1 for the traceback and report it)")
        if os.environ.get("CARECIRCLE_DEBUG"):
            console.print_exception()
        sys.exit(1)
