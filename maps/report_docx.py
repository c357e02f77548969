"""``report.docx``: the planning report as an editable Word document (python-docx).

Bureaus edit their reports in Word, so this is the same content as ``report.html``
(:func:`carecircle.maps.planning_report.report_blocks`) with Word's own structures: A4
sections, real headings (the navigation pane and a table of contents find them), tables in
the "Table Grid" style with a repeated header row, a page-number field in the footer.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

from carecircle.maps import labels as L

# Word's East-Asian font when the report has no CJK font of its own: every Chinese Windows has it.
WORD_CJK_FONT = "Microsoft YaHei"


def _east_asian(style_or_run, name: str) -> None:
    """Set the East-Asian font too: Word draws Chinese with ``w:eastAsia``, not the Latin font."""
    from docx.oxml.ns import qn

    rpr = style_or_run.element.get_or_add_rPr()
    fonts = rpr.find(qn("w:rFonts"))
    if fonts is None:
        fonts = rpr.makeelement(qn("w:rFonts"), {})
        rpr.append(fonts)
    fonts.set(qn("w:eastAsia"), name)


def _page_number(paragraph) -> None:
    """A ``PAGE`` field: Word fills in the number on every page."""
    from docx.oxml import OxmlElement
    from docx.oxml.ns import qn

    field = OxmlElement("w:fldSimple")
    field.set(qn("w:instr"), "PAGE")
    run = OxmlElement("w:r")
    text = OxmlElement("w:t")
    text.text = "1"
    run.append(text)
    field.append(run)
    paragraph._p.append(field)


def _repeat_header(row) -> None:
    from docx.oxml import OxmlElement
    from docx.oxml.ns import qn

    trpr = row._tr.get_or_add_trPr()
    el = OxmlElement("w:tblHeader")
    el.set(qn("w:val"), "true")
    trpr.append(el)


def _grid(doc, heads: list[str], rows: list[list[str]], widths_mm: list[float] | None = None):
    from docx.shared import Pt

    table = doc.add_table(rows=1, cols=len(heads))
    table.style = "Table Grid"
    for cell, text in zip(table.rows[0].cells, heads):
        cell.text = ""
        run = cell.paragraphs[0].add_run(text)
        run.bold = True
    _repeat_header(table.rows[0])
    for values in rows:
        cells = table.add_row().cells
        for cell, text in zip(cells, values):
            cell.text = text
    for row in table.rows:
        for cell in row.cells:
            for p in cell.paragraphs:
                for run in p.runs:
                    run.font.size = Pt(9)
    return table


def write_docx(blocks: list[tuple], lab: L.Labels, path: str | os.PathLike, *, font: str | None = None) -> Path:
    """Write the report's blocks as a Word document.

    Parameters
    ----------
    blocks : list of tuple
        From :func:`carecircle.maps.planning_report.report_blocks`.
    lab : Labels
    path : path-like
        ``report.docx``.
    font : str, optional
        The CJK font the charts used; Word's Microsoft YaHei when None.

    Returns
    -------
    pathlib.Path
    """
    from docx import Document
    from docx.enum.section import WD_ORIENT
    from docx.enum.text import WD_ALIGN_PARAGRAPH, WD_BREAK
    from docx.shared import Mm, Pt

    from carecircle.maps.planning_report import _fmt, fmt_measure, check_label

    doc = Document()
    section = doc.sections[0]
    section.orientation = WD_ORIENT.PORTRAIT
    section.page_width, section.page_height = Mm(210), Mm(297)
    section.left_margin = section.right_margin = Mm(18)
    section.top_margin, section.bottom_margin = Mm(18), Mm(18)
    section.different_first_page_header_footer = True  # no number on the cover
    footer = section.footer.paragraphs[0]
    footer.alignment = WD_ALIGN_PARAGRAPH.CENTER
    _page_number(footer)
    cjk = font or WORD_CJK_FONT
    for name in ("Normal", "Title", "Heading 1", "Heading 2", "Heading 3"):
        _east_asian(doc.styles[name], cjk)
    doc.styles["Normal"].font.size = Pt(10.5)
    width_mm = 210 - 36
    first_h2 = True
    for kind, *rest in blocks:
        if kind == "cover":
            for _ in range(6):
                doc.add_paragraph()
            title = doc.add_paragraph(rest[0], style="Title")
            title.alignment = WD_ALIGN_PARAGRAPH.CENTER
            for k, v in rest[1]:
                p = doc.add_paragraph()
                p.alignment = WD_ALIGN_PARAGRAPH.CENTER
                p.add_run(f"{k}：" if lab.lang != "en" else f"{k}: ").bold = True
                p.add_run(v)
            doc.add_paragraph().add_run().add_break(WD_BREAK.PAGE)
        elif kind == "h2":
            if rest[1] and not first_h2:
                doc.add_paragraph().add_run().add_break(WD_BREAK.PAGE)
            first_h2 = False
            doc.add_heading(rest[0], level=1)
        elif kind == "h3":
            doc.add_heading(rest[0], level=2)
        elif kind in ("p", "note"):
            p = doc.add_paragraph(rest[0])
            if kind == "note":
                p.runs[0].italic = True
        elif kind == "rows":
            if rest[0]:
                _grid(doc, [lab.text("item"), lab.text("value")], [[k, v] for k, v in rest[0]])
        elif kind == "table":
            frame, columns = rest
            cols = [c for c in columns if c in frame.columns]
            _grid(doc, [lab.column(c) for c in cols], [[_fmt(c, row[c]) for c in cols] for _, row in frame.iterrows()])
        elif kind == "card":
            row, columns = rest
            _grid(doc, [lab.text("item"), lab.text("value")],
                  [[lab.column(c), _fmt(c, row[c])] for c in columns if c in row.index])
        elif kind == "figs":
            pngs, wide = rest
            p = doc.add_paragraph()
            each = width_mm if wide else (width_mm - 4) / min(2, max(1, len(pngs)))
            for png in pngs:
                p.add_run().add_picture(io.BytesIO(png), width=Mm(each))
        elif kind == "list":
            for text in rest[0]:
                doc.add_paragraph(text, style="List Bullet")
        elif kind == "actions":
            acts = rest[0].reindex(columns=["rank", "community", "check", "check_label", "value", "required", "shortfall",
                                            "unit", "elderly_affected", "standard", "source", "nearest_facility",
                                            "nearest_facility_m"])
            heads = [lab.column(c) for c in ("rank", "community", "check_label", "value", "required", "shortfall",
                                             "elderly_affected", "nearest_facility")]
            rows = []
            for _, a in acts.iterrows():
                where = a["community"] if isinstance(a["community"], str) and a["community"] else lab.text("street_level")
                check = check_label(a, lab)
                if isinstance(a["standard"], str) and a["standard"]:
                    check += "\n" + lab.titled(lab.text("standard"), a["standard"])
                if isinstance(a["source"], str) and a["source"]:
                    check += "\n" + lab.titled(lab.text("source"), a["source"])
                nearest = "—" if not isinstance(a["nearest_facility"], str) else \
                    lab.bracketed(a["nearest_facility"], f'{_fmt("m", a["nearest_facility_m"])} m')
                rows.append([_fmt("rank", a["rank"]), where, check,
                             *(fmt_measure(a[c], a["unit"]) for c in ("value", "required", "shortfall")),
                             _fmt("elderly_affected", a["elderly_affected"]), nearest])
            _grid(doc, heads, rows)
    path = Path(path)
    doc.save(path)
    return path


def docx_text(path: str | os.PathLike) -> str:
    """Every paragraph and table cell of a ``.docx``, one per line (for checks and diffs)."""
    from docx import Document

    doc = Document(str(path))
    lines = [p.text for p in doc.paragraphs]
    for table in doc.tables:
        for row in table.rows:
            lines += [c.text for c in row.cells]
    return "\n".join(lines)

