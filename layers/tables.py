"""Reading the files planners have: CSV, XLSX and GIS layers, with row numbers kept.

Every loader (facilities, population, areas) starts here, so encoding detection, header
detection, number parsing and coordinate validation are written once:

- :func:`read_table` reads CSV (UTF-8, UTF-8 with BOM, GBK/GB18030 detected), XLSX
  (openpyxl) and vector files (GeoJSON, SHP with or without ``.cpg``, GPKG ...) into a
  DataFrame (GeoDataFrame for vector files) with a ``row`` column holding the 1-based line,
  spreadsheet row or feature number, so that a rejected row can be found in the source.
- :func:`find_column` finds a column from a list of Chinese/English header candidates.
- :func:`to_number` parses numbers as planners type them (full-width digits, ``1,200``,
  ``500㎡`` when lenient).
- :func:`locate` validates coordinate arrays (swapped, out of range, outside China or the
  study area), converts GCJ-02/BD-09/any EPSG to WGS-84 and to the analysis CRS.
"""

from __future__ import annotations

import csv
import io
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyproj
import shapely

from carecircle.layers import crs as ccrs
from carecircle.errors import InputError
from carecircle.layers.accounting import LayerReport

CSV_SUFFIXES = {".csv", ".txt", ".tsv"}
XLSX_SUFFIXES = {".xlsx", ".xlsm"}
# Chinese survey tables call the northing X: a CGCS2000 Gauss-Krüger table read this way
# comes out lat/lng swapped, which locate() detects (and auto_fix corrects).
X_CANDIDATES = ["经度", "lng", "lon", "long", "longitude", "x", "横坐标", "x坐标", "东坐标"]
Y_CANDIDATES = ["纬度", "lat", "latitude", "y", "纵坐标", "y坐标", "北坐标"]
# A single "lng,lat" column, as Amap's POI export ("location") writes it.
XY_CANDIDATES = ["location", "坐标", "经纬度", "lnglat", "coordinates"]

_FULLWIDTH = str.maketrans("０１２３４５６７８９．－＋，　", "0123456789.-+, ")
_THOUSANDS = re.compile(r"^[-+]?\d{1,3}(,\d{3})+(\.\d+)?$")
_FIRST_NUMBER = r"([-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)"


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
    return df, meta


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


def start_report(layer: str, df: pd.DataFrame, meta: TableMeta) -> LayerReport:
    """A :class:`LayerReport` counting ``df`` plus the rows rejected while parsing.

    Parameters
    ----------
    layer : str
        Layer name (``facilities``, ``population``, ``communities`` ...).
    df : pandas.DataFrame
        The rows read (:func:`read_table`).
    meta : TableMeta
        Its parse-time rejections and notes are carried over.

    Returns
    -------
    LayerReport
        ``read`` = rows of ``df`` + rows rejected while parsing.
    """
    report = LayerReport(layer=layer, source=meta.path, read=len(df) + len(meta.rejected), notes=list(meta.notes))
    for reason, rows in meta.rejected.groupby("reason", sort=False):
        report.reject(rows.drop(columns="reason"), str(reason))
    return report


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


# ------------------------------------------------------------------- coordinates


SWAPPED = "lat/lng swapped (set auto_fix: true to correct)"


@dataclass
class Located:
    """Result of :func:`locate`: per input point a rejection reason ("" = kept) and coordinates."""

    reason: np.ndarray  # object array of str
    lon: np.ndarray  # WGS-84 (NaN where rejected)
    lat: np.ndarray
    x: np.ndarray  # target CRS
    y: np.ndarray
    notes: list[str]


def study_zone(study_area, target_crs, buffer_m: float = 0.0):
    """The zone points must fall in: the study area grown by ``buffer_m``, prepared.

    Parameters
    ----------
    study_area : geometry, GeoSeries, GeoDataFrame or None
        A bare geometry is taken to be in ``target_crs``; a GeoSeries/GeoDataFrame with a
        CRS is reprojected to it. Several features are unioned.
    target_crs : CRS-like
    buffer_m : float
        Grow the area by this much (0: the area itself).

    Returns
    -------
    shapely.Geometry or None
        None when ``study_area`` is None.
    """
    if study_area is None:
        return None
    if isinstance(study_area, shapely.Geometry):
        area = study_area
    else:
        geo = getattr(study_area, "geometry", study_area)
        if getattr(geo, "crs", None) is not None and target_crs is not None:
            geo = geo.to_crs(target_crs)
        area = shapely.union_all(np.asarray(geo.values if hasattr(geo, "values") else geo))
    zone = shapely.buffer(area, buffer_m) if buffer_m else area
    shapely.prepare(zone)
    return zone


def locate(x, y, *, source_crs, kind: str, target_crs, auto_fix: bool = False, study_area=None, study_buffer_m: float = 1000.0, reason=None) -> Located:
    """Validate and convert coordinate arrays to WGS-84 and the analysis CRS.

    Parameters
    ----------
    x, y : array-like
        Easting/longitude and northing/latitude as read (NaN = missing).
    source_crs : pyproj.CRS
        CRS of ``x``, ``y`` (EPSG:4326 for the obfuscated kinds).
    kind : str
        "wgs84", "gcj02", "bd09" (lon/lat that need :func:`crs.to_wgs84`) or "epsg".
    target_crs : CRS-like
        The analysis CRS.
    auto_fix : bool
        Swap pairs that are lat/lng swapped (else reject them with :data:`SWAPPED`).
    study_area : geometry, GeoSeries or GeoDataFrame, optional
        In ``target_crs``; points farther than ``study_buffer_m`` from it are rejected.
    study_buffer_m : float
        See ``study_area``.
    reason : array of str, optional
        Reasons already found (e.g. "non-numeric coordinates"); kept, and those rows skipped.

    Returns
    -------
    Located
    """
    x = np.asarray(x, dtype=float).copy()
    y = np.asarray(y, dtype=float).copy()
    n = x.size
    why = np.full(n, "", dtype=object) if reason is None else np.asarray(reason, dtype=object).copy()
    notes: list[str] = []
    src = pyproj.CRS.from_user_input(source_crs)
    geographic = kind in ("wgs84", "gcj02", "bd09") or src.is_geographic

    def to_lonlat(a, b):
        # the obfuscated kinds stay in their own lon/lat until to_wgs84 below
        return (a, b) if kind != "epsg" else ccrs.transform_xy(a, b, src, 4326)

    if geographic:
        # degrees as read: datum shifts (CGCS2000 vs WGS-84) are irrelevant to these checks
        sanity = ccrs.lonlat_sanity(x, y)
    else:
        lon, lat = to_lonlat(x, y)
        sanity = ccrs.lonlat_sanity(lon, lat)
        sanity[sanity == "non-finite coordinates"] = "coordinates out of range"
        sanity[np.isnan(x) | np.isnan(y)] = "missing coordinates"
        sanity[np.isinf(x) | np.isinf(y)] = "non-finite coordinates"
        swap_lon, swap_lat = to_lonlat(y, x)
        wrong = ~np.isin(sanity, ["", "missing coordinates", "non-finite coordinates"])
        sanity[wrong & ccrs.in_china(swap_lon, swap_lat)] = "lat/lng swapped"
    todo = why == ""
    swapped = todo & (sanity == "lat/lng swapped")
    if swapped.any():
        if auto_fix:
            x[swapped], y[swapped] = y[swapped].copy(), x[swapped].copy()
            notes.append(f"{int(swapped.sum())} lat/lng swapped pair(s) corrected (auto_fix)")
            sanity[swapped] = ""
        else:
            sanity[swapped] = SWAPPED
    lon, lat = to_lonlat(x, y)
    why[todo] = sanity[todo]
    ok = why == ""
    lon, lat = np.where(ok, lon, np.nan), np.where(ok, lat, np.nan)
    if kind in ("gcj02", "bd09") and ok.any():
        lon[ok], lat[ok] = ccrs.to_wgs84(lon[ok], lat[ok], kind)
        notes.append(f"{int(ok.sum())} point(s) converted from {kind.upper()} to WGS-84")
    gx, gy = ccrs.transform_xy(lon, lat, 4326, target_crs)
    if study_area is not None and ok.any():
        zone = study_zone(study_area, target_crs, study_buffer_m)
        inside = np.zeros(n, dtype=bool)
        inside[ok] = shapely.contains_xy(zone, gx[ok], gy[ok])
        why[ok & ~inside] = "outside study area"
    ok = why == ""
    if n and (why == "outside China").sum() > n / 2:
        notes.append("most coordinates fall outside China: check the crs setting and the x/y columns")
    return Located(
        reason=why,
        lon=np.where(ok, lon, np.nan),
        lat=np.where(ok, lat, np.nan),
        x=np.where(ok, gx, np.nan),
        y=np.where(ok, gy, np.nan),
        notes=notes,
    )


def parse_crs_option(value, *, path) -> tuple[str, pyproj.CRS]:
    """:func:`crs.parse_crs` with a one-line :class:`InputError` for unknown names.

    Parameters
    ----------
    value : str
        The config's ``crs:`` value.
    path : str or Path
        The file it applies to, for the error message.

    Returns
    -------
    tuple
        ``(kind, pyproj.CRS)`` as from :func:`crs.parse_crs`.
    """
    try:
        return ccrs.parse_crs(value)
    except (pyproj.exceptions.CRSError, ValueError, TypeError):
        raise InputError(f"{path}: crs {value!r} is not a known coordinate system; use wgs84, gcj02, bd09 or EPSG:<code>") from None


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


def reject_rows(report: LayerReport, df: pd.DataFrame, reason: np.ndarray) -> None:
    """Reject the rows of ``df`` with a non-empty ``reason`` (one group per reason).

    Parameters
    ----------
    report : LayerReport
        Receives the rejected rows (without their geometry column).
    df : pandas.DataFrame
        The rows as read, with their ``row`` column.
    reason : array of str
        One per row of ``df``; "" keeps the row.
    """
    reason = np.asarray(reason, dtype=object)
    geometry = getattr(df, "_geometry_column_name", None)  # rejected rows are written as CSV
    shown = pd.DataFrame(df.drop(columns=[geometry] if geometry in df.columns else []))
    for r in pd.unique(reason[reason != ""]):
        report.reject(shown.loc[reason == r], str(r))


def geometry_reason(df) -> np.ndarray:
    """Reject features without a geometry.

    Parameters
    ----------
    df : geopandas.GeoDataFrame

    Returns
    -------
    numpy.ndarray
        Object array: "missing geometry" where the geometry is null or empty, else "".
    """
    geom = df.geometry.to_numpy()
    return np.where(shapely.is_missing(geom) | shapely.is_empty(geom), "missing geometry", "").astype(object)


def representative_points(geoms) -> np.ndarray:
    """Centroids, or a point on the surface where the centroid falls outside (L-shapes, rings).

    Parameters
    ----------
    geoms : array of shapely geometries
        None stays None.

    Returns
    -------
    numpy.ndarray
        One Point per geometry, inside it (on it, for lines).
    """
    geoms = np.asarray(geoms)
    cent = shapely.centroid(geoms)
    inside = shapely.is_empty(geoms) | shapely.within(cent, geoms) | (shapely.get_type_id(geoms) == 0)
    return np.where(inside, cent, shapely.point_on_surface(geoms))
