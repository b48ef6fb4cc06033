"""The test images a model got wrong while most sure of itself, shown in a grid."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import numpy as np

from numpynet.pictures.png import literal, new_figure, plain_style, save_figure

COLUMNS = 5

# Inches for one image and its two-line title; cells widen for long class names, up to a cap.
_CELL_HEIGHT = 2.5
_CELL_WIDTHS = (2.0, 3.2)
# The average width of a title character at the titles' 9 points, and the space beside a title.
_INCHES_PER_CHARACTER = 0.068
_CELL_PADDING = 0.3


def most_confident_mistakes(
    probabilities: np.ndarray, labels: np.ndarray, count: int
) -> np.ndarray:
    """Indices of up to ``count`` misclassified samples, the most confident first.

    ``probabilities`` is (N, K), ``labels`` (N,). A sample is misclassified when its most
    probable class (the first, on a tie, as ``argmax`` picks) is not its label; its confidence
    is that class's probability. Equal confidences keep index order, so the answer is the same
    on every run. Fewer than ``count`` come back when there are fewer mistakes.
    """
    if count < 0:
        raise ValueError(f"count must be >= 0, got {count}")
    probabilities = np.asarray(probabilities)
    labels = np.asarray(labels)
    predictions = probabilities.argmax(axis=1)
    mistakes = np.flatnonzero(predictions != labels)
    confidence = probabilities[mistakes, predictions[mistakes]]
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


def _shortened(name: str, width: int) -> str:
    """``name``, cut to ``width`` characters with an ellipsis so it stays over its own image."""
    return name if len(name) <= width else name[: max(width - 1, 1)] + "\u2026"


def _title(true_name: str, predicted_name: str, confidence: float, width: int) -> str:
    """"true: X" over "predicted: Y (97%)", names cut so that no line exceeds ``width``."""
    certainty = f" ({_confidence_text(confidence)})"
    predicted_room = width - len("predicted: ") - len(certainty)
    return (
        f"true: {_shortened(true_name, width - len('true: '))}\n"
        f"predicted: {_shortened(predicted_name, predicted_room)}{certainty}"
    )


def _titles(labels, predictions, confidences, classes: Sequence[str]) -> tuple[list[str], float]:
    """Each image's title and the cell width (inches) that holds the longest, within the cap."""
    names = [
        (classes[int(label)], classes[int(predicted)], float(confidence))
        for label, predicted, confidence in zip(labels, predictions, confidences)
    ]
    longest = max(len(line) for parts in names for line in _title(*parts, 10**6).splitlines())
    low, high = _CELL_WIDTHS
    cell_width = float(np.clip(longest * _INCHES_PER_CHARACTER + _CELL_PADDING, low, high))
    characters = int((cell_width - _CELL_PADDING) / _INCHES_PER_CHARACTER)
    return [_title(*parts, characters) for parts in names], cell_width


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
    smoothed, so what is shown is what the model saw. With no images, the picture says so.
    """
    classes = [literal(name) for name in classes]
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
        titles, cell_width = _titles(labels, predictions, confidences, classes)
        columns = min(COLUMNS, count)
        rows = math.ceil(count / columns)
        figure = new_figure(columns * cell_width, rows * _CELL_HEIGHT + 0.5)
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
            axes.set_title(titles[index], fontsize=9)
        figure.suptitle(title)
        figure.supxlabel("(n%): the probability the model gave its prediction", fontsize="small")
        save_figure(figure, path)
