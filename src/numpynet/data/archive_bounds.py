"""Reading archive members within :class:`~numpynet.data.limits.ReadLimits`.

:mod:`numpynet.data.archive_listing` walks an archive; this module keeps what it holds bounded:

* :class:`Holdings` reads each member (refusing one whose header declares more than
  ``max_file_bytes`` unread, and never asking for more than that plus one byte, so a header that
  lies is caught too) and charges its bytes, and a fixed overhead for every member listed,
  against ``max_archive_bytes``;
* :class:`BoundedTarInfo` refuses a tar extended header (a GNU long name, a pax record) larger
  than :data:`MAX_TAR_EXTENDED_HEADER_BYTES`, which :mod:`tarfile` would read whole;
* :func:`check_zip_directory` sizes a zip's central directory up from its end record, before
  :mod:`zipfile` turns every entry into an object.
"""

from __future__ import annotations

import struct
import tarfile
import zipfile
from pathlib import Path
from typing import BinaryIO

from numpynet.data.limits import (
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

    def message(self, archive: Path) -> str:
        """The user's message: the archive, what its header holds, what to do."""
        raise NotImplementedError


class OversizedTarHeader(RefusedTarHeader):
    """An extended header (long name, pax record) larger than any genuine one."""

    def __init__(self, size: int) -> None:
        super().__init__(size)
        self.size = size

    def message(self, archive: Path) -> str:
        return (
            f"archive {archive} holds an extended tar header (a long member name or a pax "
            f"record) of {amount(self.size)}, more than the "
            f"{amount(MAX_TAR_EXTENDED_HEADER_BYTES)} any genuine one needs; nothing was decoded. "
            "The archive is damaged or hostile: recreate it with tar or zip"
        )


class SparseTarMember(RefusedTarHeader):
    """A sparse member: no image is sparse, and tarfile reads a sparse map of any length."""

    def message(self, archive: Path) -> str:
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
    """What a listing of ``archive`` holds in memory so far, checked as members come."""

    def __init__(self, archive: Path, limits: ReadLimits) -> None:
        self.archive, self.limits, self.held = archive, limits, 0

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


def check_zip_directory(archive: Path, limits: ReadLimits) -> None:
    """Refuse a zip whose central directory alone would outgrow ``max_archive_bytes``.

    zipfile turns every entry of the directory into an object as it opens the archive, before a
    single one can be counted: so the directory is sized up from the end record first, by the
    entries it declares and, should that count lie, by its own size.
    """
    try:
        with open(archive, "rb") as stream:
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
            f"archive {archive} has a central directory of {directory_bytes:,} bytes listing "
            f"{declared:,} {'entry' if declared == 1 else 'entries'}; read, it would take about "
            f"{amount(held)} "
            f"({MEMBER_OVERHEAD_BYTES} bytes per entry, or {_ZIP_DIRECTORY_EXPANSION} per byte "
            f"of directory), more than preprocess.max_archive_bytes = "
            f"{amount(limits.max_archive_bytes)} allows; nothing was read. Raise "
            "preprocess.max_archive_bytes in params.yaml, or extract the archive and give the "
            "folder as the source"
        )
