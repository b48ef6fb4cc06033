"""Scoring a trained model: loss, accuracy, per-class accuracy and the confusion matrix."""

from __future__ import annotations

import numpy as np

from numpynet.augment import flip_horizontally
from numpynet.nn.loss import log_softmax


def predict_logits(
    model, images: np.ndarray, batch_size: int, test_time_flip: bool = False
) -> np.ndarray:
    """Logits for every image (N, H, W, C), computed in batches in inference mode (no dropout).

    With ``test_time_flip``, each image's logits are the mean of its own and its mirror image's:
    for a model trained on mirrored images, two views of one image vote.
    """
    chunks = []
    for start in range(0, images.shape[0], batch_size):
        batch = np.asarray(images[start : start + batch_size])
        logits = model.forward(batch, training=False)
        if test_time_flip:
            logits += model.forward(flip_horizontally(batch), training=False)
            logits *= 0.5
        chunks.append(logits)
    return np.concatenate(chunks) if chunks else np.empty((0, 0), dtype=np.float32)


def loss_and_accuracy(logits: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """Mean cross-entropy and the fraction of correct top-1 predictions."""
    log_probs = log_softmax(logits.astype(np.float64))
    loss = -log_probs[np.arange(labels.shape[0]), labels].mean()
    accuracy = np.mean(logits.argmax(axis=1) == labels)
    return float(loss), float(accuracy)


def evaluate_model(model, images: np.ndarray, labels: np.ndarray, batch_size: int) -> tuple[float, float]:
    """Loss and accuracy of ``model`` on a labelled set."""
    return loss_and_accuracy(predict_logits(model, images, batch_size), labels)


def confusion_matrix(labels: np.ndarray, predictions: np.ndarray, num_classes: int) -> np.ndarray:
    """Counts with true classes as rows and predicted classes as columns."""
    flat = labels.astype(np.int64) * num_classes + predictions.astype(np.int64)
    return np.bincount(flat, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def per_class_accuracy(confusion: np.ndarray) -> np.ndarray:
    """Recall of each class (diagonal over row sums); NaN for a class with no samples."""
    totals = confusion.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.diag(confusion) / totals
