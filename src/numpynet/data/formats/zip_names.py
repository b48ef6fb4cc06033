"""The text of a zip member's name, where the archive says which encoding its bytes are in.

A zip stores each name as bytes, and marks their encoding in one of two ways only: general purpose
bit 11 (the name is UTF-8), or Info-ZIP's Unicode Path extra field (0x7075: the name in UTF-8,
with the CRC-32 of the stored bytes it stands for). Without either, the zip specification says
IBM code page 437, which is what :mod:`zipfile` decodes, but tools write what their machine uses:
Windows its OEM code page (cp866 in Russia, cp850, cp932...), Info-ZIP's ``zip`` on Linux and
macOS's Archive Utility the file system's UTF-8 bytes, unmarked. So a class folder ``кот`` zipped
on a Russian Windows reads as ``¬«Γ``, silently. No test of the bytes tells these apart: the
cp866 bytes of ``тип`` are valid UTF-8 too (for ``⨯``). A non-ASCII name without a mark is
refused, naming the member and how to re-create the archive; ASCII names read the same in every
one of these encodings and pass.
"""

from __future__ import annotations

import struct
import zipfile
import zlib

# General purpose bit 11, "language encoding flag": the name and comment are UTF-8.
UTF8_FLAG = 0x800
UNICODE_PATH_FIELD = 0x7075
# The Unicode Path field's own version: 1 is the only one defined.
_UNICODE_PATH_VERSION = 1


class UnmarkedName(Exception):
    """A non-ASCII member name the archive does not say how to read; the caller words it."""

    def __init__(self, stored: bytes) -> None:
        super().__init__(stored)
        self.stored = stored

    def readings(self) -> str:
        """The name as the two likeliest encodings read it, for the message."""
        as_cp437 = self.stored.decode("cp437")
        try:
            as_utf8 = self.stored.decode("utf-8")
        except UnicodeDecodeError:
            return f"read as the zip standard's code page 437 it says {as_cp437!r}"
        return (f"read as UTF-8 it says {as_utf8!r}, as the zip standard's code page 437 "
                f"{as_cp437!r}")


def member_text(info: zipfile.ZipInfo) -> str:
    """The name of ``info`` as text: as zipfile decoded it when it is ASCII or marked UTF-8, else
    the UTF-8 name of a Unicode Path field that stands for these very bytes. Raises
    :class:`UnmarkedName` for a non-ASCII name with neither mark."""
    if info.flag_bits & UTF8_FLAG or info.orig_filename.isascii():
        return info.filename
    # Without the flag, zipfile decoded the stored bytes as cp437, which maps every byte: this
    # gives them back exactly.
    stored = info.orig_filename.encode("cp437")
    unicode_path = _unicode_path(info.extra, stored)
    if unicode_path is None:
        raise UnmarkedName(stored)
    return unicode_path


def shown_stored(stored: bytes) -> str:
    """Stored name bytes for a message: ASCII as is, every other byte as ``\\xNN``."""
    return "'" + stored.decode("ascii", "backslashreplace").replace("'", "\\'") + "'"


def _unicode_path(extra: bytes, stored: bytes) -> str | None:
    """The UTF-8 name of a Unicode Path field in ``extra`` that stands for ``stored`` (its CRC-32
    matches), or None. A field for other bytes is stale (the name was changed after it was
    written) and, as the specification says, ignored; so is one that is no UTF-8."""
    # zipfile has checked the fields' lengths (a damaged one is refused as BadZipFile).
    while len(extra) >= 4:
        kind, length = struct.unpack("<HH", extra[:4])
        data, extra = extra[4 : 4 + length], extra[4 + length :]
        if kind != UNICODE_PATH_FIELD or len(data) < 5 or data[0] != _UNICODE_PATH_VERSION:
            continue
        if struct.unpack("<I", data[1:5])[0] != zlib.crc32(stored):
            continue
        try:
            return data[5:].decode("utf-8")
        except UnicodeDecodeError:
            continue
    return None
