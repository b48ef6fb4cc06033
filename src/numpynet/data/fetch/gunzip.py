"""Decompressing a gzip stream while it downloads, in bounded chunks, at C speed throughout.

``gzip.GzipFile`` would do, but it skips the zero padding allowed after a member one byte per
Python call: a source that follows a valid stream with endless zeros then costs about a second of
CPU per 3 MB until the download's cap or deadline. This reader accepts exactly what ``gzip -d``
and ``GzipFile`` accept (members one after another, zero padding after any of them) and skips
padding a chunk at a time. It decides the content a decompressed file is stored with, so the
download stage lists it as a dependency.
"""

from __future__ import annotations

import zlib
from typing import Protocol

_GZIP_WBITS = 31  # zlib's window size plus 16: expect and check gzip's header and trailer
_INPUT_BYTES = 1 << 16


class _Readable(Protocol):
    def read(self, size: int = -1) -> bytes: ...


class GunzipReader:
    """The decompressed content of the gzip stream ``raw``, read with :meth:`read`.

    Raises ``zlib.error`` for a corrupt stream (bad header, data or checksum, or anything but
    zeros or another member after a member) and ``EOFError`` for a truncated one.
    """

    def __init__(self, raw: _Readable) -> None:
        self._raw = raw
        self._inflate: zlib._Decompress | None = zlib.decompressobj(_GZIP_WBITS)
        self._member_started = False
        self._input = b""

    def read(self, size: int) -> bytes:
        """At most ``size`` (> 0) bytes of content; b"" once the stream has ended cleanly."""
        while True:
            at_end = False
            if not self._input:
                self._input = self._raw.read(_INPUT_BYTES)
                at_end = not self._input
            if self._inflate is None:  # between members: padding, or the next member
                self._input = self._input.lstrip(b"\0")
                if not self._input:
                    if at_end:
                        return b""
                    continue
                self._inflate = zlib.decompressobj(_GZIP_WBITS)
                self._member_started = False
            self._member_started = self._member_started or bool(self._input)
            # max_length bounds what one call inflates, however well the input compresses; with
            # no input left, the call still returns what the last one held back.
            content = self._inflate.decompress(self._input, size)
            if self._inflate.eof:
                self._input = self._inflate.unused_data
                self._inflate = None
            else:
                self._input = self._inflate.unconsumed_tail
            if content:
                return content
            if at_end and self._inflate is not None:
                if self._member_started:
                    raise EOFError("compressed file ended before the end-of-stream marker")
                return b""  # an empty file, as GzipFile reads it
