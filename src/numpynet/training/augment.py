"""Training-time augmentation: random shifts, flips, rotations, zooms and elastic distortions of a
batch of images.

An MLP sees each pixel as its own input, so it cannot learn on its own that a digit moved two
pixels to the left is the same digit; showing it shifted (and, for natural images, mirrored)
copies teaches that. Small rotations and zooms show it the slants and sizes different hands give
a digit, and elastic distortions (Simard et al., 2003) bend strokes the way different hands write
them. Augmentation is applied to one mini-batch at a time, so the training set is never copied,
and draws only from the generator it is given, so a seed fixes every shift.

Images are (N, H, W, C) in the standardized scale. What a shift or a distortion uncovers is filled
with ``fill``, one value per channel: the train stage gives black (a pixel of 0 before
standardization), the background of digits and what a camera sees beyond its frame; a fill of the
mean (0) would draw a grey frame around every shifted digit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from numpynet.matmul import matmul
from numpynet.portable_math import exp, sin_cos_small


@dataclass(frozen=True)
class Augmentation:
    """What to do to each training image: mirror it, turn and zoom it, bend it, shift it.

    ``max_shift``: each image moves by a whole number of pixels drawn uniformly from
    ``[-max_shift, max_shift]``, independently along each axis (0: no translation).
    ``horizontal_flip``: each image is mirrored left-right with probability 1/2.
    ``elastic``: the strength (alpha) of a random, smooth displacement of every pixel (0: off);
    see :func:`elastic_distort`.
    ``rotation``: each image turns about its centre by an angle drawn uniformly from
    ``[-rotation, rotation]`` degrees (0: off); see :func:`affine_field`.
    ``zoom``: each image is zoomed about its centre by a factor drawn uniformly from
    ``[1 - zoom, 1 + zoom]`` (0: off).
    ``fill``: the value of each channel where a shift, a turn, a zoom or a distortion uncovers
    the border.
    """

    max_shift: int = 0
    horizontal_flip: bool = False
    elastic: float = 0.0
    rotation: float = 0.0
    zoom: float = 0.0
    fill: tuple[float, ...] = (0.0,)

    def __post_init__(self):
        # The config bounds these more tightly; this catches a direct caller's mistake at once,
        # rather than at the first angle drawn past 45 degrees or a zoom factor of 0 or less.
        if not 0 <= self.rotation <= 45:
            raise ValueError(f"rotation must be from 0 to 45 degrees, got {self.rotation!r}")
        if not 0 <= self.zoom < 1:
            raise ValueError(f"zoom must be at least 0 and below 1, got {self.zoom!r}")

    @property
    def is_identity(self) -> bool:
        """Whether this augmentation leaves every image as it is."""
        return (
            self.max_shift == 0
            and not self.horizontal_flip
            and self.elastic == 0
            and self.rotation == 0
            and self.zoom == 0
        )

    def apply(self, images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Return augmented copies of ``images`` (N, H, W, C); the input is not modified.

        Each image draws its own offsets ``(dy, dx)``, uniform in ``[-max_shift, max_shift]`` (a
        positive ``dy`` moves the content down, a positive ``dx`` to the right), then, with
        horizontal flips on, whether it is mirrored, then its angle and zoom, then its elastic
        distortion; an image is mirrored, turned, zoomed and distorted (one resampling for all
        three; the elastic displacement is added in the output's coordinates), then shifted.
        What is uncovered takes ``fill``. An ingredient that is off draws nothing, so settings
        without it give the draws, and the images, of a run from before it existed. With nothing
        to do, ``images`` itself is returned.
        """
        if self.is_identity:
            return images
        count = images.shape[0]
        span = 2 * self.max_shift + 1
        shifts = rng.integers(0, span, size=(2, count)) - self.max_shift
        if self.horizontal_flip:
            mirrored = np.flatnonzero(rng.random(count) < 0.5)
            flipped = images.copy()
            flipped[mirrored] = flip_horizontally(images[mirrored])
            images = flipped
        fill = np.asarray(self.fill, dtype=images.dtype)
        field = None
        if self.rotation or self.zoom:
            angles = _uniform(rng, -self.rotation, self.rotation, count) if self.rotation else 0.0
            zooms = _uniform(rng, 1 - self.zoom, 1 + self.zoom, count) if self.zoom else 1.0
            field = affine_field(images.shape[1:3], angles, zooms, images.dtype)
        if self.elastic:
            elastic = elastic_field(images.shape[:3], self.elastic, rng, images.dtype)
            field = elastic if field is None else field + elastic
        if field is not None:
            images = displace(images, field, fill)
        return _translate(images, shifts, fill) if self.max_shift else images


def _uniform(rng: np.random.Generator, low: float, high: float, count: int) -> np.ndarray:
    """``count`` draws uniform in [low, high), the values ``rng.uniform`` gives on x86-64.

    ``rng.uniform`` computes ``low + (high - low) * u`` in C, where a compiler may fuse the two
    into one FMA on some platforms (clang on arm64 does); two NumPy operations are never fused.
    """
    values = rng.random(count)
    values *= high - low
    values += low
    return values


def flip_horizontally(images: np.ndarray) -> np.ndarray:
    """Return a left-right mirrored copy of every image (N, H, W, C)."""
    count, height, width, channels = images.shape
    # Gathering whole pixels from each row, read as one run of width * channels values, is
    # several times faster than copying through the negative-stride view images[:, :, ::-1].
    pixels = np.arange(width - 1, -1, -1)[:, None] * channels + np.arange(channels)
    rows = images.reshape(count, height, width * channels)
    return rows[..., pixels.ravel()].reshape(images.shape)


def _translate(images: np.ndarray, shifts: np.ndarray, fill: np.ndarray) -> np.ndarray:
    """Move image i (N, H, W, C) by ``shifts[:, i]`` = (dy, dx) pixels into a copy filled with
    ``fill`` (C,) where nothing moved in."""
    height, width = images.shape[1:3]
    out = np.empty_like(images)
    out[...] = fill
    # A shift by the whole image or more leaves nothing but fill, as a shift by exactly its size.
    shifts = np.stack([np.clip(shifts[0], -height, height), np.clip(shifts[1], -width, width)])
    # One slice copy per distinct offset instead of one per image: every image sharing an
    # offset moves in one vectorized assignment.
    codes = shifts[0] * (2 * width + 1) + shifts[1]
    order = np.argsort(codes, kind="stable")
    for group in np.split(order, np.flatnonzero(np.diff(codes[order])) + 1):
        dy, dx = shifts[0, group[0]], shifts[1, group[0]]
        # Destination rows [max(dy, 0), height + min(dy, 0)) come from rows shifted by -dy.
        out[group, max(dy, 0) : height + min(dy, 0), max(dx, 0) : width + min(dx, 0)] = images[
            group, max(-dy, 0) : height + min(-dy, 0), max(-dx, 0) : width + min(-dx, 0)
        ]
    return out


ELASTIC_SIGMA = 4.0  # pixels: how smooth the displacement field is (Simard et al. use 4)


def affine_field(
    shape: tuple[int, int], angles: np.ndarray | float, zooms: np.ndarray | float, dtype=np.float32
) -> np.ndarray:
    """The displacement field (2, N, H, W) that turns each of N images of ``shape`` (H, W) by
    ``angles[i]`` degrees (positive: counter-clockwise as the image is seen) and zooms it by
    ``zooms[i]`` (above 1: larger), both about the image's centre; for :func:`displace`.

    ``angles`` (at most 45 degrees in magnitude) and ``zooms`` are arrays of N values; either may
    be one number shared by all the images (both: N = 1). Output pixel p samples the input at centre + R(-angle) (p - centre) / zoom,
    the inverse of the map.
    """
    height, width = shape
    # np.sin and np.cos round differently under each CPU's SIMD loops; these are the same bits
    # everywhere (numpynet.portable_math).
    sin, cos = sin_cos_small(np.atleast_1d(np.asarray(angles, dtype=np.float64)) * (math.pi / 180))
    zooms = np.atleast_1d(np.asarray(zooms, dtype=np.float64))
    # Per image in float64, per pixel in the images' dtype: the field is N x H x W values.
    cos, sin = np.broadcast_arrays(cos / zooms - 1, sin / zooms)
    cos, sin = cos.astype(dtype)[:, None, None], sin.astype(dtype)[:, None, None]
    # Offsets from the centre; rows grow downwards, so a turn counter-clockwise as seen takes
    # output (y, x) from input (cos y + sin x, -sin y + cos x), each divided by the zoom; the
    # field is that position less (y, x) (``cos`` holds cos / zoom - 1).
    y = (np.arange(height) - (height - 1) / 2).astype(dtype)[:, None]
    x = (np.arange(width) - (width - 1) / 2).astype(dtype)
    field = np.empty((2, cos.shape[0], height, width), dtype=dtype)
    np.add(cos * y, sin * x, out=field[0])
    np.subtract(cos * x, sin * y, out=field[1])
    return field


def elastic_distort(
    images: np.ndarray, alpha: float, rng: np.random.Generator, fill: np.ndarray | float = 0.0
) -> np.ndarray:
    """Displace every pixel of each image (N, H, W, C) along its own smooth random field.

    Each image draws a displacement per pixel and axis, uniform in [-1, 1], smooths it with a
    Gaussian of standard deviation :data:`ELASTIC_SIGMA` pixels (zero beyond the border) and
    scales it by ``alpha``; the output pixel at p takes the bilinear interpolation of the input at
    p + displacement, where the outside of the image has the value ``fill`` (per channel).
    Returns a new float array of the same shape.
    """
    return displace(images, elastic_field(images.shape[:3], alpha, rng, images.dtype), fill)


def elastic_field(
    shape: tuple[int, int, int], alpha: float, rng: np.random.Generator, dtype=np.float32
) -> np.ndarray:
    """The random displacement field (2, N, H, W) of :func:`elastic_distort` for N images of
    (H, W): ``shape`` is (N, H, W)."""
    count, height, width = shape
    noise = rng.random(size=(2, count, height, width), dtype=np.float32)
    noise = noise.astype(dtype, copy=False) * 2 - 1
    # A separable Gaussian filter as two matrix products: along columns (every image's columns
    # side by side), then along rows.
    columns = noise.transpose(2, 0, 1, 3).reshape(height, -1)
    field = matmul(_gaussian_matrix(height, dtype), columns)
    field = field.reshape(height, 2, count, width).transpose(1, 2, 0, 3).reshape(-1, width)
    field = matmul(field, _gaussian_matrix(width, dtype)).reshape(2, count, height, width)
    field *= alpha
    return field


def displace(images: np.ndarray, field: np.ndarray, fill: np.ndarray | float = 0.0) -> np.ndarray:
    """Output pixel (i, y, x) of ``images`` (N, H, W, C) is the bilinear interpolation of image i
    at (y + field[0, i, y, x], x + field[1, i, y, x]), where outside the image is ``fill``.

    ``field`` is (2, N, H, W). Returns a new array of the images' shape and dtype.
    """
    count, height, width, channels = images.shape
    # Sampling from a copy padded with 2 pixels of fill (0 once fill is taken away), at positions
    # clipped to one pixel beyond the image, needs no bounds checks: whatever lies outside reads
    # as fill, whichever of the four neighbours it is.
    field = field.astype(images.dtype, copy=False)
    rows = np.clip(field[0] + np.arange(height, dtype=images.dtype)[:, None], -1, height)
    cols = np.clip(field[1] + np.arange(width, dtype=images.dtype), -1, width)
    top, left = np.floor(rows), np.floor(cols)
    down, right = (rows - top)[..., None], (cols - left)[..., None]
    padded_width = width + 4
    padded_size = (height + 4) * padded_width
    # Each pixel's top-left neighbour as one index into all the padded images laid end to end,
    # so each neighbour is one np.take of whole pixels (faster than take_along_axis).
    corner = (top.astype(np.intp) + 2) * padded_width + left.astype(np.intp) + 2
    corner += (np.arange(count) * padded_size)[:, None, None]
    corner = corner.ravel()
    padded = np.zeros((count, height + 4, padded_width, channels), dtype=images.dtype)
    padded[:, 2:-2, 2:-2] = images - fill
    flat = padded.reshape(-1, channels)

    def at(offset):
        return np.take(flat, corner + offset, axis=0).reshape(images.shape)

    upper = at(0)
    upper += (at(1) - upper) * right
    lower = at(padded_width)
    lower += (at(padded_width + 1) - lower) * right
    upper += (lower - upper) * down
    upper += fill
    return upper


def _gaussian_matrix(size: int, dtype) -> np.ndarray:
    """The symmetric (size, size) matrix that filters a line of ``size`` values with the Gaussian
    of :data:`ELASTIC_SIGMA`, normalized over the whole kernel so the border fades to zero."""
    def gaussian(offsets: np.ndarray) -> np.ndarray:
        scaled = offsets / ELASTIC_SIGMA
        return exp(-0.5 * (scaled * scaled))

    kernel = gaussian(np.arange(size)[:, None] - np.arange(size))
    reach = np.arange(-int(4 * ELASTIC_SIGMA), int(4 * ELASTIC_SIGMA) + 1)
    return (kernel / gaussian(reach).sum()).astype(dtype)
