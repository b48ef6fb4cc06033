"""Bounds on the memory that reading an image dataset may take, whatever the files hold.

An image folder is untrusted input: a 1.5 MB zip can hold a 1.5 GiB member, a 100-byte PNG can
declare 50000 x 50000 pixels, a small ``.tar.gz`` can hold hundreds of thousands of members.
Reading one refuses, with a :class:`~numpynet.errors.DataFormatError` naming the file, the bound and
the ``preprocess`` key of ``params.yaml`` that raises it, before the memory is spent:

* ``max_file_bytes``: one archive member, read into memory (at most this many bytes are ever
  read from it, whatever its header declares). Files of a folder are not read into memory:
  Pillow reads them from disk, so only ``max_image_pixels`` bounds them.
* ``max_archive_bytes``: everything held from an archive at once, the bytes of its members plus
  the bookkeeping of every member, read or not (:func:`bookkeeping_bytes`: about 1 KiB, more for
  a long name), so an archive of countless empty members, or of absurdly long names, is bounded
  too.
* ``max_image_pixels``: width x height of one image, checked from its header before any pixel
  is decoded. Pillow's own check only warns below twice its ``MAX_IMAGE_PIXELS``; this one
  refuses, and Pillow's global is left alone.
* ``max_dataset_bytes``: the decoded dataset, images x height x width x channels uint8 bytes,
  checked before it is allocated (preprocess writes it as float32, four times that, on disk).

The defaults (also the ones ``params.yaml`` ships) keep ``preprocess`` of any archive under
1.2 GB at its peak: the held members (256 MiB), the decoded set (512 MiB) and one image's decoding
(about 8 to 10 bytes per pixel, 400 MB) together; an archive built to reach every limit at once
peaks at 1.1 GB (tests/data/formats/test_archive.py). CIFAR-10 as JPEG files (60,000 members,
137 MiB held, 184 MB decoded) and 12-megapixel photos pass with room to spare.
"""

from __future__ import annotations

from dataclasses import dataclass

MiB = 2**20
# Pillow refuses to open an image of more pixels than this (twice its MAX_IMAGE_PIXELS), so no
# higher max_image_pixels could be honored; params validation stops there too.
PILLOW_PIXEL_CEILING = 2 * 89_478_485
# What Python keeps per archive member while listing it (its TarInfo or ZipInfo, our record of
# it): about 700 bytes measured with short names, rounded up.
MEMBER_OVERHEAD_BYTES = 1024
# What a member's name adds: its copies (up to 4 bytes a character, as Python may store it), a
# string object per path component, and the layout's record of every folder above it (a tuple
# per level, as long as that level is deep: 8 bytes per component, squared over two).
_NAME_BYTES_PER_CHARACTER = 4
_NAME_BYTES_PER_COMPONENT = 64
_NAME_BYTES_PER_COMPONENT_SQUARED = 4


@dataclass(frozen=True)
class ReadLimits:
    """The bounds of the module docstring, in bytes and pixels; the defaults are params.yaml's."""

    max_file_bytes: int = 64 * MiB
    max_archive_bytes: int = 256 * MiB
    max_image_pixels: int = 40_000_000
    max_dataset_bytes: int = 512 * MiB


DEFAULT_LIMITS = ReadLimits()


def bookkeeping_bytes(name: str, components: int) -> int:
    """What listing one archive member costs besides its bytes, charged to ``max_archive_bytes``:
    :data:`MEMBER_OVERHEAD_BYTES`, plus its ``name`` of ``components`` path components."""
    return (MEMBER_OVERHEAD_BYTES + _NAME_BYTES_PER_CHARACTER * len(name)
            + _NAME_BYTES_PER_COMPONENT * components
            + _NAME_BYTES_PER_COMPONENT_SQUARED * components * components)


def shown_name(name: str) -> str:
    """``repr(name)`` for a message, its middle cut out when it is too long to read."""
    if len(name) <= 200:
        return repr(name)
    return f"{name[:100]!r}...{name[-40:]!r} ({len(name):,} characters)"


def amount(count: int) -> str:
    """A byte count for a message, exact and readable: ``"67,108,864 bytes (64 MiB)"``."""
    for size, name in ((2**40, "TiB"), (2**30, "GiB"), (MiB, "MiB")):
        if count >= size:
            return f"{count:,} bytes ({count / size:.3g} {name})"
    return f"{count:,} bytes"
