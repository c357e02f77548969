"""The planning report: ``report.html``, ``report.pdf`` (A4, printed by a Chromium-family
browser) and ``report.docx`` (Word, for the bureau to edit) with the same content.

A cover (city, profile, date, circle); the overview (run parameters, coverage per service) and a
city-wide map; the sub-district ranking; then per 街道 its scorecard, a small map of its
communities coloured by their worst failed check, a chart of elderly coverage per service, one of
the floor-space shortfall per community, a short 结论与建议 written from the checks (which
communities fail what, by how much, the nearest facility, the 小区 short of space) and its part
of the action list (问题清单).

The content is built once as a list of blocks (:func:`report_blocks`); :func:`render_html` and
:func:`carecircle.maps.report_docx.write_docx` lay the same blocks out. Charts are matplotlib
PNGs; they need a font that really draws Chinese (:mod:`carecircle.maps.fonts`). Without one the
report is written without charts and the run says so once — never a chart of boxes.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as _dt
import html
import io
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd

from carecircle.maps import labels as L
from carecircle.maps.fonts import NoCJKFont, cjk_font_or_none, find_cjk_font
from carecircle.maps.html import (BALANCE_COLOURS, CHECK_COLOURS, NETWORK_COLOURS, NO_CENTRE_COLOUR, SERVICE_COLOURS, check_label, check_styles,
                                  fmt_measure)

# Executables of the Chromium family on PATH, then their usual install paths per system.
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "microsoft-edge",
                  "microsoft-edge-stable", "msedge", "chrome")
BROWSER_ENV = "CARECIRCLE_BROWSER"
# Headless chromium with nothing of its own going on: no sandbox (containers), no GPU, no
# first-run, sync or update traffic.
HEADLESS_ARGS = ("--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync")
Log = Callable[[str], None]


def browser_paths() -> list[Path]:
    """Where Edge, Chrome and Chromium install themselves on Windows, macOS and Linux."""
    if sys.platform == "win32":
        roots = [os.environ.get(k) for k in ("PROGRAMFILES", "PROGRAMFILES(X86)", "LOCALAPPDATA")]
        rel = [r"Microsoft\Edge\Application\msedge.exe", r"Google\Chrome\Application\chrome.exe",
               r"Chromium\Application\chrome.exe"]
        return [Path(r) / x for r in roots if r for x in rel]
    if sys.platform == "darwin":
        apps = ["Google Chrome.app/Contents/MacOS/Google Chrome", "Microsoft Edge.app/Contents/MacOS/Microsoft Edge",
                "Chromium.app/Contents/MacOS/Chromium"]
        return [root / a for root in (Path("/Applications"), Path.home() / "Applications") for a in apps]
    return [Path(p) for p in ("/usr/bin/chromium", "/usr/bin/chromium-browser", "/snap/bin/chromium",
                              "/usr/bin/google-chrome", "/opt/google/chrome/chrome", "/usr/bin/microsoft-edge",
                              "/opt/microsoft/msedge/msedge")]


def find_chromium() -> str | None:
    """A Chromium-family browser that can print headless (``$CARECIRCLE_BROWSER`` first), or None."""
    named = os.environ.get(BROWSER_ENV)
    if named and Path(named).is_file():
        return named
    found = next((p for p in map(shutil.which, CHROMIUM_NAMES) if p), None)
    return found or next((str(p) for p in browser_paths() if p.is_file()), None)


# ----------------------------------------------------------------------------- charts


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=150, bbox_inches="tight")
    return buf.getvalue()


def data_url(png: bytes) -> str:
    """A PNG as a ``data:`` URL (report.html is one self-contained file)."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _rc() -> dict:
    font = find_cjk_font()
    return {"font.family": "sans-serif", "font.sans-serif": [font.name, "DejaVu Sans"], "axes.unicode_minus": False}


def coverage_chart(street: pd.Series, circle: list[str], lab: L.Labels) -> bytes:
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
    bytes
        A PNG.
    """
    import matplotlib
    from matplotlib.figure import Figure

    with matplotlib.rc_context(_rc()):
        fig = Figure(figsize=(4.2, 2.6))
        ax = fig.subplots()
        shares = [float(street.get(f"elderly_covered_share_{s}", np.nan)) for s in circle]
        names = [lab.service(s) for s in circle]
        # Each service in its map colour; a colour keeps one meaning across map and report.
        order = list(lab.services)
        colours = [SERVICE_COLOURS[order.index(s) % len(SERVICE_COLOURS)] if s in order else SERVICE_COLOURS[0] for s in circle]
        bars = ax.bar(names, [0 if np.isnan(v) else v * 100 for v in shares], color=colours, width=0.55)
        for bar, v in zip(bars, shares):
            ax.annotate("—" if np.isnan(v) else f"{v:.0%}", (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                        ha="center", va="bottom", fontsize=9)
        ax.axhline(100, color="#999999", lw=0.8, ls="--")
        ax.set_ylim(0, 112)
        ax.set_ylabel("%")
        ax.set_title(lab.text("coverage_chart"), fontsize=10)
        ax.spines[["top", "right"]].set_visible(False)
        return _png(fig)


def shortfall_chart(communities: pd.DataFrame, lab: L.Labels) -> bytes | None:
    """Horizontal bars of the space shortfall per community.

    Parameters
    ----------
    communities : pandas.DataFrame
        One street's communities (``name``, ``space_shortfall_m2``).
    lab : Labels

    Returns
    -------
    bytes or None
        A PNG; None when no community falls short (or there is no such column).
    """
    import matplotlib
    from matplotlib.figure import Figure

    if "space_shortfall_m2" not in communities.columns:
        return None
    data = communities[["name", "space_shortfall_m2"]].dropna()
    data = data[data["space_shortfall_m2"] > 0].sort_values("space_shortfall_m2")
    if data.empty:
        return None
    with matplotlib.rc_context(_rc()):
        fig = Figure(figsize=(4.6, 0.5 + 0.32 * len(data)))
        ax = fig.subplots()
        ax.barh(data["name"].astype(str), data["space_shortfall_m2"], color=CHECK_COLOURS["space"], edgecolor="#f57f17")
        for y, v in enumerate(data["space_shortfall_m2"]):
            ax.annotate(f"{v:,.0f}", (v, y), xytext=(3, 0), textcoords="offset points", va="center", fontsize=8)
        ax.set_xlabel("m²")
        ax.set_title(lab.text("shortfall_chart"), fontsize=10)
        ax.spines[["top", "right"]].set_visible(False)
        return _png(fig)


def balance_chart(streets: pd.DataFrame, capacity: Mapping, lab: L.Labels) -> bytes | None:
    """Bars of places per 1000 elderly (2SFCA) per sub-district and service, coloured by 供需比
    class, with the base the classes compare against (city mean or the profile's norm).

    Parameters
    ----------
    streets : pandas.DataFrame
        ``street``, ``supply_per_1000_elderly_<s>``, ``supply_demand_class_<s>``.
    capacity : mapping
        summary.json ``capacity`` (``services`` → ``{s: {balance_base_per_1000_elderly}}``).
    lab : Labels

    Returns
    -------
    bytes or None
        A PNG; None when no service was measured.
    """
    keys = [k for k in lab.services if f"supply_demand_class_{k}" in streets.columns]
    if not keys or not len(streets):
        return None
    import matplotlib
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    with matplotlib.rc_context(_rc()):
        fig = Figure(figsize=(3.2 * len(keys) + 1.2, 0.8 + 0.32 * len(streets)))
        axes = np.atleast_1d(fig.subplots(1, len(keys), sharey=True))
        names = streets["street"].astype(str).tolist()
        for ax, key in zip(axes, keys):
            value = streets[f"supply_per_1000_elderly_{key}"].astype(float).fillna(0).to_numpy()
            cls = streets[f"supply_demand_class_{key}"].fillna("").astype(str)
            ax.barh(names, value, color=cls.map(BALANCE_COLOURS).tolist(), edgecolor="#555555", linewidth=0.5)
            base = capacity.get("services", {}).get(key, {}).get("balance_base_per_1000_elderly")
            if base:
                ax.axvline(base, color="#333333", lw=0.8, ls="--")
                ax.annotate(lab.text("city_mean") if capacity["services"][key].get("balance_base") == "city_mean" else f"{base:,.1f}",
                            (base, 1.0), xycoords=("data", "axes fraction"), xytext=(3, -2), textcoords="offset points",
                            fontsize=8, ha="left", va="top")
            ax.set_title(lab.service(key), fontsize=9)
            ax.spines[["top", "right"]].set_visible(False)
        handles = [Patch(color=BALANCE_COLOURS[c], label=lab.text(f"balance_{c}")) for c in ("under", "balanced", "over")]
        fig.legend(handles=handles, loc="upper center", ncol=3, fontsize=8, frameon=False, bbox_to_anchor=(0.5, 0.0))
        return _png(fig)


def site_blocks(sites: pd.DataFrame, lab: L.Labels) -> list[tuple]:
    """A street's recommended sites (建议选址) as report blocks: rank, name, what each brings."""
    from carecircle.maps.sites import SITE_LABELS

    i = 0 if lab.lang == "zh" else 1
    blocks: list[tuple] = [("h3", "建议选址" if lab.lang == "zh" else "Recommended sites")]
    if not len(sites):
        return blocks + [("note", "本街道无建议选址" if lab.lang == "zh" else "No recommended site in this sub-district")]
    cols = ["rank", "name", "elderly_new", "communities_new", "community", "nearest_facility_m"]
    shown = pd.DataFrame({SITE_LABELS[c][i]: sites[c].to_numpy() for c in cols})
    return blocks + [("table", shown, list(shown.columns))]


def street_map(communities: gpd.GeoDataFrame, outline, lab: L.Labels) -> bytes:
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
    bytes
        A PNG.
    """
    import matplotlib
    from matplotlib.figure import Figure

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


def overview_map(communities: gpd.GeoDataFrame, streets: gpd.GeoDataFrame | None, facilities: gpd.GeoDataFrame | None,
                 estates: gpd.GeoDataFrame | None, network: gpd.GeoDataFrame | None, lab: L.Labels) -> bytes:
    """The city-wide map: streets (network), communities by their worst check, sub-district
    outlines (magenta where the centre is missing), 小区 short of space, facilities of the
    circle services; the same colours as map.html.

    Returns
    -------
    bytes
        A PNG.
    """
    import matplotlib
    from matplotlib.figure import Figure

    worst = communities["worst_check"].fillna("").astype(str) if "worst_check" in communities.columns \
        else pd.Series("", index=communities.index)
    fill, legend = check_styles(worst, lab)
    handles = [matplotlib.patches.Patch(color=c, label=t) for t, c in legend]
    with matplotlib.rc_context(_rc()):
        fig = Figure(figsize=(7.0, 6.6))
        ax = fig.subplots()
        if network is not None and len(network):
            network.plot(ax=ax, color=NETWORK_COLOURS[0], linewidth=0.4, zorder=1)
        communities.plot(ax=ax, color=fill.tolist(), edgecolor="#555555", linewidth=0.4, alpha=0.85, zorder=2)
        if estates is not None and len(estates) and "flag_space" in estates.columns:
            bad = estates[estates["flag_space"].fillna(False).astype(bool)]
            if len(bad):
                bad.plot(ax=ax, color=CHECK_COLOURS["space"], edgecolor="#f57f17", linewidth=1.2, zorder=3)
                for name, pt in zip(bad["estate"].astype(str), bad.geometry.representative_point()):
                    ax.annotate(name, (pt.x, pt.y), fontsize=6, color="#bf360c", ha="center", va="bottom", zorder=6)
        if streets is not None and len(streets):
            no_centre = ~streets["has_street_centre"].fillna(True).astype(bool) if "has_street_centre" in streets.columns \
                else pd.Series(False, index=streets.index)
            streets.boundary.plot(ax=ax, color=np.where(no_centre, NO_CENTRE_COLOUR, "#263238").tolist(),
                                  linewidth=1.4, linestyle="--", zorder=4)
            for name, pt in zip(streets["street"].astype(str), streets.geometry.representative_point()):
                ax.annotate(name, (pt.x, pt.y), fontsize=9, fontweight="bold", ha="center", zorder=7,
                            color="#263238", bbox={"boxstyle": "round", "fc": "white", "ec": "none", "alpha": 0.7})
            if no_centre.any():
                handles.append(matplotlib.lines.Line2D([], [], color=NO_CENTRE_COLOUR, ls="--", label=lab.text("no_street_centre")))
        if facilities is not None and len(facilities):
            for i, key in enumerate(k for k in lab.services if k in facilities.columns):
                sel = facilities[facilities[key].fillna(False).astype(bool)]
                if len(sel):
                    colour = SERVICE_COLOURS[list(lab.services).index(key) % len(SERVICE_COLOURS)]
                    sel.plot(ax=ax, color=colour, markersize=14, marker="osD^hp"[i % 6], edgecolor="white",
                             linewidth=0.5, zorder=5)
                    handles.append(matplotlib.lines.Line2D([], [], color=colour, marker="osD^hp"[i % 6], ls="",
                                                           label=lab.service(key)))
        ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.01), ncol=3, fontsize=7, frameon=False)
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
@page{size:A4;margin:16mm 14mm 18mm;@bottom-center{content:counter(page) " / " counter(pages);font-size:9pt;color:#666}}
@page :first{@bottom-center{content:none}}
body{font-family:"Noto Sans CJK SC","Source Han Sans SC","Microsoft YaHei","PingFang SC",sans-serif;margin:0;color:#222;
 font-size:10.5pt}
h1{font-size:20pt}h2{font-size:15pt;border-bottom:2px solid #1565c0;padding-bottom:3px;break-after:avoid}
h3{font-size:12pt;break-after:avoid;margin:10px 0 4px}
table{border-collapse:collapse;font-size:9pt;margin:4px 0 10px;break-inside:avoid}th,td{border:1px solid #bbb;padding:2px 5px}
th{background:#eef3fa;text-align:left}table.card th{width:16em}td.num{text-align:right;white-space:nowrap}
table.actions{width:100%;break-inside:auto}table.actions tr{break-inside:avoid}table.actions th{white-space:nowrap}
.std{color:#555;font-size:8pt;margin-top:2px}
.sources{font-size:8pt;color:#555;break-inside:avoid}.sources ol{margin:2px 0 0;padding-left:22px}
.street{break-before:page}.figs{display:flex;flex-wrap:wrap;gap:8px;align-items:flex-start;break-inside:avoid}
.figs img{max-width:48%;max-height:100mm}.figs img.wide{max-width:100%;max-height:190mm}
figure,img,.card,ul.findings li{break-inside:avoid}.muted{color:#777}
.cover{break-after:page;padding-top:55mm;text-align:center}.cover h1{font-size:24pt;margin-bottom:18mm}
.cover table{margin:0 auto;font-size:12pt}.cover th,.cover td{border:none;padding:4px 14px}.cover th{background:none;text-align:right}
.cover td{text-align:left}
ul.findings{margin:4px 0 8px;padding-left:20px}ul.findings li{margin:2px 0}
@media screen{body{margin:24px auto;max-width:190mm}}
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




# ----------------------------------------------------------------------------- content


def _circle_text(summary: Mapping, lang: str) -> str:
    par = summary.get("parameters") or {}
    distance = par.get("walk_distance_m")
    if distance is None:
        return "—"
    words = L.circle_words(par.get("walk_minutes"), float(distance), lang)
    return words if par.get("walk_minutes") is None else f"{words}（{float(distance):,.0f} m）" if lang != "en" \
        else f"{words} ({float(distance):,.0f} m)"


def _cover_rows(summary: Mapping, lab: L.Labels, today: _dt.date) -> list[tuple[str, str]]:
    profile = summary.get("profile") if isinstance(summary.get("profile"), Mapping) else {}
    rows = [(lab.text("cover_city"), str(profile.get("title") or "—")),
            (lab.text("cover_profile"), str(profile.get("name") or summary.get("profile") or "—")),
            (lab.text("cover_circle"), _circle_text(summary, lab.lang)),
            (lab.text("cover_date"), today.isoformat())]
    return rows


def _overview_rows(summary: Mapping, lab: L.Labels) -> list[tuple[str, str]]:
    rows = []
    profile = summary.get("profile")
    if isinstance(profile, Mapping):
        profile = " ".join(str(profile[k]) for k in ("title", "name") if profile.get(k))
    if profile:
        rows.append((lab.column("profile", own_first=True), str(profile)))
    for key, value in (summary.get("parameters") or {}).items():
        if not isinstance(value, (Mapping, list)) and value is not None:
            rows.append((lab.column(str(key), own_first=True), _fmt(str(key), value)))
    com = summary.get("communities")
    if isinstance(com, Mapping) and "total" in com:
        rows.append((lab.text("communities_total"), _fmt("total", com["total"])))
        if "flagged" in com:
            rows.append((lab.text("communities_flagged"), _fmt("flagged", com["flagged"])))
    return rows


def _sep(lab: L.Labels) -> str:
    return ", " if lab.lang == "en" else "、"


def conclusions(street: pd.Series, communities: pd.DataFrame, actions: pd.DataFrame, estates: pd.DataFrame | None,
                circle: list[str], lab: L.Labels, unit: str) -> tuple[list[str], list[str]]:
    """结论与建议 of one sub-district, written from its checks.

    Parameters
    ----------
    street : pandas.Series
        Its scorecard row.
    communities, actions : pandas.DataFrame
        Its communities and its rows of the action list.
    estates : pandas.DataFrame or None
        Its 小区 (``estate``, ``community``, ``flag_space``, space columns).
    circle : list of str
        The circle services.
    lab : Labels
    unit : str
        The profile's word for a sub-district (街道, 镇).

    Returns
    -------
    findings, recommendations : list of str
        One finding per failed check (where, what, by how much, the nearest facility) and per
        小区 short of space; recommendations: where to start, what to add.
    """
    n = len(communities)
    flagged = int(street["communities_flagged"]) if "communities_flagged" in street.index and pd.notna(street["communities_flagged"]) else 0
    findings = [lab.text("street_summary", unit=unit, n=n, flagged=flagged)]
    shares = [f"{lab.service(s)} {_fmt('share', street.get(f'elderly_covered_share_{s}'))}" for s in circle
              if f"elderly_covered_share_{s}" in street.index]
    if shares:
        findings.append(lab.text("street_coverage", shares=_sep(lab).join(shares)))
    acts = actions.reindex(columns=["community", "check", "check_label", "value", "required", "shortfall", "unit",
                                    "elderly_affected", "nearest_facility", "nearest_facility_m"])
    # A handful of actions per street: not a hot path.
    for _, a in acts.iterrows():
        where = a["community"] if isinstance(a["community"], str) and a["community"] else f'{street["street"]}{lab.text("street_level")}'
        short = lab.text("finding_short", shortfall=fmt_measure(a["shortfall"], a["unit"])) \
            if pd.notna(a["shortfall"]) and float(a["shortfall"]) > 0 else ""
        line = lab.text("finding", where=where, check=check_label(a, lab), value=fmt_measure(a["value"], a["unit"]),
                        required=fmt_measure(a["required"], a["unit"]), short=short)
        if isinstance(a["nearest_facility"], str) and a["nearest_facility"]:
            line += lab.text("finding_nearest", facility=a["nearest_facility"], metres=_fmt("m", a["nearest_facility_m"]))
        findings.append(line + ("." if lab.lang == "en" else "。"))
    if estates is not None and len(estates) and "flag_space" in estates.columns:
        for _, e in estates[estates["flag_space"].fillna(False).astype(bool)].iterrows():
            where = lab.bracketed(str(e["estate"]), str(e["community"])) if isinstance(e.get("community"), str) else str(e["estate"])
            short = lab.text("finding_short", shortfall=fmt_measure(e.get("space_shortfall_m2"), "m²"))
            findings.append(lab.text("finding", where=where, check=lab.text("estate_check"),
                                     value=fmt_measure(e.get("space_provided_m2"), "m²"),
                                     required=fmt_measure(e.get("space_required_m2"), "m²"), short=short)
                            + ("." if lab.lang == "en" else "。"))
    advice = []
    if len(acts):
        affected = pd.to_numeric(acts["elderly_affected"], errors="coerce").fillna(0)
        top = acts.loc[affected.idxmax()]
        where = top["community"] if isinstance(top["community"], str) and top["community"] else str(street["street"])
        if affected.max() > 0:
            advice.append(lab.text("priority", where=where, elderly=f"{affected.max():,.0f}"))
        missing = [s for s in circle if (acts["check"] == f"no_{s}").any()]
        if missing:
            advice.append(lab.text("recommend_circle", services=_sep(lab).join(lab.service(s) for s in missing)))
        if "space_shortfall_m2" in street.index and pd.notna(street["space_shortfall_m2"]) and street["space_shortfall_m2"] > 0:
            advice.append(lab.text("recommend_space", m2=fmt_measure(street["space_shortfall_m2"], "m²")))
    else:
        advice.append(lab.text("all_compliant"))
    return findings, advice


def report_blocks(*, streets: gpd.GeoDataFrame, communities: gpd.GeoDataFrame, actions: pd.DataFrame, summary: Mapping,
                  lab: L.Labels, facilities: gpd.GeoDataFrame | None = None, estates: gpd.GeoDataFrame | None = None,
                  network: gpd.GeoDataFrame | None = None, sites: pd.DataFrame | None = None,
                  charts: bool = True, today: _dt.date | None = None) -> list[tuple]:
    """The report's content as blocks, laid out by :func:`render_html` and the Word writer.

    Blocks are tuples: ``("cover", title, rows)``, ``("h2", text, new_page)``, ``("h3", text)``,
    ``("p", text)``, ``("note", text)``, ``("rows", [(label, value)])``, ``("table", frame,
    columns)``, ``("card", row, columns)``, ``("figs", [png], wide)``, ``("list", [text])`` and
    ``("actions", frame)``.

    Returns
    -------
    list of tuple
    """
    today = today or _dt.date.today()
    circle = [s for s in lab.services if f"elderly_covered_share_{s}" in streets.columns]
    title = report_title(summary, lab.lang)
    profile = summary.get("profile") if isinstance(summary.get("profile"), Mapping) else {}
    unit = str(profile.get("sub_district_label") or ("sub-district" if lab.lang == "en" else "街道"))
    blocks: list[tuple] = [("cover", title, _cover_rows(summary, lab, today))]
    blocks += [("h2", lab.text("overview"), False), ("rows", _overview_rows(summary, lab))]
    cov = summary.get("services") or {}
    if cov:
        frame = pd.DataFrame([{"service": lab.service(k), **v} for k, v in cov.items() if isinstance(v, Mapping)])
        blocks.append(("table", frame, ["service", "population_covered_share", "elderly_covered_share"]))
    blocks += _walk_blocks(summary, circle, lab)
    if not charts:
        blocks.append(("note", lab.text("no_cjk_font")))
    elif len(communities):
        blocks += [("h3", lab.text("city_map")),
                   ("figs", [overview_map(communities, streets, facilities, estates, network, lab)], True)]
    balance = balance_chart(streets, summary.get("capacity") or {}, lab) if charts else None
    if balance:
        blocks += [("h3", lab.text("balance_chart")), ("figs", [balance], True)]
    ranked = streets.sort_values("rank") if "rank" in streets.columns else streets
    score_cols = ["rank", "street", "score", "communities", "communities_flagged"]
    score_cols += [c for s in circle for c in (f"communities_covered_{s}", f"elderly_covered_share_{s}")]
    score_cols += ["has_street_centre", "space_shortfall_m2"]
    blocks += [("h2", lab.text("ranking"), True), ("table", ranked, score_cols)]
    est_street = estates["street"].astype(str) if estates is not None and "street" in estates.columns else None
    for _, street in ranked.iterrows():
        name = street["street"]
        coms = communities[communities["street"] == name]
        acts = actions[actions["street"] == name] if "street" in actions.columns else actions.iloc[0:0]
        ests = estates[est_street == str(name)] if est_street is not None else None
        blocks += [("h2", str(name), True), ("h3", lab.text("scorecard")), ("card", street, [c for c in score_cols if c != "street"])]
        short = None
        if charts:
            figs = [street_map(coms, street.geometry, lab)] if len(coms) else []
            if circle:
                figs.append(coverage_chart(street, circle, lab))
            short = shortfall_chart(coms, lab)
            blocks.append(("figs", figs + ([short] if short else []), False))
        if short is None and not (coms.get("space_shortfall_m2", pd.Series(dtype=float)).fillna(0) > 0).any():
            blocks.append(("note", lab.text("no_shortfall")))
        findings, advice = conclusions(street, coms, acts, ests, circle, lab, unit)
        blocks += [("h3", lab.text("conclusions")), ("list", findings + advice)]
        if sites is not None:
            blocks += site_blocks(sites[sites["street"].astype(str) == str(name)], lab)
        blocks.append(("h3", lab.text("actions")))
        blocks.append(("actions", acts) if len(acts) else ("note", lab.text("no_actions")))
    return blocks


def _walk_blocks(summary: Mapping, circle: list[str], lab: L.Labels) -> list[tuple]:
    """The walking-speed sensitivity and the step-free comparison, when the run asked for them."""
    blocks: list[tuple] = []
    sens = summary.get("speed_sensitivity")
    if isinstance(sens, Mapping) and sens.get("rows"):
        rows = [{"preset": r.get("preset"), "speed_kmh": r.get("speed_kmh"), "distance_m": r.get("distance_m"),
                 **{f"elderly_covered_share_{s}": (r.get("services") or {}).get(s, {}).get("elderly_covered_share")
                    for s in circle}, "source": r.get("source")} for r in sens["rows"]]
        frame = pd.DataFrame(rows)
        blocks += [("h3", lab.text("speed_sensitivity")), ("table", frame, list(frame.columns))]
    both = summary.get("step_free_comparison")
    if isinstance(both, Mapping) and both:
        rows = [{"network_kind": lab.text(f"network_{name}"), **{f"elderly_covered_share_{s}": (part.get("services") or {}).get(s, {})
                                          .get("elderly_covered_share") for s in circle}}
                for name, part in both.items() if isinstance(part, Mapping)]
        frame = pd.DataFrame(rows)
        blocks += [("h3", lab.text("step_free_comparison")), ("table", frame, list(frame.columns))]
    return blocks


def render_html(blocks: list[tuple], lab: L.Labels) -> str:
    """``report.html`` from :func:`report_blocks`: A4 pages, page numbers, one section per page break."""
    title = next((b[1] for b in blocks if b[0] == "cover"), L.text("report_title", lab.lang))
    parts = [f'<!DOCTYPE html><html lang="{"en" if lab.lang == "en" else "zh-CN"}"><head><meta charset="utf-8">',
             f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>"]
    open_section = False
    for kind, *rest in blocks:
        if kind == "cover":
            rows = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in rest[1])
            parts.append(f'<div class="cover"><h1>{html.escape(rest[0])}</h1><table>{rows}</table></div>')
        elif kind == "h2":
            if open_section:
                parts.append("</section>")
            parts.append(f'<section class="{"street" if rest[1] else "first"}"><h2>{html.escape(rest[0])}</h2>')
            open_section = True
        elif kind == "h3":
            parts.append(f"<h3>{html.escape(rest[0])}</h3>")
        elif kind in ("p", "note"):
            parts.append(f'<p{" class=muted" if kind == "note" else ""}>{html.escape(rest[0])}</p>')
        elif kind == "rows":
            if rest[0]:
                parts.append('<table class="card">' + "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>"
                                                            for k, v in rest[0]) + "</table>")
        elif kind == "table":
            parts.append(_table(rest[0], rest[1], lab))
        elif kind == "card":
            parts.append(_card(rest[0], rest[1], lab))
        elif kind == "figs":
            cls = ' class="wide"' if rest[1] else ""
            parts.append('<div class="figs">' + "".join(f'<img{cls} src="{data_url(p)}" alt="">' for p in rest[0]) + "</div>")
        elif kind == "list":
            parts.append('<ul class="findings">' + "".join(f"<li>{html.escape(t)}</li>" for t in rest[0]) + "</ul>")
        elif kind == "actions":
            parts.append(action_table(rest[0], lab))
    if open_section:
        parts.append("</section>")
    parts.append("</body></html>")
    return "".join(parts)


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
    docx: bool = True,
    facilities: gpd.GeoDataFrame | None = None,
    estates: gpd.GeoDataFrame | None = None,
    network: gpd.GeoDataFrame | None = None,
    sites: pd.DataFrame | None = None,
    log: Log | None = None,
) -> Path:
    """Write ``report.html``, ``report.docx`` and (with a Chromium-family browser) ``report.pdf``.

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
        mapping with ``name``/``title``/``sub_district_label``), ``parameters`` (shown as given;
        ``walk_minutes``/``walk_distance_m`` name the circle on the cover),
        ``communities`` → ``{total, flagged}`` and ``services`` →
        ``{key: {population_covered_share, elderly_covered_share}}``.
    services : mapping
        Service key -> ``{"label_zh", "label_en"}``.
    labels : mapping, optional
        ``{column: (中文, English)}`` of the analysis columns (the national profile's when omitted).
    lang : {"zh", "en"}
    pdf : bool, optional
        None (default): also print ``report.pdf`` when a browser and a CJK font are found (else
        say so once); True: require it; False: no PDF.
    docx : bool
        Also write ``report.docx``.
    facilities, estates, network : geopandas.GeoDataFrame, optional
        Drawn on the overview map (and 小区 short of space named in the conclusions).
    sites : pandas.DataFrame, optional
        Recommended sites (``carecircle.maps.sites.sites_table``): each street's page lists
        the sites that lie in it.
    log : callable, optional
        Receives the one line said when there is no CJK font or no browser.

    Returns
    -------
    pathlib.Path
        The ``report.html`` path.
    """
    say = log or (lambda line: print(line, file=sys.stderr))
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    lab = L.Labels(lang, labels, dict(services))
    font = cjk_font_or_none()
    if font is None:
        try:
            find_cjk_font()
        except NoCJKFont as err:
            say(str(err))
    blocks = report_blocks(streets=streets, communities=communities, actions=actions, summary=summary, lab=lab,
                           facilities=facilities, estates=estates, network=network, sites=sites,
                           charts=font is not None)
    path = out_dir / "report.html"
    path.write_text(render_html(blocks, lab), encoding="utf-8")
    if docx:
        from carecircle.maps.report_docx import write_docx

        write_docx(blocks, lab, out_dir / "report.docx", font=font.name if font is not None else None)
    # Without a CJK font the browser would print the Chinese text as boxes: no PDF then
    # (unless asked for), the font message above says why.
    if pdf is True or (pdf is None and font is not None):
        _print_pdf(path, required=bool(pdf), say=say)
    return path


def _print_pdf(path: Path, *, required: bool, say: Log) -> Path | None:
    """Print ``path`` to ``report.pdf`` (A4, from the page's ``@page``) with a headless Chromium-family browser."""
    browser = find_chromium()
    pdf = path.with_suffix(".pdf")
    if browser is None:
        message = ("report: no Chromium-family browser (Edge, Chrome, Chromium) found, so no report.pdf; print "
                   f"report.html from a browser, or install one (Debian: apt-get install chromium) or set {BROWSER_ENV}")
        if required:
            raise RuntimeError(message)
        say(message)
        return None
    profile = path.parent / ".chromium-profile"
    cmd = [browser, *HEADLESS_ARGS, f"--user-data-dir={profile}", "--no-pdf-header-footer", f"--print-to-pdf={pdf}",
           path.resolve().as_uri()]
    # Its own process group, killed whatever happens (timeout, Ctrl-C, SIGTERM), so that no
    # browser helper outlives the run.
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        proc.wait(timeout=180)
    except subprocess.TimeoutExpired:
        pass
    finally:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        shutil.rmtree(profile, ignore_errors=True)
    if pdf.exists() and pdf.read_bytes()[:4] == b"%PDF":
        return pdf
    if required:
        raise RuntimeError(f"report: {browser} did not print {pdf}")
    say(f"report: {browser} did not print {pdf}; report.html and report.docx are complete")
    return None
