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
from fontTools.ttLib import TTFont
from matplotlib import font_manager
from matplotlib.figure import Figure

from carecircle.maps import labels as L
from carecircle.maps.html import check_colours

# Families tried first, in order (Linux, then Windows/macOS names); any other font whose
# character map covers CJK_PROBE is accepted after them.
PREFERRED_CJK_FAMILIES = [
    "Noto Sans CJK SC", "Source Han Sans SC", "Noto Sans SC", "WenQuanYi Zen Hei", "WenQuanYi Micro Hei",
    "Microsoft YaHei", "SimHei", "PingFang SC", "Heiti SC", "Noto Serif CJK SC", "AR PL UMing CN",
]
CJK_PROBE = "养老服务设施社区街道覆盖率缺口日间照料助餐"
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


@functools.lru_cache(maxsize=1)
def find_cjk_font() -> font_manager.FontEntry:
    """A font matplotlib can use that has glyphs for Chinese text.

    Returns
    -------
    matplotlib.font_manager.FontEntry
        ``.name`` is the family to put in ``font.sans-serif``, ``.fname`` the file and
        ``.index`` the face inside a ``.ttc`` collection.

    Raises
    ------
    RuntimeError
        When no installed font covers Chinese (install Debian's ``fonts-noto-cjk``).
    """
    entries = font_manager.fontManager.ttflist
    rank = {name: i for i, name in enumerate(PREFERRED_CJK_FAMILIES)}
    ordered = sorted(entries, key=lambda f: (rank.get(f.name, len(rank)), f.weight != 400, f.name))
    for entry in ordered:
        if has_glyphs(entry.fname, getattr(entry, "index", 0), CJK_PROBE):
            return entry
    raise RuntimeError("report: no font with Chinese glyphs is installed; install one (Debian: apt-get install "
                       "fonts-noto-cjk), then remove matplotlib's font cache if it was built before")


@functools.lru_cache(maxsize=None)
def _cmap(path: str, index: int) -> frozenset[int]:
    try:
        font = TTFont(path, fontNumber=index, lazy=True)
        return frozenset(font.getBestCmap() or ())
    except Exception:  # an unreadable font file is simply not a candidate
        return frozenset()


def has_glyphs(path: str, index: int, text: str) -> bool:
    """Whether the face ``index`` of font file ``path`` maps every character of ``text``."""
    cmap = _cmap(str(path), int(index or 0))
    return all(ord(c) in cmap for c in text)


# ----------------------------------------------------------------------------- charts


def _png(fig: Figure) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _rc() -> dict:
    font = find_cjk_font()
    return {"font.family": "sans-serif", "font.sans-serif": [font.name, "DejaVu Sans"], "axes.unicode_minus": False}


def coverage_chart(street: pd.Series, circle: list[str], services, lang: str) -> str:
    """Bar chart: share of the street's elderly within the circle, per service (PNG data URL)."""
    with matplotlib.rc_context(_rc()):
        fig = Figure(figsize=(4.2, 2.6))
        ax = fig.subplots()
        shares = [float(street.get(f"elderly_covered_share_{s}", np.nan)) for s in circle]
        names = [L.service_label(s, services, lang) for s in circle]
        bars = ax.bar(names, [0 if np.isnan(v) else v * 100 for v in shares], color="#1565c0", width=0.55)
        for bar, v in zip(bars, shares):
            ax.annotate("—" if np.isnan(v) else f"{v:.0%}", (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                        ha="center", va="bottom", fontsize=9)
        ax.axhline(100, color="#999999", lw=0.8, ls="--")
        ax.set_ylim(0, 112)
        ax.set_ylabel("%")
        ax.set_title(L.text("coverage_chart", lang), fontsize=10)
        ax.spines[["top", "right"]].set_visible(False)
        return _png(fig)


def shortfall_chart(communities: pd.DataFrame, lang: str) -> str | None:
    """Horizontal bars of the space shortfall per community (None when nobody falls short)."""
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
        ax.set_title(L.text("shortfall_chart", lang), fontsize=10)
        ax.spines[["top", "right"]].set_visible(False)
        return _png(fig)


def street_map(communities: gpd.GeoDataFrame, outline, services, lang: str) -> str:
    """A small map of the street's communities coloured by their worst failed check."""
    worst = communities["worst_check"].fillna("").astype(str) if "worst_check" in communities.columns else pd.Series("", index=communities.index)
    colours = check_colours(worst.unique())
    with matplotlib.rc_context(_rc()):
        fig = Figure(figsize=(4.2, 4.2))
        ax = fig.subplots()
        communities.plot(ax=ax, color=worst.map(colours).tolist(), edgecolor="#555555", linewidth=0.6)
        if outline is not None:
            gpd.GeoSeries([outline], crs=communities.crs).boundary.plot(ax=ax, color="#263238", linewidth=1.6, linestyle="--")
        for name, pt in zip(communities["name"].astype(str), communities.geometry.representative_point()):
            ax.annotate(name, (pt.x, pt.y), ha="center", va="center", fontsize=7)
        present = [c for c in colours if c in set(worst)]
        handles = [matplotlib.patches.Patch(color=colours[c], label=L.check_label(c, services, lang) if c else L.text("compliant", lang))
                   for c in present]
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
        return "∞" if np.isinf(v) else f"{v:,.0f}" if abs(v - round(v)) < 1e-9 or abs(v) >= 100 else f"{v:,.1f}"
    return str(value)


def _table(frame: pd.DataFrame, columns: list[str], services, lang: str) -> str:
    cols = [c for c in columns if c in frame.columns]
    head = "".join(f"<th>{html.escape(L.column_label(c, services, lang))}</th>" for c in cols)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(_fmt(c, row[c]))}</td>" for c in cols) + "</tr>"
                   for _, row in frame.iterrows())
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _card(row: pd.Series, columns: list[str], services, lang: str) -> str:
    rows = "".join(f"<tr><th>{html.escape(L.column_label(c, services, lang))}</th><td>{html.escape(_fmt(c, row[c]))}</td></tr>"
                   for c in columns if c in row.index)
    return f'<table class="card">{rows}</table>'


_CSS = """
body{font-family:"Noto Sans CJK SC","Source Han Sans SC","Microsoft YaHei",sans-serif;margin:24px;color:#222}
h1{font-size:22px}h2{font-size:18px;border-bottom:2px solid #1565c0;padding-bottom:4px}h3{font-size:14px}
table{border-collapse:collapse;font-size:12px;margin:6px 0 12px}th,td{border:1px solid #bbb;padding:3px 6px}
th{background:#eef3fa;text-align:left}table.card th{width:14em}
.street{page-break-before:always}.figs{display:flex;flex-wrap:wrap;gap:12px;align-items:flex-start}
.figs img{max-width:32%;min-width:260px}.muted{color:#777}
@media print{body{margin:10mm}.figs img{max-width:31%}}
"""


def write_report(
    out_dir: str | os.PathLike,
    *,
    streets: gpd.GeoDataFrame,
    communities: gpd.GeoDataFrame,
    actions: pd.DataFrame,
    summary: Mapping,
    services: Mapping[str, Mapping[str, str]],
    lang: str = "zh",
    pdf: bool | None = None,
) -> Path:
    """Write ``report.html`` (and ``report.pdf``) into ``out_dir``.

    Parameters
    ----------
    out_dir : path-like
    streets, communities : geopandas.GeoDataFrame
        Scorecards and community results (CONTRACT.md columns), analysis CRS.
    actions : pandas.DataFrame
        The action list (问题清单).
    summary : mapping
        ``summary.json`` content; read (all optional): ``title``, ``profile`` (name, or a
        mapping with ``name``/``title``), ``parameters`` (shown as given) and
        ``services`` → ``{key: {population_covered_share, elderly_covered_share}}``.
    services : mapping
        Service key -> ``{"label_zh", "label_en"}``.
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
    services = dict(services)
    circle = [s for s in services if f"elderly_covered_share_{s}" in streets.columns]
    title = summary.get("title") or L.text("report_title", lang)
    parts = [f'<!DOCTYPE html><html lang="{"en" if lang == "en" else "zh-CN"}"><head><meta charset="utf-8">',
             f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>", f"<h1>{html.escape(title)}</h1>"]
    parts.append(_overview(summary, services, lang))
    ranked = streets.sort_values("rank") if "rank" in streets.columns else streets
    score_cols = ["rank", "street", "score", "communities", "communities_flagged"]
    score_cols += [c for s in circle for c in (f"communities_covered_{s}", f"elderly_covered_share_{s}")]
    score_cols += ["has_street_centre", "space_shortfall_m2"]
    parts += [f"<h2>{html.escape(L.text('ranking', lang))}</h2>", _table(ranked, score_cols, services, lang)]
    for _, street in ranked.iterrows():
        name = street["street"]
        coms = communities[communities["street"] == name]
        acts = actions[actions["street"] == name] if "street" in actions.columns else actions.iloc[0:0]
        figs = [street_map(coms, street.geometry, services, lang)] if len(coms) else []
        if circle:
            figs.append(coverage_chart(street, circle, services, lang))
        short = shortfall_chart(coms, lang)
        parts.append(f'<section class="street"><h2>{html.escape(str(name))}</h2>')
        parts.append(f"<h3>{html.escape(L.text('scorecard', lang))}</h3>")
        parts.append(_card(street, [c for c in score_cols if c != "street"], services, lang))
        parts.append('<div class="figs">' + "".join(f'<img src="{src}" alt="">' for src in figs + ([short] if short else [])) + "</div>")
        if short is None:
            parts.append(f'<p class="muted">{html.escape(L.text("no_shortfall", lang))}</p>')
        parts.append(f"<h3>{html.escape(L.text('actions', lang))}</h3>")
        if len(acts):
            parts.append(_table(acts, ["rank", "community", "check_label", "value", "required", "shortfall", "unit",
                                       "elderly_affected", "standard", "source", "nearest_facility", "nearest_facility_m"],
                                services, lang))
        else:
            parts.append(f'<p class="muted">{html.escape(L.text("no_actions", lang))}</p>')
        parts.append("</section>")
    parts.append(f'<p class="muted">carecircle · {_dt.date.today().isoformat()}</p></body></html>')
    path = out_dir / "report.html"
    path.write_text("".join(parts), encoding="utf-8")
    if pdf is not False:
        _print_pdf(path, required=bool(pdf))
    return path


def _overview(summary: Mapping, services, lang: str) -> str:
    rows = []
    profile = summary.get("profile")
    if isinstance(profile, Mapping):
        profile = " ".join(str(profile[k]) for k in ("title", "name") if profile.get(k))
    if profile:
        rows.append((L.text("parameters", lang), L.column_label("profile", services, lang), str(profile)))
    for key, value in (summary.get("parameters") or {}).items():
        if not isinstance(value, (Mapping, list)):
            rows.append((L.text("parameters", lang), L.column_label(str(key), services, lang), _fmt(str(key), value)))
    out = [f"<h2>{html.escape(L.text('overview', lang))}</h2>"]
    if rows:
        out.append("<table>" + "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for _, k, v in rows) + "</table>")
    cov = summary.get("services") or {}
    if cov:
        frame = pd.DataFrame([{"service": L.service_label(k, services, lang), **v} for k, v in cov.items() if isinstance(v, Mapping)])
        out.append(_table(frame, ["service", "population_covered_share", "elderly_covered_share"], services, lang))
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
    cmd = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
           "--disable-component-update", "--disable-sync", f"--user-data-dir={profile}", "--no-pdf-header-footer",
           f"--print-to-pdf={pdf}", path.resolve().as_uri()]
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
