"""Per-class pictures of a test set: the confusion matrix and each class's error rate.

Past :data:`MAX_CLASSES_DRAWN` classes both show the worst classes only, and say so on the
picture: their size, time and memory then no longer grow with the class count (beyond one pass
over the confusion matrix they are given).
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import matplotlib
import numpy as np
from matplotlib.colors import PowerNorm
from matplotlib.ticker import PercentFormatter

from numpynet.evaluation import class_errors
from numpynet.pictures.png import (
    MAX_WIDTH_INCHES,
    drawable,
    literal,
    new_figure,
    plain_style,
    save_figure,
)

# Cell annotations and bar-end values are readable only up to these many classes. A confusion
# matrix of at most MAX_CLASSES_ANNOTATED classes is also kept to the page's width; a bigger
# one is a picture to zoom into.
MAX_CLASSES_ANNOTATED = 20
MAX_CLASSES_WITH_VALUES = 40
# Past this many classes a picture of every class is unreadable (names under 5 points, rows under
# a pixel) and costly: 5,000 classes took 67 s of CPU and 2.4 GB for the matrix, 45 s for the
# bars. The matrix then shows the MAX_CLASSES_ANNOTATED worst classes, the bars the
# MAX_CLASSES_WITH_VALUES worst: each a picture of the readable, page-wide kind.
MAX_CLASSES_DRAWN = 200
# The last column of a matrix of the worst classes: the share predicted as any class not shown.
_OTHER_CLASSES = "(other classes)"

_CONFUSION_COLOURS = "Blues"
_BAR_COLOUR = "tab:blue"
_MEAN_COLOUR = "tab:red"
_NO_SAMPLES_GREY = "0.85"
_COLOUR_BAR_TICKS = (0, 0.01, 0.05, 0.1, 0.25, 0.5, 0.75, 1)

# Widths in ems of matplotlib's default font (DejaVu Sans): a class name's average character,
# and the widest cell texts, "100%" and, without its sign, "100" (2.86 and 1.91 measured).
_EMS_PER_CHARACTER = 0.6
_CELL_TEXT_EMS = {True: 2.9, False: 1.95}
# Points below which a cell's percentage is hard to read at 100 DPI.
_MIN_CELL_POINTS = 7
# A page-wide matrix cuts longer names, so that they leave its cells some of the width.
_MAX_NAME_CHARACTERS = 18
# Inches a page-wide matrix needs besides its cells and class names: beside them, the "true"
# label and the layout's padding; below and above, the "predicted" label, the colour bar with its
# ticks and label, and the title. A bigger one has its colour bar beside it, in larger type.
_ROOM_BESIDE = 0.5
# The height a slanted name takes below the matrix, per inch of name, by its slant in degrees;
# written out rather than computed by the C library's sin, whose last bit varies by platform (and
# would change the picture's size, so its bytes).
_SINE = {0: 0.0, 45: 0.7071067811865476, 90: 1.0}  # sin 45° = √½, correctly rounded
_ROOM_BELOW_AND_ABOVE = 1.5
_ROOM_BESIDE_LARGE = 2.2
_ROOM_BELOW_AND_ABOVE_LARGE = 0.8
# The height of a line of a note above or below a picture, in its medium (10-point) or small type.
_NOTE_LINE_INCHES = 0.2


def _colour_scale() -> PowerNorm:
    """Colour by the square root of the share, 0 to 1.

    With a strong diagonal, the confusions worth seeing are a few percent, which a linear scale
    leaves as white as a zero. A new one each time: an image registers itself with its norm, so
    a shared one would keep every figure alive.
    """
    return PowerNorm(gamma=0.5, vmin=0, vmax=1)


def _row_fractions(confusion: np.ndarray) -> np.ndarray:
    """Each row divided by its sum; NaN throughout a row with no samples (and no warning)."""
    totals = confusion.sum(axis=1, keepdims=True)
    fractions = np.full(confusion.shape, np.nan)
    np.divide(confusion, totals, out=fractions, where=totals > 0)
    return fractions


def _cell_text(fraction: float, with_sign: bool = True) -> str:
    """A percentage short enough for a cell: whole percents, one decimal below 10%; the "%" left
    off in cells too narrow for it (see :func:`_cell_style`)."""
    percent = 100 * fraction
    text = f"{percent:.0f}" if percent >= 9.5 else f"{percent:.1f}"
    return text + "%" if with_sign else text


def _label_font_size(inches_per_class: float) -> float:
    """Points for a class name that fits its row: 70% of the row's height, 5 to 10 points."""
    return float(np.clip(0.7 * 72 * inches_per_class, 5, 10))


def _text_colours(fractions: np.ndarray) -> np.ndarray:
    """Black on light cells, white on dark ones, by the luminance of each cell's colour."""
    rgb = matplotlib.colormaps[_CONFUSION_COLOURS](_colour_scale()(np.nan_to_num(fractions)))
    rgb = rgb[..., :3]
    # Term by term, not a BLAS product, so a cell on the threshold goes one way everywhere.
    luminance = 0.299 * rgb[..., 0] + 0.587 * rgb[..., 1] + 0.114 * rgb[..., 2]
    return np.where(luminance > 0.5, "black", "white")


def _shortened(name: str, width: int) -> str:
    """``name``, cut to ``width`` characters with an ellipsis."""
    return name if len(name) <= width else name[: max(width - 1, 1)] + "\u2026"


def _cell_style(cell_inches: float, name_points: float) -> tuple[float, bool]:
    """Points for the cell texts, and whether they keep their "%" sign.

    The widest text, "100%", may fill 85% of a cell, in at most the names' size. Cells too narrow
    for it at a readable size (many classes on a page-wide picture) show the number alone; the
    colour bar's ticks say it is a percentage.
    """
    room = 0.85 * 72 * cell_inches
    with_sign = room / _CELL_TEXT_EMS[True] >= _MIN_CELL_POINTS
    return min(name_points, room / _CELL_TEXT_EMS[with_sign]), with_sign


def draw_confusion_matrix(
    confusion: np.ndarray, classes: Sequence[str], path: Path | str, title: str
) -> None:
    """Draw the confusion matrix with each true class's row as fractions of it, and save as PNG.

    ``confusion`` is (K, K) counts, rows the true class and columns the predicted one (see
    :func:`numpynet.evaluation.confusion_matrix`). Rows are normalized so that classes of
    different sizes compare; a class with no test images keeps a grey row. With at most
    ``MAX_CLASSES_ANNOTATED`` classes, cells carry their percentage and the picture is at most
    ``MAX_WIDTH_INCHES`` wide: the cells shrink to what the class names leave, and names longer
    than ``_MAX_NAME_CHARACTERS`` are cut. More classes make a bigger picture, half an inch a
    class up to a cap. Past ``MAX_CLASSES_DRAWN`` classes, the matrix is that of the
    ``MAX_CLASSES_ANNOTATED`` worst (:func:`worst_first`), with a last column for the share of
    each row predicted as a class not shown, and says so above it.
    """
    confusion = np.asarray(confusion)
    # As they will be drawn, before any is measured: an escape is wider than its glyph.
    classes = [drawable(name) for name in classes]
    num_classes = len(classes)
    if confusion.shape != (num_classes, num_classes):
        raise ValueError(f"confusion has shape {confusion.shape} for {num_classes} classes")
    if num_classes > MAX_CLASSES_DRAWN:
        _draw_matrix(*_worst_classes_matrix(confusion, classes), path, title)
    else:
        classes = list(classes)
        _draw_matrix(confusion, _row_fractions(confusion), classes, classes, None, path, title)


def _worst_classes_matrix(
    confusion: np.ndarray, classes: Sequence[str]
) -> tuple[np.ndarray, np.ndarray, list[str], list[str], str]:
    """The counts and row fractions of the ``MAX_CLASSES_ANNOTATED`` worst classes, rows and
    columns worst first, and a last column: each row's images predicted as a class not shown;
    the row and column names, and the note that says what is shown.

    Rows are fractions of the true class's test images, all of them, so that a row still sums to
    100%. Only their rows of the (K, K) matrix are copied: memory of O(K).
    """
    shown = worst_first(class_errors(confusion)[2])[:MAX_CLASSES_ANNOTATED]
    rows = confusion[shown]
    totals = rows.sum(axis=1)
    counts = np.empty((shown.size, shown.size + 1), dtype=np.int64)
    counts[:, :-1] = rows[:, shown]
    counts[:, -1] = totals - counts[:, :-1].sum(axis=1)
    fractions = np.full(counts.shape, np.nan)
    np.divide(counts, totals[:, np.newaxis], out=fractions, where=totals[:, np.newaxis] > 0)
    names = [classes[k] for k in shown]
    note = (f"the {shown.size} worst of {len(classes):,} classes (highest test error), worst "
            f"first;\n{_OTHER_CLASSES}: predicted as one of the {len(classes) - shown.size:,} "
            f"classes not shown")
    return counts, fractions, names, [*names, _OTHER_CLASSES], note


def _draw_matrix(
    counts: np.ndarray,
    fractions: np.ndarray,
    row_names: list[str],
    column_names: list[str],
    note: str | None,
    path: Path | str,
    title: str,
) -> None:
    """Draw (R, C) ``counts`` coloured by ``fractions``, rows and columns named, ``note`` (if
    any) above the matrix, and save as PNG; :func:`draw_confusion_matrix` says how it looks."""
    num_rows, num_columns = counts.shape
    page_wide = num_rows <= MAX_CLASSES_ANNOTATED
    if page_wide:
        row_names = [_shortened(name, _MAX_NAME_CHARACTERS) for name in row_names]
        column_names = [_shortened(name, _MAX_NAME_CHARACTERS) for name in column_names]
    # Half an inch a class leaves room for "100%" in each cell; the cap keeps 200 classes in a
    # picture that still opens (about 3,000 pixels square), with smaller names.
    side = float(np.clip(0.5 * num_columns, 4, 28))
    font_size = _label_font_size(side / num_columns)
    longest_name = max((len(name) for name in row_names + column_names), default=1)
    name_margin = longest_name * font_size * _EMS_PER_CHARACTER / 72
    # Digits fit under their column upright; names need a slant, and many names need it steep.
    rotation = 0 if longest_name <= 3 else 45 if num_columns <= MAX_CLASSES_WITH_VALUES else 90
    if page_wide:
        side = min(side, MAX_WIDTH_INCHES - name_margin - _ROOM_BESIDE)
        names_below = name_margin * _SINE[rotation] + 1.5 * font_size / 72
        width = side + name_margin + _ROOM_BESIDE
        height = _matrix_height(side, num_rows, num_columns) + names_below + _ROOM_BELOW_AND_ABOVE
    else:
        width = side + name_margin + _ROOM_BESIDE_LARGE
        height = (_matrix_height(side, num_rows, num_columns) + name_margin
                  + _ROOM_BELOW_AND_ABOVE_LARGE)
    if note is not None:
        height += _NOTE_LINE_INCHES * (note.count("\n") + 1)
    rows = [literal(name) for name in row_names]
    columns = [literal(name) for name in column_names]
    with plain_style():
        figure = new_figure(width, height)
        axes = figure.subplots()
        colours = matplotlib.colormaps[_CONFUSION_COLOURS].with_extremes(bad=_NO_SAMPLES_GREY)
        image = axes.imshow(
            np.ma.masked_invalid(fractions),
            cmap=colours,
            norm=_colour_scale(),
            interpolation="nearest",
        )
        # On a page-wide matrix, under it rather than beside it, where it would take an inch of
        # the page's width.
        colour_bar = figure.colorbar(
            image,
            ax=axes,
            location="bottom" if page_wide else "right",
            aspect=side / 0.18 if page_wide else 20,
            shrink=1 if page_wide else 0.8,
            ticks=_COLOUR_BAR_TICKS,
            format=PercentFormatter(xmax=1),
        )
        # A picture several thousand pixels wide is zoomed into; its titles must still stand out.
        heading = "medium" if page_wide else "xx-large"
        colour_bar.set_label(
            "share of the true class's test images (square-root scale)", fontsize=heading
        )
        colour_bar.ax.tick_params(labelsize="medium" if page_wide else "x-large")
        if rotation:
            axes.set_xticks(np.arange(num_columns), columns, fontsize=font_size,
                            rotation=rotation, ha="right", rotation_mode="anchor")
        else:
            axes.set_xticks(np.arange(num_columns), columns, fontsize=font_size)
        axes.set_yticks(np.arange(num_rows), rows, fontsize=font_size)
        axes.set_xlabel("predicted", fontsize=heading)
        axes.set_ylabel("true", fontsize=heading)
        if page_wide:
            _annotate_cells(axes, counts, fractions, *_cell_style(side / num_columns, font_size))
        elif np.isnan(fractions).any():
            # Rows too thin to say so themselves.
            figure.text(0.01, 0.005, "grey row: no test images of that class", fontsize=heading,
                        ha="left", va="bottom")
        if num_columns > num_rows:
            # The column of the classes not shown is no class: a gap sets it apart.
            axes.axvline(num_rows - 0.5, color="white", linewidth=3)
        if note is not None:
            axes.set_title(note, fontsize="medium")
        figure.suptitle(title, fontsize="large" if page_wide else "xx-large")
        save_figure(figure, path)


def _matrix_height(side: float, num_rows: int, num_columns: int) -> float:
    """Inches the cells take down the page, for square cells ``side`` inches across in all."""
    # A square matrix keeps exactly ``side``: side * n / n may differ from it in the last bit,
    # which would change the picture's size, so its bytes.
    return side if num_rows == num_columns else side * num_rows / num_columns


def _annotate_cells(
    axes, confusion: np.ndarray, fractions: np.ndarray, font_size: float, with_sign: bool
) -> None:
    """Write the percentage in every cell that holds a sample (``with_sign``: followed by "%");
    empty cells stay blank.

    A class with no test images says so across its grey row.
    """
    colours = _text_colours(fractions)
    for row in np.flatnonzero(confusion.sum(axis=1) == 0):
        axes.text((confusion.shape[1] - 1) / 2, row, "no test images", ha="center", va="center",
                  fontsize=font_size, style="italic", color="0.3")
    for row, column in zip(*np.nonzero(confusion)):
        axes.text(
            column,
            row,
            _cell_text(fractions[row, column], with_sign),
            ha="center",
            va="center",
            fontsize=font_size,
            color=colours[row, column],
        )


def worst_first(percent: np.ndarray) -> np.ndarray:
    """Class indices by error rate, highest first; equal rates in class order, and the classes
    without test images (NaN) last, in class order."""
    percent = np.asarray(percent, dtype=np.float64)
    absent = np.isnan(percent)
    # lexsort sorts by its last key first: absent last, then the rate falling, then the index.
    order = np.lexsort((np.arange(percent.size), -np.where(absent, 0, percent), absent))
    return order.astype(np.int64)


def _bar_text(percent: float, wrong: int, total: int) -> str:
    """A rate with its counts, "0.89% (9 of 1,010)"; "0% (0 of 980)" without a mistake."""
    rate = "0%" if wrong == 0 else f"{percent:.2f}%"
    return f"{rate} ({wrong:,} of {total:,})"


def draw_per_class_errors(
    confusion: np.ndarray, classes: Sequence[str], path: Path | str, title: str
) -> None:
    """Draw each class's test error rate as a horizontal bar, the worst at the top, as PNG.

    ``confusion`` is (K, K) counts, rows the true class and columns the predicted one (see
    :func:`numpynet.evaluation.confusion_matrix`); a class's error rate is the share of its test
    images predicted as another class (see :func:`numpynet.evaluation.class_errors`). Bars are in
    :func:`worst_first` order, and the axis runs from 0 to a little past the worst rate, so that
    rates of 0.1% and 1% differ visibly. A class with no test images says so, below the others.
    With at most ``MAX_CLASSES_WITH_VALUES`` classes each bar carries its rate and counts. A
    dashed line marks the mean rate over the classes present; when no class has a mistake the
    picture says so instead. The picture is ``MAX_WIDTH_INCHES`` wide. Past
    ``MAX_CLASSES_DRAWN`` classes only the ``MAX_CLASSES_WITH_VALUES`` worst have bars (with their
    values); the axis names them "the 40 worst of 5,000 classes", and a note under the picture
    gives the range of the others' rates. The mean is still over every class.
    """
    confusion = np.asarray(confusion)
    # As they will be drawn, before any is measured: an escape is wider than its glyph.
    classes = [drawable(name) for name in classes]
    num_classes = len(classes)
    if confusion.shape != (num_classes, num_classes):
        raise ValueError(f"confusion has shape {confusion.shape} for {num_classes} classes")
    wrong, total, percent = class_errors(confusion)
    order = worst_first(percent)
    summary = num_classes > MAX_CLASSES_DRAWN
    if summary:
        order = order[:MAX_CLASSES_WITH_VALUES]
    num_bars = order.size
    present = ~np.isnan(percent)
    worst = float(percent[present].max()) if present.any() else 0.0
    # A little past the worst bar, so it does not touch the frame; 0 to 1% with nothing to show.
    right = 1.08 * worst if worst > 0 else 1.0
    # A third of an inch a bar; 200 classes would need 67 inches, so thinner bars past a cap.
    height = float(np.clip(0.3 * num_bars, 2, 30))
    font_size = _label_font_size(height / num_bars)
    # Row r from the top shows class order[r].
    rows = np.arange(num_bars)
    drawn = present[order]
    with plain_style():
        figure = new_figure(MAX_WIDTH_INCHES, height + 1.4 + (_NOTE_LINE_INCHES if summary else 0))
        axes = figure.subplots()
        axes.barh(rows[drawn], percent[order[drawn]], height=0.7, color=_BAR_COLOUR)
        for row in rows[~drawn]:
            # At the axis' left end whatever its scale: x in axes fractions, y in rows.
            axes.text(0.01, row, "no test images", transform=axes.get_yaxis_transform(),
                      va="center", fontsize=font_size, style="italic", color="0.4")
        if num_bars <= MAX_CLASSES_WITH_VALUES:
            for row, k in zip(rows[drawn], order[drawn]):
                _write_bar_value(axes, row, percent[k], _bar_text(percent[k], wrong[k], total[k]),
                                 right, font_size)
        if worst > 0:
            mean = float(percent[present].mean())
            if summary:
                over = (f"all {num_classes:,} classes" if present.all() else
                        f"the {present.sum():,} classes with test images")
            else:
                over = ("classes" if present.all() else
                        f"the {present.sum()} classes with test images")
            axes.axvline(mean, color=_MEAN_COLOUR, linestyle="--", linewidth=1.2)
            # Said in the axes' title, which matplotlib keeps clear of the ticks at the top.
            # Flush right: the layout makes room above a title but not beside it, and long class
            # names leave the axes narrower than the figure.
            axes.set_title(f"dashed line: mean over {over}, {mean:.2f}%", color=_MEAN_COLOUR,
                           fontsize="medium", loc="right")
        elif present.any():
            # A mean line at 0 would hide in the frame.
            axes.set_title("no mistakes: every test image classified correctly", fontsize="medium",
                           loc="right")
        axes.set_yticks(rows, [literal(classes[k]) for k in order], fontsize=font_size)
        axes.set_ylim(num_bars - 0.5, -0.5)
        axes.set_xlim(0, right)
        axes.set_xlabel("test error (%)")
        if num_bars > MAX_CLASSES_WITH_VALUES:
            # A tall picture: the scale at the top too, where reading starts.
            axes.tick_params(axis="x", top=True, labeltop=True)
        if summary:
            axes.set_ylabel(f"the {num_bars} worst of {num_classes:,} classes, worst first")
            figure.supxlabel(_not_shown_note(percent, order), fontsize="small")
        else:
            axes.set_ylabel("class, worst first")
        axes.grid(axis="x", alpha=0.3)
        axes.set_axisbelow(True)
        figure.suptitle(title)
        save_figure(figure, path)


def _not_shown_note(percent: np.ndarray, shown: np.ndarray) -> str:
    """What a picture of the classes ``shown`` leaves out: how many others, their range of error
    rates, and how many of them have no test images."""
    hidden = np.ones(percent.size, dtype=bool)
    hidden[shown] = False
    rates = percent[hidden]
    absent = int(np.isnan(rates).sum())
    rates = rates[~np.isnan(rates)]
    note = f"not shown: the other {hidden.sum():,} classes"
    if rates.size:
        note += f", test error {_rate(rates.min())} to {_rate(rates.max())}"
    if absent:
        note += f"; {absent:,} of them without test images"
    return note


def _rate(percent: float) -> str:
    """A rate as the bars give it: "0%", else two decimals."""
    return "0%" if percent == 0 else f"{percent:.2f}%"


def _write_bar_value(
    axes, row: int, value: float, text: str, right: float, font_size: float
) -> None:
    """``text`` at the end of the bar of ``value``: inside a bar longer than half the axis
    (white), just past a shorter one, so that it stays within the axis (a rate with its counts
    takes under half of it). Behind it, the bar's colour or white keeps the mean line from
    crossing the digits.
    """
    inside = value > right / 2
    axes.annotate(
        text,
        (value, row),
        xytext=(-4 if inside else 4, 0),
        textcoords="offset points",
        ha="right" if inside else "left",
        va="center",
        fontsize=font_size,
        color="white" if inside else "black",
        bbox=dict(facecolor=_BAR_COLOUR if inside else "white", edgecolor="none", pad=0.5),
    )
