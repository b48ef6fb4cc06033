"""Training-time augmentation: random translations and horizontal flips of a batch of images.

An MLP sees each pixel as its own input, so it cannot learn on its own that a digit moved two
pixels to the left is the same digit; showing it shifted (and, for natural images, mirrored)
copies teaches that. Augmentation is applied to one mini-batch at a time, so the training set is
never copied, and draws only from the generator it is given, so a seed fixes every shift.

Images are (N, H, W, C) in the standardized scale, where 0 is the training mean: the border a
translation uncovers is filled with 0, the mean, the value that carries the least information.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Augmentation:
    """What to do to each training image: shift it and maybe mirror it.

    ``max_shift``: each image moves by a whole number of pixels drawn uniformly from
    ``[-max_shift, max_shift]``, independently along each axis (0: no translation).
    ``horizontal_flip``: each image is mirrored left-right with probability 1/2.
    """

    max_shift: int = 0
    horizontal_flip: bool = False

    @property
    def is_identity(self) -> bool:
        """Whether this augmentation leaves every image as it is."""
        return self.max_shift == 0 and not self.horizontal_flip

    def apply(self, images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Return augmented copies of ``images`` (N, H, W, C); the input is not modified.

        Each image draws its own offsets ``(dy, dx)``, uniform in ``[-max_shift, max_shift]`` (a
        positive ``dy`` moves the content down, a positive ``dx`` to the right), then, with
        horizontal flips on, whether it is mirrored (before the shift). The border a shift
        uncovers is 0. With nothing to do, ``images`` itself is returned.
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
        return _translate(images, shifts) if self.max_shift else images


def flip_horizontally(images: np.ndarray) -> np.ndarray:
    """Return a left-right mirrored copy of every image (N, H, W, C)."""
    count, height, width, channels = images.shape
    # Gathering whole pixels from each row, read as one run of width * channels values, is
    # several times faster than copying through the negative-stride view images[:, :, ::-1].
    pixels = np.arange(width - 1, -1, -1)[:, None] * channels + np.arange(channels)
    rows = images.reshape(count, height, width * channels)
    return rows[..., pixels.ravel()].reshape(images.shape)


def _translate(images: np.ndarray, shifts: np.ndarray) -> np.ndarray:
    """Move image i (N, H, W, C) by ``shifts[:, i]`` = (dy, dx) pixels into a zero-filled copy."""
    height, width = images.shape[1:3]
    out = np.zeros_like(images)
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
