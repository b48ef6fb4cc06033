"""Writing outputs so that a crash never leaves a half-written file behind.

Everything is written under a temporary name in the destination's own directory (so the final
rename stays on one filesystem and is atomic) and renamed into place only when complete. A run
killed before the rename leaves that temporary behind; the next write of the same destination
removes it (:func:`sweep_leftovers`). A full disk, a quota, a read-only or forbidden folder
becomes an :class:`~numpynet.errors.OutputError` naming the destination and the fix, with the
previous output untouched.

Files numpynet reads back are opened by :func:`open_regular_file`: anything but a regular file (a
FIFO, a device such as ``/dev/zero``, a socket, or a link to one) is refused at once, before a
byte is read, and :func:`read_regular_file` caps what one read takes.
"""

from __future__ import annotations

import contextlib
import csv
import errno
import io
import json
import math
import os
import re
import secrets
import shutil
import stat
import sys
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Iterator

from numpynet.errors import DataFormatError, OutputError, write_failure
from numpynet.stopping import note_written, signals_held

if TYPE_CHECKING:  # NumPy loads when an array is written: see _numpy
    import numpy as np

# A fixed timestamp makes zip archives byte-identical across runs.
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)
# What follows ".<name>." in the temporary names of a destination <name>: ours (below) and the
# download's partial files (numpynet.data.fetch.download). Exactly 12 lowercase hex digits, as
# secrets.token_hex(6) gives: nothing a person would name a file by accident.
_TAIL = r"[0-9a-f]{12}\.tmp|part-[0-9a-f]{12}"
_LEFTOVER_TAIL = re.compile(_TAIL)
_TEMPORARY = re.compile(rf"^\.(?P<name>.+)\.(?:{_TAIL})$")


def _temporary_sibling(dest: Path) -> Path:
    """A hidden, unused name beside ``dest``.

    Not tempfile.mkstemp: its files are private (0600), and outputs should get the umask's
    permissions like any other file the user creates.
    """
    return dest.parent / f".{dest.name}.{secrets.token_hex(6)}.tmp"


def leftovers(dest: Path | str) -> list[Path]:
    """The temporary files and folders of ``dest`` that a killed run left beside it.

    Only names of the exact form ``.<name>.<12 hex digits>.tmp`` or ``.<name>.part-<12 hex
    digits>`` for ``dest``'s own name count; anything else in the folder is never touched.
    """
    dest = Path(dest)
    prefix = f".{dest.name}."
    try:
        names = os.listdir(dest.parent)
    except (FileNotFoundError, NotADirectoryError):
        return []
    return sorted(
        dest.parent / name
        for name in names
        if name.startswith(prefix) and _LEFTOVER_TAIL.fullmatch(name[len(prefix):])
    )


def sweep_leftovers(dest: Path | str) -> None:
    """Remove :func:`leftovers` of ``dest``: what a run killed while writing it left behind.

    Safe before writing ``dest`` because DVC lets one stage run at a time in a project, and no
    two stages write the same output. Best effort: what cannot be removed is left for later.
    """
    for path in leftovers(dest):
        if path.is_dir() and not path.is_symlink():  # a link is removed, never followed
            shutil.rmtree(path, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                path.unlink()


def public_name(path: Path | str) -> str:
    """``path`` as the user knows it: each temporary component replaced by its destination."""
    parts = [_TEMPORARY.sub(r"\g<name>", part) for part in Path(path).parts]
    return str(Path(*parts)) if parts else str(path)


@contextlib.contextmanager
def _environment_errors(dest: Path) -> Iterator[None]:
    """Turn an OSError of the machine (full disk, no permission...) into an OutputError."""
    shown = public_name(dest)
    existed = os.path.lexists(shown)
    try:
        yield
    except FileExistsError as error:
        if error.filename is None or Path(error.filename) != dest.parent:
            raise
        raise OutputError(
            f"cannot write {shown}: {public_name(dest.parent)} is a file, not a folder; move it "
            f"away, then run it again"
        ) from None
    except OSError as error:
        culprit = public_name(error.filename) if error.filename else None
        failure = write_failure(error, shown, existed, culprit)
        if failure is None:
            raise
        raise failure from None


@contextlib.contextmanager
def atomic_path(dest: Path | str) -> Iterator[Path]:
    """Yield a temporary path beside ``dest``; rename it onto ``dest`` if the block succeeds."""
    dest = Path(dest)
    with _environment_errors(dest):
        dest.parent.mkdir(parents=True, exist_ok=True)
        sweep_leftovers(dest)
        tmp = _temporary_sibling(dest)
        tmp.touch(exist_ok=False)
        try:
            yield tmp
            _commit([(tmp, dest)])
        finally:
            tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_directory(dest: Path | str) -> Iterator[Path]:
    """Yield a fresh temporary directory beside ``dest``; it replaces ``dest`` on success."""
    dest = Path(dest)
    with _environment_errors(dest):
        dest.parent.mkdir(parents=True, exist_ok=True)
        sweep_leftovers(dest)
        tmp = _temporary_sibling(dest)
        tmp.mkdir()
        try:
            yield tmp
            _commit([(tmp, dest)])
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


@contextlib.contextmanager
def atomic_outputs(*dests: Path | str) -> Iterator[tuple[Path, ...]]:
    """Yield an unused temporary path beside each of ``dests``, where the block makes a file or a
    folder; if the block succeeds, they replace ``dests`` together.

    Together: SIGINT and SIGTERM wait while the renames run (see
    :func:`numpynet.stopping.signals_held`), so a stop lands before any output changed or after
    all did, and the stage's last line says which. A kill -9 cannot be held off: every existing
    destination is first moved aside, and the new ones go in last to first, so ``dests[0]``,
    which should be the output that vouches for the others (the metrics beside their pictures),
    is the first to go and the last to come. A kill in between leaves it missing, never beside
    outputs of another run, and the previous outputs under temporary names that the next write
    sweeps; DVC, finding the outputs unlike dvc.lock's, runs the stage again.
    """
    dests = tuple(Path(dest) for dest in dests)
    temporaries: list[Path] = []
    try:
        for dest in dests:
            with _environment_errors(dest):
                dest.parent.mkdir(parents=True, exist_ok=True)
                sweep_leftovers(dest)
            temporaries.append(_temporary_sibling(dest))
        try:
            yield tuple(temporaries)
        except OSError as error:
            raise _failure_in_draft(error, dict(zip(temporaries, dests))) or error
        unmade = [str(tmp) for tmp in temporaries if not os.path.lexists(tmp)]
        if unmade:
            raise ValueError(f"atomic_outputs: the block made nothing at {', '.join(unmade)}")
        _commit(list(zip(temporaries, dests)))
    finally:
        for tmp in temporaries:
            _remove(tmp)


def _commit(pairs: list[tuple[Path, Path]]) -> None:
    """Rename the temporary of each ``(temporary, destination)`` pair onto its destination: all of
    them or, when a rename fails, none (what moved is moved back).

    A lone file replaces its destination in one rename. Otherwise each existing destination is
    first moved aside under a temporary name (a folder cannot be renamed onto a full one) and
    deleted once all are in place. Outputs, unlike drafts inside a temporary folder, are renamed
    with SIGINT and SIGTERM held, and recorded as written for the message of a stop.
    """
    outputs = [dest for _, dest in pairs if not _is_draft(dest)]
    existed = {dest: os.path.lexists(dest) for _, dest in pairs}
    aside: list[tuple[Path, Path]] = []
    placed: list[tuple[Path, Path]] = []
    current = None
    committed = False
    try:
        with signals_held() if outputs else contextlib.nullcontext():
            try:
                for tmp, current in pairs:
                    if existed[current] and (len(pairs) > 1 or tmp.is_dir()):
                        old = _temporary_sibling(current)
                        os.replace(current, old)
                        aside.append((old, current))
                for tmp, current in reversed(pairs):
                    os.replace(tmp, current)
                    placed.append((tmp, current))
            except BaseException as error:
                # In reverse, so that each destination gets back what it held.
                for tmp, dest in reversed(placed):
                    os.replace(dest, tmp)
                for old, dest in reversed(aside):
                    os.replace(old, dest)
                if isinstance(error, OSError):
                    culprit = public_name(error.filename) if error.filename else None
                    failure = write_failure(error, public_name(current), existed[current], culprit)
                    if failure is not None:
                        raise failure from None
                raise
            for dest in outputs:
                note_written(public_name(dest))
            committed = True
    finally:
        # Also when a stop held off during the renames arrives as the signals are let through.
        if committed:
            for old, _ in aside:
                _remove(old)


def _failure_in_draft(error: OSError, destinations: dict[Path, Path]) -> OutputError | None:
    """The :class:`OutputError` naming the output whose temporary ``error`` struck (a full disk
    while it was written), or None when the error struck elsewhere or is a bug's."""
    struck = os.path.abspath(error.filename) if isinstance(error.filename, str) else None
    for tmp, dest in destinations.items():
        tmp = os.path.abspath(tmp)
        if struck is not None and os.path.commonpath([tmp, struck]) == tmp:
            return write_failure(error, public_name(dest), os.path.lexists(dest))
    return None


def _is_draft(path: Path) -> bool:
    """Whether ``path`` is, or lies in, a temporary: a draft of an output, not an output."""
    return any(_TEMPORARY.match(part) for part in path.parts)


def _remove(path: Path) -> None:
    """Delete the file or folder at ``path``, if any; a link is removed, never followed."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(OSError):
            path.unlink(missing_ok=True)


def write_json(path: Path | str, data) -> None:
    """Write ``data`` as indented, key-sorted JSON (stable bytes for equal data).

    Raises :class:`OutputError` naming the key when ``data`` holds NaN or an infinity: JSON has
    no such numbers (Python would write ``NaN``, which strict readers refuse), and a metric that
    is not a number would mislead whoever reads it.
    """
    try:
        text = json.dumps(data, indent=2, sort_keys=True, allow_nan=False) + "\n"
    except ValueError:
        found = _non_finite(data)
        if found is None:
            raise
        key, value = found
        raise OutputError(
            f"refusing to write {public_name(path)}: {key} is {value}, not a finite number; the "
            f"computation that produced it diverged or read damaged inputs, so check the inputs "
            f"(rerun the stages that write them) and run it again; the previous file, if any, is "
            f"unchanged"
        ) from None
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def parse_json(text: str):
    """``json.loads``, refusing NaN and Infinity (``ValueError``): they are no JSON, numpynet
    never writes them, and read back they would print as facts ("accuracy nan%")."""
    try:
        return json.loads(text, parse_constant=_refuse_constant)
    except RecursionError:  # "[[[[…" a few hundred thousand deep: no JSON numpynet writes
        raise ValueError("nested too deeply to be a file numpynet wrote") from None


def _refuse_constant(name: str):
    raise ValueError(f"{name} is no JSON number")


def write_text(path: Path | str, text: str) -> None:
    """Write ``text`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def _numpy():
    """NumPy, imported when an array is first written, not with this module: params.yaml is read
    through this module (:func:`read_regular_file`) before the numeric backend is pinned, which
    must happen before NumPy loads (:func:`numpynet.backend.pin_backend`)."""
    import numpy

    return numpy


def _c_order(array) -> np.ndarray:
    """``array`` in C order, so equal arrays give equal bytes whatever their memory layout.

    Not np.ascontiguousarray: it turns a 0-d array into shape (1,).
    """
    return _numpy().asarray(array, order="C")


def save_npy(path: Path | str, array: np.ndarray) -> None:
    """Save one array in NumPy's ``.npy`` format, atomically, never pickling objects."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            _numpy().lib.format.write_array(f, _c_order(array), allow_pickle=False)


def save_npz(path: Path | str, arrays: dict[str, np.ndarray]) -> None:
    """Save named arrays as an ``.npz`` that ``np.load`` reads, byte-identical for equal arrays.

    ``np.savez`` stamps each member with the current time; this writes the same format with a
    fixed timestamp and sorted member order instead.
    """
    with atomic_path(path) as tmp:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as archive:
            for name in sorted(arrays):
                buffer = io.BytesIO()
                _numpy().lib.format.write_array(
                    buffer, _c_order(arrays[name]), allow_pickle=False
                )
                info = zipfile.ZipInfo(f"{name}.npy", date_time=_ZIP_EPOCH)
                info.external_attr = 0o644 << 16
                archive.writestr(info, buffer.getvalue())


def write_csv(path: Path | str, columns: list[str], rows: list[dict]) -> None:
    """Write ``rows`` (mappings with every column) as a CSV table with a header line.

    Fields holding a comma, a quote or a line break are quoted, so any class name survives.
    """
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows([row[column] for column in columns] for row in rows)
    write_text(path, buffer.getvalue())


def _non_finite(data, key: str = "") -> tuple[str, float] | None:
    """The first ``(dotted key, value)`` in nested dicts and lists whose number is not finite."""
    if isinstance(data, float):
        return None if math.isfinite(data) else (key or "the value", data)
    items = data.items() if isinstance(data, dict) else enumerate(data) if isinstance(
        data, (list, tuple)) else ()
    for name, value in items:
        found = _non_finite(value, f"{key}.{name}" if key else str(name))
        if found:
            return found
    return None


class RefusedFileError(DataFormatError, ValueError):
    """A file numpynet reads back that it will not read: not a regular file, or larger than the
    bound of its kind. The message names the file and the problem; callers add the fix."""


# O_NONBLOCK: opening a FIFO for reading otherwise waits for a writer, forever. O_NOCTTY: a
# terminal device must not become this process's controlling terminal by being opened.
_OPEN_FLAGS = (os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0)
               | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0))
_KINDS = {
    stat.S_IFIFO: "a FIFO (named pipe)",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFSOCK: "a socket",
}


def _not_regular(path: Path | str, mode: int | None) -> RefusedFileError:
    kind = _KINDS.get(stat.S_IFMT(mode), "no regular file") if mode is not None else "a device"
    link = f" (a link to {os.path.realpath(path)})" if os.path.islink(path) else ""
    return RefusedFileError(f"{path}{link} is {kind}, not a regular file")


@contextlib.contextmanager
def open_regular_file(path: Path | str) -> Iterator[BinaryIO]:
    """``path`` opened for reading in binary, refused at once unless it is a regular file.

    The check is made on the opened descriptor (``fstat``), so nothing can be swapped in between
    it and the reads; a link to a regular file is followed. Raises :class:`RefusedFileError` for
    a FIFO, a device, a socket or a link to one; ``FileNotFoundError`` when it is missing and
    ``IsADirectoryError`` for a folder, for the caller to word.
    """
    try:
        descriptor = os.open(path, _OPEN_FLAGS)
    except OSError as error:
        # A socket, or a device with no driver behind it, cannot even be opened.
        if error.errno in (errno.ENXIO, errno.ENODEV, errno.EOPNOTSUPP):
            raise _not_regular(path, _mode_or_none(path)) from None
        raise
    try:
        mode = os.fstat(descriptor).st_mode
        if stat.S_ISDIR(mode):
            raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), str(path))
        if not stat.S_ISREG(mode):
            raise _not_regular(path, mode)
        stream = os.fdopen(descriptor, "rb")
    except BaseException:
        os.close(descriptor)
        raise
    with stream:
        yield stream


def _mode_or_none(path: Path | str) -> int | None:
    try:
        return os.stat(path).st_mode
    except OSError:
        return None


def read_regular_file(path: Path | str, max_bytes: int, bound: str) -> bytes:
    """The bytes of the regular file at ``path`` (:func:`open_regular_file`), at most
    ``max_bytes`` of them: a larger file is refused before it is read, and one that grows past
    the bound while it is read is refused too. ``bound`` says where the bound is set (named in
    the message, so that whoever needs more knows what to raise).
    """
    with open_regular_file(path) as stream:
        size = os.fstat(stream.fileno()).st_size
        # A read asks for what the file holds (a read of n bytes allocates n first), and one byte
        # more to see whether it grew; only a file that grew is read on, up to the bound.
        data = b"" if size > max_bytes else stream.read(size + 1)
        if size < len(data) <= max_bytes:
            data += stream.read(max_bytes + 1 - len(data))
    if size > max_bytes or len(data) > max_bytes:
        raise RefusedFileError(
            f"{path} holds {max(size, len(data)):,} bytes, more than the {max_bytes:,} "
            f"({_human(max_bytes)}) such a file may hold ({bound})"
        )
    return data


def _human(count: int) -> str:
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if count >= size:
            return f"{count / size:g} {unit}"
    return f"{count} bytes"


class _DescriptorPath(os.PathLike):
    """A path that reopens one already opened file (``/dev/fd/<n>``) and prints as its name."""

    def __init__(self, name: Path | str, descriptor: int):
        self.name, self.descriptor = name, descriptor

    def __fspath__(self) -> str:
        return f"/dev/fd/{self.descriptor}"

    def __str__(self) -> str:
        return str(self.name)


@contextlib.contextmanager
def regular_file_path(path: Path | str) -> Iterator[os.PathLike]:
    """``path``, checked as :func:`open_regular_file` checks it, for a reader that takes a path
    (``zipfile``, :func:`numpynet.arrays.load_npz`).

    On Linux (``/dev/fd``), the path yielded reopens the very file that was checked,
    so a FIFO or a device swapped in afterwards is never opened; it prints as ``path`` in
    messages. Elsewhere it is ``path`` itself.
    """
    with open_regular_file(path) as stream:
        # Linux only: there, opening /dev/fd/<n> opens the file anew, with its own position; on
        # macOS and the BSDs it duplicates the descriptor, sharing one position between the
        # reads of a header and of the data after it.
        reopen = sys.platform.startswith("linux") and os.path.isdir("/dev/fd")
        yield _DescriptorPath(path, stream.fileno()) if reopen else Path(path)
