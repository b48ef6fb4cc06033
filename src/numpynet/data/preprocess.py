"""From raw uint8 images to standardized float32 arrays.

Images are kept in (N, H, W, C) layout, channels last, so that color datasets and augmentation
fit the same code. Statistics come from the training split only: the validation and test sets
must not leak into the model in any way.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np

from numpynet.data.split import stratified_split


def as_nhwc(images: np.ndarray) -> np.ndarray:
    """Give (N, H, W) grayscale images a trailing channel axis; pass (N, H, W, C) through."""
    if images.ndim == 3:
        return images[..., np.newaxis]
    if images.ndim == 4:
        return images
    raise ValueError(f"expected images of shape (N, H, W) or (N, H, W, C), got {images.shape}")


def channel_statistics(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and standard deviation of (N, H, W, C) uint8 images, on a 0..1 scale.

    Computed exactly, in integers, from a 256-bin histogram per channel, and rounded to float64
    once; so the result is bit-identical on every machine (no BLAS kernel or float summation
    order is involved) and no float copy of the set is made. Raises ``ValueError`` for a constant
    channel, which cannot be standardized.
    """
    channels = images.shape[-1]
    mean = np.empty(channels, dtype=np.float64)
    std = np.empty(channels, dtype=np.float64)
    for c in range(channels):
        counts = np.bincount(images[..., c].ravel(), minlength=256).tolist()  # Python ints
        mean[c], std[c] = _exact_mean_and_std(counts)
    return mean, std


def _exact_mean_and_std(counts: list[int]) -> tuple[float, float]:
    """Mean and standard deviation of pixel values ``v / 255`` occurring ``counts[v]`` times.

    With N = sum c_v, S1 = sum c_v v and S2 = sum c_v v^2 (exact Python integers): mean =
    S1 / (255 N) and variance = (N S2 - S1^2) / (255 N)^2, both exact fractions whose conversion
    to float is correctly rounded; IEEE sqrt is correctly rounded too, so std is the same
    everywhere.
    """
    total = sum(counts)
    if total == 0:
        raise ValueError("there are no training images to compute statistics from")
    sum_values = sum(count * value for value, count in enumerate(counts))
    sum_squares = sum(count * value * value for value, count in enumerate(counts))
    spread = total * sum_squares - sum_values * sum_values  # N^2 * variance, in pixel units
    if spread == 0:
        raise ValueError("a channel of the training images is constant; it cannot be standardized")
    scale = 255 * total
    mean = float(Fraction(sum_values, scale))
    std = math.sqrt(float(Fraction(spread, scale * scale)))
    return mean, std


def standardize(images: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """Map uint8 (N, H, W, C) images to float32 with the given per-channel mean and std.

    Only elementwise IEEE operations (one multiply, one subtract per pixel, each correctly
    rounded), no reductions: every output value depends on its pixel alone, the same on any CPU
    and for any batch it sits in.
    """
    scale = (1.0 / (255.0 * std)).astype(np.float32)
    shift = (mean / std).astype(np.float32)
    out = images.astype(np.float32)
    out *= scale
    out -= shift
    return out


def prepare_splits(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_test: np.ndarray,
    y_test: np.ndarray,
    *,
    val_fraction: float,
    rng: np.random.Generator,
) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], np.ndarray, np.ndarray]:
    """Split a validation set off the training set and standardize all three parts.

    Returns ``(images, labels)`` by split (``train``, ``val``, ``test``; images float32 NHWC,
    labels int64) and the per-channel mean and std used.
    """
    x_train, x_test = as_nhwc(x_train), as_nhwc(x_test)
    train_index, val_index = stratified_split(y_train, val_fraction, rng)
    train_images = x_train[train_index]  # gathered once: statistics and standardization share it
    mean, std = channel_statistics(train_images)
    splits = {
        "train": (standardize(train_images, mean, std), y_train[train_index].astype(np.int64)),
        "val": (standardize(x_train[val_index], mean, std), y_train[val_index].astype(np.int64)),
        "test": (standardize(x_test, mean, std), y_test.astype(np.int64)),
    }
    return splits, mean, std
