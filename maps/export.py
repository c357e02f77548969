"""The planning-department package: shapefiles, one GeoPackage, CSV/XLSX tables.

Shapefiles are what a 规划院 opens in ArcGIS; their format has limits this module handles
explicitly rather than leaving them to GDAL's silent defaults:

- **Field names** are at most 10 bytes. Long column names get deterministic short names
  (abbreviated words, then shortened, then numbered on collision) and ``shp/fields.csv`` /
  ``fields.xlsx`` map each short name to the full column and its Chinese and English label.
- **Encoding.** UTF-8 (default) or GBK (older ArcGIS reads DBF text as the system code page).
  The ``.cpg`` says ``UTF-8`` or ``936`` (GBK's code page, which ArcGIS and GDAL both read) and
  for GBK the DBF header's language-driver byte is set to 0x4D (code page 936) too. Text that
  GBK cannot represent raises :class:`InputError` naming the row — never a silent ``?``.
- **Text length.** DBF strings hold at most 254 bytes. Longer values are **split**, never
  truncated: the column continues in ``<column>_part2``, ``_part3``... (cut on character
  boundaries; concatenating the parts gives the value back) and the alias table says so.
- **Infinite distances** (unreachable) have no DBF representation and are written empty, like
  NaN; the GeoPackage keeps them.
- **CRS.** WGS-84, CGCS2000 (EPSG:4490), any EPSG code, or ``auto``: the CGCS2000 3-degree
  Gauss-Krüger zone of the data's centre longitude (e.g. EPSG:4549 for 120° E).
"""

from __future__ import annotations

import os
import re
import zipfile
from collections.abc import Mapping
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import pyproj

from carecircle.layers import crs as ccrs
from carecircle.errors import InputError
from carecircle.maps import cells, labels as L

FIELD_BYTES = 10
DBF_TEXT_BYTES = 254
# encoding option -> (GDAL/Python codec, .cpg text, DBF language driver id)
ENCODINGS = {"UTF-8": ("UTF-8", "UTF-8", 0x00), "GBK": ("GBK", "936", 0x4D)}
# Words of the contract's column names and their abbreviations for 10-byte DBF names.
ABBREVIATIONS = {
    "elderly": "eld", "population": "pop", "people": "ppl", "covered": "cov", "share": "shr",
    "communities": "com", "community": "com", "distance": "dist", "nearest": "nr", "required": "req",
    "provided": "prov", "shortfall": "short", "households": "hh", "flagged": "flg", "space": "spc",
    "facility": "fac", "street": "st", "centre": "ctr", "institution": "inst", "mean": "mn", "source": "src", "minutes": "min", "cutoff": "cut", "floor": "flr", "built": "blt",
    "year": "yr", "affected": "aff", "label": "lbl", "standard": "std", "check": "chk", "worst": "wst",
    "value": "val", "part": "p", "address": "addr", "snapped": "snp",
}
# Service keys abbreviated as one word, before the column is split into words.
PHRASES = {"day_care": "dc", "street_centre": "stc"}
LAYER_NAME = re.compile(r"^[A-Za-z0-9_\-]+$")


# ----------------------------------------------------------------------------- names and CRS


def _shorten(column: str) -> str:
    if column.isascii() and len(column) <= FIELD_BYTES:
        return column
    for phrase, short in PHRASES.items():
        column = column.replace(phrase, short)
    tokens = [ABBREVIATIONS.get(t.lower(), t.lower()) for t in re.split(r"[^0-9A-Za-z]+", column) if t]
    if not tokens:
        return "f"  # a column named in Chinese only: numbered below
    name = "_".join(tokens)
    if len(name) > FIELD_BYTES:
        name = "".join(tokens)
    while len(name) > FIELD_BYTES:
        longest = max(range(len(tokens)), key=lambda i: len(tokens[i]))
        tokens[longest] = tokens[longest][:-1]
        name = "".join(tokens)
    return name


def short_field_names(columns) -> dict[str, str]:
    """Deterministic, unique (case-insensitively) DBF field names of at most 10 bytes.

    Parameters
    ----------
    columns : iterable of str
        Column names in their output order.

    Returns
    -------
    dict
        ``{column: short_name}``; names that already fit are kept as they are.
    """
    out, used = {}, set()
    for column in columns:
        name = _shorten(str(column))
        candidate, i = name, 0
        while candidate.lower() in used or (name == "f" and i == 0):
            i += 1
            candidate = name[: FIELD_BYTES - len(str(i))] + str(i)
        used.add(candidate.lower())
        out[column] = candidate
    return out


def resolve_crs(spec: str | pyproj.CRS, layers: Mapping[str, gpd.GeoDataFrame]) -> pyproj.CRS:
    """The CRS to write: ``auto`` picks the CGCS2000 3° Gauss-Krüger zone of the data's centre.

    Parameters
    ----------
    spec : str or pyproj.CRS
        "auto", "EPSG:4326"/"wgs84", "EPSG:4490"/"cgcs2000", "EPSG:45xx" or any CRS pyproj reads.
    layers : mapping
        The layers to be written (for ``auto``).

    Returns
    -------
    pyproj.CRS

    Raises
    ------
    InputError
        For a name pyproj does not know, GCJ-02/BD-09 (no ``.prj`` can say them), or ``auto``
        with no layer to take the longitude from.
    """
    if isinstance(spec, pyproj.CRS):
        return spec
    if str(spec).strip().lower() == "auto":
        boxes = [g.to_crs(4326).total_bounds for g in layers.values() if len(g) and g.crs is not None]
        if not boxes:
            raise InputError("export: crs auto: no layer with features and a CRS to take the longitude from; name a CRS")
        b = np.array(boxes)
        lon = (np.nanmin(b[:, 0]) + np.nanmax(b[:, 2])) / 2
        try:
            return ccrs.gk3_crs(lon)
        except ValueError as exc:
            raise InputError(f"export: crs auto: {exc}; name a CRS instead") from exc
    try:
        kind, crs = ccrs.parse_crs(spec)
    except pyproj.exceptions.CRSError as exc:
        raise InputError(f"export: crs {spec!r} is not a CRS pyproj knows; use auto, EPSG:4326, EPSG:4490 or EPSG:45xx") from exc
    if kind in ("gcj02", "bd09"):
        raise InputError(f"export: crs {spec!r}: GCJ-02/BD-09 have no .prj; write WGS-84, CGCS2000 or a Gauss-Krüger zone")
    return crs


# ----------------------------------------------------------------------------- DBF text


def _split_bytes(value: str, codec: str, limit: int) -> list[str]:
    """Cut ``value`` into pieces of at most ``limit`` encoded bytes, on character boundaries."""
    parts, current, size = [], [], 0
    for ch in value:
        n = len(ch.encode(codec))
        if size + n > limit:
            parts.append("".join(current))
            current, size = [], 0
        current.append(ch)
        size += n
    parts.append("".join(current))
    return parts


def _dbf_text(frame: pd.DataFrame, layer: str, codec: str, encoding: str) -> tuple[pd.DataFrame, dict[str, int]]:
    """Check every text cell encodes in ``codec`` and split those longer than 254 bytes.

    Returns the frame with ``<col>_part<k>`` continuation columns inserted after ``col`` and
    ``{col: parts}`` for the columns that were split.
    """
    out = frame
    split = {}
    for col in [c for c in frame.columns if c != "geometry" and pd.api.types.is_string_dtype(frame[c].dtype)]:
        values = frame[col]
        text = values.dropna().astype(str)
        try:
            nbytes = text.str.encode(codec).str.len()
        except UnicodeEncodeError:
            for pos, v in text.items():
                try:
                    v.encode(codec)
                except UnicodeEncodeError as exc:
                    row = frame.index.get_loc(pos) + 1
                    raise InputError(f"shp/{layer}.dbf: column {col} row {row}: {v[exc.start:exc.end]!r} cannot be "
                                     f"written in {encoding}; choose shapefile_encoding UTF-8") from exc
        if len(nbytes) == 0 or nbytes.max() <= DBF_TEXT_BYTES:
            continue
        pieces = text.map(lambda v: _split_bytes(v, codec, DBF_TEXT_BYTES))
        k = int(pieces.map(len).max())
        cols = {col: pieces.map(lambda p: p[0]).reindex(values.index)}
        for i in range(1, k):
            cols[f"{col}_part{i + 1}"] = pieces.map(lambda p, i=i: p[i] if i < len(p) else None).reindex(values.index)
        at = list(out.columns).index(col)
        out = out.drop(columns=col)
        for j, (name, series) in enumerate(cols.items()):
            out.insert(at + j, name, series.astype(object).where(series.notna(), None))
        split[col] = k
    return out, split


# ----------------------------------------------------------------------------- writers


def write_package(
    out_dir: str | os.PathLike,
    layers: Mapping[str, gpd.GeoDataFrame],
    *,
    crs: str | pyproj.CRS = "auto",
    encoding: str = "UTF-8",
    labels: Mapping[str, tuple[str, str]] | None = None,
    services: Mapping[str, Mapping[str, str]] | None = None,
) -> dict:
    """Write the shapefile package ``out_dir/shp/`` and its zip ``out_dir/shp.zip``.

    Parameters
    ----------
    out_dir : path-like
        The run's output folder.
    layers : mapping of str to geopandas.GeoDataFrame
        ``{"communities": ..., "streets": ..., "facilities": ..., "isochrones": ...,
        "uncovered": ...}``; each becomes ``shp/<name>.shp``. Empty layers are skipped.
    crs : str or pyproj.CRS
        "auto" (CGCS2000 3° Gauss-Krüger zone from the data's longitude), "EPSG:4326",
        "EPSG:4490", "EPSG:45xx", ...
    encoding : {"UTF-8", "GBK"}
        DBF text encoding, written to ``.cpg``.
    labels : mapping, optional
        ``{column: (中文, English)}`` of the analysis columns,
        :func:`carecircle.maps.labels.analysis_labels` of the run's profile (the national
        profile's when omitted). On the facilities, uncovered-points and isochrone layers the
        maps stage's own labels of their columns win.
    services : mapping, optional
        The profile's services, to label ``dist_<service>_m``.

    Returns
    -------
    dict
        ``dir``, ``zip``, ``fields_csv``, ``fields_xlsx``, ``readme``, ``crs`` (authority
        string), ``encoding``, ``skipped`` (empty layers) and ``layers``:
        ``{name: {"path", "features", "fields": {short: column}, "split": {column: parts}}}``.
    """
    enc = str(encoding).upper().replace("_", "-")
    enc = {"UTF8": "UTF-8", "CP936": "GBK", "936": "GBK"}.get(enc, enc)
    if enc not in ENCODINGS:
        raise InputError(f"export: shapefile_encoding {encoding!r} is not UTF-8 or GBK")
    codec, cpg, ldid = ENCODINGS[enc]
    target = resolve_crs(crs, layers)
    shp_dir = Path(out_dir) / "shp"
    shp_dir.mkdir(parents=True, exist_ok=True)
    auth = target.to_authority()
    result = {"dir": shp_dir, "crs": f"{auth[0]}:{auth[1]}" if auth else target.to_string(),
              "encoding": enc, "layers": {}, "skipped": []}
    alias_rows = []
    labeller = L.Labels("zh", labels, services)
    for name, gdf in layers.items():
        if not LAYER_NAME.match(name):
            raise InputError(f"export: layer name {name!r}: use ASCII letters, digits, _ or - (it becomes a file name)")
        if len(gdf) == 0:
            result["skipped"].append(name)
            continue
        if gdf.crs is None:
            raise InputError(f"export: layer {name}: no CRS; pass layers in the analysis CRS")
        kinds = set(gdf.geometry.geom_type.dropna().str.removeprefix("Multi"))
        if len(kinds) > 1:
            raise InputError(f"export: layer {name}: mixed geometry types {sorted(kinds)}; a shapefile holds one")
        frame = gdf.to_crs(target)
        attrs = frame.drop(columns=frame.geometry.name)
        num = attrs.select_dtypes("number").columns
        attrs[num] = attrs[num].replace([np.inf, -np.inf], np.nan)
        # Values as they mean (metres 0.1, shares 4 decimals, whole counts); DBF has no
        # nullable integer, so a count with gaps stays a (whole) float.
        attrs = rounded(attrs)
        for col in attrs.columns[attrs.dtypes == "Int64"]:
            attrs[col] = attrs[col].astype(float) if attrs[col].isna().any() else attrs[col].astype("int64")
        attrs, split = _dbf_text(attrs, name, codec, enc)
        short = short_field_names(attrs.columns)
        out = gpd.GeoDataFrame(attrs.rename(columns=short), geometry=frame.geometry.values, crs=target)
        path = shp_dir / f"{name}.shp"
        pyogrio.write_dataframe(out, path, driver="ESRI Shapefile", encoding=codec)
        # The code-page form ArcGIS reads, and the DBF header byte that says the same.
        path.with_suffix(".cpg").write_text(cpg, encoding="ascii")
        with open(path.with_suffix(".dbf"), "r+b") as dbf:
            dbf.seek(29)
            dbf.write(bytes([ldid]))
        lab = labeller.pairs(gdf.columns.drop(gdf.geometry.name), own_first=name in L.OWN_LAYERS)
        # A split text's continuation columns are labelled as parts of the column they continue.
        continues = {f"{col}_part{i}": (col, i) for col, k in split.items() for i in range(2, k + 1)}
        for column, field in short.items():
            base, part = continues.get(column, (column, None))
            zh, en = lab[base]
            if part:
                zh, en = f"{zh}（续{part}）", f"{en} (part {part})"
            alias_rows.append({"layer": name, "field": field, "column": column, "label_zh": zh, "label_en": en,
                               "type": str(attrs[column].dtype)})
        result["layers"][name] = {"path": path, "features": len(out), "fields": {v: k for k, v in short.items()},
                                  "split": split}
    aliases = pd.DataFrame(alias_rows, columns=["layer", "field", "column", "label_zh", "label_en", "type"])
    result["fields_csv"] = shp_dir / "fields.csv"
    cells.for_csv(aliases).to_csv(result["fields_csv"], index=False, encoding="utf-8-sig")
    result["fields_xlsx"] = shp_dir / "fields.xlsx"
    with pd.ExcelWriter(result["fields_xlsx"], engine="openpyxl") as xl:
        cells.for_xlsx(aliases.rename(columns={"layer": "图层 layer", "field": "字段 field", "column": "列名 column",
                                               "label_zh": "中文名", "label_en": "English", "type": "类型 type"})
                       ).to_excel(xl, index=False)
        cells.as_strings(next(iter(xl.sheets.values())))  # a profile's label is text, never a formula
    result["readme"] = _write_readme(shp_dir, result, target)
    result["zip"] = Path(out_dir) / "shp.zip"
    with zipfile.ZipFile(result["zip"], "w", zipfile.ZIP_DEFLATED) as zf:
        for f in sorted(shp_dir.iterdir()):
            zf.write(f, f"shp/{f.name}")
    return result


def _write_readme(shp_dir: Path, result: dict, target: pyproj.CRS) -> Path:
    lines = [
        "carecircle 规划数据包 / planning package",
        f"坐标系 CRS: {target.name} ({result['crs']})",
        f"属性编码 DBF encoding: {result['encoding']} (.cpg)",
        "字段名不超过10字节，完整列名与中英文名见 fields.csv / fields.xlsx",
        "DBF field names are at most 10 bytes; fields.csv / fields.xlsx give the full column and its labels.",
        "超过254字节的文本续写在 <列>_part2 ... 字段中（拼接即为原值）；不可达距离为空值。",
        "Text longer than 254 bytes continues in <column>_part2 ... (concatenate them); unreachable distances are empty.",
        "",
    ]
    for name, info in result["layers"].items():
        lines.append(f"{name}.shp: {info['features']} features")
    for name in result["skipped"]:
        lines.append(f"{name}: 无要素，未输出 / no features, not written")
    path = shp_dir / "README.txt"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8-sig")
    return path


def write_geopackage(path: str | os.PathLike, layers: Mapping[str, gpd.GeoDataFrame], *,
                     crs: str | pyproj.CRS | None = None) -> Path:
    """All ``layers`` in one GeoPackage, full column names and values (NaN, inf, long text).

    Parameters
    ----------
    path : path-like
        The ``.gpkg`` file (replaced if it exists).
    layers : mapping of str to geopandas.GeoDataFrame
        Layer name -> data; empty layers are written without features.
    crs : str or pyproj.CRS, optional
        Reproject every layer (same choices as :func:`write_package`); default: keep each
        layer's CRS.

    Returns
    -------
    pathlib.Path
        ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    target = resolve_crs(crs, layers) if crs is not None else None
    for name, gdf in layers.items():
        frame = gdf.to_crs(target) if target is not None else gdf
        # GDAL names the GeoPackage primary key "fid" by default and would swallow the
        # facilities' own ``fid`` column into it; a primary key of its own keeps that column.
        pyogrio.write_dataframe(frame, path, layer=name, driver="GPKG", layer_options={"FID": "gpkg_fid"})
    return path


def _headers(columns, lab: Mapping[str, tuple[str, str]], lang: str) -> list[str]:
    """Display headers in ``lang``; a label shared by two columns gets the column name added."""
    heads = [lab[c][1] if lang == "en" else lab[c][0] for c in columns]
    dup = {h for h in heads if heads.count(h) > 1}
    return [f"{h} ({c})" if h in dup else h for h, c in zip(heads, columns)]


def write_tables(
    out_dir: str | os.PathLike,
    tables: Mapping[str, pd.DataFrame],
    labels: Mapping[str, tuple[str, str]] | None = None,
    lang: str = "zh",
    *,
    services: Mapping[str, Mapping[str, str]] | None = None,
) -> dict[str, dict[str, Path]]:
    """Write each table as ``<name>.csv`` and ``<name>.xlsx``.

    The CSV keeps the contract's column names (machine-readable; UTF-8 with BOM so Excel
    opens the Chinese text; booleans as ``true``/``false``), values rounded to what they mean
    (:func:`rounded`). The XLSX is for printing and reading: a 汇总 (summary) sheet first (with a
    chart of coverage per sub-district for ``streets``), then the table with the labels in
    ``lang`` as headers, 是/否 for booleans, words for codes (checks, 新建/已建...), number
    formats (% for shares, whole metres, integer counts), widths from the content, a bold
    frozen header with an autofilter, printed landscape on A4, fit to the page width with the
    header repeated; last a sheet (字段说明 / fields) mapping each header to the column name and
    its Chinese and English labels.

    Parameters
    ----------
    out_dir : path-like
        The run's output folder (created if missing).
    tables : mapping of str to pandas.DataFrame
        A geometry column, if any, is left out.
    labels : mapping, optional
        ``{column: (中文, English)}`` of the analysis columns,
        :func:`carecircle.maps.labels.analysis_labels` of the run's profile (the national
        profile's when omitted).
    lang : {"zh", "en"}
    services : mapping, optional
        The profile's services, to label ``dist_<service>_m``.

    Returns
    -------
    dict
        ``{name: {"csv": Path, "xlsx": Path}}``.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = {}
    labeller = L.Labels(lang, labels, services)
    for name, table in tables.items():
        frame = rounded(pd.DataFrame(table.drop(columns=table.geometry.name) if isinstance(table, gpd.GeoDataFrame) else table))
        lab = labeller.pairs(frame.columns)
        csv = frame.copy()
        for col in csv.columns[csv.dtypes == bool]:
            csv[col] = np.where(csv[col], "true", "false")
        csv_path = out_dir / f"{name}.csv"
        cells.for_csv(csv).to_csv(csv_path, index=False, encoding="utf-8-sig")
        heads = _headers(list(frame.columns), lab, lang)
        fields = pd.DataFrame({
            L.text("column", lang): heads, "column": list(frame.columns),
            "中文": [lab[c][0] for c in frame.columns], "English": [lab[c][1] for c in frame.columns],
        })
        xlsx_path = out_dir / f"{name}.xlsx"
        summary_name = L.text("summary_sheet", lang)
        data_name = name[:31]
        with pd.ExcelWriter(xlsx_path, engine="openpyxl") as xl:
            cells.for_xlsx(_summary_frame(frame, heads, labeller)).to_excel(xl, sheet_name=summary_name, index=False)
            cells.for_xlsx(_display_values(frame, labeller).set_axis(heads, axis=1)).to_excel(xl, sheet_name=data_name, index=False)
            cells.for_xlsx(fields).to_excel(xl, sheet_name=L.text("fields", lang), index=False)
            for each in xl.sheets.values():
                cells.as_strings(each)
            kinds = [column_kind(c, frame[c]) for c in frame.columns]
            format_sheet(xl.sheets[data_name], kinds)
            format_sheet(xl.sheets[summary_name], ["text", "number"])
            format_sheet(xl.sheets[L.text("fields", lang)], ["text"] * 4)
            if name == "streets":
                _coverage_chart(xl.sheets[summary_name], xl.sheets[data_name], frame, labeller)
        written[name] = {"csv": csv_path, "xlsx": xlsx_path}
    return written


# ----------------------------------------------------------------------------- values as they mean

#: Counts and years: whole numbers.
INTEGER_COLUMNS = frozenset({"households", "built_year", "rank", "n_flags", "facilities", "pid", "fid", "source_row",
                             "elderly_affected", "facility_fid", "row", "points"})
#: Number formats of the XLSX per kind of column.
NUMBER_FORMATS = {"share": "0.0%", "metres": "#,##0", "area": "#,##0.0", "count": "#,##0", "year": "0",
                  "people": "#,##0", "number": "#,##0.0#", "score": "0.0"}


def column_kind(column: str, values: pd.Series) -> str:
    """What a column holds, from its name and dtype: ``bool``, ``share``, ``metres``, ``area``,
    ``count``, ``year``, ``people``, ``score``, ``number`` or ``text``.

    Parameters
    ----------
    column : str
        A contract column name (``elderly_covered_share_meal``, ``nearest_meal_m``, ...).
    values : pandas.Series

    Returns
    -------
    str
    """
    if pd.api.types.is_bool_dtype(values.dtype):
        return "bool"
    if not pd.api.types.is_numeric_dtype(values.dtype):
        return "text"
    c = column.lower()
    if "share" in c or c.startswith(("coverage_rate_", "target_")):
        return "share"
    if c in ("built_year", "year") or c.endswith("_year"):
        return "year"
    if c in INTEGER_COLUMNS or c.startswith(("communities", "n_")) or c.endswith("_count"):
        return "count"
    if c.endswith("_m2") or "_m2_" in c:
        return "area"
    if c.endswith("_m") or "_m_" in c:
        return "metres"
    if c in ("people", "elderly", "population") or c.startswith(("population_covered", "elderly_covered")):
        return "people"
    if c == "score":
        return "score"
    if c in ("lon", "lat") or c.startswith(("lon_", "lat_")):
        return "degrees"  # a site's coordinates: 4 decimals would move it by up to 10 m
    return "number"


#: Decimals kept per kind in CSV, summary.json and DBF (metres 0.1 m, shares 4 decimals,
#: degrees 7 decimals ≈ 1 cm).
DECIMALS = {"share": 4, "metres": 1, "area": 1, "people": 1, "score": 1, "number": 4, "degrees": 7}


def rounded(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with numbers rounded to what they mean: metres and m² to 0.1, shares to 4
    decimals, households, counts and build years as (nullable) integers; inf stays inf.

    Parameters
    ----------
    frame : pandas.DataFrame

    Returns
    -------
    pandas.DataFrame
        A copy; text and boolean columns untouched.
    """
    out = frame.copy()
    for col in out.columns:
        if col == getattr(out, "_geometry_column_name", None):
            continue
        kind = column_kind(str(col), out[col])
        if kind in ("count", "year"):
            values = pd.to_numeric(out[col], errors="coerce").astype(float)
            finite = np.isfinite(values.to_numpy())
            if finite.any() or values.isna().all():
                if (~finite & values.notna().to_numpy()).any():
                    out[col] = values.round(0)  # inf present: keep floats
                else:
                    out[col] = values.round(0).astype("Int64")
        elif kind in DECIMALS:
            out[col] = pd.to_numeric(out[col], errors="coerce").astype(float).round(DECIMALS[kind])
    return out


def round_value(key: str, value):
    """One ``summary.json`` value rounded like a table column named ``key`` (:func:`rounded`)."""
    if isinstance(value, (bool, int, np.integer)) or not isinstance(value, (float, np.floating)):
        return value  # whole numbers are already what they mean
    v = float(value)
    if not np.isfinite(v):
        return value
    kind = column_kind(key, pd.Series([v]))
    if kind in ("count", "year"):
        return int(round(v))
    return round(v, DECIMALS[kind]) if kind in DECIMALS else value


def _display_values(frame: pd.DataFrame, lab: L.Labels) -> pd.DataFrame:
    """The XLSX values: 是/否 for booleans, words for check keys and codes, inf as a word."""
    out = frame.copy()
    for col in out.columns:
        if pd.api.types.is_bool_dtype(out[col].dtype):
            out[col] = np.where(out[col].to_numpy(bool), lab.text("yes"), lab.text("no"))
        elif col in ("check", "worst_check"):
            out[col] = out[col].map(lambda v: lab.check(v) if isinstance(v, str) else v)
        elif col in L.CODE_VALUES:
            words = {k: (zh if lab.lang != "en" else en) for k, (zh, en) in L.CODE_VALUES[col].items()}
            out[col] = out[col].map(lambda v: words.get(v, v) if isinstance(v, str) else v)
        elif pd.api.types.is_float_dtype(out[col].dtype) and np.isinf(out[col].to_numpy(float)).any():
            out[col] = out[col].astype(object).where(~np.isinf(out[col].astype(float)), lab.text("unreachable"))
    return out


def _summary_frame(frame: pd.DataFrame, heads: list[str], lab: L.Labels) -> pd.DataFrame:
    """The 汇总 sheet: rows, how many are 是 per yes/no column, totals of shortfalls, households and elderly."""
    rows = [(lab.text("rows"), len(frame))]
    for col, head in zip(frame.columns, heads):
        kind = column_kind(str(col), frame[col])
        if kind == "bool":
            rows.append((lab.text("count_yes", column=head), int(frame[col].sum())))
        elif str(col) in ("households", "elderly", "population", "people", "elderly_affected") or str(col).endswith("shortfall_m2"):
            rows.append((lab.text("total_of", column=head), float(pd.to_numeric(frame[col], errors="coerce").sum())))
    return pd.DataFrame(rows, columns=[lab.text("item"), lab.text("value")])


def _text_width(value) -> int:
    """Display width in Excel's character units: CJK characters count double."""
    text = "" if value is None else str(value)
    return sum(2 if ord(ch) > 0x2E7F else 1 for ch in text)


def format_sheet(sheet, kinds: list[str]) -> None:
    """Bold frozen header, autofilter, number formats per column, widths from content, A4 landscape."""
    from openpyxl.styles import Alignment, Font
    from openpyxl.utils import get_column_letter

    bold = Font(bold=True)
    for cell in sheet[1]:
        cell.font = bold
        cell.alignment = Alignment(wrap_text=True, vertical="center")
    sheet.freeze_panes = "A2"
    if sheet.max_row >= 1 and sheet.max_column >= 1:
        sheet.auto_filter.ref = sheet.dimensions
    for j, kind in enumerate(kinds, start=1):
        fmt = NUMBER_FORMATS.get(kind)
        letter = get_column_letter(j)
        width = 4
        for (cell,) in sheet.iter_rows(min_col=j, max_col=j):
            if fmt and cell.row > 1 and isinstance(cell.value, (int, float)):
                cell.number_format = fmt
            shown = f"{cell.value:.1%}" if kind == "share" and isinstance(cell.value, float) else \
                f"{cell.value:,.1f}" if isinstance(cell.value, float) else cell.value
            # A long header wraps onto two lines rather than widening its column.
            width = max(width, min(_text_width(shown), 24) if cell.row == 1 else _text_width(shown))
        sheet.column_dimensions[letter].width = min(60, width + 2)
    ps = sheet.page_setup
    ps.orientation, ps.paperSize = "landscape", sheet.PAPERSIZE_A4
    ps.fitToWidth, ps.fitToHeight = 1, 0
    sheet.sheet_properties.pageSetUpPr.fitToPage = True
    sheet.print_title_rows = "1:1"


def _coverage_chart(summary_sheet, data_sheet, frame: pd.DataFrame, lab: L.Labels) -> None:
    """A bar chart of elderly coverage per sub-district and service, on the 汇总 sheet."""
    from openpyxl.chart import BarChart, Reference

    cols = [i for i, c in enumerate(frame.columns, start=1) if str(c).startswith("elderly_covered_share_")]
    if not cols or "street" not in frame.columns or len(frame) == 0:
        return
    chart = BarChart()
    chart.type = "col"
    chart.title = lab.text("coverage_by_street", unit=lab.column("street"))
    chart.y_axis.number_format = "0%"
    chart.y_axis.scaling.min, chart.y_axis.scaling.max = 0, 1
    chart.height, chart.width = 9, max(16, 2.2 * len(frame))
    n = len(frame) + 1
    for j in cols:
        chart.add_data(Reference(data_sheet, min_col=j, min_row=1, max_row=n), titles_from_data=True)
    street_col = list(frame.columns).index("street") + 1
    chart.set_categories(Reference(data_sheet, min_col=street_col, min_row=2, max_row=n))
    summary_sheet.add_chart(chart, "D2")
