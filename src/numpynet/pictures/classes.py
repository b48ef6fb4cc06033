"""Per-class pictures of a test set: the confusion matrix and each class's accuracy."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import matplotlib
import numpy as np
from matplotlib.colors import PowerNorm
from matplotlib.ticker import PercentFormatter

from numpynet.pictures.png import literal, new_figure, plain_style, save_figure

# Cell annotations and bar-end values are readable only up to these many classes.
MAX_CLASSES_ANNOTATED = 20
MAX_CLASSES_WITH_VALUES = 40

_CONFUSION_COLOURS = "Blues"
_BAR_COLOUR = "tab:blue"
_MEAN_COLOUR = "tab:red"
_NO_SAMPLES_GREY = "0.85"
_COLOUR_BAR_TICKS = (0, 0.01, 0.05, 0.1, 0.25, 0.5, 0.75, 1)


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


def _cell_text(fraction: float) -> str:
    """A percentage short enough for a cell: whole percents, one decimal below 10%."""
    percent = 100 * fraction
    return f"{percent:.0f}%" if percent >= 9.5 else f"{percent:.1f}%"


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


def draw_confusion_matrix(
    confusion: np.ndarray, classes: Sequence[str], path: Path | str, title: str
) -> None:
    """Draw the confusion matrix with each true class's row as fractions of it, and save as PNG.

    ``confusion`` is (K, K) counts, rows the true class and columns the predicted one (see
    :func:`numpynet.evaluation.confusion_matrix`). Rows are normalized so that classes of
    different sizes compare; a class with no test images keeps a grey row. Cells carry their
    percentage when there are at most ``MAX_CLASSES_ANNOTATED`` classes.
    """
    classes = [literal(name) for name in classes]
    confusion = np.asarray(confusion)
    num_classes = len(classes)
    if confusion.shape != (num_classes, num_classes):
        raise ValueError(f"confusion has shape {confusion.shape} for {num_classes} classes")
    fractions = _row_fractions(confusion)
    # Half an inch a class leaves room for "100%" in each cell; the cap keeps 200 classes in a
    # picture that still opens (about 3,000 pixels square), with smaller names.
    side = float(np.clip(0.5 * num_classes, 4, 28))
    font_size = _label_font_size(side / num_classes)
    longest_name = max((len(name) for name in classes), default=1)
    name_margin = longest_name * font_size * 0.6 / 72
    with plain_style():
        figure = new_figure(side + name_margin + 2.2, side + name_margin + 0.8)
        axes = figure.subplots()
        colours = matplotlib.colormaps[_CONFUSION_COLOURS].with_extremes(bad=_NO_SAMPLES_GREY)
        image = axes.imshow(
            np.ma.masked_invalid(fractions),
            cmap=colours,
            norm=_colour_scale(),
            interpolation="nearest",
        )
        colour_bar = figure.colorbar(
            image, ax=axes, shrink=0.8, ticks=_COLOUR_BAR_TICKS, format=PercentFormatter(xmax=1)
        )
        # A picture several thousand pixels wide is zoomed into; its titles must still stand out.
        heading = "medium" if side <= 10 else "xx-large"
        colour_bar.set_label(
            "share of the true class's test images (square-root scale)", fontsize=heading
        )
        colour_bar.ax.tick_params(labelsize="medium" if side <= 10 else "x-large")
        ticks = np.arange(num_classes)
        # Digits fit under their column upright; names need a slant, and many names need it steep.
        if longest_name <= 3:
            axes.set_xticks(ticks, classes, fontsize=font_size)
        else:
            rotation = 45 if num_classes <= MAX_CLASSES_WITH_VALUES else 90
            axes.set_xticks(ticks, classes, fontsize=font_size, rotation=rotation, ha="right",
                            rotation_mode="anchor")
        axes.set_yticks(ticks, classes, fontsize=font_size)
        axes.set_xlabel("predicted", fontsize=heading)
        axes.set_ylabel("true", fontsize=heading)
        if num_classes <= MAX_CLASSES_ANNOTATED:
            _annotate_cells(axes, confusion, fractions, font_size)
        elif np.isnan(fractions).any():
            # Rows too thin to say so themselves.
            figure.text(0.01, 0.005, "grey row: no test images of that class", fontsize=heading,
                        ha="left", va="bottom")
        figure.suptitle(title, fontsize="large" if side <= 10 else "xx-large")
        save_figure(figure, path)


def _annotate_cells(axes, confusion: np.ndarray, fractions: np.ndarray, font_size: float) -> None:
    """Write the percentage in every cell that holds a sample; empty cells stay blank.

    A class with no test images says so across its grey row.
    """
    colours = _text_colours(fractions)
    for row in np.flatnonzero(confusion.sum(axis=1) == 0):
        axes.text((len(confusion) - 1) / 2, row, "no test images", ha="center", va="center",
                  fontsize=font_size, style="italic", color="0.3")
    for row, column in zip(*np.nonzero(confusion)):
        axes.text(
            column,
            row,
            _cell_text(fractions[row, column]),
            ha="center",
            va="center",
            fontsize=font_size,
            color=colours[row, column],
        )


def draw_per_class_accuracy(
    accuracy: np.ndarray, classes: Sequence[str], path: Path | str, title: str
) -> None:
    """Draw one horizontal bar per class, in class order from the top, and save as PNG.

    ``accuracy`` is (K,) fractions with NaN for a class absent from the test set (see
    :func:`numpynet.evaluation.per_class_accuracy`); such a class says "no test images" instead
    of showing a bar. A vertical line marks the mean over the classes present.
    """
    classes = [literal(name) for name in classes]
    accuracy = np.asarray(accuracy, dtype=np.float64)
    num_classes = len(classes)
    if accuracy.shape != (num_classes,):
        raise ValueError(f"accuracy has shape {accuracy.shape} for {num_classes} classes")
    percent = 100 * accuracy
    present = ~np.isnan(percent)
    # A third of an inch a bar; 200 classes would need 67 inches, so thinner bars past a cap.
    height = float(np.clip(0.3 * num_classes, 2, 30))
    font_size = _label_font_size(height / num_classes)
    positions = np.arange(num_classes)
    with plain_style():
        figure = new_figure(8, height + 1.4)
        axes = figure.subplots()
        axes.barh(positions[present], percent[present], height=0.7, color=_BAR_COLOUR)
        for position in positions[~present]:
            axes.text(1, position, "no test images", va="center", fontsize=font_size,
                      style="italic", color="0.4")
        if num_classes <= MAX_CLASSES_WITH_VALUES:
            _write_bar_values(axes, positions[present], percent[present], font_size)
        if present.any():
            mean = float(percent[present].mean())
            over = "classes" if present.all() else f"the {present.sum()} classes with test images"
            axes.axvline(mean, color=_MEAN_COLOUR, linestyle="--", linewidth=1.2)
            # Said in the axes' title, which matplotlib keeps clear of the ticks at the top.
            axes.set_title(f"dashed line: mean over {over}, {mean:.1f}%", color=_MEAN_COLOUR,
                           fontsize="medium")
        axes.set_yticks(positions, classes, fontsize=font_size)
        # Class 0 at the top, as in the confusion matrix and in reading order.
        axes.set_ylim(num_classes - 0.5, -0.5)
        axes.set_xlim(0, 100)
        axes.set_xlabel("test accuracy (%)")
        if num_classes > MAX_CLASSES_WITH_VALUES:
            # A tall picture: the scale at the top too, where reading starts.
            axes.tick_params(axis="x", top=True, labeltop=True)
        axes.set_ylabel("class")
        axes.grid(axis="x", alpha=0.3)
        axes.set_axisbelow(True)
        figure.suptitle(title)
        save_figure(figure, path)


def _write_bar_values(axes, positions: np.ndarray, percent: np.ndarray, font_size: float) -> None:
    """Each bar's value at its end: inside a long bar (white), just past a short one."""
    for position, value in zip(positions, percent):
        inside = value > 15
        axes.text(
            value - 1 if inside else value + 1,
            position,
            f"{value:.1f}%",
            ha="right" if inside else "left",
            va="center",
            fontsize=font_size,
            color="white" if inside else "black",
            # The bar's colour behind the text keeps the mean line from crossing the digits.
            bbox=dict(facecolor=_BAR_COLOUR, edgecolor="none", pad=0.5) if inside else None,
        )
