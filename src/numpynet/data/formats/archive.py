"""Listing the files of a folder or of a ``.tar``/``.tar.gz``/``.tgz``/``.zip`` archive of one.

An archive is read as what its first bytes say (:mod:`.archive_kind`), whatever its name, in one
sequential pass without extracting anything to disk. Every member is checked first: absolute
paths, ``..`` components, links and special files are rejected with :class:`UnsafeArchiveError`,
so a hostile archive cannot reach files outside the dataset. Names must be text: a folder's or a
tar's name that is not UTF-8, or a zip's non-ASCII name its archive does not mark as UTF-8
(:mod:`.zip_names`), is refused, naming its bytes, rather than read as mojibake.

Members are read into memory within :class:`~numpynet.data.read_limits.ReadLimits`, so a small
archive of huge or countless members is refused instead of exhausting memory:

* :class:`Holdings` reads each member (refusing one whose header declares more than
  ``max_file_bytes`` unread, and never asking for more than that plus one byte, so a header that
  lies is caught too) and charges its bytes, and a fixed overhead for every member listed,
  against ``max_archive_bytes``;
* :class:`BoundedTarInfo` refuses a tar extended header (a GNU long name, a pax record) larger
  than :data:`MAX_TAR_EXTENDED_HEADER_BYTES`, which :mod:`tarfile` would read whole;
* :func:`check_zip_directory` sizes a zip's central directory up from its end record, before
  :mod:`zipfile` turns every entry into an object.

What the files mean (which are samples of which class) is not decided here; the caller only says
which files are worth reading into memory.
"""

from __future__ import annotations

import gzip
import lzma
import os
import re
import stat
import struct
import tarfile
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from numpynet.data.formats.archive_kind import ArchiveKind, NotAnArchive, archive_kind
from numpynet.data.formats.source_names import SourceNames
from numpynet.data.formats.zip_names import UnmarkedName, member_text, shown_stored
from numpynet.data.read_limits import (
    DEFAULT_LIMITS,
    MEMBER_OVERHEAD_BYTES,
    ReadLimits,
    amount,
    bookkeeping_bytes,
    shown_name,
)
from numpynet.errors import DataFormatError

# Long names and pax records are a few hundred bytes; tarfile reads each whole into memory.
MAX_TAR_EXTENDED_HEADER_BYTES = 2**20
_TAR_EXTENDED_TYPES = (
    tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK, tarfile.XHDTYPE, tarfile.XGLTYPE,
    tarfile.SOLARIS_XHDTYPE,
)
# What zipfile keeps per byte of central directory once parsed: about 480 bytes for a record
# of 52 (measured with short names; the smallest record is 46 bytes).
_ZIP_DIRECTORY_EXPANSION = 10


class RefusedTarHeader(Exception):
    """Raised from inside :mod:`tarfile` (which knows no archive name); the caller words it."""

    def message(self, archive: str) -> str:
        """The user's message: the archive (as :meth:`SourceNames.place` names it), what its
        header holds, what to do."""
        raise NotImplementedError


class OversizedTarHeader(RefusedTarHeader):
    """An extended header (long name, pax record) larger than any genuine one."""

    def __init__(self, size: int) -> None:
        super().__init__(size)
        self.size = size

    def message(self, archive: str) -> str:
        return (
            f"archive {archive} holds an extended tar header (a long member name or a pax "
            f"record) of {amount(self.size)}, more than the "
            f"{amount(MAX_TAR_EXTENDED_HEADER_BYTES)} any genuine one needs; nothing was decoded. "
            "The archive is damaged or hostile: recreate it with tar or zip"
        )


class SparseTarMember(RefusedTarHeader):
    """A sparse member: no image is sparse, and tarfile reads a sparse map of any length."""

    def message(self, archive: str) -> str:
        return (
            f"archive {archive} holds a sparse file (GNU sparse format), which no image is; its "
            "map of holes is read whole before anything can be bounded, so it is refused and "
            "nothing was decoded. Recreate the archive without --sparse (tar -cf, or zip)"
        )


class BoundedTarInfo(tarfile.TarInfo):
    """A TarInfo that refuses an oversized extended header before tarfile reads it whole, and
    every kind of sparse member before tarfile reads its map."""

    def _proc_member(self, tarfile_: tarfile.TarFile):  # tarfile's hook for every header read
        if self.type in _TAR_EXTENDED_TYPES and self.size > MAX_TAR_EXTENDED_HEADER_BYTES:
            raise OversizedTarHeader(self.size)
        if self.type == tarfile.GNUTYPE_SPARSE:
            raise SparseTarMember()
        return super()._proc_member(tarfile_)

    # tarfile's readers of the three pax sparse formats (GNU.sparse.* records).
    def _proc_gnusparse_00(self, *args):
        raise SparseTarMember()

    _proc_gnusparse_01 = _proc_gnusparse_10 = _proc_gnusparse_00


class Holdings:
    """What a listing of ``archive`` holds in memory so far, checked as members come.

    ``archive`` is the archive's path, or its :class:`SourceNames` (which messages name it by).
    """

    def __init__(self, archive: Path | SourceNames, limits: ReadLimits) -> None:
        self.archive = SourceNames.of(archive).place()
        self.limits, self.held = limits, 0

    def count(self, name: str, components: int) -> None:
        """Charge the bookkeeping of one more member that is not read (a folder, a file not
        worth reading): each is listed all the same. ``components``: its path's."""
        self.held += bookkeeping_bytes(name, components)
        if self.held > self.limits.max_archive_bytes:
            raise self._too_much(name)

    def read(self, stream: BinaryIO, name: str, components: int, declared: int) -> bytes:
        """The bytes of member ``name``, ``declared`` long by its header, read within bounds;
        charges the member's bookkeeping too (:meth:`count` is for the members not read)."""
        cap = self.limits.max_file_bytes
        if declared > cap:
            raise self._too_large(name, f"its header declares {amount(declared)}")
        # One byte more than the header declares tells a header that lies; never more than the
        # cap plus one byte is asked for, whatever the header says.
        data = stream.read(min(declared, cap) + 1)
        if len(data) > cap:
            raise self._too_large(name, f"it holds more than {amount(cap)}")
        if len(data) > declared:
            raise DataFormatError(
                f"archive {self.archive} is corrupt: member {shown_name(name)} holds more bytes "
                f"than its header declares ({declared:,}); nothing was decoded. Recreate the "
                "archive"
            )
        self.held += len(data) + bookkeeping_bytes(name, components)
        if self.held > self.limits.max_archive_bytes:
            raise self._too_much(name)
        return data

    def _too_large(self, name: str, what: str) -> DataFormatError:
        return DataFormatError(
            f"archive {self.archive}: member {shown_name(name)} is too large to read: {what}, "
            f"more than preprocess.max_file_bytes = {amount(self.limits.max_file_bytes)}; nothing "
            "was decoded. Remove that file from the archive, or raise preprocess.max_file_bytes in "
            "params.yaml if it is a genuine image"
        )

    def _too_much(self, name: str) -> DataFormatError:
        return DataFormatError(
            f"archive {self.archive} needs more memory to read than preprocess.max_archive_bytes "
            f"= {amount(self.limits.max_archive_bytes)}: the limit was passed at member "
            f"{shown_name(name)} (each member counts its bytes and about "
            f"{MEMBER_OVERHEAD_BYTES} bytes of bookkeeping, more for a long name); nothing was "
            "decoded. Raise preprocess.max_archive_bytes in params.yaml, or extract the archive "
            "and give the folder as the source (a folder's files are read one at a time)"
        )


def check_zip_directory(archive: Path | SourceNames, limits: ReadLimits) -> None:
    """Refuse a zip whose central directory alone would outgrow ``max_archive_bytes``.

    zipfile turns every entry of the directory into an object as it opens the archive, before a
    single one can be counted: so the directory is sized up from the end record first, by the
    entries it declares and, should that count lie, by its own size. ``archive``: its path, or
    its :class:`SourceNames`.
    """
    names = SourceNames.of(archive)
    try:
        with open(names.read, "rb") as stream:
            # zipfile's own reader of the end record (zip64 included): private, but stable.
            end = zipfile._EndRecData(stream)
    except (OSError, ValueError, struct.error, zipfile.BadZipFile):
        end = None
    if end is None:
        return  # not a readable zip: ZipFile says so, as corrupt
    declared, directory_bytes = end[zipfile._ECD_ENTRIES_TOTAL], end[zipfile._ECD_SIZE]
    held = max(declared * MEMBER_OVERHEAD_BYTES, directory_bytes * _ZIP_DIRECTORY_EXPANSION)
    if held > limits.max_archive_bytes:
        raise DataFormatError(
            f"archive {names.place()} has a central directory of {directory_bytes:,} bytes listing "
            f"{declared:,} {'entry' if declared == 1 else 'entries'}; read, it would take about "
            f"{amount(held)} "
            f"({MEMBER_OVERHEAD_BYTES} bytes per entry, or {_ZIP_DIRECTORY_EXPANSION} per byte "
            f"of directory), more than preprocess.max_archive_bytes = "
            f"{amount(limits.max_archive_bytes)} allows; nothing was read. Raise "
            "preprocess.max_archive_bytes in params.yaml, or extract the archive and give the "
            "folder as the source"
        )


# The names an archive's file usually has; what it holds is told by its first bytes
# (archive_kind.py), and a name that disagrees is only noted.
TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz")
ZIP_SUFFIXES = (".zip",)
# What a damaged archive raises while being read, by format and compression.
_ARCHIVE_ERRORS = (
    tarfile.TarError, zipfile.BadZipFile, gzip.BadGzipFile, zlib.error, lzma.LZMAError, EOFError
)
_DRIVE = re.compile(r"^[A-Za-z]:")
# Linux's PATH_MAX: a longer member name is no path any file system could extract it to.
MAX_NAME_CHARACTERS = 4096
# Folders deep: far past any dataset's layout (a wrapper, a split, a class). Deeper paths are
# refused, as what lies above a file costs memory with the square of its depth in the layout.
MAX_PATH_DEPTH = 64
# Names are UTF-8 wherever they come from: a tar's bytes and a folder's are decoded so (whatever
# the locale), their invalid bytes kept as lone surrogates (U+DC80..U+DCFF) to be found and refused.
NAME_ENCODING = "utf-8"

# Path components of a file relative to the listed location, e.g. ("train", "cat", "1.png").
Parts = tuple[str, ...]


class UnsafeArchiveError(DataFormatError):
    """An archive member could write outside the destination: absolute, ``..``, link, device."""


@dataclass(frozen=True)
class ListedFile:
    """A file found at a location: where it sits, and how to get its bytes."""

    name: str  # path inside the location, "/"-separated, as the user sees it in messages
    parts: Parts
    source: Path | bytes | None  # a file on disk, an archive member's bytes, or not read


@dataclass(frozen=True)
class Listing:
    """Everything found at a location: its files and the folders (explicit or implied), and what
    kind of archive it is (None for a folder)."""

    files: list[ListedFile]
    folders: set[Parts]
    kind: ArchiveKind | None = None


def list_location(
    location: Path | SourceNames,
    worth_reading: Callable[[Parts], bool],
    limits: ReadLimits = DEFAULT_LIMITS,
) -> Listing:
    """Every file and folder at ``location``, a folder or an archive (or its :class:`SourceNames`,
    which messages name it by).

    An archive is read as what its first bytes say it is, a zip or a tar, whatever its name
    (:mod:`.archive_kind`). Only files for which ``worth_reading(parts)`` is true get a
    ``source``: a folder's files keep their path, an archive's members are read into memory (the
    only chance in a one-pass read), within ``limits`` (see the module docstring). Raises
    :class:`DataFormatError` when ``location`` is missing, no archive preprocess reads, corrupt,
    past a limit, or holds a name that is no text (not UTF-8, or a zip's non-ASCII name not
    marked as UTF-8), and :class:`UnsafeArchiveError` for a member that could escape the dataset.
    """
    names = SourceNames.of(location)
    path = names.read
    if path.is_dir():
        return _list_directory(names, worth_reading)
    if not path.exists():
        raise DataFormatError(f"dataset location {names.place()} does not exist")
    try:
        kind = archive_kind(path)
        if kind.format == "zip":
            listing = _list_zip(names, worth_reading, limits)
        else:
            listing = _list_tar(names, kind, worth_reading, limits)
    except NotAnArchive as exc:
        raise DataFormatError(
            f"{names.place()} is {exc.what}: preprocess reads a folder, a zip, or a tar (plain or "
            f"compressed with gzip, bzip2 or xz), whatever the name; nothing was decoded. "
            f"{exc.fix[0].upper()}{exc.fix[1:]}"
        ) from None
    except RefusedTarHeader as exc:
        raise DataFormatError(exc.message(names.place())) from None
    except _ARCHIVE_ERRORS as exc:
        raise DataFormatError(
            f"archive {names.place()} is corrupt or truncated: {exc}; recreate it"
        ) from exc
    return Listing(listing.files, listing.folders, kind)


def misnamed(kind: ArchiveKind, file_name: str) -> bool:
    """Whether ``file_name`` ends otherwise than an archive of ``kind`` is usually named."""
    return not file_name.lower().endswith(kind.suffixes)


def _list_directory(names: SourceNames, worth_reading: Callable[[Parts], bool]) -> Listing:
    root = names.read
    files, folders = [], set()
    # Links to folders are not followed (a link cycle would never end); links to files are read.
    for folder, subfolders, file_names in os.walk(root):
        relative = Path(folder).relative_to(root).parts
        if subfolders and len(relative) + 1 >= MAX_PATH_DEPTH:
            deep = shown_name("/".join((*relative, subfolders[0])))
            raise DataFormatError(
                f"{names.place()}: folder {deep} lies {len(relative) + 1} folders deep, deeper "
                f"than any dataset needs (at most {MAX_PATH_DEPTH - 1}); move its images up or "
                "remove it"
            )
        for name in sorted(subfolders) + sorted(file_names):
            _check_name_text("/".join((*relative, name)), names)
        folders.update(relative + (sub,) for sub in subfolders)
        for name in file_names:
            parts = relative + (name,)
            path = Path(folder, name)
            files.append(ListedFile("/".join(parts), parts, path if worth_reading(parts) else None))
    return Listing(files, folders)


def _list_tar(
    names: SourceNames, kind: ArchiveKind, worth_reading: Callable[[Parts], bool],
    limits: ReadLimits,
) -> Listing:
    files, folders = [], set()
    holdings = Holdings(names, limits)
    # Iterating the members in order, reading each right after its header, keeps a compressed
    # archive to one sequential decompression pass (lookups by name would restart it).
    mode = f"r:{kind.compression or ''}"
    with tarfile.open(names.read, mode, tarinfo=BoundedTarInfo, encoding=NAME_ENCODING,
                      errors="surrogateescape") as tar:
        for member in _tar_members(tar, names):
            parts = _check_tar_member(member, names)
            if member.isfile() and worth_reading(parts):
                data = holdings.read(tar.extractfile(member), member.name, len(parts), member.size)
                files.append(ListedFile(member.name, parts, data))
                continue
            holdings.count(member.name, len(parts))
            if member.isdir():
                folders.add(parts)
            else:
                files.append(ListedFile(member.name, parts, None))
    return Listing(files, folders)


def _tar_members(tar: tarfile.TarFile, names: SourceNames) -> Iterator[tarfile.TarInfo]:
    """``tar``'s members in order. tarfile's header parsers let a damaged number field escape as
    ValueError or IndexError (a pax size or sparse map that is no number): corrupt, like the rest.
    Only the parsing is guarded, so a bug in the caller's loop keeps its traceback."""
    while True:
        try:
            member = tar.next()
        except (ValueError, IndexError) as exc:
            raise DataFormatError(f"archive {names.place()} is corrupt: a member header cannot "
                                  f"be read ({exc}); recreate the archive") from exc
        if member is None:
            return
        yield member


def _list_zip(
    names: SourceNames, worth_reading: Callable[[Parts], bool], limits: ReadLimits
) -> Listing:
    files, folders = [], set()
    holdings = Holdings(names, limits)
    check_zip_directory(names, limits)
    with _open_zip(names) as zf:
        infos = zf.infolist()
        # All members are checked before any is read; each keeps its name as text.
        texts = [_check_zip_member(info, names) for info in infos]
        for info, text in zip(infos, texts):
            parts = _member_parts(text)
            if not info.is_dir() and worth_reading(parts):
                source = _read_zip_member(zf, info, text, parts, names, holdings)
                files.append(ListedFile(text, parts, source))
                continue
            holdings.count(text, len(parts))
            if info.is_dir():
                folders.add(parts)
            else:
                files.append(ListedFile(text, parts, None))
    return Listing(files, folders)


def _open_zip(names: SourceNames) -> zipfile.ZipFile:
    """The zip at ``names.read``, opened; a name marked UTF-8 that is not is refused, as zipfile
    lets that escape as a UnicodeDecodeError while it reads the directory."""
    try:
        return zipfile.ZipFile(names.read)
    except UnicodeDecodeError as exc:
        stored = shown_stored(exc.object[max(0, exc.start - 40) : exc.end + 40])
        raise DataFormatError(
            f"archive {names.place()} is corrupt: a member name marked as UTF-8 (general "
            f"purpose bit 11) is not UTF-8 (around {stored}); nothing was decoded. Recreate the "
            f"archive"
        ) from None


def _read_zip_member(
    zf: zipfile.ZipFile, info: zipfile.ZipInfo, name: str, parts: Parts, names: SourceNames,
    holdings: Holdings,
) -> bytes:
    try:
        with zf.open(info) as stream:
            return holdings.read(stream, name, len(parts), info.file_size)
    except (RuntimeError, NotImplementedError) as exc:  # encrypted, or an unknown compression
        raise DataFormatError(
            f"cannot read member {shown_name(name)} of archive {names.place()}: {exc}; recreate "
            f"the archive without encryption, with deflate or no compression"
        ) from exc


# ---------------------------------------------------------------------------------------------
# Archive member checks
# ---------------------------------------------------------------------------------------------


def _member_parts(name: str) -> Parts:
    """Path components of an archive member name, ``.`` and empty ones dropped."""
    return tuple(part for part in name.replace("\\", "/").split("/") if part not in ("", "."))


def _unsafe_name_reason(name: str) -> str | None:
    """Why a member name could land outside the destination, or None if it cannot."""
    if len(name) > MAX_NAME_CHARACTERS:  # checked first: everything after would copy it
        return f"its path is {len(name):,} characters long, more than any file system holds"
    # Backslashes count as separators: Windows tools write them, and Windows honours them.
    if name.startswith(("/", "\\")) or _DRIVE.match(name):
        return "its path is absolute"
    components = name.replace("\\", "/").split("/")
    if ".." in components:
        return "its path contains '..'"
    if len(components) > MAX_PATH_DEPTH:
        return (f"its path is {len(components):,} components deep, more than the "
                f"{MAX_PATH_DEPTH} any dataset needs")
    return None


def _reject(names: SourceNames, member: str, reason: str) -> UnsafeArchiveError:
    return UnsafeArchiveError(
        f"unsafe archive {names.place()}: member {shown_name(member)} is rejected because "
        f"{reason}; nothing was extracted"
    )


def _check_name_text(name: str, names: SourceNames) -> None:
    """Refuse a name that is not valid UTF-8 (its bytes were decoded with surrogateescape): it
    has no text to name a class or an image by, and printed it would be mojibake."""
    if name.isascii() or not any("\udc80" <= character <= "\udcff" for character in name):
        return
    stored = name.encode(NAME_ENCODING, "surrogateescape")
    shown = _shown_bytes(stored)
    where, fix = (
        ("the folder", "rename it in UTF-8 (convmv -f <its encoding> -t utf-8 -r --notest "
                       "<folder> renames a whole folder)")
        if names.read.is_dir() else
        ("the archive", "rename the files in UTF-8 before archiving them (convmv -f <its "
                        "encoding> -t utf-8 -r --notest <folder> renames a whole folder), and "
                        "recreate the archive")
    )
    raise DataFormatError(
        f"{where} {names.place()} holds {shown}, a name that is not valid UTF-8 (the bytes "
        f"shown as \\xNN), written in a legacy encoding such as Latin-1, cp1251 or Shift JIS: it "
        f"has no text to name a class or an image by; nothing was decoded. {fix[0].upper()}"
        f"{fix[1:]}"
    )


def _shown_bytes(stored: bytes) -> str:
    """A stored name for a message: its valid UTF-8 as text, every other byte as ``\\xNN``."""
    text = stored.decode(NAME_ENCODING, "backslashreplace")
    return "'" + "".join(c if c.isprintable() else ascii(c)[1:-1] for c in text) + "'"


def _check_tar_member(member: tarfile.TarInfo, names: SourceNames) -> Parts:
    """Return the member's path components, or raise if it is anything but a plain file/folder
    named in UTF-8."""
    reason = _unsafe_name_reason(member.name)
    if reason is None:
        if member.issym() or member.islnk():
            kind = "symbolic" if member.issym() else "hard"
            target = shown_name(member.linkname)
            reason = f"it is a {kind} link (to {target}), which could point outside"
        elif member.ischr() or member.isblk() or member.isfifo():
            reason = "it is a device or FIFO, not a regular file"
        elif not (member.isfile() or member.isdir()):
            reason = f"its tar type {member.type!r} is neither a regular file nor a folder"
    if reason is not None:
        raise _reject(names, member.name, reason)
    _check_name_text(member.name, names)
    return _member_parts(member.name)


def _check_zip_member(info: zipfile.ZipInfo, names: SourceNames) -> str:
    """The member's name as text (:mod:`.zip_names`), or raise if it is marked in no encoding,
    or is anything but a plain file or folder."""
    try:
        text = member_text(info)
    except UnmarkedName as unmarked:
        raise DataFormatError(
            f"archive {names.place()}: member {shown_stored(unmarked.stored)} has a name of "
            f"non-ASCII bytes that the archive does not mark as UTF-8 (no general purpose bit 11, "
            f"no Unicode path field): {unmarked.readings()}, and the bytes alone cannot tell "
            f"which encoding wrote them (Windows writes its own code page, such as cp866 or "
            f"cp850; Info-ZIP's zip on Linux and macOS's Archive Utility write UTF-8, unmarked); "
            f"nothing was decoded. Recreate the archive with its names marked as UTF-8, from the "
            f"folder: python -m zipfile -c <name>.zip <folder>/ (or 7-Zip: 7z a -mcu=on "
            f"<name>.zip <folder>), or tar -czf <name>.tar.gz <folder>; or give the folder "
            f"itself as the source"
        ) from None
    # Both names: the text is what the layout reads, the stored one what other tools extract.
    reason = _unsafe_name_reason(text) or _unsafe_name_reason(info.filename)
    # Unix zip tools store the file type in the high 16 bits of the external attributes.
    if reason is None and stat.S_ISLNK(info.external_attr >> 16):
        reason = "it is a symbolic link, which could point outside"
    if reason is not None:
        raise _reject(names, text, reason)
    return text

