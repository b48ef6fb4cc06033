"""Tiny datasets for tests: MNIST-format idx files, and CIFAR-10 binary archives.

Each synthetic MNIST image is dark noise with a bright square whose position encodes the label,
so even a small MLP separates the classes within a few epochs.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import tarfile
from pathlib import Path

import numpy as np

from numpynet.data.catalog import BUILTIN, DatasetSource, RemoteFile
from numpynet.data.formats.cifar import BATCH_DIR, META_MEMBER, TEST_MEMBER
from numpynet.data.formats.idx import write_idx

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


def stored_paths(source: DatasetSource, out_dir: Path) -> dict[str, Path]:
    """Where ``download_dataset`` stores each file of ``source``: role -> path in ``out_dir``."""
    return {role: Path(out_dir) / remote.local_name for role, remote in source.files.items()}


def synthetic_source(
    files: dict[str, tuple[str, str]], *, name: str = "mnist", urls: tuple[str, ...] = ()
) -> DatasetSource:
    """A :class:`DatasetSource` pinning the checksums returned by ``make_synthetic_idx_dataset``."""
    return DatasetSource(
        name=name,
        format="idx",
        files={role: RemoteFile(file_name, sha256=sha256)
               for role, (file_name, sha256) in files.items()},
        urls=urls,
    )


# --- CIFAR-10 binary ----------------------------------------------------------------------------

CIFAR10_CLASSES = BUILTIN["cifar10"].classes


def cifar10_records(images: np.ndarray, labels: np.ndarray) -> bytes:
    """Encode NHWC uint8 images (N, 32, 32, 3) and their labels as CIFAR-10 binary records."""
    planes = np.asarray(images, dtype=np.uint8).transpose(0, 3, 1, 2).reshape(len(images), -1)
    labels = np.asarray(labels, dtype=np.uint8).reshape(-1, 1)
    return np.concatenate([labels, planes], axis=1).tobytes()


def tar_bytes(members: dict[str, bytes]) -> bytes:
    """``members`` (name -> bytes) as an uncompressed, reproducible tar archive."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(data), 0, 0o644
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def write_tar_gz(path: Path, members: dict[str, bytes]) -> str:
    """Write ``members`` (name -> bytes) as a reproducible .tar.gz at ``path``; return its md5."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    compressed = gzip.compress(tar_bytes(members), compresslevel=6, mtime=0)
    path.write_bytes(compressed)
    return hashlib.md5(compressed).hexdigest()


def cifar10_members(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_test: np.ndarray,
    y_test: np.ndarray,
    split_train_into: int = 5,
    classes: tuple[str, ...] | None = CIFAR10_CLASSES,
) -> dict[str, bytes]:
    """The members of an official-layout CIFAR-10 binary archive, name -> bytes.

    The training set is split into ``split_train_into`` consecutive batches (the official archive
    has 5, the number the reader expects); ``classes=None`` leaves out ``batches.meta.txt``.
    """
    members: dict[str, bytes] = {}
    bounds = np.linspace(0, len(x_train), split_train_into + 1).astype(int)
    for index, (start, stop) in enumerate(zip(bounds[:-1], bounds[1:]), start=1):
        name = f"{BATCH_DIR}/data_batch_{index}.bin"
        members[name] = cifar10_records(x_train[start:stop], y_train[start:stop])
    members[TEST_MEMBER] = cifar10_records(x_test, y_test)
    if classes is not None:
        # Like the official file: one name per line, then a blank line.
        members[META_MEMBER] = ("\n".join(classes) + "\n\n").encode()
    return members


def write_cifar10_binary(
    path: Path,
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_test: np.ndarray,
    y_test: np.ndarray,
    split_train_into: int = 5,
) -> str:
    """Write a CIFAR-10 binary .tar.gz in the official layout at ``path``; return its md5."""
    members = cifar10_members(x_train, y_train, x_test, y_test, split_train_into)
    return write_tar_gz(path, members)


def random_cifar10_split(count: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Return ``count`` random NHWC uint8 images (32 x 32 x 3) and labels covering 0..9."""
    images = rng.integers(0, 256, size=(count, 32, 32, 3), dtype=np.uint8)
    labels = (np.arange(count) % 10).astype(np.uint8)
    return images, rng.permutation(labels)

