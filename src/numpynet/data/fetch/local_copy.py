"""Copying a user's image folder, or an archive of one, from disk into ``data/raw/<name>/``.

A local location is taken from the project root when relative, wherever the stage runs. What a
folder source may hold follows the rule archives follow (formats/archive.py rejects every link
member, since it could point anywhere):

* a link that resolves to a regular file inside the folder is copied as that file;
* every other link (to a file outside the folder, to a folder, dangling, or part of a loop) and
  every special file (a pipe, a device, a socket) is refused, naming it and where it points;
* the folder may not contain the project's ``data/`` folder or the destination (it would copy the
  dataset into itself), and no local source may lie inside ``data/raw/`` or the destination,
  which the stage replaces. A folder elsewhere in the project (``images/``) is fine;
* two entries of one folder that the project's file system stores under one name (``Cat/`` and
  ``cat/`` where it ignores case, as macOS's and Windows' do; ``café`` composed and decomposed
  where it ignores Unicode normalization) are refused, naming both: the copy would merge two
  classes, or overwrite one image with another. Every file and folder is created exclusively, so
  the file system itself says when it folds two names into one.

The copy keeps every relative path: a file ``train/cat/1.png`` of the source is
``data/raw/<name>/<source's last component>/train/cat/1.png``, and an archive is copied whole
under its own name, so preprocess's messages can name the file in the source
(formats/source_names.py).

No copy, folder or archive, writes more than ``download.max_bytes`` in all.
"""

from __future__ import annotations

import os
import stat
import unicodedata
from pathlib import Path

from numpynet.data.catalog import ImageFolderSource, RemoteFile
from numpynet.data.fetch.checksums import sha256_of_file
from numpynet.data.fetch.download import fetch_file
from numpynet.errors import DownloadError
from numpynet.files import atomic_directory, atomic_path, public_name
from numpynet.log import Log, log_to_stderr

_CHUNK_BYTES = 1 << 16


def copy_local_source(
    source: ImageFolderSource,
    out_dir: Path,
    dest: Path,
    project_root: Path | None,
    limits: dict,
    log: Log = log_to_stderr,
) -> None:
    """Copy the folder or archive ``source`` names on disk to ``dest`` (inside ``out_dir``).

    A pinned archive is verified as a download is (``limits`` are
    :func:`~numpynet.data.fetch.download.fetch_file`'s bounds); a folder is copied whole, within
    ``limits["max_bytes"]``, after the checks of the module docstring.
    """
    max_bytes = limits["max_bytes"]
    location = _local_location(source, out_dir, project_root)
    if location.is_dir():
        # A snapshot of the folder, so the DVC cache holds exactly what was trained on.
        _copy_folder(location, dest, source, max_bytes)
        log(f"{source.name}: copied folder {location}")
    elif source.sha256 is not None:
        remote = RemoteFile(source.local_name, sha256=source.sha256, decompress=False)
        fetch_file(remote, dest, [str(location)], log=log, **limits)
    else:
        with atomic_path(dest) as tmp:
            _copy_file(location, tmp, _Budget(max_bytes, source, location))
        log(
            f"{source.name}: copied {location} (not verified; to pin it, set "
            f"datasets.{source.name}.data.sha256: {sha256_of_file(dest)})"
        )


def source_key(source: ImageFolderSource) -> str:
    """The params.yaml key that names a local source, for messages."""
    return f"datasets.{source.name}.data.source"


def _inside(path: Path, folder: Path) -> bool:
    """Whether ``path`` is ``folder`` or lies below it (both already resolved)."""
    return path == folder or folder in path.parents


def _local_location(source: ImageFolderSource, out_dir: Path, project_root: Path | None) -> Path:
    """The resolved path of a local source, after checking it may be copied (module docstring)."""
    key = source_key(source)
    given = Path(source.location).expanduser()
    start = Path(project_root) if project_root is not None else Path.cwd()
    try:
        # The location itself may be a link (``~/pets`` -> a disk elsewhere): that is fine.
        location = (start / given).resolve(strict=True)
    except FileNotFoundError:
        raise DownloadError(
            f"{key}: {source.location} does not exist (relative paths are taken from the project "
            f"root, {start}); point it at a folder, an archive or a URL"
        ) from None
    except (OSError, RuntimeError) as error:  # a loop of links
        raise DownloadError(
            f"{key}: {source.location} cannot be resolved ({error}); point it at the folder or "
            f"archive itself"
        ) from None
    # Resolved like the location, so a data/ linked to another disk is recognised there.
    destination = out_dir.resolve()
    data = (Path(project_root) / "data").resolve() if project_root is not None else None
    # data/ first: the destination is the stage's hidden temporary folder inside it.
    protected = ([data] if data else []) + [destination]
    if location.is_dir():
        for folder in protected:
            if _inside(folder, location):
                raise DownloadError(
                    f"{key}: the folder {location} contains {public_name(folder)}, where the "
                    f"pipeline writes "
                    f"this dataset, so it would be copied into itself; point it at the folder "
                    f"that holds just the images (e.g. images/<name> in the project)"
                )
    elif not location.is_file():
        raise DownloadError(
            f"{key}: {location} is neither a folder nor a regular file (a device or a pipe "
            f"never ends); point it at a folder, an archive or a URL"
        )
    outputs = [destination] + ([(data / "raw").resolve()] if data else [])
    for folder in outputs:
        if _inside(location, folder):
            raise DownloadError(
                f"{key}: {location} lies inside {public_name(folder)}, which the download stage "
                f"writes and "
                f"replaces; keep the images elsewhere (e.g. images/<name> in the project)"
            )
    return location


class _Budget:
    """The bytes a copy may still write, and what to say when they run out."""

    def __init__(self, max_bytes: int, source: ImageFolderSource, location: Path) -> None:
        self.left = max_bytes
        self.max_bytes = max_bytes
        self.source = source
        self.location = location

    def spend(self, count: int, path: str) -> None:
        """Take ``count`` bytes of ``path`` from the budget; refuse the folder once it is spent."""
        self.left -= count
        if self.left < 0:
            raise DownloadError(
                f"{source_key(self.source)}: {self.location} holds more than download.max_bytes = "
                f"{self.max_bytes} bytes (stopped at {path}); if the dataset really is that "
                f"large, raise download.max_bytes in params.yaml"
            )


def _copy_file(path: Path | str, target: Path, budget: _Budget, exclusive: bool = False) -> None:
    """Copy one regular file, within ``budget``; never follows a link or blocks on a pipe.

    ``exclusive``: ``target`` must not exist yet (FileExistsError otherwise), for a folder's
    entries: a file system that folds two source names into one must not overwrite the first.
    """
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as error:
        raise DownloadError(
            f"{source_key(budget.source)}: cannot read {path} ({error.strerror}); fix its "
            f"permissions or remove it"
        ) from None
    with os.fdopen(descriptor, "rb") as stream:
        if not stat.S_ISREG(os.fstat(descriptor).st_mode):
            _refuse_special(budget.source, str(path))
        with open(target, "xb" if exclusive else "wb") as out:
            for chunk in iter(lambda: _read(stream, path, budget.source), b""):
                budget.spend(len(chunk), str(path))
                out.write(chunk)  # a full disk: the stage names the output and the fix


def _read(stream, path: Path | str, source: ImageFolderSource) -> bytes:
    """The next chunk of ``path``; a read error (a failing disk) names the source file."""
    try:
        return stream.read(_CHUNK_BYTES)
    except OSError as error:
        raise DownloadError(
            f"{source_key(source)}: cannot read {path} ({error.strerror or error}); check the disk "
            f"or the folder's permissions, or remove the file"
        ) from None


def _refuse_special(source: ImageFolderSource, path: str) -> None:
    raise DownloadError(
        f"{source_key(source)}: {path} is a special file (a pipe, a device or a socket), which an "
        f"image folder may not hold; remove it from the folder"
    )


def _link_target(link: str, root: Path, source: ImageFolderSource) -> Path:
    """The file inside ``root`` that ``link`` resolves to, or a DownloadError saying why not."""
    points_to = os.readlink(link)
    fix = "replace the link with a copy of the file it should bring, or remove it"
    try:
        target = Path(os.path.realpath(link, strict=True))
    except FileNotFoundError:
        raise DownloadError(
            f"{source_key(source)}: the link {link} -> {points_to} is dangling (nothing is there); "
            f"{fix}"
        ) from None
    except OSError:
        raise DownloadError(
            f"{source_key(source)}: the link {link} -> {points_to} is part of a loop of links; "
            f"{fix}"
        ) from None
    if not _inside(target, root):
        raise DownloadError(
            f"{source_key(source)}: the link {link} -> {points_to} points outside the folder "
            f"{root} (to {target}); links may only point to files inside it (archives may hold "
            f"no links at all); {fix}"
        )
    if target.is_dir():
        raise DownloadError(
            f"{source_key(source)}: the link {link} -> {points_to} points to a folder; links to "
            f"folders are refused (they can loop or copy images twice); move the folder there "
            f"instead"
        )
    return target


def _copy_folder(root: Path, dest: Path, source: ImageFolderSource, max_bytes: int) -> None:
    """Copy the folder ``root`` (resolved) to ``dest`` under the rules of the module docstring."""
    budget = _Budget(max_bytes, source, root)
    with atomic_directory(dest) as tmp:  # a refused folder leaves nothing half-copied
        pending = [(root, tmp)]
        _copy_tree(pending, root, source, budget)


def _copy_tree(pending: list[tuple[Path, Path]], root: Path, source, budget: _Budget) -> None:
    """Copy folder by folder, depth first, until ``pending`` is empty."""
    while pending:
        folder, target_folder = pending.pop()
        try:
            entries = sorted(os.scandir(folder), key=lambda entry: entry.name)
        except OSError as error:
            raise DownloadError(
                f"{source_key(source)}: cannot list {folder} ({error.strerror}); fix its "
                f"permissions"
            ) from None
        copied: dict[str, str] = {}  # folded name -> the entry copied under it
        for entry in entries:
            target = target_folder / entry.name
            try:
                if entry.is_symlink():
                    _copy_file(_link_target(entry.path, root, source), target, budget,
                               exclusive=True)
                elif entry.is_dir(follow_symlinks=False):
                    target.mkdir()
                    pending.append((Path(entry.path), target))
                elif entry.is_file(follow_symlinks=False):
                    _copy_file(entry.path, target, budget, exclusive=True)
                else:
                    _refuse_special(source, entry.path)
            except FileExistsError:
                _refuse_folded(source, folder, entry.name, copied.get(_folded(entry.name)))
            copied.setdefault(_folded(entry.name), entry.name)


def _folded(name: str) -> str:
    """What a file system that ignores case and Unicode normalization stores ``name`` as, near
    enough to find which earlier entry it took ``name`` for."""
    return unicodedata.normalize("NFC", name).casefold()


def _refuse_folded(source: ImageFolderSource, folder: Path, name: str, earlier: str | None) -> None:
    """Refuse an entry the destination's file system stores under the name of an earlier one."""
    other = f"{ascii(earlier)} and {ascii(name)}" if earlier else f"{ascii(name)} and another entry"
    raise DownloadError(
        f"{source_key(source)}: the folder {folder} holds {other}, names that differ only by case "
        f"or by Unicode normalization (escaped here to show the difference), and the file system "
        f"of the project's data/ stores them as one name (as macOS's and Windows' do), so the "
        f"copy would merge them or overwrite one with the other; nothing was copied. Rename one "
        f"of them, or merge the two (move the images of one into the other)"
    )
