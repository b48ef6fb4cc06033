"""Softmax cross-entropy, fused so the gradient is the simple ``softmax - onehot``."""

from __future__ import annotations

import numpy as np


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """Return ``log(softmax(logits))`` along the last axis, stable for very large logits.

    Subtracting the row maximum before exponentiating keeps every ``exp`` argument <= 0, so
    nothing overflows, and at least one term of each sum is exactly 1, so the log never sees 0.
    """
    shifted = logits - np.max(logits, axis=-1, keepdims=True)
    return shifted - np.log(np.sum(np.exp(shifted), axis=-1, keepdims=True))


def _check_batch(logits: np.ndarray, labels: np.ndarray) -> None:
    if logits.ndim != 2:
        raise ValueError(f"logits must have shape (N, num_classes), got {logits.shape}")
    if labels.ndim != 1 or labels.shape[0] != logits.shape[0]:
        raise ValueError(
            f"labels must have shape ({logits.shape[0]},) to match logits {logits.shape}, "
            f"got {labels.shape}"
        )
    if not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"labels must be integer class indices, got dtype {labels.dtype}")
    if labels.size and (labels.min() < 0 or labels.max() >= logits.shape[1]):
        raise ValueError(
            f"labels must lie in [0, {logits.shape[1]}), got range "
            f"[{labels.min()}, {labels.max()}]"
        )


class SoftmaxCrossEntropy:
    """Mean cross-entropy between ``softmax(logits)`` and integer class labels.

    Fusing softmax with the loss avoids computing ``log`` of tiny probabilities and gives the
    gradient ``(softmax - onehot) / N`` directly.
    """

    def __init__(self):
        self._probs = None
        self._labels = None

    def forward(self, logits: np.ndarray, labels: np.ndarray) -> float:
        """Return the batch-mean cross-entropy as a Python float and cache the softmax."""
        labels = np.asarray(labels)
        _check_batch(logits, labels)
        if logits.shape[0] == 0:
            raise ValueError("cannot compute the loss of an empty batch")
        log_probs = log_softmax(logits)
        rows = np.arange(logits.shape[0])
        # Accumulate the mean in float64: a float32 sum over a large batch loses digits.
        loss = -np.mean(log_probs[rows, labels], dtype=np.float64)
        self._probs = np.exp(log_probs, out=log_probs)
        self._labels = labels
        return float(loss)

    def backward(self) -> np.ndarray:
        """Return ``(softmax(logits) - onehot(labels)) / N`` in the logits' dtype."""
        if self._probs is None:
            raise RuntimeError("SoftmaxCrossEntropy.backward() called before forward()")
        grad = self._probs.copy()
        batch_size = grad.shape[0]
        grad[np.arange(batch_size), self._labels] -= 1
        grad /= batch_size
        return grad
