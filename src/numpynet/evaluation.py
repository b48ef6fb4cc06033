"""Scoring a trained model: loss, accuracy, per-class accuracy and the confusion matrix; and
checking first that the model and the data belong together."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from numpynet.errors import DataFormatError
from numpynet.nn.loss import log_softmax
from numpynet.portable_math import exp
from numpynet.training.augment import flip_horizontally

if TYPE_CHECKING:
    from numpynet.model_folder import SavedModel
    from numpynet.records import ProcessedMeta


def predict_logits(
    model, images: np.ndarray, batch_size: int, test_time_flip: bool = False
) -> np.ndarray:
    """Logits for every image (N, H, W, C), computed in batches in inference mode (no dropout).

    With ``test_time_flip``, each image's logits are the mean of its own and its mirror image's:
    for a model trained on mirrored images, two views of one image vote.
    """
    chunks = []
    # Damaged or huge weights overflow here; NumPy's warning would come before, and say less
    # than, the message of the check every caller makes of the logits (check_finite_outputs,
    # or a loss that must be finite).
    with np.errstate(over="ignore", invalid="ignore"):
        for start in range(0, images.shape[0], batch_size):
            batch = np.asarray(images[start : start + batch_size])
            logits = model.forward(batch, training=False)
            if test_time_flip:
                logits += model.forward(flip_horizontally(batch), training=False)
                logits *= 0.5
            chunks.append(logits)
    return np.concatenate(chunks) if chunks else np.empty((0, 0), dtype=np.float32)


# Rows of logits turned into probabilities at a time: about a million values, so that the
# temporaries of the portable exp and log (a dozen arrays of the block's size, in float64) stay
# near 100 MiB whatever the number of classes. Each row is computed on its own, so the values
# are those of the whole matrix at once, to the bit.
_VALUES_PER_BLOCK = 1 << 20


def _row_blocks(rows: int, columns: int):
    """``slice``s of at most ``_VALUES_PER_BLOCK // columns`` rows (one at least), covering
    ``rows``."""
    step = max(1, _VALUES_PER_BLOCK // max(columns, 1))
    for start in range(0, rows, step):
        yield slice(start, min(start + step, rows))


def loss_and_accuracy(logits: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """Mean cross-entropy and the fraction of correct top-1 predictions."""
    picked = np.empty(labels.shape[0], dtype=np.float64)
    for rows in _row_blocks(*logits.shape):
        log_probs = log_softmax(logits[rows].astype(np.float64))
        picked[rows] = log_probs[np.arange(log_probs.shape[0]), labels[rows]]
    loss = -picked.mean()
    accuracy = np.mean(logits.argmax(axis=1) == labels)
    return float(loss), float(accuracy)


def top_predictions(logits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each row's most probable class (the first, on a tie, as ``argmax`` picks) and that class's
    probability (softmax of the logits, in their dtype): (N,) int64 and (N,).

    Computed a block of rows at a time, so that N x K probabilities are never held at once.
    """
    predictions = np.empty(logits.shape[0], dtype=np.int64)
    confidences = np.empty(logits.shape[0], dtype=logits.dtype)
    for rows in _row_blocks(*logits.shape):
        probabilities = exp(log_softmax(logits[rows]))
        predictions[rows] = probabilities.argmax(axis=1)
        confidences[rows] = probabilities[np.arange(probabilities.shape[0]), predictions[rows]]
    return predictions, confidences


def evaluate_model(
    model, images: np.ndarray, labels: np.ndarray, batch_size: int
) -> tuple[float, float]:
    """Loss and accuracy of ``model`` on a labelled set."""
    return loss_and_accuracy(predict_logits(model, images, batch_size), labels)


def confusion_matrix(labels: np.ndarray, predictions: np.ndarray, num_classes: int) -> np.ndarray:
    """Counts with true classes as rows and predicted classes as columns."""
    flat = labels.astype(np.int64) * num_classes + predictions.astype(np.int64)
    return np.bincount(flat, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def class_errors(confusion: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each class's test images predicted as another class, its test images, and its error rate
    in percent (100 minus the recall; NaN for a class with no test images).

    ``confusion`` is (K, K) counts, rows the true class and columns the predicted one.
    """
    confusion = np.asarray(confusion)
    total = confusion.sum(axis=1)
    wrong = total - np.diagonal(confusion)
    percent = np.full(total.shape, np.nan)
    # Counts over counts rather than 1 - recall: 9 of 1,010 reads back as exactly 0.89%.
    np.divide(100 * wrong, total, out=percent, where=total > 0)
    return wrong, total, percent


def _listed(classes) -> str:
    shown = ", ".join(repr(c) for c in list(classes)[:5])
    return f"[{shown}{', ...' if len(classes) > 5 else ''}]"


def check_model_fits_data(
    model_dir: Path | str, saved: SavedModel, data_dir: Path | str, meta: ProcessedMeta
) -> None:
    """Raise :class:`DataFormatError` naming both sides when the model saved in ``model_dir``
    does not take the dataset in ``data_dir`` (``meta``): another input size, image shape, class
    count, class names or standardization. Scoring it anyway would fail deep in a matrix product,
    or worse, give a number that means nothing. A model saved without ``dataset.json`` is checked
    on its architecture alone."""
    config, record = saved.config, saved.dataset
    values = math.prod(meta.image_shape)
    differ = []
    if config.input_size != values or (record and record.image_shape != meta.image_shape):
        differ.append("input shape")
    if config.num_classes != len(meta.classes):
        differ.append("number of classes")
    elif record and record.classes != meta.classes:
        differ.append("class names")
    if record and (record.mean, record.std) != (meta.mean, meta.std):
        differ.append("standardization (mean, std)")
    if not differ:
        return
    takes = f"{'x'.join(map(str, record.image_shape))} images, " if record else ""
    names = f" {_listed(record.classes)}" if record else ""
    scaled = ""
    if differ[-1].startswith("standardization"):
        scaled = (f"; the model's inputs were standardized with mean {record.mean}, std "
                  f"{record.std}, the data's with mean {meta.mean}, std {meta.std}")
    verb = "differ" if len(differ) > 1 else "differs"
    raise DataFormatError(
        f"the model in {model_dir} does not fit the data in {data_dir} ({', '.join(differ)} "
        f"{verb}): the model takes {takes}{config.input_size} values and tells "
        f"{config.num_classes} classes{names}; the data holds "
        f"{'x'.join(map(str, meta.image_shape))} images, {values} values, of "
        f"{len(meta.classes)} classes {_listed(meta.classes)}{scaled}; pass the model trained "
        f"on this data, or retrain it (dvc repro train@{Path(data_dir).name})"
    )


def check_finite_outputs(logits: np.ndarray, model_dir: Path | str, data: Path | str) -> None:
    """Raise :class:`DataFormatError` when the model's outputs hold NaN or infinity: finite
    weights and inputs give finite logits unless the weights are absurdly large."""
    if not np.isfinite(logits).all():
        raise DataFormatError(
            f"the model in {model_dir} computes NaN or infinite outputs on {data}: its weights "
            f"are damaged or far too large; rerun the train stage (dvc repro)"
        )
