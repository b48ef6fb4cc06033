"""The test images a model got wrong while most sure of itself, shown in a grid."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import numpy as np
from matplotlib.font_manager import FontProperties
from matplotlib.textpath import text_to_path

from numpynet.pictures.png import (
    MAX_WIDTH_INCHES,
    drawable,
    literal,
    new_figure,
    plain_style,
    save_figure,
)

COLUMNS = 5

# (columns, lines of a title), the most compact first: the first whose cells, splitting the
# page's width (MAX_WIDTH_INCHES), hold every title whole is used, or else the last, which cuts
# long names. A third line puts the confidence under the predicted name, whose line then has the
# cell's whole width.
_LAYOUTS = ((COLUMNS, 2), (COLUMNS - 1, 2), (COLUMNS - 1, 3))
# The titles' size in points, the inches kept between two titles, and the height of a line.
_TITLE_POINTS = 8
_CELL_PADDING = 0.12
_LINE_HEIGHT = 0.15


def most_confident_mistakes(
    predictions: np.ndarray, confidences: np.ndarray, labels: np.ndarray, count: int
) -> np.ndarray:
    """Indices of up to ``count`` misclassified samples, the most confident first.

    ``predictions``, ``confidences`` and ``labels`` are (N,): each sample's most probable class,
    that class's probability, and its true class (see
    :func:`numpynet.evaluation.top_predictions`). A sample is misclassified when its prediction is
    not its label. Equal confidences keep index order, so the answer is the same on every run.
    Fewer than ``count`` come back when there are fewer mistakes.
    """
    if count < 0:
        raise ValueError(f"count must be >= 0, got {count}")
    predictions = np.asarray(predictions)
    labels = np.asarray(labels)
    mistakes = np.flatnonzero(predictions != labels)
    confidence = np.asarray(confidences)[mistakes]
    # lexsort sorts by its last key first: confidence descending, then index ascending.
    order = np.lexsort((mistakes, -confidence))
    return mistakes[order[:count]].astype(np.int64)


def displayable(images: np.ndarray, mean, std) -> np.ndarray:
    """Undo per-channel standardization: ``images * std + mean``, clipped to 0..1, as float32.

    ``images`` is (N, H, W, C) standardized data; ``mean`` and ``std`` are the (C,) statistics
    (on a 0..1 scale) that standardized it.
    """
    mean = np.asarray(mean, dtype=np.float32)
    std = np.asarray(std, dtype=np.float32)
    restored = np.asarray(images, dtype=np.float32) * std + mean
    # Clipping also absorbs the rounding that can push a black or white pixel just past 0 or 1.
    return np.clip(restored, 0.0, 1.0, out=restored)


def _inches(line: str) -> float:
    """How wide ``line`` is, in inches, in the titles' size and the font in force (its glyphs'
    advances, as laid out; taken as written, not as a formula)."""
    font = FontProperties(size=_TITLE_POINTS)
    return text_to_path.get_text_width_height_descent(line, font, ismath=False)[0] / 72


def _fitted(prefix: str, name: str, suffix: str, room: float) -> str:
    """``prefix + name + suffix``, the name cut with an ellipsis until the line is at most
    ``room`` inches wide, so that it stays over its own image (one character of it stays)."""
    line, kept = prefix + name + suffix, len(name)
    while kept > 1 and _inches(line) > room:
        kept -= 1
        line = f"{prefix}{name[:kept]}\u2026{suffix}"
    return line


def _title(
    true_name: str, predicted_name: str, confidence: float, room: float, lines: int = 2
) -> str:
    """"true: X" over "predicted: Y (97%)", names cut so that no line is wider than ``room``
    inches; with three ``lines``, the "(97%)" on the third."""
    certainty = f"({_confidence_text(confidence)})"
    true_line = _fitted("true: ", true_name, "", room)
    if lines == 2:
        return f"{true_line}\n{_fitted('predicted: ', predicted_name, ' ' + certainty, room)}"
    return f"{true_line}\n{_fitted('predicted: ', predicted_name, '', room)}\n{certainty}"


def _titles(
    labels, predictions, confidences, classes: Sequence[str]
) -> tuple[list[str], int, int]:
    """Each image's title, as written, in the first of ``_LAYOUTS`` that holds them whole (or the
    last); with its columns and lines."""
    # Escaped before they are measured: an escape is wider than the glyph it stands for.
    names = [
        (drawable(classes[int(label)]), drawable(classes[int(predicted)]), float(confidence))
        for label, predicted, confidence in zip(labels, predictions, confidences)
    ]
    # Measured in the font the picture is drawn in, whatever a matplotlibrc says.
    with plain_style():
        for columns, lines in _LAYOUTS:
            room = MAX_WIDTH_INCHES / columns - _CELL_PADDING
            titles = [_title(*parts, math.inf, lines) for parts in names]
            if all(_inches(line) <= room for title in titles for line in title.splitlines()):
                break
        else:
            titles = [_title(*parts, room, lines) for parts in names]
    # Escaped after the cut, which may not split an escape.
    return [literal(title) for title in titles], columns, lines


def _confidence_text(confidence: float) -> str:
    """Whole percents, but never "100%" for a probability that is not 1."""
    percent = 100 * confidence
    if percent >= 99.5 and confidence < 1:
        return f"{math.floor(10 * percent) / 10:.1f}%"
    return f"{percent:.0f}%"


def draw_mistakes(
    images: np.ndarray,
    labels: np.ndarray,
    predictions: np.ndarray,
    confidences: np.ndarray,
    classes: Sequence[str],
    path: Path | str,
    title: str,
) -> None:
    """Draw misclassified images in a grid, each with its true and predicted class, as PNG.

    ``images`` is (N, H, W, C) with values in 0..1 and C 1 (shown in grey) or 3 (colour), as
    :func:`displayable` gives; ``labels``, ``predictions`` (N,) class indices into ``classes``;
    ``confidences`` (N,) the predicted class's probability. Pixels are drawn as squares, not
    smoothed, so what is shown is what the model saw. With no images, the picture says so. The
    picture is at most ``MAX_WIDTH_INCHES`` wide: five images a row, or four where titles need
    the room (see ``_LAYOUTS``).
    """
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] not in (1, 3):
        raise ValueError(f"images must be (N, H, W, 1 or 3), got shape {images.shape}")
    count = images.shape[0]
    with plain_style():
        if count == 0:
            figure = new_figure(5, 1.6)
            figure.text(0.5, 0.4, "no misclassified test images", ha="center", va="center",
                        fontsize="large")
            figure.suptitle(title)
            save_figure(figure, path)
            return
        titles, columns, lines = _titles(labels, predictions, confidences, classes)
        # A square image as wide as the cell, under its title.
        cell_height = MAX_WIDTH_INCHES / columns + lines * _LINE_HEIGHT
        columns = min(columns, count)
        rows = math.ceil(count / columns)
        # The page's width even for a few images, which then stand further apart: the title and
        # the note under the images need it.
        figure = new_figure(MAX_WIDTH_INCHES, rows * cell_height + 0.5)
        grid = figure.subplots(rows, columns, squeeze=False)
        for index, axes in enumerate(grid.flat):
            if index >= count:
                axes.set_axis_off()
                continue
            # No ticks, but the frame stays: it outlines an image with a white background.
            axes.set_xticks([])
            axes.set_yticks([])
            picture = np.clip(images[index], 0.0, 1.0)
            if picture.shape[-1] == 1:
                axes.imshow(picture[..., 0], cmap="gray", vmin=0, vmax=1, interpolation="nearest")
            else:
                axes.imshow(picture, interpolation="nearest")
            axes.set_title(titles[index], fontsize=_TITLE_POINTS)
        figure.suptitle(title)
        figure.supxlabel("(n%): the probability the model gave its prediction", fontsize="small")
        save_figure(figure, path)
