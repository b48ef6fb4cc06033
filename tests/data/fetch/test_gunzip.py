"""The streaming gunzip the downloads decompress with: it reads what :mod:`gzip` reads, from a
stingy source, in reads of any size, and fails where gzip fails."""

from __future__ import annotations

import gzip
import io
import zlib

import pytest

from numpynet.data.fetch.gunzip import GunzipReader


CONTENT = bytes(range(256)) * 64  # 16 KiB


def gunzip(data: bytes, read_size: int) -> bytes:
    class Source:
        stream = io.BytesIO(data)

        def read(self, size=-1):
            return self.stream.read(min(size, 7))  # a stingy source: 7 bytes at most per read

    reader, parts = GunzipReader(Source()), []
    while part := reader.read(read_size):
        parts.append(part)
    return b"".join(parts)


PACKED = gzip.compress(CONTENT, mtime=0)


@pytest.mark.parametrize("data", [
    b"", PACKED, PACKED + PACKED, PACKED + bytes(1000) + PACKED, PACKED + bytes(70000),
    gzip.compress(b"", mtime=0), PACKED + b"junk", PACKED[:-3], PACKED[:40], bytes(20),
    PACKED + b"\x1f", PACKED[:30] + bytes([PACKED[30] ^ 0xFF]) + PACKED[31:],
], ids=["empty", "one", "two", "padded-two", "padded", "empty-member", "junk-after",
        "no-trailer", "cut", "zeros", "half-magic", "flipped"])
def test_the_streaming_gunzip_reads_what_gzip_reads(data):
    try:
        expected = gzip.decompress(data)
    except (EOFError, OSError, zlib.error):
        expected = None
    for read_size in (1, 4096):
        if expected is None:
            with pytest.raises((EOFError, zlib.error)):
                gunzip(data, read_size)
        else:
            assert gunzip(data, read_size) == expected
