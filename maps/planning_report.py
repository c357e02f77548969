"""The per-street report (``report.html``, and ``report.pdf`` when a converter is available):
the pages a civil-affairs bureau prints for its 考核 meeting.

For every 街道: its scorecard, a small map of its communities coloured by their worst failed
check, a chart of elderly coverage per service and one of the floor-space shortfall per
community, and its part of the action list (问题清单). The charts are matplotlib PNGs embedded
in the page, so ``report.html`` is one self-contained file.

Chinese text in charts needs a CJK font: :func:`find_cjk_font` looks for one among the fonts
matplotlib knows (Debian's ``fonts-noto-cjk`` provides Noto Sans CJK), checks with fontTools
that it really has the glyphs, and raises if there is none — a chart of tofu boxes is worse
than no chart.
"""

from __future__ import annotations

import base64
import datetime as _dt
import functools
import html
import io
import os
import shutil
import subprocess
import warnings
from collections.abc import Mapping
from pathlib import Path

import geopandas as gpd
import matplotlib
import numpy as np
import pandas as pd
from matplotlib import font_manager
from matplotlib.figure import Figure

from carecircle.maps import labels as L
from carecircle.maps.fonts import NoCJKFont, cjk_font_or_none, find_cjk_font
from carecircle.maps.html import check_label, check_styles, fmt_measure

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
# Headless chromium with nothing of its own going on: no sandbox (containers), no GPU, no
# first-run, sync or update traffic.
HEADLESS_ARGS = ("--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync")


# ----------------------------------------------------------------------------- charts


def _png(fig: Figure) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _rc() -> dict:
    font = find_cjk_font()
    return {"font.family": "sans-serif", "font.sans-serif": [font.name, "DejaVu Sans"], "axes.unicode_minus": False}


def coverage_chart(street: pd.Series, circle: list[str], lab: L.Labels) -> str:
    """Bar chart: share of the street's elderly within the circle, per service.

    Parameters
    ----------
    street : pandas.Series
        The street's scorecard row (``elderly_covered_share_<service>``).
    circle : list of str
        The services to show, in order.
    lab : Labels

    Returns
    -------
    str
        A PNG ``data:`` URL.
    """
    with matplotlib.rc_context(_rc()):
        fig = Figure(figsize=(4.2, 2.6))
        ax = fig.subplots()
        shares = [float(street.get(f"elderly_covered_share_{s}", np.nan)) for s in circle]
        names = [lab.service(s) for s in circle]
        bars = ax.bar(names, [0 if np.isnan(v) else v * 100 for v in shares], color="#1565c0", width=0.55)
        for bar, v in zip(bars, shares):
            ax.annotate("—" if np.isnan(v) else f"{v:.0%}", (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                        ha="center", va="bottom", fontsize=9)
        ax.axhline(100, color="#999999", lw=0.8, ls="--")
        ax.set_ylim(0, 112)
        ax.set_ylabel("%")
        ax.set_title(lab.text("coverage_chart"), fontsize=10)
        ax.spines[["top", "right"]].set_visible(False)
        return _png(fig)


def shortfall_chart(communities: pd.DataFrame, lab: L.Labels) -> str | None:
    """Horizontal bars of the space shortfall per community.

    Parameters
    ----------
    communities : pandas.DataFrame
        One street's communities (``name``, ``space_shortfall_m2``).
    lab : Labels

    Returns
    -------
    str or None
        A PNG ``data:`` URL; None when no community falls short (or there is no such column).
    """
    if "space_shortfall_m2" not in communities.columns:
        return None
    data = communities[["name", "space_shortfall_m2"]].dropna()
    data = data[data["space_shortfall_m2"] > 0].sort_values("space_shortfall_m2")
    if data.empty:
        return None
    with matplotlib.rc_context(_rc()):
        fig = Figure(figsize=(4.6, 0.5 + 0.32 * len(data)))
        ax = fig.subplots()
        ax.barh(data["name"].astype(str), data["space_shortfall_m2"], color="#e53935")
        for y, v in enumerate(data["space_shortfall_m2"]):
            ax.annotate(f"{v:,.0f}", (v, y), xytext=(3, 0), textcoords="offset points", va="center", fontsize=8)
        ax.set_xlabel("m²")
        ax.set_title(lab.text("shortfall_chart"), fontsize=10)
        ax.spines[["top", "right"]].set_visible(False)
        return _png(fig)


def street_map(communities: gpd.GeoDataFrame, outline, lab: L.Labels) -> str:
    """A small map of the street's communities coloured by their worst failed check.

    Parameters
    ----------
    communities : geopandas.GeoDataFrame
        One street's communities (``name``, ``worst_check``), at least one.
    outline : shapely geometry or None
        The street's boundary, drawn dashed.
    lab : Labels

    Returns
    -------
    str
        A PNG ``data:`` URL.
    """
    worst = communities["worst_check"].fillna("").astype(str) if "worst_check" in communities.columns else pd.Series("", index=communities.index)
    fill, legend = check_styles(worst, lab)
    with matplotlib.rc_context(_rc()):
        fig = Figure(figsize=(4.2, 4.2))
        ax = fig.subplots()
        communities.plot(ax=ax, color=fill.tolist(), edgecolor="#555555", linewidth=0.6)
        if outline is not None:
            gpd.GeoSeries([outline], crs=communities.crs).boundary.plot(ax=ax, color="#263238", linewidth=1.6, linestyle="--")
        for name, pt in zip(communities["name"].astype(str), communities.geometry.representative_point()):
            ax.annotate(name, (pt.x, pt.y), ha="center", va="center", fontsize=7)
        handles = [matplotlib.patches.Patch(color=colour, label=label) for label, colour in legend]
        ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.02), ncol=2, fontsize=7, frameon=False)
        ax.set_axis_off()
        ax.set_aspect("equal")
        return _png(fig)


# ----------------------------------------------------------------------------- HTML


def _fmt(column: str, value) -> str:
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return "—"
    if isinstance(value, (bool, np.bool_)):
        return "✓" if value else "✗"
    if "share" in column:
        return f"{float(value):.0%}"
    if isinstance(value, (int, float, np.number)):
        v = float(value)
        if np.isinf(v):
            return "∞"
        # Whole numbers whole (1,000.0000000000001 m is 1,000); fractions as the action list
        # shows them (158.5 m²), small parameters to two decimals (2.56 persons per household).
        if abs(v - round(v)) < 1e-6 or abs(v) >= 1000:
            return f"{v:,.0f}"
        return f"{v:,.1f}" if abs(v) >= 10 else f"{v:,.2f}".rstrip("0").rstrip(".")
    return str(value)


def _table(frame: pd.DataFrame, columns: list[str], lab: L.Labels) -> str:
    cols = [c for c in columns if c in frame.columns]
    head = "".join(f"<th>{html.escape(lab.column(c))}</th>" for c in cols)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(_fmt(c, row[c]))}</td>" for c in cols) + "</tr>"
                   for _, row in frame.iterrows())
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _card(row: pd.Series, columns: list[str], lab: L.Labels) -> str:
    rows = "".join(f"<tr><th>{html.escape(lab.column(c))}</th><td>{html.escape(_fmt(c, row[c]))}</td></tr>"
                   for c in columns if c in row.index)
    return f'<table class="card">{rows}</table>'


def action_table(actions: pd.DataFrame, lab: L.Labels) -> str:
    """A street's part of the action list as the meeting reads it: what failed where, the value
    against the standard with units, whom it affects and the nearest facility; the standard's
    text under each check and its sources as numbered notes below the table.

    Parameters
    ----------
    actions : pandas.DataFrame
        The street's rows of the action list (the contract's columns; missing ones show "—").
    lab : Labels

    Returns
    -------
    str
        Escaped HTML.
    """
    acts = actions.reindex(columns=["rank", "community", "check", "check_label", "value", "required", "shortfall", "unit",
                                    "elderly_affected", "standard", "source", "nearest_facility", "nearest_facility_m"])
    sources = list(dict.fromkeys(s for s in acts["source"].tolist() if isinstance(s, str) and s))
    heads = ["rank", "community", "check_label", "value", "required", "shortfall", "elderly_affected", "nearest_facility"]
    head = "".join(f"<th>{html.escape(lab.column(c))}</th>" for c in heads)
    rows = []
    # One row per failed check of one street: a handful, not a hot path.
    for _, a in acts.iterrows():
        where = a["community"] if isinstance(a["community"], str) and a["community"] else lab.text("street_level")
        note = f"<sup>[{sources.index(a['source']) + 1}]</sup>" if a["source"] in sources else ""
        std = f'<div class="std">{html.escape(lab.titled(lab.text("standard"), a["standard"]))}</div>' \
            if isinstance(a["standard"], str) and a["standard"] else ""
        nearest = "—" if not isinstance(a["nearest_facility"], str) else \
            lab.bracketed(a["nearest_facility"], f'{_fmt("m", a["nearest_facility_m"])} m')
        cells = [_fmt("rank", a["rank"]), where]
        rows.append(
            "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells)
            + f"<td><b>{html.escape(check_label(a, lab))}</b>{note}{std}</td>"
            + "".join(f'<td class="num">{html.escape(fmt_measure(a[c], a["unit"]))}</td>' for c in ("value", "required", "shortfall"))
            + f'<td class="num">{html.escape(_fmt("elderly_affected", a["elderly_affected"]))}</td>'
            + f"<td>{html.escape(nearest)}</td></tr>")
    notes = "".join(f"<li>{html.escape(s)}</li>" for s in sources)
    return (f'<table class="actions"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'
            + (f'<div class="sources">{html.escape(lab.text("sources"))}<ol>{notes}</ol></div>' if notes else ""))


_CSS = """
body{font-family:"Noto Sans CJK SC","Source Han Sans SC","Microsoft YaHei",sans-serif;margin:24px;color:#222}
h1{font-size:22px}h2{font-size:18px;border-bottom:2px solid #1565c0;padding-bottom:4px}h3{font-size:14px}
table{border-collapse:collapse;font-size:12px;margin:6px 0 12px}th,td{border:1px solid #bbb;padding:3px 6px}
th{background:#eef3fa;text-align:left}table.card th{width:16em}td.num{text-align:right;white-space:nowrap}
table.actions{width:100%}table.actions th{white-space:nowrap}.std{color:#555;font-size:11px;margin-top:2px}
.sources{font-size:11px;color:#555}.sources ol{margin:2px 0 0;padding-left:22px}
.street{page-break-before:always}.figs{display:flex;flex-wrap:wrap;gap:12px;align-items:flex-start}
.figs img{max-width:32%;min-width:260px}.muted{color:#777}
@media print{body{margin:10mm}.figs img{max-width:31%}}
"""


def report_title(summary: Mapping, lang: str = "zh") -> str:
    """``summary["title"]``, else the profile's place before the report's name.

    Parameters
    ----------
    summary : mapping
        ``summary.json`` content (``title``; ``profile`` → ``title``).
    lang : {"zh", "en"}

    Returns
    -------
    str
        Plain text (escaped where it is written).
    """
    if summary.get("title"):
        return str(summary["title"])
    profile = summary.get("profile")
    place = profile.get("title") if isinstance(profile, Mapping) else None
    base = L.text("report_title", lang)
    return (f"{base} — {place}" if lang == "en" else f"{place}{base}") if place else base


def write_report(
    out_dir: str | os.PathLike,
    *,
    streets: gpd.GeoDataFrame,
    communities: gpd.GeoDataFrame,
    actions: pd.DataFrame,
    summary: Mapping,
    services: Mapping[str, Mapping[str, str]],
    labels: Mapping[str, tuple[str, str]] | None = None,
    lang: str = "zh",
    pdf: bool | None = None,
) -> Path:
    """Write ``report.html`` (and ``report.pdf``) into ``out_dir``.

    Parameters
    ----------
    out_dir : path-like
        The run's output folder (created if missing).
    streets, communities : geopandas.GeoDataFrame
        Scorecards and community results (CONTRACT.md columns), analysis CRS.
    actions : pandas.DataFrame
        The action list (问题清单).
    summary : mapping
        ``summary.json`` content; read (all optional): ``title``, ``profile`` (name, or a
        mapping with ``name``/``title``), ``parameters`` (shown as given),
        ``communities`` → ``{total, flagged}`` and ``services`` →
        ``{key: {population_covered_share, elderly_covered_share}}``.
    services : mapping
        Service key -> ``{"label_zh", "label_en"}``.
    labels : mapping, optional
        ``{column: (中文, English)}`` of the analysis columns,
        :func:`carecircle.maps.labels.analysis_labels` of the run's profile (the national
        profile's when omitted).
    lang : {"zh", "en"}
    pdf : bool, optional
        None (default): also print ``report.pdf`` when headless chromium is installed;
        True: require it; False: HTML only.

    Returns
    -------
    pathlib.Path
        The ``report.html`` path.
    """
    find_cjk_font()  # fail before writing anything
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    lab = L.Labels(lang, labels, dict(services))
    circle = [s for s in lab.services if f"elderly_covered_share_{s}" in streets.columns]
    title = report_title(summary, lang)
    parts = [f'<!DOCTYPE html><html lang="{"en" if lang == "en" else "zh-CN"}"><head><meta charset="utf-8">',
             f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>", f"<h1>{html.escape(title)}</h1>"]
    parts.append(_overview(summary, lab))
    ranked = streets.sort_values("rank") if "rank" in streets.columns else streets
    score_cols = ["rank", "street", "score", "communities", "communities_flagged"]
    score_cols += [c for s in circle for c in (f"communities_covered_{s}", f"elderly_covered_share_{s}")]
    score_cols += ["has_street_centre", "space_shortfall_m2"]
    parts += [f"<h2>{html.escape(lab.text('ranking'))}</h2>", _table(ranked, score_cols, lab)]
    for _, street in ranked.iterrows():
        name = street["street"]
        coms = communities[communities["street"] == name]
        acts = actions[actions["street"] == name] if "street" in actions.columns else actions.iloc[0:0]
        figs = [street_map(coms, street.geometry, lab)] if len(coms) else []
        if circle:
            figs.append(coverage_chart(street, circle, lab))
        short = shortfall_chart(coms, lab)
        parts.append(f'<section class="street"><h2>{html.escape(str(name))}</h2>')
        parts.append(f"<h3>{html.escape(lab.text('scorecard'))}</h3>")
        parts.append(_card(street, [c for c in score_cols if c != "street"], lab))
        parts.append('<div class="figs">' + "".join(f'<img src="{src}" alt="">' for src in figs + ([short] if short else [])) + "</div>")
        if short is None:
            parts.append(f'<p class="muted">{html.escape(lab.text("no_shortfall"))}</p>')
        parts.append(f"<h3>{html.escape(lab.text('actions'))}</h3>")
        parts.append(action_table(acts, lab) if len(acts) else f'<p class="muted">{html.escape(lab.text("no_actions"))}</p>')
        parts.append("</section>")
    parts.append(f'<p class="muted">carecircle · {_dt.date.today().isoformat()}</p></body></html>')
    path = out_dir / "report.html"
    path.write_text("".join(parts), encoding="utf-8")
    if pdf is not False:
        _print_pdf(path, required=bool(pdf))
    return path


def _overview(summary: Mapping, lab: L.Labels) -> str:
    rows = []
    profile = summary.get("profile")
    if isinstance(profile, Mapping):
        profile = " ".join(str(profile[k]) for k in ("title", "name") if profile.get(k))
    if profile:
        rows.append((lab.column("profile", own_first=True), str(profile)))
    for key, value in (summary.get("parameters") or {}).items():
        if not isinstance(value, (Mapping, list)):
            rows.append((lab.column(str(key), own_first=True), _fmt(str(key), value)))
    com = summary.get("communities")
    if isinstance(com, Mapping) and "total" in com:
        rows.append((lab.text("communities_total"), _fmt("total", com["total"])))
        if "flagged" in com:
            rows.append((lab.text("communities_flagged"), _fmt("flagged", com["flagged"])))
    out = [f"<h2>{html.escape(lab.text('overview'))}</h2>"]
    if rows:
        out.append('<table class="card">' + "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>"
                                                    for k, v in rows) + "</table>")
    cov = summary.get("services") or {}
    if cov:
        frame = pd.DataFrame([{"service": lab.service(k), **v} for k, v in cov.items() if isinstance(v, Mapping)])
        out.append(_table(frame, ["service", "population_covered_share", "elderly_covered_share"], lab))
    return "".join(out)


def find_chromium() -> str | None:
    """Path of a headless-capable chromium/chrome, or None."""
    return next((p for p in map(shutil.which, CHROMIUM_NAMES) if p), None)


def _print_pdf(path: Path, *, required: bool) -> Path | None:
    """Print ``path`` to ``report.pdf`` with headless chromium; warn (or raise) on failure."""
    browser = find_chromium()
    pdf = path.with_suffix(".pdf")
    if browser is None:
        if required:
            raise RuntimeError("report: PDF requested but no chromium is installed (Debian: apt-get install chromium)")
        return None
    profile = path.parent / ".chromium-profile"
    cmd = [browser, *HEADLESS_ARGS, f"--user-data-dir={profile}", "--no-pdf-header-footer", f"--print-to-pdf={pdf}",
           path.resolve().as_uri()]
    try:
        subprocess.run(cmd, capture_output=True, timeout=180, check=False)
    finally:
        shutil.rmtree(profile, ignore_errors=True)
    if pdf.exists() and pdf.read_bytes()[:4] == b"%PDF":
        return pdf
    if required:
        raise RuntimeError(f"report: chromium did not print {pdf}")
    warnings.warn(f"report: chromium did not print {pdf}; report.html is complete", stacklevel=3)
    return None
