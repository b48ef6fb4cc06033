"""What an image archive really is, from its first bytes, whatever its name says.

A name can lie: a zip saved as ``pets.tar.gz``, a plain tar named ``.zip``, a gzip of a single
file named ``.tgz``. Read by their names, these failed with :mod:`tarfile`'s or :mod:`zipfile`'s
own words ("invalid header", "File is not a zip file"), which send the user looking for damage.
The first bytes are unambiguous, so they decide:

* a zip (``PK\\x03\\x04``, or ``PK\\x05\\x06`` when empty, or a directory found from the end
  behind other bytes, as a self-extracting program has it) is read as a zip, and a tar (``ustar``
  at byte 257, or a pre-POSIX header whose checksum holds), plain or compressed with gzip, bzip2
  or xz, is read as a tar, whichever name it has; :meth:`ArchiveKind.suffixes` lets the caller
  note a name that disagrees;
* anything else is refused as what it is: a 7-Zip or RAR archive, a gzip that holds no tar (a
  single image, a zip), an image, a web page, an empty file, or unknown bytes, with the fix.

Only the first block is ever decompressed (512 bytes asked of the stream), so a compression bomb
costs nothing here; a stream damaged in its first block raises :class:`tarfile.ReadError`, which
the caller reports as a corrupt archive.
"""

from __future__ import annotations

import bz2
import gzip
import lzma
import tarfile
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Callable

from numpynet.data.web_page import looks_like_a_web_page

_TAR_BLOCK = 512
# How a compressed tar's first block is read: opener of a compressed stream, by compression.
_DECOMPRESSORS: dict[str, Callable[[BinaryIO], BinaryIO]] = {
    "gz": lambda stream: gzip.GzipFile(fileobj=stream),
    "bz2": lambda stream: bz2.BZ2File(stream),
    "xz": lambda stream: lzma.LZMAFile(stream),
}
_COMPRESSION_MAGIC = {"gz": b"\x1f\x8b", "bz2": b"BZh", "xz": b"\xfd7zXZ\x00"}
_COMPRESSION_NAMES = {"gz": "gzip", "bz2": "bzip2", "xz": "xz"}
_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06", b"PK\x07\x08")
# Formats preprocess does not read, by their first bytes, as a message names them.
_OTHER_MAGIC = (
    (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive"),
    (b"Rar!\x1a\x07", "a RAR archive"),
    (b"\x28\xb5\x2f\xfd", "a Zstandard-compressed file"),
    (b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF8", "a GIF image"),
    (b"II*\x00", "a TIFF image"),
    (b"MM\x00*", "a TIFF image"),
    (b"%PDF", "a PDF document"),
    (b"MZ", "a Windows program (a self-extracting archive, perhaps)"),
)
_FIX = ("give the folder of class folders as the source, or an archive of it: a .zip, or a "
        ".tar.gz (tar -czf <name>.tar.gz <folder>)")
_SUFFIXES = {
    ("zip", None): (".zip",),
    ("tar", None): (".tar",),
    ("tar", "gz"): (".tar.gz", ".tgz"),
    ("tar", "bz2"): (".tar.bz2", ".tbz2"),
    ("tar", "xz"): (".tar.xz", ".txz"),
}


@dataclass(frozen=True)
class ArchiveKind:
    """An archive preprocess reads: ``format`` "zip" or "tar"; a tar's ``compression`` "gz",
    "bz2", "xz" or None."""

    format: str
    compression: str | None = None

    @property
    def description(self) -> str:
        """"a zip archive", "a gzip-compressed tar archive", "a tar archive"."""
        if self.compression is None:
            return f"a {self.format} archive"
        return f"a {_COMPRESSION_NAMES[self.compression]}-compressed tar archive"

    @property
    def suffixes(self) -> tuple[str, ...]:
        """The name endings that say what it is, the usual one first."""
        return _SUFFIXES[(self.format, self.compression)]


class NotAnArchive(Exception):
    """A file that is no archive preprocess reads; the caller names the file."""

    def __init__(self, what: str, fix: str = _FIX) -> None:
        super().__init__(what)
        self.what, self.fix = what, fix


def archive_kind(path: Path) -> ArchiveKind:
    """What the file at ``path`` is, from its first bytes (see the module docstring).

    Raises :class:`NotAnArchive` naming what it is otherwise; a compressed stream damaged in its
    first block raises :class:`tarfile.ReadError`, as a damaged tar does.
    """
    with open(path, "rb") as stream:
        head = stream.read(_TAR_BLOCK)
        if head.startswith(_ZIP_MAGIC):
            return ArchiveKind("zip")
        if _is_tar_block(head):
            return ArchiveKind("tar")
        compression = _compression(head)
        if compression is None:
            # A zip may follow other bytes (a self-extracting program): zipfile finds its
            # directory from the end. Asked last, so that a tar ending in a zip stays a tar.
            if zipfile.is_zipfile(stream):
                return ArchiveKind("zip")
            raise NotAnArchive(
                _known(head) or f"no archive format preprocess reads (it {_start(head)})"
            )
        stream.seek(0)
        name = _COMPRESSION_NAMES[compression]
        try:
            with _DECOMPRESSORS[compression](stream) as decompressed:
                inner = decompressed.read(_TAR_BLOCK)
        # What the three decompressors raise for a damaged stream (bz2: a bare OSError).
        except (OSError, EOFError, lzma.LZMAError, zlib.error) as exc:
            raise tarfile.ReadError(f"its {name} stream is damaged ({exc})") from exc
    if _is_tar_block(inner):
        return ArchiveKind("tar", compression)
    if inner.startswith(_ZIP_MAGIC):
        raise NotAnArchive(
            f"a {name}-compressed zip archive",
            f"decompress it first ({_DECOMPRESS_COMMANDS[compression]}) and give the .zip",
        )
    if not inner:
        raise NotAnArchive(f"a {name}-compressed file that holds nothing")
    twice = _compression(inner)
    if twice is not None:
        raise NotAnArchive(
            f"a {name}-compressed {_COMPRESSION_NAMES[twice]} stream (compressed twice)",
            f"decompress it once ({_DECOMPRESS_COMMANDS[compression]}) and give the result",
        )
    what = _known(inner)
    if what is not None:
        raise NotAnArchive(f"a {name}-compressed file that holds {what}, not a tar archive")
    raise NotAnArchive(f"a {name}-compressed file that holds no tar archive (what it holds "
                       f"{_start(inner)})")


_DECOMPRESS_COMMANDS = {"gz": "gunzip", "bz2": "bunzip2", "xz": "unxz"}


def _compression(head: bytes) -> str | None:
    for compression, magic in _COMPRESSION_MAGIC.items():
        if head.startswith(magic):
            return compression
    return None


def _is_tar_block(block: bytes) -> bool:
    """Whether ``block`` opens a tar: a POSIX or GNU header (``ustar`` at byte 257), a pre-POSIX
    one whose checksum holds, or the zero block of an empty archive."""
    if block[257:262] == b"ustar":
        return True  # even cut short: tarfile then says it is truncated
    if len(block) < _TAR_BLOCK:
        return False
    if block == bytes(_TAR_BLOCK):
        return True
    try:
        declared = tarfile.nti(block[148:156])
    except tarfile.HeaderError:
        return False
    return declared in tarfile.calc_chksums(block)


def _known(head: bytes) -> str | None:
    """What a file that is no archive preprocess reads is, by its first bytes, or None."""
    if not head:
        return "an empty file"
    for magic, what in _OTHER_MAGIC:
        if head.startswith(magic):
            return what
    if head.startswith(b"RIFF") and head[8:12] == b"WEBP":
        return "a WebP image"
    if looks_like_a_web_page(head):
        return "a web page (HTML)"
    return None


def _start(head: bytes) -> str:
    """How unknown bytes start, for a message: as text when they are printable ASCII."""
    start = head[:8]
    if start.isascii() and start.decode("ascii").isprintable():
        return f"starts with the text {start.decode('ascii')!r}"
    return f"starts with the bytes {' '.join(f'{byte:02x}' for byte in start)}"
