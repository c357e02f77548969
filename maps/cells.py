"""Text cells written to spreadsheets and code-paged files: never a formula, never a lost character.

Names in the outputs come from the planners' input files, and those files travel: a
facility ledger row named ``=HYPERLINK(...)`` must not become a live formula in the 问题清单
the bureau forwards. Every CSV and XLSX the run writes goes through this module:

- **CSV**: a text cell beginning with ``=``, ``+``, ``-``, ``@``, tab or carriage return gets
  a leading ``'`` (the OWASP rule for CSV injection); plain numbers written as text (``-5``)
  and numeric columns are left as they are. A carriage return inside a cell becomes a line
  feed, which the writer quotes (a bare CR would end the row in Excel).
- **XLSX**: such cells are stored as strings (openpyxl ``data_type 's'``), never formulas;
  control characters XLSX cannot hold are removed.
- **GBK**: which characters of a text column a code page cannot hold, and the column with
  them dropped, for the shapefile package's ``shapefile_encoding: GBK``.
"""

from __future__ import annotations

import re

import pandas as pd

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")
# What openpyxl refuses in a cell (XML 1.0 forbids these control characters).
_XLSX_ILLEGAL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")


def _text_columns(frame: pd.DataFrame) -> list:
    return [c for c in frame.columns if frame[c].dtype == object or pd.api.types.is_string_dtype(frame[c].dtype)]


def _neutralise_text(value):
    if not isinstance(value, str):
        return value
    if value.startswith(FORMULA_START) and not _PLAIN_NUMBER.match(value):
        value = "'" + value
    return value.replace("\r\n", "\n").replace("\r", "\n")


def for_csv(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with every formula-like text cell (and header) prefixed by ``'``.

    Parameters
    ----------
    frame : pandas.DataFrame

    Returns
    -------
    pandas.DataFrame
        A copy; numeric and boolean columns are unchanged.
    """
    out = frame.copy()
    for col in _text_columns(out):
        out[col] = out[col].map(_neutralise_text, na_action="ignore")
    return out.rename(columns=lambda c: _neutralise_text(c) if isinstance(c, str) else c)


def for_xlsx(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with the control characters XLSX cannot store removed from text cells and headers."""
    out = frame.copy()
    for col in _text_columns(out):
        out[col] = out[col].map(lambda v: _XLSX_ILLEGAL.sub("", v) if isinstance(v, str) else v, na_action="ignore")
    return out.rename(columns=lambda c: _XLSX_ILLEGAL.sub("", c) if isinstance(c, str) else c)


def as_strings(sheet) -> None:
    """Store every formula cell of an openpyxl ``sheet`` as text (the run writes no formula of its own)."""
    for row in sheet.iter_rows():
        for cell in row:
            if cell.data_type == "f":
                cell.data_type = "s"


def unencodable(values: pd.Series, codec: str) -> pd.Series:
    """Per cell, the characters ``codec`` cannot hold ("" when it holds them all, NA stays NA).

    Parameters
    ----------
    values : pandas.Series
        Text.
    codec : str
        A Python codec, e.g. ``"gbk"``.

    Returns
    -------
    pandas.Series
        Aligned with ``values``.
    """
    def bad(v: str) -> str:
        try:
            v.encode(codec)
            return ""
        except UnicodeEncodeError:
            return "".join(dict.fromkeys(ch for ch in v if not _encodes(ch, codec)))

    return values.map(lambda v: bad(v) if isinstance(v, str) else v, na_action="ignore")


def drop_unencodable(values: pd.Series, codec: str) -> pd.Series:
    """``values`` without the characters ``codec`` cannot hold."""
    return values.map(lambda v: v.encode(codec, "ignore").decode(codec) if isinstance(v, str) else v,
                      na_action="ignore")


def _encodes(ch: str, codec: str) -> bool:
    try:
        ch.encode(codec)
        return True
    except UnicodeEncodeError:
        return False
