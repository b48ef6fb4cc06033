"""Read CIFAR-10's official binary distribution straight out of its tar archive.

The archive (plain or gzipped) holds ``cifar-10-batches-bin/data_batch_1.bin`` .. ``_5.bin``,
``test_batch.bin`` and, optionally, ``batches.meta.txt`` with one class name per line. Each batch
is a run of 3,073-byte records: one label byte, then 3,072 pixel bytes, channel-major (1,024 red,
1,024 green, 1,024 blue, each a row-major 32 x 32 plane). Only these named members are read, and
nothing is extracted to disk, so a hostile archive's other members are never touched. The binary
distribution is used rather than the Python one because that one is pickled.
"""

from __future__ import annotations

import gzip
import tarfile
import zlib
from pathlib import Path

import numpy as np

from numpynet.errors import DataFormatError

BATCH_DIR = "cifar-10-batches-bin"
TRAIN_MEMBERS = tuple(f"{BATCH_DIR}/data_batch_{index}.bin" for index in range(1, 6))
TEST_MEMBER = f"{BATCH_DIR}/test_batch.bin"
META_MEMBER = f"{BATCH_DIR}/batches.meta.txt"

IMAGE_SIDE = 32
CHANNELS = 3
NUM_CLASSES = 10
RECORD_BYTES = 1 + CHANNELS * IMAGE_SIDE * IMAGE_SIDE  # 3,073

_REDOWNLOAD_HINT = "delete it and run the download stage again"
# What a damaged gzip stream or tar raises while being read.
_ARCHIVE_ERRORS = (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile)


def read_cifar10_binary(
    archive: Path,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, tuple[str, ...] | None]:
    """Read CIFAR-10 from its binary tar archive without extracting it.

    Returns ``(x_train, y_train, x_test, y_test, classes)``: images as contiguous ``uint8``
    arrays of shape (N, 32, 32, 3) (NHWC, RGB), labels as ``uint8`` in 0..9, and the class names
    from ``batches.meta.txt``, or None when the archive has no such member. Raises
    :class:`DataFormatError` naming the archive and member when the archive cannot be read, a
    batch is missing or empty, a batch is not a whole number of records, or a label exceeds 9.
    """
    archive = Path(archive)
    try:
        with tarfile.open(archive, mode="r:*") as tar:
            batches = _read_members(tar, archive, (*TRAIN_MEMBERS, TEST_MEMBER))
            classes = _read_classes(tar, archive)
    except _ARCHIVE_ERRORS as error:
        raise DataFormatError(
            f"{archive}: cannot read it as a CIFAR-10 binary tar archive ({error}); "
            f"{_REDOWNLOAD_HINT}"
        ) from error
    x_train, y_train = _stack([_parse_batch(batches[name], archive, name)
                               for name in TRAIN_MEMBERS])
    x_test, y_test = _stack([_parse_batch(batches[TEST_MEMBER], archive, TEST_MEMBER)])
    return x_train, y_train, x_test, y_test, classes


def _regular_member(tar: tarfile.TarFile, archive: Path, name: str) -> tarfile.TarInfo:
    """Look ``name`` up; it must exist and be a regular file (not a link or a device)."""
    try:
        member = tar.getmember(name)
    except KeyError:
        raise DataFormatError(
            f"{archive}: member {name} is missing; the official CIFAR-10 binary archive holds "
            f"data_batch_1.bin .. data_batch_5.bin and test_batch.bin under {BATCH_DIR}/; "
            f"{_REDOWNLOAD_HINT}"
        ) from None
    if not member.isfile():
        raise DataFormatError(
            f"{archive}: member {name} is not a regular file; {_REDOWNLOAD_HINT}"
        )
    return member


def _read_members(
    tar: tarfile.TarFile, archive: Path, names: tuple[str, ...]
) -> dict[str, bytes]:
    """Return the bytes of each named member, checking sizes before reading anything."""
    members = {name: _regular_member(tar, archive, name) for name in names}
    for name, member in members.items():
        if member.size == 0:
            raise DataFormatError(
                f"{archive}: member {name} is empty; a CIFAR-10 batch holds 3,073-byte records; "
                f"{_REDOWNLOAD_HINT}"
            )
        if member.size % RECORD_BYTES:
            raise DataFormatError(
                f"{archive}: member {name} holds {member.size:,} bytes, which is not a whole "
                f"number of {RECORD_BYTES:,}-byte records (1 label byte + "
                f"{RECORD_BYTES - 1:,} pixel bytes); {_REDOWNLOAD_HINT}"
            )
    # In archive order, so a gzipped archive is decompressed forwards rather than rewound for
    # every member.
    ordered = sorted(members.items(), key=lambda item: item[1].offset_data)
    return {name: _read_member(tar, member) for name, member in ordered}


def _read_member(tar: tarfile.TarFile, member: tarfile.TarInfo) -> bytes:
    stream = tar.extractfile(member)
    assert stream is not None  # a regular file always has a stream
    with stream:
        return stream.read()


def _read_classes(tar: tarfile.TarFile, archive: Path) -> tuple[str, ...] | None:
    """Return the class names in ``batches.meta.txt``, or None when there is no such member."""
    try:
        tar.getmember(META_MEMBER)
    except KeyError:
        return None
    member = _regular_member(tar, archive, META_MEMBER)
    try:
        text = _read_member(tar, member).decode("utf-8")
    except UnicodeDecodeError as error:
        raise DataFormatError(
            f"{archive}: member {META_MEMBER} is not text ({error}); {_REDOWNLOAD_HINT}"
        ) from error
    # The official file pads its list with blank lines and trailing spaces.
    names = tuple(line.strip() for line in text.splitlines() if line.strip())
    if len(names) != NUM_CLASSES:
        raise DataFormatError(
            f"{archive}: member {META_MEMBER} names {len(names)} classes, expected "
            f"{NUM_CLASSES} (one per line); {_REDOWNLOAD_HINT}"
        )
    return names


def _parse_batch(data: bytes, archive: Path, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Split a batch's records into NHWC images (a transposed view) and labels (a view)."""
    records = np.frombuffer(data, dtype=np.uint8).reshape(-1, RECORD_BYTES)
    labels = records[:, 0]
    out_of_range = np.flatnonzero(labels >= NUM_CLASSES)
    if out_of_range.size:
        first = int(out_of_range[0])
        raise DataFormatError(
            f"{archive}: member {name} record {first} has label {int(labels[first])}, and "
            f"{out_of_range.size} record(s) in all lie outside 0..{NUM_CLASSES - 1}; "
            f"{_REDOWNLOAD_HINT}"
        )
    planes = records[:, 1:].reshape(-1, CHANNELS, IMAGE_SIDE, IMAGE_SIDE)
    return planes.transpose(0, 2, 3, 1), labels


def _stack(batches: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """Join parsed batches into one contiguous NHWC image array and one label array."""
    count = sum(len(labels) for _, labels in batches)
    # np.concatenate would keep the transposed views' memory order; writing into a C-ordered
    # array copies each pixel once and leaves the result contiguous.
    images = np.empty((count, IMAGE_SIDE, IMAGE_SIDE, CHANNELS), dtype=np.uint8)
    np.concatenate([batch_images for batch_images, _ in batches], out=images)
    labels = np.concatenate([batch_labels for _, batch_labels in batches])
    return images, labels
