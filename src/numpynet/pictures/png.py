"""Saving matplotlib figures as PNG files whose bytes depend only on what was drawn.

Figures are built from :class:`matplotlib.figure.Figure` directly, never through pyplot: pyplot
keeps every open figure in a global registry (a leak in a long process) and picks a GUI backend
when a display exists. Rendering goes through Agg, which needs no display.
"""

from __future__ import annotations

import contextlib
import functools
from pathlib import Path
from typing import Iterator

import matplotlib
import matplotlib.style
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ft2font import FT2Font

from numpynet.files import atomic_path

# One resolution for every picture, so a figure's size in inches fixes its size in pixels.
DPI = 100

# The widest a picture should be, in inches: `dvc plots diff` sets two revisions' pictures side
# by side, each in an inline block that adds 12 pixels (dvc-render's border and margins) and never
# scales it, so in a 1280-pixel browser window (about 1,247 pixels inside the scroll bar and the
# page's margins) two 600-pixel pictures fit, 2 x 612 plus a space, and 620-pixel ones would not.
MAX_WIDTH_INCHES = 6.0

# PNG text chunks the files would otherwise carry: "Software" names the matplotlib version, so
# upgrading it would change every picture's bytes. Agg writes no timestamp of its own.
_NO_METADATA = {"Software": None}


def drawable(text: str, keep_line_breaks: bool = False) -> str:
    """``text`` with each character the pictures' font (DejaVu Sans) has no glyph for written as
    an escape (``\\u732b``), and control characters as ``\\t``-style escapes: a class name's
    line break too, unless ``keep_line_breaks`` (a title of several lines).

    Matplotlib would otherwise draw an empty box and warn for each, or take the glyph from
    whatever other font this machine has, so that the picture's bytes would depend on the fonts
    installed.
    """
    glyphs = _font_glyphs()
    return "".join(
        character if (keep_line_breaks and character == "\n")
        or (ord(character) in glyphs and character.isprintable())
        else repr(character)[1:-1] if not character.isprintable()
        else f"\\u{ord(character):04x}" if ord(character) <= 0xFFFF
        else f"\\U{ord(character):08x}"
        for character in text
    )


@functools.cache
def _font_glyphs() -> frozenset[int]:
    """The code points the font matplotlib ships and draws with by default has glyphs for."""
    font = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
    return frozenset(FT2Font(str(font)).get_charmap())


def literal(text: str) -> str:
    """``text`` escaped so that matplotlib shows it as written (see :func:`drawable`): it reads a
    text between two dollar signs as a formula (and fails on a bad one), and a class name may
    hold dollar signs."""
    return drawable(text, keep_line_breaks=True).replace("$", r"\$")


@contextlib.contextmanager
def plain_style() -> Iterator[None]:
    """Matplotlib's built-in defaults while drawing and saving, whatever a matplotlibrc says.

    A user's or a machine's matplotlibrc would otherwise change fonts, colours and sizes, and so
    the bytes of every picture.
    """
    with matplotlib.style.context("default"):
        yield


def new_figure(width: float, height: float) -> Figure:
    """An empty figure of ``width`` x ``height`` inches that lays its axes out without overlap.

    Call it inside :func:`plain_style`: the style in force when an artist is created is the one
    it keeps.
    """
    figure = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def save_figure(figure: Figure, path: Path | str) -> None:
    """Write ``figure`` to ``path`` as a PNG atomically, then free what the figure holds.

    The same figure gives the same bytes in any process: the resolution is fixed and the PNG
    carries no software version.
    """
    try:
        with plain_style(), atomic_path(path) as tmp:
            # A figure made elsewhere may have no canvas or a GUI one; Agg renders any figure.
            FigureCanvasAgg(figure)
            figure.savefig(tmp, format="png", dpi=DPI, metadata=_NO_METADATA)
    finally:
        # Drops the axes and artists (and the arrays they reference) even if saving failed.
        figure.clear()
