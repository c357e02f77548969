"""Reading the files planners have: CSV, XLSX and GIS layers, with row numbers kept.

Every loader (facilities, population, areas) reads through :func:`read_table`, so encoding
and header detection are written once. It reads CSV (UTF-8, UTF-8 with BOM, GBK/GB18030
detected), XLSX (openpyxl) and vector files (GeoJSON, SHP with or without ``.cpg``, GPKG ...)
into a DataFrame (GeoDataFrame for vector files) with a ``row`` column holding the 1-based
line, spreadsheet row or feature number, so that a rejected row can be found in the source.
Finding columns and parsing numbers is :mod:`carecircle.layers.columns`; validating
coordinates is :mod:`carecircle.layers.locate`.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyproj

from carecircle.errors import InputError

CSV_SUFFIXES = {".csv", ".txt", ".tsv"}
XLSX_SUFFIXES = {".xlsx", ".xlsm"}


@dataclass
class TableMeta:
    """How a file was read.

    Attributes
    ----------
    path : str
    kind : str
        "csv", "xlsx" or "vector".
    encoding : str or None
        Text encoding used (CSV, DBF); None when the format defines it (XLSX, GPKG).
    crs : pyproj.CRS or None
        The layer's CRS (vector files only).
    sheet, layer : str or None
        The XLSX sheet or vector layer read.
    rejected : pandas.DataFrame
        Rows rejected while parsing (``row``, ``reason``), e.g. CSV lines with too many fields.
    notes : list of str
    """

    path: str
    kind: str
    encoding: str | None = None
    crs: pyproj.CRS | None = None
    sheet: str | None = None
    layer: str | None = None
    rejected: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=["row", "reason"]))
    notes: list[str] = field(default_factory=list)


def read_table(path, *, encoding: str | None = None, sheet=None, layer=None) -> tuple[pd.DataFrame, TableMeta]:
    """Read a CSV, XLSX or vector file with a 1-based ``row`` column.

    Parameters
    ----------
    path : str or Path
    encoding : str, optional
        Text encoding of a CSV or shapefile DBF; detected when None (UTF-8, UTF-8-BOM,
        GB18030/GBK, then charset-normalizer's best guess).
    sheet : str or int, optional
        XLSX sheet name or 0-based index (default: the first sheet).
    layer : str or int, optional
        Vector layer (GPKG with several layers; default: the first).

    Returns
    -------
    tuple
        ``(df, meta)``: ``df`` has one row per data row, every attribute as text (CSV,
        XLSX) or as stored (vector; a GeoDataFrame with the file's CRS), plus ``row``;
        ``meta`` is a :class:`TableMeta`.

    Raises
    ------
    InputError
        Missing, empty, undecodable or unsupported file.
    """
    p = Path(path)
    if not p.exists():
        raise InputError(f"{p}: file not found; check the path in the config")
    if p.is_file() and p.stat().st_size == 0:
        raise InputError(f"{p}: the file is empty; export it again")
    suffix = p.suffix.lower()
    if suffix in CSV_SUFFIXES:
        df, meta = _read_csv(p, encoding)
    elif suffix in XLSX_SUFFIXES:
        df, meta = _read_xlsx(p, sheet)
    elif suffix == ".xls":
        raise InputError(f"{p}: old Excel .xls files are not supported; save it as .xlsx or CSV (UTF-8)")
    else:
        df, meta = _read_vector(p, encoding, layer)
    if len(df) == 0 and len(meta.rejected) == 0:
        raise InputError(f"{p}: no data rows; check that the file (sheet/layer) holds the data")
    return _strip_nul(df, meta), meta


def _strip_nul(df: pd.DataFrame, meta: TableMeta) -> pd.DataFrame:
    """Remove NUL characters from text cells and headers, with a note.

    GDAL would otherwise cut the text at the NUL when the outputs are written.
    """
    df = df.rename(columns=lambda c: c.replace("\x00", "") if isinstance(c, str) else c)
    cells = 0
    for col in df.columns:
        if df[col].dtype == object or pd.api.types.is_string_dtype(df[col].dtype):
            has = df[col].map(lambda v: isinstance(v, str) and "\x00" in v).to_numpy(bool)
            if has.any():
                df.loc[has, col] = df.loc[has, col].str.replace("\x00", "", regex=False)
                cells += int(has.sum())
    if cells:
        meta.notes.append(f"NUL characters removed from {cells} text cell(s)")
    return df


def read_layer(path, *, layer=None, need: str) -> tuple[pd.DataFrame, TableMeta]:
    """:func:`read_table` for loaders that need a GIS layer with a CRS (boundaries, points).

    Parameters
    ----------
    path : str or Path
    layer : str or int, optional
        Vector layer (default: the first).
    need : str
        What the loader needs, shown when ``path`` is a table: ``"{what} need a polygon
        layer (GPKG, SHP, GeoJSON), not a table"``.

    Returns
    -------
    tuple
        ``(gdf, meta)`` as from :func:`read_table`; ``meta.crs`` is set.

    Raises
    ------
    InputError
        ``path`` is a CSV/XLSX table, or the layer has no CRS.
    """
    df, meta = read_table(path, layer=layer)
    if meta.kind != "vector":
        raise InputError(f"{path}: {need}")
    if meta.crs is None:
        raise InputError(f"{path}: the layer has no CRS (.prj missing?); define it in QGIS/ArcGIS and save again")
    return df, meta


# --------------------------------------------------------------------------- CSV


def decode_bytes(raw: bytes, encoding: str | None, *, path) -> tuple[str, str]:
    """Decode ``raw`` with ``encoding`` or the detected one.

    Parameters
    ----------
    raw : bytes
    encoding : str or None
        Given by the user (must decode), or None to detect.
    path : str or Path
        The file, for error messages.

    Returns
    -------
    tuple of str
        ``(text, encoding)``; the encoding as reported in notes ("utf-8-bom",
        "mixed utf-8/gb18030" ...).
    """
    if encoding:
        try:
            return raw.decode(encoding), encoding
        except (UnicodeDecodeError, LookupError) as err:
            raise InputError(f"{path}: cannot decode as {encoding} ({err}); remove the encoding setting to detect it") from None
    # Try-order: UTF-8 (with or without BOM) is strict and almost never decodes GBK bytes by
    # accident; then line by line for files appended to by different programs; then GB18030,
    # the superset of GBK/GB2312 that Excel on Chinese Windows writes ("ANSI"); then
    # charset-normalizer's best guess.
    try:
        return raw.decode("utf-8-sig"), ("utf-8-bom" if raw.startswith(b"\xef\xbb\xbf") else "utf-8")
    except UnicodeDecodeError:
        pass
    mixed = _decode_mixed(raw)
    if mixed is not None:
        return mixed, "mixed utf-8/gb18030"
    try:
        return raw.decode("gb18030"), "gb18030"
    except UnicodeDecodeError:
        pass
    from charset_normalizer import from_bytes

    best = from_bytes(raw).best()
    if best is None:
        raise InputError(f"{path}: unreadable text encoding (not UTF-8 or GBK); save it as CSV UTF-8 or set encoding")
    return str(best), best.encoding


def _decode_mixed(raw: bytes) -> str | None:
    """Decode line by line when some lines are UTF-8 and others GBK (rows appended to a CSV
    by different programs); None unless both kinds of line are present."""
    out, any_utf8 = [], False
    for line in raw.splitlines(keepends=True):
        try:
            out.append(line.decode("utf-8-sig"))
            any_utf8 |= not line.isascii()
        except UnicodeDecodeError:
            try:
                out.append(line.decode("gb18030"))
            except UnicodeDecodeError:
                return None
    return "".join(out) if any_utf8 else None


def _read_csv(p: Path, encoding: str | None) -> tuple[pd.DataFrame, TableMeta]:
    text, used = decode_bytes(p.read_bytes(), encoding, path=p)
    meta = TableMeta(path=str(p), kind="csv", encoding=used)
    if used not in ("utf-8", "utf-8-bom"):
        meta.notes.append(f"text encoding: {used}")
    text = text.lstrip("\ufeff")
    try:
        dialect = csv.Sniffer().sniff(text[:8192], delimiters=",\t;|")
        delimiter = dialect.delimiter
    except csv.Error:
        delimiter = ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    records: list[tuple[int, list[str]]] = []
    prev_end = 0
    try:
        for fields in reader:
            start, prev_end = prev_end + 1, reader.line_num
            if any(f.strip() for f in fields):
                records.append((start, fields))
    except csv.Error as err:
        raise InputError(f"{p}: line {reader.line_num}: {err}; fix or remove that line") from None
    return _records_to_frame(records, meta, p, line_word="line")


def _records_to_frame(records: list[tuple[int, list]], meta: TableMeta, p: Path, *, line_word: str) -> tuple[pd.DataFrame, TableMeta]:
    """Header detection, ragged rows and the ``row`` column, shared by CSV and XLSX."""
    if not records:
        raise InputError(f"{p}: no rows; the file holds no data")
    # Title rows ("某某区养老机构名单") above the header hold one cell: take the first of the
    # leading rows that fills at least half as many cells as the fullest one.
    filled = [sum(1 for f in fields if str(f).strip()) for _, fields in records[:10]]
    need = max(2, (max(filled) + 1) // 2)
    h = next((i for i, n in enumerate(filled) if n >= need), 0)
    if h:
        meta.notes.append(f"{h} title row(s) above the header skipped ({line_word} {records[h][0]} is the header)")
    header = _clean_header(records[h][1])
    n = len(header)
    rows, values, ragged = [], [], []
    for line, fields in records[h + 1 :]:
        fields = [str(f).strip() for f in fields]
        if len(fields) > n:
            if any(fields[n:]):
                ragged.append(line)
                continue
            fields = fields[:n]
        rows.append(line)
        values.append(fields + [""] * (n - len(fields)))
    df = pd.DataFrame(values, columns=header, dtype="string") if values else pd.DataFrame(columns=header, dtype="string")
    df = df.replace("", pd.NA)
    if "row" in df.columns:
        df = df.rename(columns={"row": "row_src"})
        meta.notes.append("source column 'row' renamed to 'row_src'")
    df["row"] = np.asarray(rows, dtype=np.int64)
    if ragged:
        meta.rejected = pd.DataFrame({"row": ragged, "reason": f"more fields than the header ({n})"})
    return df.reset_index(drop=True), meta


def _clean_header(cells: list) -> list[str]:
    out: list[str] = []
    for i, c in enumerate(cells):
        name = re.sub(r"\s+", "", str(c if c is not None else "").replace("\ufeff", "")) or f"column_{i + 1}"
        base, k = name, 2
        while name in out:
            name, k = f"{base}.{k}", k + 1
        out.append(name)
    return out


# -------------------------------------------------------------------------- XLSX


def _cell_text(v) -> str:
    if v is None:
        return ""
    if isinstance(v, float) and v.is_integer() and abs(v) < 1e15:
        return str(int(v))
    if hasattr(v, "isoformat"):
        return v.isoformat()
    return str(v)


def _read_xlsx(p: Path, sheet) -> tuple[pd.DataFrame, TableMeta]:
    import zipfile

    from openpyxl import load_workbook

    try:
        wb = load_workbook(p, read_only=False, data_only=True)
    except (zipfile.BadZipFile, KeyError, OSError, ValueError) as err:
        raise InputError(f"{p}: not a readable .xlsx workbook ({type(err).__name__}); open it in Excel and save as .xlsx") from None
    names = wb.sheetnames
    if sheet is None:
        ws = wb.worksheets[0]
    elif isinstance(sheet, int) and 0 <= sheet < len(names):
        ws = wb.worksheets[sheet]
    elif str(sheet) in names:
        ws = wb[str(sheet)]
    else:
        raise InputError(f"{p}: sheet {sheet!r} not found; sheets are {', '.join(names)}")
    meta = TableMeta(path=str(p), kind="xlsx", sheet=ws.title)
    if sheet is None and len(names) > 1:
        meta.notes.append(f"read the first sheet {ws.title!r} of {len(names)}")
    records = [
        (r, [_cell_text(v) for v in values])
        for r, values in enumerate(ws.iter_rows(min_row=1, values_only=True), start=1)
        if any(v is not None and str(v).strip() for v in values)
    ]
    wb.close()
    return _records_to_frame(records, meta, p, line_word="spreadsheet row")


# ------------------------------------------------------------------------ vector


def dbf_encoding(dbf: Path) -> str | None:
    """Guess the text encoding of a shapefile's DBF without a ``.cpg``: UTF-8 or GB18030.

    Decodes the header (field names) and records both ways and keeps the one with fewer
    undecodable bytes (fixed-width fields can cut a character, so "fewer", not "none");
    None when the text is pure ASCII.
    """
    with open(dbf, "rb") as f:
        raw = f.read(1 << 20)[32:]  # the first MiB tells
    if raw.isascii():
        return None
    errors = {enc: raw.decode(enc, errors="replace").count("\ufffd") for enc in ("utf-8", "gb18030")}
    return "UTF-8" if errors["utf-8"] <= errors["gb18030"] else "GB18030"


def shapefile_encoding(path) -> str | None:
    """The DBF text encoding of a shapefile that has no ``.cpg`` (see :func:`dbf_encoding`).

    GDAL would read such a DBF as Latin-1, turning GBK field names (道路等级) and values
    into mojibake that no column lookup finds.

    Parameters
    ----------
    path : str or Path
        Any vector file.

    Returns
    -------
    str or None
        "UTF-8" or "GB18030"; None for other formats, a shapefile with a ``.cpg``, or
        ASCII-only attributes (GDAL's default is then right).
    """
    p = Path(path)
    if p.suffix.lower() != ".shp" or any(p.with_suffix(s).exists() for s in (".cpg", ".CPG")):
        return None
    dbf = next((d for d in (p.with_suffix(".dbf"), p.with_suffix(".DBF")) if d.exists()), None)
    return dbf_encoding(dbf) if dbf is not None else None


def _read_vector(p: Path, encoding: str | None, layer) -> tuple[pd.DataFrame, TableMeta]:
    import pyogrio
    from pyogrio.errors import DataLayerError, DataSourceError

    meta = TableMeta(path=str(p), kind="vector")
    enc = encoding
    if enc is None:
        enc = shapefile_encoding(p)
        if enc:
            meta.notes.append(f"no .cpg: attribute text detected as {enc}")
    try:
        layers = pyogrio.list_layers(p)
        if layer is None and len(layers) > 1:
            meta.notes.append(f"read the first layer {layers[0][0]!r} of {len(layers)}")
            layer = str(layers[0][0])
        gdf = pyogrio.read_dataframe(p, layer=layer, encoding=enc)
    except (DataSourceError, DataLayerError, ValueError) as err:
        msg = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise InputError(f"{p}: cannot read as CSV, XLSX or a GIS layer ({msg}); check the file type and layer name") from None
    meta.encoding = enc
    meta.layer = str(layer) if layer is not None else (str(layers[0][0]) if len(layers) else None)
    if not hasattr(gdf, "geometry"):
        raise InputError(f"{p}: the layer has no geometry; give a CSV/XLSX with coordinate columns or a spatial layer")
    meta.crs = gdf.crs
    if "row" in gdf.columns:
        gdf = gdf.rename(columns={"row": "row_src"})
        meta.notes.append("source column 'row' renamed to 'row_src'")
    gdf["row"] = np.arange(1, len(gdf) + 1, dtype=np.int64)
    return gdf.reset_index(drop=True), meta
