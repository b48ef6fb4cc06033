"""Holding out a share of each class: the test split of an image folder, the validation split."""

from __future__ import annotations

import numpy as np


def stratified_split(
    labels: np.ndarray, held_out_fraction: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Split sample indices into kept and held-out parts, each class keeping its share in both.

    ``held_out_fraction`` is in (0, 1) (the configuration checks it). Each class contributes
    ``round(held_out_fraction * count)`` samples to the held-out part (at least one when the
    class has two or more, never its last one). Both index arrays come back sorted, so the order
    of samples in the written arrays is the order of the source.
    """
    held_out_parts = []
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        count = int(round(held_out_fraction * members.size))
        # Every class keeps a sample, and one of two or more is held out.
        count = min(max(count, 1), members.size - 1)
        held_out_parts.append(rng.permutation(members)[:count])
    held_out = np.sort(np.concatenate(held_out_parts))
    is_held_out = np.zeros(labels.shape[0], dtype=bool)
    is_held_out[held_out] = True
    return np.flatnonzero(~is_held_out), held_out
