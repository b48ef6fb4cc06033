"""Reading a downloaded dataset, whatever its format, into uint8 images and integer labels."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from numpynet.data.catalog import DatasetSource
from numpynet.data.idx import load_idx_dataset


@dataclass(frozen=True)
class RawDataset:
    """Images as uint8 (N, H, W) or (N, H, W, C), labels as integers in ``range(len(classes))``."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    classes: list[str]


def load_raw_dataset(source: DatasetSource, raw_dir: Path) -> RawDataset:
    """Parse the files the download stage wrote for ``source`` into arrays."""
    if source.format != "idx":
        raise ValueError(f"unsupported dataset format {source.format!r}")
    paths = {role: raw_dir / f.local_name for role, f in source.files.items()}
    x_train, y_train, x_test, y_test = load_idx_dataset(paths)
    num_classes = int(max(y_train.max(), y_test.max())) + 1
    return RawDataset(x_train, y_train, x_test, y_test, [str(c) for c in range(num_classes)])
