"""Read and write the idx format that MNIST and Fashion-MNIST are distributed in.

An idx file is a 4-byte magic number (two zero bytes, a type byte, a dimension count), one
big-endian uint32 per dimension, then the values in C order. Only unsigned bytes (type 0x08) are
supported: every dataset this project reads uses them.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from numpynet.data.catalog import IDX_ROLES
from numpynet.errors import DataFormatError

_UNSIGNED_BYTE = 0x08
_TYPE_NAMES = {
    0x08: "unsigned byte",
    0x09: "signed byte",
    0x0B: "int16",
    0x0C: "int32",
    0x0D: "float32",
    0x0E: "float64",
}
_GZIP_MAGIC = b"\x1f\x8b"
_REDOWNLOAD_HINT = "delete it and run the download stage again"


def read_idx(path: Path) -> np.ndarray:
    """Read an unsigned-byte idx file into a ``uint8`` array of the shape its header declares.

    Raises :class:`DataFormatError` naming the file when the magic number, the type, the header
    or the data length is not what the header promises.
    """
    path = Path(path)
    file_size = os.path.getsize(path)
    with open(path, "rb") as stream:
        magic = stream.read(4)
        if len(magic) < 4:
            raise DataFormatError(
                f"{path}: too short to be an idx file ({file_size} bytes; the magic number alone "
                f"takes 4); {_REDOWNLOAD_HINT}"
            )
        if magic[:2] != b"\x00\x00":
            is_gzip = magic[:2] == _GZIP_MAGIC
            hint = " It looks gzip-compressed: decompress it first." if is_gzip else ""
            raise DataFormatError(
                f"{path}: bad magic number {magic.hex()}: an idx file starts with two zero bytes."
                f"{hint} {_REDOWNLOAD_HINT}"
            )
        type_code, ndims = magic[2], magic[3]
        if type_code != _UNSIGNED_BYTE:
            type_name = _TYPE_NAMES.get(type_code, "unknown")
            raise DataFormatError(
                f"{path}: unsupported idx data type 0x{type_code:02x} ({type_name}); only 0x08 "
                f"(unsigned byte) is supported"
            )
        if ndims == 0:
            raise DataFormatError(
                f"{path}: the idx header declares 0 dimensions; {_REDOWNLOAD_HINT}"
            )
        header_size = 4 + 4 * ndims
        if file_size < header_size:
            raise DataFormatError(
                f"{path}: truncated header: {ndims} dimensions need a {header_size}-byte header, "
                f"file has {file_size} bytes; {_REDOWNLOAD_HINT}"
            )
        shape = struct.unpack(f">{ndims}I", stream.read(4 * ndims))
        declared = int(np.prod(shape, dtype=np.int64))
        actual = file_size - header_size
        if actual < declared:
            raise DataFormatError(
                f"{path}: truncated: header declares {declared} bytes of data (shape {shape}), "
                f"file has {actual}; {_REDOWNLOAD_HINT}"
            )
        if actual > declared:
            raise DataFormatError(
                f"{path}: {actual - declared} unexpected bytes after the data: header declares "
                f"{declared} bytes (shape {shape}), file has {actual}; {_REDOWNLOAD_HINT}"
            )
    data = np.fromfile(path, dtype=np.uint8, count=declared, offset=header_size)
    return data.reshape(shape)


def write_idx(path: Path, array: np.ndarray) -> None:
    """Write a ``uint8`` array of at least one dimension to ``path`` in the idx format."""
    array = np.asarray(array)
    if array.dtype != np.uint8:
        raise TypeError(f"write_idx writes uint8 arrays only, got {array.dtype}")
    if array.ndim == 0 or array.ndim > 255:
        raise ValueError(f"write_idx needs 1 to 255 dimensions, got {array.ndim}")
    header = struct.pack(f">BBBB{array.ndim}I", 0, 0, _UNSIGNED_BYTE, array.ndim, *array.shape)
    with open(path, "wb") as stream:
        stream.write(header)
        stream.write(np.ascontiguousarray(array).tobytes())


def load_idx_dataset(
    paths: Mapping[str, Path],
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Read the four idx files of a dataset; return ``(x_train, y_train, x_test, y_test)``.

    ``paths`` maps the roles ``train_images``, ``train_labels``, ``test_images`` and
    ``test_labels`` to files. Images must be 3-D (count, height, width), labels 1-D, each split
    must hold as many labels as images, and both splits must share one image size.
    """
    missing = [role for role in IDX_ROLES if role not in paths]
    if missing:
        raise DataFormatError(
            f"idx dataset is missing the files for {', '.join(missing)} (got {sorted(paths)})"
        )
    arrays = {role: read_idx(Path(paths[role])) for role in IDX_ROLES}
    for split in ("train", "test"):
        images_path, labels_path = paths[f"{split}_images"], paths[f"{split}_labels"]
        images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        if images.ndim != 3:
            raise DataFormatError(
                f"{images_path}: expected 3-D images (count, height, width), got shape "
                f"{images.shape}; is it an images file?"
            )
        if labels.ndim != 1:
            raise DataFormatError(
                f"{labels_path}: expected 1-D labels, got shape {labels.shape}; "
                f"is it a labels file?"
            )
        if len(images) != len(labels):
            raise DataFormatError(
                f"{images_path} holds {len(images)} images but {labels_path} holds "
                f"{len(labels)} labels; the two files must come from the same split and release"
            )
    if arrays["train_images"].shape[1:] != arrays["test_images"].shape[1:]:
        raise DataFormatError(
            f"{paths['train_images']} holds {arrays['train_images'].shape[1:]} images but "
            f"{paths['test_images']} holds {arrays['test_images'].shape[1:]}; "
            f"both splits must share one image size"
        )
    return (
        arrays["train_images"],
        arrays["train_labels"],
        arrays["test_images"],
        arrays["test_labels"],
    )
