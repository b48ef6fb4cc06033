"""Writing outputs so that a crash never leaves a half-written file behind.

Everything is written under a temporary name in the destination's own directory (so the final
rename stays on one filesystem and is atomic) and renamed into place only when complete.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import secrets
import shutil
import zipfile
from pathlib import Path
from typing import Iterator

import numpy as np

# A fixed timestamp makes zip archives byte-identical across runs.
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)


def _temporary_sibling(dest: Path) -> Path:
    """A hidden, unused name beside ``dest``.

    Not tempfile.mkstemp: its files are private (0600), and outputs should get the umask's
    permissions like any other file the user creates.
    """
    return dest.parent / f".{dest.name}.{secrets.token_hex(6)}.tmp"


@contextlib.contextmanager
def atomic_path(dest: Path | str) -> Iterator[Path]:
    """Yield a temporary path beside ``dest``; rename it onto ``dest`` if the block succeeds."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temporary_sibling(dest)
    tmp.touch(exist_ok=False)
    try:
        yield tmp
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_directory(dest: Path | str) -> Iterator[Path]:
    """Yield a fresh temporary directory beside ``dest``; it replaces ``dest`` on success."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temporary_sibling(dest)
    tmp.mkdir()
    try:
        yield tmp
        if dest.exists():
            shutil.rmtree(dest)
        os.replace(tmp, dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def write_json(path: Path | str, data) -> None:
    """Write ``data`` as indented, key-sorted JSON (stable bytes for equal data)."""
    text = json.dumps(data, indent=2, sort_keys=True) + "\n"
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_text(path: Path | str, text: str) -> None:
    """Write ``text`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def _c_order(array) -> np.ndarray:
    """``array`` in C order, so equal arrays give equal bytes whatever their memory layout.

    Not np.ascontiguousarray: it turns a 0-d array into shape (1,).
    """
    return np.asarray(array, order="C")


def save_npy(path: Path | str, array: np.ndarray) -> None:
    """Save one array in NumPy's ``.npy`` format, atomically, never pickling objects."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.lib.format.write_array(f, _c_order(array), allow_pickle=False)


def load_npy(path: Path | str, mmap: bool = False) -> np.ndarray:
    """Load a ``.npy`` file with pickled objects refused, memory-mapped read-only when ``mmap``."""
    return np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)


def save_npz(path: Path | str, arrays: dict[str, np.ndarray]) -> None:
    """Save named arrays as an ``.npz`` that ``np.load`` reads, byte-identical for equal arrays.

    ``np.savez`` stamps each member with the current time; this writes the same format with a
    fixed timestamp and sorted member order instead.
    """
    with atomic_path(path) as tmp:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as archive:
            for name in sorted(arrays):
                buffer = io.BytesIO()
                np.lib.format.write_array(
                    buffer, _c_order(arrays[name]), allow_pickle=False
                )
                info = zipfile.ZipInfo(f"{name}.npy", date_time=_ZIP_EPOCH)
                info.external_attr = 0o644 << 16
                archive.writestr(info, buffer.getvalue())


def load_npz(path: Path | str) -> dict[str, np.ndarray]:
    """Load every array of an ``.npz`` file, refusing pickled content."""
    with np.load(path, allow_pickle=False) as archive:
        return {name: archive[name] for name in archive.files}


def write_csv(path: Path | str, columns: list[str], rows: list[dict]) -> None:
    """Write ``rows`` (mappings with every column) as a CSV table with a header line.

    Fields holding a comma, a quote or a line break are quoted, so any class name survives.
    """
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows([row[column] for column in columns] for row in rows)
    write_text(path, buffer.getvalue())
