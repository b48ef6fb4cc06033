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


class SoftmaxCrossEntropy:
    """Mean cross-entropy between ``softmax(logits)`` and integer class labels.

    Fusing softmax with the loss avoids computing ``log`` of tiny probabilities and gives the
    gradient ``(softmax - onehot) / N`` directly.
    """

    def __init__(self):
        self._probs = None
        self._labels = None

    def forward(self, logits: np.ndarray, labels: np.ndarray) -> float:
        """Return the batch-mean cross-entropy of ``logits`` (N, C) and ``labels`` (N,) ints.

        Labels are trusted to lie in [0, C): the data pipeline checks them once, when it reads
        the files.
        """
        # Not a data check but a guard against a wrong call: labels of shape (1,) or (N, 1)
        # would broadcast against the row indices and give a plausible but wrong loss.
        if logits.ndim != 2 or labels.shape != logits.shape[:1]:
            raise ValueError(
                f"expected logits (N, C) and labels (N,), got {logits.shape} and {labels.shape}"
            )
        log_probs = log_softmax(logits)
        rows = np.arange(logits.shape[0])
        # Accumulate the mean in float64: a float32 sum over a large batch loses digits.
        loss = -np.mean(log_probs[rows, labels], dtype=np.float64)
        self._probs = np.exp(log_probs, out=log_probs)
        self._labels = labels
        return float(loss)

    def backward(self) -> np.ndarray:
        """Return ``(softmax(logits) - onehot(labels)) / N``, (N, C) in the logits' dtype."""
        if self._probs is None:
            raise RuntimeError("SoftmaxCrossEntropy.backward() called before forward()")
        grad = self._probs.copy()
        batch_size = grad.shape[0]
        grad[np.arange(batch_size), self._labels] -= 1
        grad /= batch_size
        return grad
