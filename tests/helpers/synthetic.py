"""Tiny MNIST-format datasets for tests: fast to make, and learnable, so training can be checked.

Each image is dark noise with a bright square whose position encodes the label, so even a small
MLP separates the classes within a few epochs.
"""

from __future__ import annotations

import gzip
import hashlib
from pathlib import Path

import numpy as np

from numpynet.data.catalog import BUILTIN, DatasetSource, RemoteFile
from numpynet.data.idx import write_idx

IMAGE_SIDE = 28
NUM_CLASSES = 10
_BLOB_SIDE = 6
# Blob corners on a 2 x 5 grid, one cell per class, spread over the 28 x 28 image.
_BLOB_CORNERS = [(3 + 12 * (label // 5), 1 + 5 * (label % 5)) for label in range(NUM_CLASSES)]
MNIST_FILE_NAMES = {role: remote.name for role, remote in BUILTIN["mnist"].files.items()}


def synthetic_split(count: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Return ``count`` images (uint8, 28 x 28) and their labels, every class as even as can be."""
    labels = rng.permutation(np.arange(count) % NUM_CLASSES).astype(np.uint8)
    images = rng.integers(0, 60, size=(count, IMAGE_SIDE, IMAGE_SIDE), dtype=np.uint8)
    jitter = rng.integers(-1, 2, size=(count, 2))
    for index, (label, (dy, dx)) in enumerate(zip(labels, jitter)):
        top, left = _BLOB_CORNERS[label]
        top, left = top + dy, left + dx
        images[index, top : top + _BLOB_SIDE, left : left + _BLOB_SIDE] = rng.integers(
            180, 256, size=(_BLOB_SIDE, _BLOB_SIDE)
        )
    return images, labels


def make_synthetic_idx_dataset(
    directory: Path,
    n_train: int,
    n_test: int,
    rng: np.random.Generator,
    *,
    compresslevel: int = 9,
) -> dict[str, tuple[str, str]]:
    """Write gzipped idx files under MNIST's official names into ``directory``.

    Returns role -> (gz file name, sha256 of the decompressed content). The gzip header carries no
    timestamp, so the same rng state gives the same bytes.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    x_train, y_train = synthetic_split(n_train, rng)
    x_test, y_test = synthetic_split(n_test, rng)
    arrays = {"train_images": x_train, "train_labels": y_train,
              "test_images": x_test, "test_labels": y_test}
    written: dict[str, tuple[str, str]] = {}
    for role, array in arrays.items():
        gz_name = MNIST_FILE_NAMES[role]
        raw_path = directory / gz_name.removesuffix(".gz")
        write_idx(raw_path, array)
        raw = raw_path.read_bytes()
        raw_path.unlink()
        (directory / gz_name).write_bytes(gzip.compress(raw, compresslevel=compresslevel, mtime=0))
        written[role] = (gz_name, hashlib.sha256(raw).hexdigest())
    return written


def synthetic_source(
    files: dict[str, tuple[str, str]], *, name: str = "mnist", urls: tuple[str, ...] = ()
) -> DatasetSource:
    """A :class:`DatasetSource` pinning the checksums returned by ``make_synthetic_idx_dataset``."""
    return DatasetSource(
        name=name,
        format="idx",
        files={role: RemoteFile(file_name, sha256) for role, (file_name, sha256) in files.items()},
        urls=urls,
    )
