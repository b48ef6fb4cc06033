"""From raw uint8 images to standardized float32 arrays.

Images are kept in (N, H, W, C) layout, channels last, so that color datasets and augmentation
fit the same code. Statistics come from the training split only: the validation and test sets
must not leak into the model in any way.
"""

from __future__ import annotations

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

    Computed exactly from a 256-bin histogram per channel, so no float copy of the set is made
    and the result does not depend on summation order.
    """
    levels = np.arange(256, dtype=np.float64) / 255.0
    mean = np.empty(images.shape[-1], dtype=np.float64)
    std = np.empty(images.shape[-1], dtype=np.float64)
    for c in range(images.shape[-1]):
        counts = np.bincount(images[..., c].ravel(), minlength=256).astype(np.float64)
        weights = counts / counts.sum()
        mean[c] = weights @ levels
        std[c] = np.sqrt(weights @ (levels - mean[c]) ** 2)
    if np.any(std == 0):
        raise ValueError("a channel of the training images is constant; it cannot be standardized")
    return mean, std


def standardize(images: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """Map uint8 (N, H, W, C) images to float32 with the given per-channel mean and std."""
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
) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """Split a validation set off the training set and standardize all three parts.

    Returns the arrays by name (``x_train``, ``y_train``, ``x_val``, ``y_val``, ``x_test``,
    ``y_test``; images float32 NHWC, labels int64) and the per-channel mean and std used.
    """
    x_train, x_test = as_nhwc(x_train), as_nhwc(x_test)
    train_index, val_index = stratified_split(y_train, val_fraction, rng)
    train_images = x_train[train_index]  # gathered once: statistics and standardization share it
    mean, std = channel_statistics(train_images)
    arrays = {
        "x_train": standardize(train_images, mean, std),
        "y_train": y_train[train_index].astype(np.int64),
        "x_val": standardize(x_train[val_index], mean, std),
        "y_val": y_train[val_index].astype(np.int64),
        "x_test": standardize(x_test, mean, std),
        "y_test": y_test.astype(np.int64),
    }
    return arrays, mean, std
