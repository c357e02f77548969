"""Finding a font that really draws Chinese, for the report's charts and the Word report.

A font whose character map lists CJK code points may still draw no Chinese: Apple's and
matplotlib-bundled "Last Resort" fonts map every code point of a Unicode block to one
placeholder glyph (a box with the block's name), and some fonts map characters to empty
glyphs. So a candidate is accepted only when every probe character maps to a glyph with a
real outline and the probe characters do not share a handful of glyphs between them.
"""

from __future__ import annotations

import functools

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # matplotlib loads only when a report is drawn
    from matplotlib import font_manager

# Families tried first, in order (Linux, then Windows/macOS names); any other font that passes
# :func:`draws_text` is accepted after them.
PREFERRED_CJK_FAMILIES = [
    "Noto Sans CJK SC", "Source Han Sans SC", "Noto Sans SC", "WenQuanYi Zen Hei", "WenQuanYi Micro Hei",
    "Microsoft YaHei", "SimHei", "PingFang SC", "Heiti SC", "Noto Serif CJK SC", "AR PL UMing CN",
]
# Placeholder fonts: they "cover" every code point with a box.
PLACEHOLDER_FAMILIES = ("last resort", "lastresort", "adobe blank", "unifont upper")
CJK_PROBE = "养老服务设施社区街道覆盖率缺口日间照料助餐"
INSTALL_HINT = ("install a Chinese font (Debian/Ubuntu: sudo apt-get install fonts-noto-cjk; Fedora: sudo dnf install "
                "google-noto-sans-cjk-fonts; Windows and macOS ship Microsoft YaHei / PingFang SC), then delete "
                "matplotlib's font cache (~/.cache/matplotlib) so it sees the new font")


class NoCJKFont(RuntimeError):
    """No installed font draws Chinese; the message says how to install one."""


@functools.lru_cache(maxsize=1)
def find_cjk_font() -> font_manager.FontEntry:
    """A font matplotlib can use that draws Chinese text.

    Returns
    -------
    matplotlib.font_manager.FontEntry
        ``.name`` is the family to put in ``font.sans-serif``, ``.fname`` the file and
        ``.index`` the face inside a ``.ttc`` collection.

    Raises
    ------
    NoCJKFont
        When no installed font draws the probe text (placeholder fonts never count).
    """
    from matplotlib import font_manager

    entries = [f for f in font_manager.fontManager.ttflist if not is_placeholder(f.name)]
    rank = {name: i for i, name in enumerate(PREFERRED_CJK_FAMILIES)}
    ordered = sorted(entries, key=lambda f: (rank.get(f.name, len(rank)), f.weight != 400, f.name))
    for entry in ordered:
        if draws_text(entry.fname, getattr(entry, "index", 0), CJK_PROBE):
            return entry
    raise NoCJKFont("report: no font with Chinese glyphs is installed, so the report has no charts and no PDF "
                    f"(its text would print as boxes); {INSTALL_HINT}")


def cjk_font_or_none() -> font_manager.FontEntry | None:
    """:func:`find_cjk_font`, or None when there is none."""
    try:
        return find_cjk_font()
    except NoCJKFont:
        return None


def is_placeholder(family: str) -> bool:
    """Whether ``family`` is a placeholder font that draws boxes for whole Unicode blocks."""
    return family.strip().lower().replace("-", " ") in PLACEHOLDER_FAMILIES or "last resort" in family.lower()


@functools.lru_cache(maxsize=None)
def draws_text(path: str, index: int, text: str) -> bool:
    """Whether face ``index`` of font file ``path`` draws every character of ``text``.

    Every character must map to a glyph whose outline has ink (a bounding box), and the
    characters must map to as many distinct glyphs as there are distinct characters — a
    placeholder font maps a whole block to one box.

    Parameters
    ----------
    path : str
        A font file (``.ttf``, ``.otf``, ``.ttc``); an unreadable one draws nothing.
    index : int
        The face inside a collection (0 for a single font).
    text : str

    Returns
    -------
    bool
    """
    from fontTools.pens.boundsPen import BoundsPen
    from fontTools.ttLib import TTFont

    try:
        font = TTFont(str(path), fontNumber=int(index or 0), lazy=True)
        cmap = font.getBestCmap() or {}
        names = [cmap.get(ord(c)) for c in text]
        if any(n is None for n in names) or len(set(names)) < len(set(text)):
            return False
        glyphs = font.getGlyphSet()
        for name in set(names):
            pen = BoundsPen(glyphs)
            glyphs[name].draw(pen)
            if pen.bounds is None:
                return False
        return True
    except Exception:  # an unreadable or odd font file is simply not a candidate
        return False
