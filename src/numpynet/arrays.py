"""Reading ``.npy`` and ``.npz`` files without trusting them: headers first, memory bounded.

NumPy's readers allocate what a file's header declares before they read a byte of data, so a
tiny file whose header claims a (2**40,) array asks for terabytes; and their message for a
pickled array advises switching on unpickling, which is the wrong fix. Here every header is
checked against the bytes that follow it (and the archive's size) first, only plain numbers
(bool, int, float) are read, and each problem becomes an :class:`ArrayFileError` naming the file.
The caller adds the fix: which stage writes the file.
"""

from __future__ import annotations

import contextlib
import math
import os
import zipfile
from pathlib import Path
from typing import Iterator

import numpy as np

from numpynet.errors import DataFormatError
from numpynet.files import RefusedFileError, regular_file_path


class ArrayFileError(DataFormatError, ValueError):
    """An ``.npy`` or ``.npz`` file numpynet will not read: pickled objects, a header that does
    not match the data, a damaged archive. The message names the file and the problem; callers
    add the fix (which stage writes the file)."""


_READ_CHUNK = 1 << 22
_NUMBER_KINDS = "biuf"  # bool, signed and unsigned integers, floats: all numpynet ever writes


def _checked_header(
    stream, available: int, where: str
) -> tuple[tuple[int, ...], bool, np.dtype]:
    """Read an ``.npy`` header from ``stream``; refuse it unless it declares plain numbers that
    fill exactly the ``available`` bytes after it (``available`` counts from the stream's start).

    Checked before any data is read, so a header declaring a huge array in a tiny file costs
    nothing: NumPy would allocate what the header says first.
    """
    try:
        version = np.lib.format.read_magic(stream)
        if version not in ((1, 0), (2, 0)):
            raise ValueError(f"format version {version[0]}.{version[1]}, which numpynet never uses")
        read = getattr(np.lib.format, f"read_array_header_{version[0]}_0")
        shape, fortran, dtype = read(stream)
    except (ValueError, EOFError, SyntaxError) as error:
        raise ArrayFileError(f"{where} is not a NumPy array file ({error})") from None
    if dtype.hasobject:
        raise ArrayFileError(
            f"{where} holds pickled Python objects, which numpynet never reads (unpickling can run "
            f"code): numpynet did not write this file"
        )
    if dtype.kind not in _NUMBER_KINDS or dtype.itemsize == 0:
        raise ArrayFileError(f"{where} holds {dtype} values, not plain numbers")
    declared = math.prod(shape) * dtype.itemsize
    data = available - stream.tell()
    if min(shape, default=0) < 0 or declared != data:
        raise ArrayFileError(
            f"{where}: its header declares {'x'.join(map(str, shape)) or 'one'} {dtype} values "
            f"({declared:,} bytes) but {max(data, 0):,} bytes follow it: the file is truncated or "
            f"corrupt"
        )
    return tuple(shape), fortran, dtype


@contextlib.contextmanager
def _regular_file(path: Path | str) -> Iterator[os.PathLike]:
    """``path`` as :func:`numpynet.files.regular_file_path` checks it: a FIFO, a device or a
    link to one is refused at once (:class:`ArrayFileError`), where reading it would hang or
    never end."""
    with contextlib.ExitStack() as stack:
        try:
            checked = stack.enter_context(regular_file_path(path))
        except RefusedFileError as error:
            raise ArrayFileError(str(error)) from None
        yield checked


def npy_header(path: Path | str) -> tuple[tuple[int, ...], np.dtype]:
    """The ``(shape, dtype)`` of a ``.npy`` file, after :func:`_checked_header`'s checks."""
    with _regular_file(path) as checked, open(checked, "rb") as stream:
        shape, _, dtype = _checked_header(stream, os.fstat(stream.fileno()).st_size, str(path))
    return shape, dtype


def load_npy(path: Path | str, mmap: bool = False) -> np.ndarray:
    """Load a ``.npy`` file with pickled objects refused, memory-mapped read-only when ``mmap``.

    Only a regular file, and its header checked against its size first (:class:`ArrayFileError`).
    """
    with _regular_file(path) as checked:
        npy_header(checked)
        # As a plain string: np.memmap takes an os.PathLike for a pathlib.Path.
        return np.load(os.fspath(checked), mmap_mode="r" if mmap else None, allow_pickle=False)


def load_npz(
    path: Path | str, expected: dict[str, tuple[tuple[int, ...], np.dtype]] | None = None
) -> dict[str, np.ndarray]:
    """Load every array of an uncompressed ``.npz`` file (as :func:`numpynet.files.save_npz`
    and ``np.savez`` write), refusing pickled content, with memory bounded by the file's size.

    With ``expected`` (name -> shape and dtype), the archive must hold exactly those arrays.
    Every check is made on the headers, before any array's data is read. Raises
    :class:`ArrayFileError` naming the file and the problem.
    """
    try:
        with _regular_file(path) as checked, zipfile.ZipFile(checked) as archive:
            infos = archive.infolist()
            _check_members(path, infos, os.path.getsize(checked), expected)
            return {info.filename[:-4]: _read_member(archive, info, path, expected)
                    for info in infos}
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, NotImplementedError,
            RuntimeError, ValueError) as error:
        if isinstance(error, ArrayFileError):
            raise
        raise ArrayFileError(f"{path} is not a readable .npz archive ({error})") from None


def _check_members(path, infos: list[zipfile.ZipInfo], size: int, expected) -> None:
    """Refuse an archive whose member list could not come from save_npz or np.savez."""
    names = [info.filename[:-4] for info in infos]
    odd = [i.filename for i in infos if not i.filename.endswith(".npy")] + sorted(
        {n for n in names if names.count(n) > 1})
    if odd:
        raise ArrayFileError(f"{path} holds members that are no single .npy arrays: {_few(odd)}")
    if sum(info.file_size for info in infos) > size:  # members overlapping, or sizes made up
        raise ArrayFileError(f"{path}: its members declare more bytes than the file holds")
    packed = [i.filename for i in infos if i.compress_type != zipfile.ZIP_STORED]
    if packed:
        raise ArrayFileError(
            f"{path}: {packed[0]} is compressed; numpynet reads uncompressed archives only"
        )
    if expected is None:
        return
    missing = sorted(expected.keys() - set(names))
    unexpected = sorted(set(names) - expected.keys())
    problems = [f"lacks the arrays {_few(missing)}"] if missing else []
    problems += [f"holds unexpected arrays {_few(unexpected)}"] if unexpected else []
    if problems:
        raise ArrayFileError(f"{path} {' and '.join(problems)}")


def _few(names: list[str]) -> str:
    """Up to five names, then how many there are: a message stays one readable paragraph."""
    return str(names[:5])[:-1] + (f", ... ({len(names)} in all)]" if len(names) > 5 else "]")


def _read_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, path, expected) -> np.ndarray:
    """One member's array, its header checked before its data is read."""
    name, where = info.filename[:-4], f"{path}: array {info.filename[:-4]!r}"
    with archive.open(info) as member:
        shape, fortran, dtype = _checked_header(member, info.file_size, where)
        if expected is not None and (shape, dtype) != tuple(expected[name]):
            want_shape, want_dtype = expected[name]
            raise ArrayFileError(
                f"{where} has shape {shape} and dtype {dtype}, but shape {tuple(want_shape)} and "
                f"dtype {np.dtype(want_dtype)} belong there"
            )
        buffer = bytearray(math.prod(shape) * dtype.itemsize)
        view, done = memoryview(buffer), 0
        while done < len(buffer):
            chunk = member.read(min(_READ_CHUNK, len(buffer) - done))
            if not chunk:
                raise ArrayFileError(f"{where} is truncated")
            view[done : done + len(chunk)] = chunk
            done += len(chunk)
        member.read()  # at the end: the zip module checks the member's CRC here
    return np.frombuffer(buffer, dtype=dtype).reshape(shape, order="F" if fortran else "C")
