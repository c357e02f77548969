"""Finding columns and parsing the numbers planners type.

- :func:`find_column` finds a column from a list of Chinese/English header candidates.
- :func:`to_number` parses numbers as planners type them (full-width digits, ``1,200``,
  ``500㎡`` when lenient); :func:`text_column` and :func:`non_negative` read the optional
  text and quantity columns of a layer.
- :func:`coordinate_columns` finds and parses a table's coordinate columns (经度/纬度,
  lng/lat, x/y, or Amap's combined ``location``).
"""

from __future__ import annotations

import re
import unicodedata

import numpy as np
import pandas as pd

from carecircle.errors import InputError
from carecircle.layers.accounting import LayerReport

# Chinese survey tables call the northing X: a CGCS2000 Gauss-Krüger table read this way
# comes out lat/lng swapped, which locate() detects (and auto_fix corrects).
X_CANDIDATES = ["经度", "lng", "lon", "long", "longitude", "x", "横坐标", "x坐标", "东坐标"]
Y_CANDIDATES = ["纬度", "lat", "latitude", "y", "纵坐标", "y坐标", "北坐标"]
# A single "lng,lat" column, as Amap's POI export ("location") writes it.
XY_CANDIDATES = ["location", "坐标", "经纬度", "lnglat", "coordinates"]

_FULLWIDTH = str.maketrans("０１２３４５６７８９．－＋，　", "0123456789.-+, ")
_THOUSANDS = re.compile(r"^[-+]?\d{1,3}(,\d{3})+(\.\d+)?$")
_FIRST_NUMBER = r"([-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)"


# ----------------------------------------------------------------------- columns


def _norm(name) -> str:
    s = unicodedata.normalize("NFKC", str(name)).strip().lower()
    s = re.sub(r"\s*[\(\[【].*?[\)\]】]\s*$", "", s)  # trailing unit: 建筑面积(㎡)
    return re.sub(r"[\s_\-.:/]+", "", s)


def _tokens(name) -> set[str]:
    return set(re.split(r"[^0-9a-z]+", unicodedata.normalize("NFKC", str(name)).lower())) - {""}


def _has_cjk(s: str) -> bool:
    return any("\u4e00" <= ch <= "\u9fff" for ch in s)


def find_column(df: pd.DataFrame, candidates, *, key: str, path, required: bool = True, given: str | None = None) -> str | None:
    """Find the column holding ``key`` from header candidates (Chinese and English).

    Matching, in this order: the ``given`` name (from the config; must exist); a header equal
    to a candidate after normalisation (case, full-width forms, spaces/underscores, a trailing
    unit in brackets such as ``建筑面积(㎡)``); a header containing a Chinese candidate
    (``机构名称`` for ``名称``) or having an English candidate as a word (``gcj_lng`` for
    ``lng``). A candidate that matches several headers in the second pass is skipped as
    ambiguous. Candidates are tried in order, so list the most specific first.

    Parameters
    ----------
    df : pandas.DataFrame
    candidates : list of str
    key : str
        What the column is for (the config key named in errors: ``x``, ``name_field`` ...).
    path : str or Path
        The file, for error messages.
    required : bool
        Raise :class:`InputError` when nothing matches (else return None).
    given : str, optional
        Column named by the user; overrides detection.

    Returns
    -------
    str or None
    """
    columns = [c for c in df.columns if c not in ("row", "geometry")]
    shown = ", ".join(map(str, columns[:20])) + (" ..." if len(columns) > 20 else "")
    if given is not None:
        if given in columns:
            return given
        hit = [c for c in columns if _norm(c) == _norm(given)]
        if hit:
            return hit[0]
        raise InputError(f"{path}: column {given!r} (for {key}) not found; columns are: {shown}; fix {key} in the config")
    normed = {c: _norm(c) for c in columns}
    wanted = [(cand, _norm(cand)) for cand in candidates]
    for _, nc in wanted:
        exact = [c for c in columns if normed[c] == nc]
        if exact:
            return exact[0]
    tokens = {c: _tokens(c) for c in columns}
    ambiguous = []
    for cand, nc in wanted:
        if _has_cjk(nc):
            hits = [c for c in columns if nc in normed[c]]
        else:
            hits = [c for c in columns if nc in tokens[c]]
        if len(hits) == 1:
            return hits[0]
        if hits:
            ambiguous.append(f"{cand}: {', '.join(map(str, hits))}")
    if not required:
        return None
    why = f" (ambiguous: {'; '.join(ambiguous)})" if ambiguous else ""
    raise InputError(
        f"{path}: no column for {key}{why} (looked for {', '.join(candidates[:8])}); columns are: {shown}; "
        f"name it in the config ({key}: <column>)"
    )


# ----------------------------------------------------------------------- numbers


def to_number(values, *, lenient: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Parse numbers typed by people.

    Full-width digits and signs, surrounding spaces and thousands separators (``1,200``) are
    accepted; ``lenient`` also takes the first number out of text with units
    (``500㎡``, ``约50张``, ``2005年``).

    Parameters
    ----------
    values : array-like
        Cells as read: text, numbers (kept as they are) or missing values.
    lenient : bool
        Take the first number out of text that holds more than a number.

    Returns
    -------
    tuple of numpy.ndarray
        ``(value, bad)``: float values (NaN when empty or unparseable) and a mask of
        non-empty cells that could not be parsed.
    """
    s = pd.Series(values, dtype="object").reset_index(drop=True)
    if s.empty:
        return np.empty(0), np.zeros(0, dtype=bool)
    numeric = s.map(lambda v: isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool))
    out = np.full(len(s), np.nan)
    if numeric.any():
        out[numeric.to_numpy()] = s[numeric].astype(float).to_numpy()
    text = s[~numeric].astype("string").str.translate(_FULLWIDTH).str.strip().str.replace("°", "", regex=False)
    text = text.where(~text.str.match(_THOUSANDS.pattern).fillna(False), text.str.replace(",", "", regex=False))
    empty = text.isna() | (text == "") | text.str.lower().isin(["nan", "null", "none", "na", "n/a", "-", "—", "/"])
    if lenient:
        text = text.str.replace(",", "", regex=False).str.extract(_FIRST_NUMBER, expand=False)
    parsed = pd.to_numeric(text.where(~empty), errors="coerce").astype(float)
    out[(~numeric).to_numpy()] = parsed.to_numpy()
    bad = np.zeros(len(s), dtype=bool)
    bad[(~numeric).to_numpy()] = (~empty & parsed.isna()).to_numpy(dtype=bool)
    return out, bad


def text_column(df: pd.DataFrame, col: str | None) -> pd.Series:
    """A text column, stripped, with blank cells as NA.

    Parameters
    ----------
    df : pandas.DataFrame
    col : str or None
        The column; None (not found) gives NA throughout.

    Returns
    -------
    pandas.Series
        ``string`` dtype on a 0..n-1 index.
    """
    if col is None:
        return pd.Series(pd.NA, index=range(len(df)), dtype="string")
    s = df[col].astype("string").str.strip().reset_index(drop=True)
    return s.where(s != "", pd.NA)


def non_negative(df: pd.DataFrame, col: str | None, *, report: LayerReport, label: str | None = None) -> np.ndarray:
    """An optional non-negative quantity (floor area, beds, households) from column ``col``.

    Parsed with lenient :func:`to_number`; unreadable, infinite and negative values are left
    unknown (NaN) and counted in a note of ``report`` rather than rejecting the row.

    Parameters
    ----------
    df : pandas.DataFrame
    col : str or None
        The column; None (not found) gives NaN throughout.
    report : LayerReport
    label : str, optional
        Named in the note (default: ``col``).

    Returns
    -------
    numpy.ndarray
        One float per row of ``df``, NaN where unknown.
    """
    if col is None:
        return np.full(len(df), np.nan)
    v, bad = to_number(df[col], lenient=True)
    wrong = bad | np.isinf(v) | (v < 0)
    if wrong.any():
        report.notes.append(f"{label or col}: {int(wrong.sum())} unreadable or negative value(s) left unknown (NaN)")
    v[wrong] = np.nan
    return v


def coordinate_columns(df: pd.DataFrame, *, path, x=None, y=None) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """Find and parse the coordinate columns of a table.

    Uses ``x``/``y`` when given, else the usual headers (经度/纬度, lng/lat, x/y), else one
    combined ``lng,lat`` column (Amap's ``location``).

    Parameters
    ----------
    df : pandas.DataFrame
        The table as from :func:`read_table`.
    path : str or Path
        The file, for error messages.
    x, y : str, optional
        Column names from the config (must exist); detected when None.

    Returns
    -------
    tuple
        ``(x, y, reason, notes)``: floats (NaN when empty or unparseable) and per row
        "" / "missing coordinates" / "non-numeric coordinates".
    """
    notes: list[str] = []
    xc = find_column(df, X_CANDIDATES, key="x", path=path, required=x is not None, given=x)
    yc = find_column(df, Y_CANDIDATES, key="y", path=path, required=y is not None, given=y)
    if xc is not None and yc is not None:
        xv, xbad = to_number(df[xc])
        yv, ybad = to_number(df[yc])
        notes.append(f"coordinates from columns {xc!r}, {yc!r}")
    else:
        xyc = find_column(df, XY_CANDIDATES, key="x", path=path, required=False)
        if xyc is None:
            missing = "x" if xc is None else "y"
            find_column(df, X_CANDIDATES if missing == "x" else Y_CANDIDATES, key=missing, path=path)
        parts = df[xyc].astype("string").str.translate(_FULLWIDTH).str.split(r"[,;\s]+", n=1, regex=True, expand=True)
        parts = parts.reindex(columns=[0, 1])
        xv, xbad = to_number(parts[0])
        yv, ybad = to_number(parts[1])
        notes.append(f"coordinates split from column {xyc!r} (lng,lat)")
    reason = np.full(len(df), "", dtype=object)
    reason[np.isnan(xv) | np.isnan(yv)] = "missing coordinates"
    reason[xbad | ybad] = "non-numeric coordinates"
    return xv, yv, reason, notes
