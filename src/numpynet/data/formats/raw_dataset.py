"""The common shape of every dataset once its files are parsed, before preprocessing."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class RawDataset:
    """Images as uint8 (N, H, W) or (N, H, W, C), labels as integers in ``range(len(classes))``."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    classes: list[str]
