"""From raw uint8 images to standardized float32 arrays.

Images are kept in (N, H, W, C) layout, channels last, so that color datasets and augmentation
fit the same code. Statistics come from the training split only: the validation and test sets
must not leak into the model in any way.

A channel that is constant over the training split (a set of blank images, a color channel no
image uses) has no spread to divide by: its std is taken as :data:`CONSTANT_CHANNEL_STD`, 1, so
it is only centered: its training values are all exactly 0, and other splits keep their
difference to the mean (at most 1 in size), finite. Every real spread of values on the 0..1
scale is at most 0.5, so a std of exactly 1 marks such a channel unambiguously.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from numpynet.data.split import stratified_split

# The std given to a channel that is constant over the training split (see the module docstring).
CONSTANT_CHANNEL_STD = 1.0
# The size of one block of standardized rows: small enough to stay in a core's cache between its
# conversion, scaling and shifting (or counting), large enough to keep the per-block overhead low.
_BLOCK_BYTES = 1 << 20


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
    order is involved) and no float copy of the set is made. A constant channel gets std
    :data:`CONSTANT_CHANNEL_STD`. Raises ``ValueError`` when there are no images.
    """
    return _statistics(_channel_counts(images, None))


def _statistics(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and std per channel from a (C, 256) histogram of pixel values."""
    channels = counts.shape[0]
    mean = np.empty(channels, dtype=np.float64)
    std = np.empty(channels, dtype=np.float64)
    for c in range(channels):
        mean[c], std[c] = _exact_mean_and_std(counts[c].tolist())  # Python ints
    return mean, std


def _channel_counts(images: np.ndarray, rows: np.ndarray | None) -> np.ndarray:
    """How often each value occurs in each channel of ``images[rows]``: a (C, 256) int64 array.

    A block at a time (see :func:`_blocks`), each pixel's value offset by 256 times its channel so
    that one bincount covers every channel: bincount converts its input to intp, so counting the
    whole set (or one huge image) at once would make an eight times larger copy of it.
    """
    channels = images.shape[-1]
    offsets = np.arange(channels, dtype=np.intp) * 256
    counts = np.zeros(256 * channels, dtype=np.int64)
    for block in _blocks(images, rows):
        counts += np.bincount((block.reshape(-1, channels) + offsets).ravel(),
                              minlength=256 * channels)
    return counts.reshape(channels, 256)


def _exact_mean_and_std(counts: list[int]) -> tuple[float, float]:
    """Mean and standard deviation of pixel values ``v / 255`` occurring ``counts[v]`` times.

    With N = sum c_v, S1 = sum c_v v and S2 = sum c_v v^2 (exact Python integers): mean =
    S1 / (255 N) and variance = (N S2 - S1^2) / (255 N)^2, both exact fractions whose conversion
    to float is correctly rounded; IEEE sqrt is correctly rounded too, so std is the same
    everywhere. A constant channel (variance 0) gets std :data:`CONSTANT_CHANNEL_STD`.
    """
    total = sum(counts)
    if total == 0:
        raise ValueError("there are no training images to compute statistics from")
    sum_values = sum(count * value for value, count in enumerate(counts))
    sum_squares = sum(count * value * value for value, count in enumerate(counts))
    spread = total * sum_squares - sum_values * sum_values  # N^2 * variance, in pixel units
    scale = 255 * total
    mean = float(Fraction(sum_values, scale))
    if spread == 0:  # nothing to divide by: the channel is only centered
        return mean, CONSTANT_CHANNEL_STD
    std = math.sqrt(float(Fraction(spread, scale * scale)))
    return mean, std


def standardize(images: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """Map uint8 (N, H, W, C) images to float32 with the given per-channel mean and std.

    Only elementwise IEEE operations (one multiply, one subtract per pixel, each correctly
    rounded), no reductions: every output value depends on its pixel alone, the same on any CPU
    and for any batch it sits in.
    """
    return StandardizedImages(images, None, mean, std).to_array()


@dataclass(frozen=True)
class StandardizedImages:
    """The images of one split, standardized only when read, a block at a time.

    They are the rows ``rows`` of the uint8 (N, H, W, C) ``source`` (all of them when None),
    standardized as :func:`standardize` does. Float32 images are four times the size of their
    source: a writer that streams :meth:`blocks` to disk never holds them whole, nor a gathered
    copy of the rows.
    """

    source: np.ndarray
    rows: np.ndarray | None  # indices into source, in output order
    mean: np.ndarray
    std: np.ndarray

    @property
    def shape(self) -> tuple[int, ...]:
        """The shape of the standardized images, (count, H, W, C)."""
        count = self.source.shape[0] if self.rows is None else self.rows.shape[0]
        return (int(count), *self.source.shape[1:])

    @property
    def dtype(self) -> np.dtype:
        """Always float32."""
        return np.dtype(np.float32)

    def blocks(self) -> Iterator[np.ndarray]:
        """The standardized values in order, a block at a time (see :func:`_blocks`): whole
        images (rows, H, W, C), or (pixels, C) pieces of an image larger than a block.

        Every block is written into one buffer, overwriting the one before: copy a block to keep
        it past the next step of the iteration.
        """
        scale, shift = _scale_and_shift(self.mean, self.std)
        buffer = np.empty(_block_values(self.source), dtype=np.float32)
        for block in _blocks(self.source, self.rows):
            out = buffer[: block.size].reshape(block.shape)
            _standardize_into(out, block, scale, shift)
            yield out

    def to_array(self) -> np.ndarray:
        """All the standardized images in one new float32 array."""
        scale, shift = _scale_and_shift(self.mean, self.std)
        out = np.empty(self.shape, dtype=np.float32)
        values, start = out.reshape(-1), 0
        for block in _blocks(self.source, self.rows):
            piece = values[start : start + block.size].reshape(block.shape)
            _standardize_into(piece, block, scale, shift)
            start += block.size
        return out


def _scale_and_shift(mean: np.ndarray, std: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """float32 factors with ``x * scale - shift == (x / 255 - mean) / std`` up to rounding."""
    return (1.0 / (255.0 * std)).astype(np.float32), (mean / std).astype(np.float32)


def _standardize_into(
    out: np.ndarray, images: np.ndarray, scale: np.ndarray, shift: np.ndarray
) -> None:
    # uint8 times float32 runs the float32 loop: each value converted exactly, then one rounded
    # multiply and one rounded subtract, the same bits as converting the whole set first.
    np.multiply(images, scale, out=out)
    out -= shift


def _block_values(images: np.ndarray) -> int:
    """Values per block: :data:`_BLOCK_BYTES` of float32, at least one pixel."""
    return max(images.shape[-1], _BLOCK_BYTES // 4)


def _blocks(images: np.ndarray, rows: np.ndarray | None) -> Iterator[np.ndarray]:
    """``images[rows]`` (all of ``images`` when None), in order, a block at a time.

    A block is about :data:`_BLOCK_BYTES` as float32: whole images, (rows, H, W, C), or, when one
    image is larger than that, (pixels, C) pieces of it, so that no temporary of a block (as
    float32, or as bincount's intp) grows with the size of an image.
    """
    count = images.shape[0] if rows is None else rows.shape[0]
    block_values = _block_values(images)
    image_values = max(1, math.prod(images.shape[1:]))
    if image_values <= block_values:
        step = block_values // image_values
        for start in range(0, count, step):
            if rows is None:
                yield images[start : start + step]
            else:
                yield images[rows[start : start + step]]
        return
    channels = images.shape[-1]
    step = block_values // channels
    for index in range(count):
        # One image as (pixels, C): a view, not a copy.
        image = images[index if rows is None else int(rows[index])].reshape(-1, channels)
        for start in range(0, image.shape[0], step):
            yield image[start : start + step]


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
    splits, mean, std = plan_splits(
        x_train, y_train, x_test, y_test, val_fraction=val_fraction, rng=rng
    )
    arrays = {name: (images.to_array(), labels) for name, (images, labels) in splits.items()}
    return arrays, mean, std


def plan_splits(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_test: np.ndarray,
    y_test: np.ndarray,
    *,
    val_fraction: float,
    rng: np.random.Generator,
) -> tuple[dict[str, tuple[StandardizedImages, np.ndarray]], np.ndarray, np.ndarray]:
    """:func:`prepare_splits`, with each split's images standardized only when read.

    The same splits, statistics and float32 values; nothing larger than the uint8 images is
    allocated here (see :class:`StandardizedImages`).
    """
    x_train, x_test = as_nhwc(x_train), as_nhwc(x_test)
    train_index, val_index = stratified_split(y_train, val_fraction, rng)
    mean, std = _statistics(_channel_counts(x_train, train_index))
    splits = {
        "train": (StandardizedImages(x_train, train_index, mean, std),
                  y_train[train_index].astype(np.int64)),
        "val": (StandardizedImages(x_train, val_index, mean, std),
                y_train[val_index].astype(np.int64)),
        "test": (StandardizedImages(x_test, None, mean, std), y_test.astype(np.int64)),
    }
    return splits, mean, std
