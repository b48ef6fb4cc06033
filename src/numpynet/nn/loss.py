"""Softmax cross-entropy, fused so the gradient is the simple ``softmax - target``."""

from __future__ import annotations

import numpy as np

from numpynet.portable_math import exp, log


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """Return ``log(softmax(logits))`` along the last axis, stable for very large logits.

    Subtracting the row maximum before exponentiating keeps every ``exp`` argument <= 0, so
    nothing overflows, and at least one term of each sum is exactly 1, so the log never sees 0.
    ``exp`` and ``log`` are :mod:`numpynet.portable_math`'s: the same bits on every machine.
    """
    shifted = logits - np.max(logits, axis=-1, keepdims=True)
    return shifted - log(np.sum(exp(shifted), axis=-1, keepdims=True))


class SoftmaxCrossEntropy:
    """Mean cross-entropy between ``softmax(logits)`` and integer class labels.

    Fusing softmax with the loss avoids computing ``log`` of tiny probabilities and gives the
    gradient ``(softmax - target) / N`` directly.

    With ``label_smoothing`` ε the target of a sample is ``(1 - ε) * onehot + ε / C`` rather
    than the one-hot vector, which keeps the model from driving its logits apart without bound
    to reach probability 1. The loss is then ``-mean(sum(target * log_softmax(logits)))``; its
    minimum is the target's entropy, not 0. ε = 0 (the default) is plain cross-entropy, computed
    as before, bit for bit.
    """

    def __init__(self, label_smoothing: float = 0.0):
        is_number = isinstance(label_smoothing, (int, float)) and not isinstance(
            label_smoothing, bool
        )
        if not is_number or not 0 <= label_smoothing <= 1:
            raise ValueError(f"label_smoothing must be a number in [0, 1], got {label_smoothing!r}")
        self.label_smoothing = float(label_smoothing)
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
        smoothing = self.label_smoothing
        if smoothing:
            # sum(target * log_probs) splits into (1 - ε) * the label's term, taken above, and
            # ε/C * the row's sum, so no (N, C) target is ever built.
            spread = np.sum(log_probs, dtype=np.float64) / log_probs.size
            loss = (1.0 - smoothing) * loss - smoothing * spread
        self._probs = exp(log_probs)
        self._labels = labels
        return float(loss)

    def backward(self) -> np.ndarray:
        """Return ``(softmax(logits) - target) / N``, (N, C) in the logits' dtype."""
        if self._probs is None:
            raise RuntimeError("SoftmaxCrossEntropy.backward() called before forward()")
        smoothing = self.label_smoothing
        batch_size, num_classes = self._probs.shape
        if smoothing:
            # The subtraction makes the copy; a Python float keeps float32 probabilities float32.
            grad = self._probs - smoothing / num_classes
            grad[np.arange(batch_size), self._labels] -= 1.0 - smoothing
        else:
            grad = self._probs.copy()
            grad[np.arange(batch_size), self._labels] -= 1
        grad /= batch_size
        return grad
