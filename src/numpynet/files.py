"""Writing outputs so that a crash never leaves a half-written file behind.

Everything is written under a temporary name in the destination's own directory (so the final
rename stays on one filesystem and is atomic) and renamed into place only when complete. A run
killed before the rename leaves that temporary behind; the next write of the same destination
removes it (:func:`sweep_leftovers`). A full disk, a quota, a read-only or forbidden folder
becomes an :class:`~numpynet.errors.OutputError` naming the destination and the fix, with the
previous output untouched.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import os
import re
import secrets
import shutil
import zipfile
from pathlib import Path
from typing import Iterator

import numpy as np

from numpynet.errors import OutputError, write_failure

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
            os.replace(tmp, dest)
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
            _replace_directory(tmp, dest)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


def _replace_directory(tmp: Path, dest: Path) -> None:
    """Rename ``tmp`` onto ``dest``; the old ``dest`` comes back if that rename fails."""
    if not os.path.lexists(dest):
        os.replace(tmp, dest)
        return
    # Moved aside, not deleted first: until the new one is in place the old one can return. A
    # kill between the two renames leaves it under a temporary name, swept at the next write.
    old = _temporary_sibling(dest)
    os.replace(dest, old)
    try:
        os.replace(tmp, dest)
    except BaseException:
        os.replace(old, dest)
        raise
    if old.is_dir() and not old.is_symlink():
        shutil.rmtree(old, ignore_errors=True)
    else:
        old.unlink(missing_ok=True)


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
    return json.loads(text, parse_constant=_refuse_constant)


def _refuse_constant(name: str):
    raise ValueError(f"{name} is no JSON number")


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
