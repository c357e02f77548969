"""Scenario comparison: what changes between runs (e.g. before / after a new centre).

Two or more runs: the first is the baseline, every other run is compared with it
(:func:`compare_many`); :func:`runs_overview` is the short table of all of them side by side
(elderly covered per service, communities flagged, floor-space shortfall).

Reads only the files a run writes (``communities.csv``, ``streets.csv``, ``summary.json``)
and reports, per community, the services newly covered or uncovered, floor-space shortfalls
closed or opened and other checks resolved or raised; per sub-district, the change of every
numeric scorecard column; for the city, every numeric value of ``summary.json`` that changed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from carecircle.errors import InputError
from carecircle.maps.cells import as_strings, for_csv

#: Change words in the comparison table → Chinese.
CHANGES_ZH = {
    "newly_covered": "新覆盖", "newly_uncovered": "失去覆盖",
    "shortfall_closed": "缺口消除", "shortfall_opened": "新增缺口",
    "shortfall_reduced": "缺口减少", "shortfall_increased": "缺口增加",
    "resolved": "问题解决", "raised": "新增问题",
    "only_in_a": "仅方案A有", "only_in_b": "仅方案B有", "changed": "变化",
}
HEADERS_ZH = {"level": "层级", "street": "街道", "community": "社区", "item": "项目", "change": "变化",
              "a": "方案A", "b": "方案B", "delta": "变化量"}
LEVELS_ZH = {"community": "社区", "street": "街道", "city": "全市"}
_COLUMNS = ["level", "street", "community", "item", "change", "a", "b", "delta"]
_TOL = 1e-6


@dataclass
class Comparison:
    """The result of :func:`compare_runs`.

    Attributes
    ----------
    communities : DataFrame
        ``street``, ``community``, ``item`` (service or check key), ``change``, ``a``, ``b``,
        ``delta`` (b − a): one row per community and change.
    streets : DataFrame
        ``street``, ``item`` (scorecard column), ``a``, ``b``, ``delta``: changed values only.
    city : DataFrame
        ``item`` (dotted ``summary.json`` key), ``a``, ``b``, ``delta``: changed values only.
    counts : dict
        ``services`` {s: newly_covered, newly_uncovered}, ``space`` {shortfalls_closed,
        shortfalls_opened, shortfall_m2_a, shortfall_m2_b, delta_m2}, ``checks``
        {key: resolved, raised}, ``only_in_a`` / ``only_in_b`` (community names).
    """

    run_a: str
    run_b: str
    communities: pd.DataFrame
    streets: pd.DataFrame
    city: pd.DataFrame
    counts: dict = field(default_factory=dict)


def _read_run(path: Path) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    if not path.is_dir():
        raise InputError(f"{path}: not a run folder; give the --out folder of a carecircle run")
    files = {name: path / name for name in ("communities.csv", "streets.csv", "summary.json")}
    for f in files.values():
        if not f.is_file():
            raise InputError(f"{f}: missing; compare needs communities.csv, streets.csv and summary.json from a run")
    com = pd.read_csv(files["communities.csv"], encoding="utf-8-sig")
    streets = pd.read_csv(files["streets.csv"], encoding="utf-8-sig")
    for df, name in ((com, "communities.csv"), (streets, "streets.csv")):
        if "street" not in df.columns or (name == "communities.csv" and "name" not in df.columns):
            raise InputError(f"{path / name}: columns name/street missing; is this a carecircle output?")
    summary = json.loads(files["summary.json"].read_text(encoding="utf-8"))
    com["street"] = com["street"].astype("string").fillna("")
    streets["street"] = streets["street"].astype("string").fillna("")
    return com, streets, summary


def _as_bool(s: pd.Series) -> pd.Series:
    if s.dtype == bool:
        return s
    return s.astype("string").str.strip().str.lower().map({"true": True, "1": True, "false": False, "0": False}).fillna(False).astype(bool)


def _flatten(d, prefix: str = "") -> dict[str, float]:
    out = {}
    if isinstance(d, dict):
        for k, v in d.items():
            out.update(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
    elif isinstance(d, (int, float)):  # bool included: true/false compare as 1/0
        out[prefix] = float(d)
    return out


def _changed(long: pd.DataFrame) -> pd.DataFrame:
    """Rows whose value changed (beyond ``_TOL``) or appeared / disappeared."""
    return long[(long["delta"].abs() > _TOL) | (long["a"].isna() != long["b"].isna())]


def _rows(m: pd.DataFrame, mask: pd.Series, item: str, change: str, a: pd.Series, b: pd.Series) -> pd.DataFrame:
    """Community change rows for the merged rows ``m[mask]``."""
    sel = mask.to_numpy()
    return pd.DataFrame({"street": m["street"][sel], "community": m["name"][sel], "item": item, "change": change,
                         "a": a[sel].astype(float), "b": b[sel].astype(float)})


def _community_changes(a: pd.DataFrame, b: pd.DataFrame) -> tuple[pd.DataFrame, dict]:
    key = ["street", "name"]
    m = a.merge(b, on=key, how="outer", suffixes=("_a", "_b"), indicator=True)
    rows = []
    counts: dict = {"services": {}, "space": {}, "checks": {},
                    "only_in_a": m.loc[m["_merge"] == "left_only", "name"].astype(str).tolist(),
                    "only_in_b": m.loc[m["_merge"] == "right_only", "name"].astype(str).tolist()}
    missing = pd.Series(np.nan, index=m.index)
    for side, change in (("left_only", "only_in_a"), ("right_only", "only_in_b")):
        rows.append(_rows(m, m["_merge"] == side, "community", change, missing, missing))
    both = m[m["_merge"] == "both"]
    flags = sorted({c for c in a.columns if c.startswith("flag_")} & {c for c in b.columns if c.startswith("flag_")})
    has_shortfall = "space_shortfall_m2" in a.columns and "space_shortfall_m2" in b.columns
    if has_shortfall:
        # flag_space is reported through the shortfall itself (closed/opened/reduced/increased).
        flags = [f for f in flags if f != "flag_space"]
    for col in flags:
        fa, fb = _as_bool(both[f"{col}_a"]), _as_bool(both[f"{col}_b"])
        key_ = col[5:]
        service = key_[3:] if key_.startswith("no_") and f"elderly_covered_share_{key_[3:]}_a" in both.columns else None
        if service:
            va, vb = both[f"elderly_covered_share_{service}_a"], both[f"elderly_covered_share_{service}_b"]
            words, item = ("newly_uncovered", "newly_covered"), service
        else:
            va, vb = fa.astype(float), fb.astype(float)
            words, item = ("raised", "resolved"), key_
        raised, resolved = ~fa & fb, fa & ~fb
        for mask, word in ((raised, words[0]), (resolved, words[1])):
            rows.append(_rows(both, mask, item, word, va, vb))
        if service:
            counts["services"][service] = {"newly_covered": int(resolved.sum()), "newly_uncovered": int(raised.sum())}
        else:
            counts["checks"][key_] = {"resolved": int(resolved.sum()), "raised": int(raised.sum())}
    if has_shortfall:
        sa = both["space_shortfall_m2_a"].astype(float)
        sb = both["space_shortfall_m2_b"].astype(float)
        pa, pb = sa.fillna(0) > _TOL, sb.fillna(0) > _TOL
        kinds = {
            "shortfall_closed": pa & ~pb, "shortfall_opened": ~pa & pb,
            "shortfall_reduced": pa & pb & (sb < sa - _TOL), "shortfall_increased": pa & pb & (sb > sa + _TOL),
        }
        for word, mask in kinds.items():
            rows.append(_rows(both, mask, "space", word, sa, sb))
        counts["space"] = {
            "shortfalls_closed": int(kinds["shortfall_closed"].sum()), "shortfalls_opened": int(kinds["shortfall_opened"].sum()),
            "shortfall_m2_a": float(sa.sum()), "shortfall_m2_b": float(sb.sum()), "delta_m2": float(sb.sum() - sa.sum()),
        }
    out = pd.concat([r for r in rows if len(r)], ignore_index=True) if any(len(r) for r in rows) else pd.DataFrame(
        columns=["street", "community", "item", "change", "a", "b"])
    out["delta"] = out["b"].astype(float) - out["a"].astype(float)
    return out.sort_values(["street", "community", "item"], kind="mergesort").reset_index(drop=True), counts


def _street_changes(a: pd.DataFrame, b: pd.DataFrame) -> pd.DataFrame:
    num = [c for c in a.columns if c in b.columns and c != "street"
           and (pd.api.types.is_numeric_dtype(a[c]) or pd.api.types.is_bool_dtype(a[c]))]
    m = a[["street"] + num].merge(b[["street"] + num], on="street", how="outer", suffixes=("_a", "_b"))
    long = pd.concat([pd.DataFrame({"street": m["street"], "item": c, "a": m[f"{c}_a"].astype(float), "b": m[f"{c}_b"].astype(float)})
                      for c in num], ignore_index=True) if num else pd.DataFrame(columns=["street", "item", "a", "b"])
    long["delta"] = long["b"] - long["a"]
    return _changed(long).reset_index(drop=True)


def compare_runs(dir_a: str | Path, dir_b: str | Path) -> Comparison:
    """Compare the outputs of two runs (A = before, B = after).

    Parameters
    ----------
    dir_a, dir_b : str or Path
        Output folders of two ``carecircle run`` calls (``communities.csv``, ``streets.csv``,
        ``summary.json``). Communities are matched on (``street``, ``name``), sub-districts
        on ``street``.

    Returns
    -------
    Comparison

    Raises
    ------
    InputError
        A folder or one of its files is missing.
    """
    a_dir, b_dir = Path(dir_a), Path(dir_b)
    ca, sa, ja = _read_run(a_dir)
    cb, sb, jb = _read_run(b_dir)
    com, counts = _community_changes(ca, cb)
    fa, fb = _flatten(ja), _flatten(jb)
    keys = sorted(set(fa) | set(fb))
    city = pd.DataFrame({"item": keys, "a": [fa.get(k, np.nan) for k in keys], "b": [fb.get(k, np.nan) for k in keys]})
    city["delta"] = city["b"] - city["a"]
    # Run time and versions always differ and say nothing about the scenario.
    noise = city["item"].str.contains(r"(?:^|\.)(?:runtime|elapsed|seconds|duration|versions?)(?:\.|_|$)", regex=True)
    city = _changed(city[~noise]).reset_index(drop=True)
    return Comparison(str(a_dir), str(b_dir), com, _street_changes(sa, sb), city, counts)


def comparison_table(result: Comparison, lang: str = "zh") -> pd.DataFrame:
    """All changes in one long table, headers and words in ``lang``.

    Parameters
    ----------
    result : Comparison
    lang : {"zh", "en"}

    Returns
    -------
    DataFrame
        ``level``, ``street``, ``community``, ``item``, ``change``, ``a``, ``b``, ``delta``
        (headers, levels and change words translated when ``lang="zh"``).
    """
    parts = [
        result.communities.assign(level="community"),
        result.streets.assign(level="street", community="", change="changed"),
        result.city.assign(level="city", street="", community="", change="changed"),
    ]
    table = pd.concat([p.reindex(columns=_COLUMNS) for p in parts if len(p)], ignore_index=True) if any(
        len(p) for p in parts) else pd.DataFrame(columns=_COLUMNS)
    if lang == "en":
        return table
    table["level"] = table["level"].map(LEVELS_ZH)
    table["change"] = table["change"].map(CHANGES_ZH).fillna(table["change"])
    return table.rename(columns=HEADERS_ZH)


def write_comparison(result: Comparison | list[Comparison], out_dir: str | Path, lang: str = "zh",
                     overview: pd.DataFrame | None = None) -> dict[str, Path]:
    """Write ``compare.csv`` (one long table, headers in ``lang``; UTF-8 with BOM so Excel
    reads the Chinese), ``compare.xlsx`` (汇总: the runs side by side, then the changes; Chinese
    headers, formatted for printing) and ``compare.json`` (counts and the three tables, English keys).

    Parameters
    ----------
    result : Comparison or list of Comparison
        One comparison, or each run against the baseline (:func:`compare_many`); with several,
        the tables gain a first column naming the run compared (方案).
    out_dir : str or Path
    lang : {"zh", "en"}
    overview : DataFrame, optional
        :func:`runs_overview` of the runs, the XLSX's first sheet.

    Returns
    -------
    dict
        ``{"csv": path, "xlsx": path, "json": path}``.
    """
    from carecircle.maps import export

    results = result if isinstance(result, list) else [result]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    csv_path, json_path, xlsx_path = out / "compare.csv", out / "compare.json", out / "compare.xlsx"
    tables = [comparison_table(r, lang) for r in results]
    if len(results) > 1:
        run_col = "run" if lang == "en" else "方案"
        tables = [t.assign(**{run_col: Path(r.run_b).name})[[run_col, *t.columns]] for t, r in zip(tables, results)]
    table = pd.concat(tables, ignore_index=True)
    for_csv(table).to_csv(csv_path, index=False, encoding="utf-8-sig")
    with pd.ExcelWriter(xlsx_path, engine="openpyxl") as xl:
        sheets = []
        if overview is not None:
            shown = overview_table(overview, lang)
            shown.to_excel(xl, sheet_name="汇总" if lang != "en" else "summary", index=False)
            sheets.append((xl.sheets["汇总" if lang != "en" else "summary"],
                           ["text"] + ["share" if "share" in c else "area" if c.endswith("_m2") else "count"
                                       for c in overview.columns[1:]]))
        table.to_excel(xl, sheet_name="变化" if lang != "en" else "changes", index=False)
        sheets.append((xl.sheets["变化" if lang != "en" else "changes"],
                       ["number" if c in ("方案A", "方案B", "变化量", "a", "b", "delta") else "text" for c in table.columns]))
        for sheet, kinds in sheets:
            as_strings(sheet)
            export.format_sheet(sheet, kinds)

    def records(df: pd.DataFrame) -> list[dict]:
        # pandas rounds to 10 significant digits by default: a delta would no longer equal b − a.
        return json.loads(df.to_json(orient="records", force_ascii=False, double_precision=15))

    payloads = [{"run_a": r.run_a, "run_b": r.run_b, "counts": r.counts, "communities": records(r.communities),
                 "streets": records(r.streets), "city": records(r.city)} for r in results]
    payload = payloads[0] if len(payloads) == 1 else {"baseline": results[0].run_a, "runs": payloads}
    json_path.write_text(json.dumps(payload, ensure_ascii=False, indent=2), encoding="utf-8")
    return {"csv": csv_path, "xlsx": xlsx_path, "json": json_path}


def compare_many(dirs: list[str | Path]) -> list[Comparison]:
    """Each run after the first compared with the first (the baseline).

    Parameters
    ----------
    dirs : list of str or Path
        Two or more run folders.

    Returns
    -------
    list of Comparison

    Raises
    ------
    InputError
        Fewer than two folders, or a folder that is not a run.
    """
    if len(dirs) < 2:
        raise InputError("compare: give at least two run folders (the first is the baseline)")
    return [compare_runs(dirs[0], d) for d in dirs[1:]]


OVERVIEW_ZH = {"run": "方案", "communities_flagged": "存在问题的社区", "space_shortfall_m2": "养老服务用房缺口（m²）"}


def runs_overview(dirs: list[str | Path]) -> pd.DataFrame:
    """The runs side by side: elderly covered per circle service, communities flagged, space shortfall.

    Parameters
    ----------
    dirs : list of str or Path
        Run folders.

    Returns
    -------
    DataFrame
        ``run`` (folder name), ``elderly_covered_share_<service>``, ``communities_flagged``,
        ``space_shortfall_m2`` (sum over communities; NaN when the run has no such column).
    """
    rows = []
    for d in map(Path, dirs):
        com, _streets, summary = _read_run(d)
        row: dict = {"run": d.name}
        for key, s in (summary.get("services") or {}).items():
            if s.get("circle_check", True) and s.get("elderly_covered_share") is not None:
                row[f"elderly_covered_share_{key}"] = float(s["elderly_covered_share"])
        row["communities_flagged"] = (summary.get("communities") or {}).get("flagged", np.nan)
        row["space_shortfall_m2"] = float(com["space_shortfall_m2"].fillna(0).sum()) if "space_shortfall_m2" in com.columns else np.nan
        rows.append(row)
    frame = pd.DataFrame(rows)
    first = ["run", *[c for c in frame.columns if c.startswith("elderly_covered_share_")]]
    return frame[first + [c for c in frame.columns if c not in first]]


def overview_table(overview: pd.DataFrame, lang: str = "zh") -> pd.DataFrame:
    """:func:`runs_overview` with headers in ``lang`` (services by their key in English)."""
    if lang == "en":
        return overview
    names = {c: f"老年人覆盖率（{c.removeprefix('elderly_covered_share_')}）" for c in overview.columns
             if c.startswith("elderly_covered_share_")}
    return overview.rename(columns={**OVERVIEW_ZH, **names})
