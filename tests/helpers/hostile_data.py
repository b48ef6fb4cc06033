"""Hostile archives and images, built in milliseconds, and the preprocess stage run on them.

Zeros compress to almost nothing, and deflating a MiB of them after a full flush gives the same
bytes every time: so a member of 1.5 GiB is that chunk repeated (plus a CRC of the zeros), not
1.5 GiB pushed through zlib. The stage runs in a child process under a wrapper that reports the
child's peak resident memory (``ru_maxrss`` of its children), in bytes.
"""

from __future__ import annotations

import io
import struct
import subprocess
import sys
import tarfile
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

from helpers.project import base_params, write_params

MiB = 2**20


def _zero_chunk() -> bytes:
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    return compressor.compress(bytes(MiB)) + compressor.flush(zlib.Z_FULL_FLUSH)


_ZERO_CHUNK = _zero_chunk()
_ZERO_MIB_CRCS: dict[int, int] = {}  # crc32 of n MiB of zeros, each n computed once


def _crc_of_zeros(mib: int, crc: int) -> int:
    zeros = bytes(MiB)
    for _ in range(mib):
        crc = zlib.crc32(zeros, crc)
    return crc


def deflate(parts: list[bytes | int]) -> tuple[bytes, int, int]:
    """Raw deflate of ``parts`` (bytes, or an int: that many MiB of zeros); data, crc32, size."""
    out, crc, size = [], 0, 0
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    for part in parts:
        if isinstance(part, int):
            out += [compressor.flush(zlib.Z_FULL_FLUSH), _ZERO_CHUNK * part]
            crc, size = _crc_of_zeros(part, crc), size + part * MiB
        else:
            out.append(compressor.compress(part))
            crc, size = zlib.crc32(part, crc), size + len(part)
    out.append(compressor.flush())
    return b"".join(out), crc, size


def zip_with(path: Path, members: dict[str, bytes | int], declared: dict | None = None) -> Path:
    """A zip of deflated ``members`` (an int: that many MiB of zeros), written by hand.

    ``declared`` maps a member to the uncompressed size its headers state instead of the true
    one (a header that lies).
    """
    central = []
    with open(path, "wb") as stream:
        for name, content in members.items():
            data, crc, size = deflate([content])
            size = (declared or {}).get(name, size)
            raw, offset = name.encode(), stream.tell()
            stream.write(struct.pack("<4s5H3L2H", b"PK\x03\x04", 20, 0, 8, 0, 0, crc, len(data),
                                     size, len(raw), 0) + raw + data)
            central.append(struct.pack("<4s6H3L5H2L", b"PK\x01\x02", 20, 20, 0, 8, 0, 0, crc,
                                       len(data), size, len(raw), 0, 0, 0, 0, 0o100644 << 16,
                                       offset) + raw)
        start, directory = stream.tell(), b"".join(central)
        stream.write(directory + struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, len(central),
                                             len(central), len(directory), start, 0))
    return path


def tar_gz_with(path: Path, members: dict[str, bytes | int]) -> Path:
    """A .tar.gz of ``members`` (an int: that many MiB of zeros), compressed by hand."""
    parts: list[bytes | int] = []
    for name, content in members.items():
        info = tarfile.TarInfo(name)
        info.size = content * MiB if isinstance(content, int) else len(content)
        parts += [info.tobuf(format=tarfile.GNU_FORMAT), content, bytes(-info.size % 512)]
    data, crc, size = deflate([*parts, bytes(1024)])
    header = b"\x1f\x8b\x08\x00" + bytes(4) + b"\x00\xff"
    path.write_bytes(header + data + struct.pack("<2L", crc, size & 0xFFFFFFFF))
    return path


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">L", len(data)) + kind + data + struct.pack(">L", zlib.crc32(kind + data))


def png_zeros(width: int, height: int, mode: str = "RGBA", pad: int = 0) -> bytes:
    """A genuine PNG of ``width`` x ``height`` black pixels, then ``pad`` bytes after its end."""
    color, channels = {"L": (0, 1), "RGB": (2, 3), "RGBA": (6, 4)}[mode]
    total = height * (1 + width * channels)  # a filter byte per row, then the pixels: all zero
    raw, _, _ = deflate([total // MiB, bytes(total % MiB)])
    adler = ((total % 65521) << 16) | 1  # adler32 of zeros: a = 1, b = length
    header = struct.pack(">2L5B", width, height, 8, color, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header)
            + _png_chunk(b"IDAT", b"\x78\xda" + raw + struct.pack(">L", adler))
            + _png_chunk(b"IEND", b"") + bytes(pad))


def png_declaring(width: int, height: int) -> bytes:
    """A 100-byte PNG whose header declares ``width`` x ``height``: its data stops at once."""
    header = struct.pack(">2L5B", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header)
            + _png_chunk(b"IDAT", zlib.compress(bytes(64))) + _png_chunk(b"IEND", b""))


def gif_declaring(width: int, height: int) -> bytes:
    """A GIF of a 4x4 frame on a logical screen (canvas) of ``width`` x ``height``."""
    buffer = io.BytesIO()
    Image.new("P", (4, 4)).save(buffer, format="GIF")
    data = bytearray(buffer.getvalue())
    data[6:10] = struct.pack("<2H", width, height)
    return bytes(data)


def tiff_declaring(width: int, height: int) -> bytes:
    """A little-endian TIFF whose tags declare ``width`` x ``height`` and hold a 4x4 strip."""
    buffer = io.BytesIO()
    Image.new("L", (4, 4)).save(buffer, format="TIFF")
    data = bytearray(buffer.getvalue())
    directory = struct.unpack_from("<L", data, 4)[0]
    for entry in range(struct.unpack_from("<H", data, directory)[0]):
        at = directory + 2 + 12 * entry
        tag, kind = struct.unpack_from("<HH", data, at)
        if tag in (256, 257, 278):  # width, length, rows per strip
            value = width if tag == 256 else height
            struct.pack_into("<L" if kind == 4 else "<HH", data, at + 8,
                             *((value,) if kind == 4 else (min(value, 65535), 0)))
    return bytes(data)


def png(pixels: np.ndarray) -> bytes:
    """``pixels`` (H, W) or (H, W, 3) uint8 as PNG bytes."""
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def small_dataset(seed: int = 0) -> dict[str, bytes]:
    """Eight 4x5 RGB PNGs in train/ and test/ folders of two classes."""
    rng = np.random.default_rng(seed)
    return {f"{split}/{label}/{k}.png": png(rng.integers(0, 256, (4, 5, 3), dtype=np.uint8))
            for split in ("train", "test") for label in ("cat", "dog") for k in range(2)}


# ---------------------------------------------------------------------------------------------
# The preprocess stage, in a child process, on a copy of the code
# ---------------------------------------------------------------------------------------------

_PEAK_RSS = (
    "import resource, subprocess, sys\n"
    "result = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
    "sys.stderr.write(result.stderr)\n"
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
    "sys.exit(result.returncode)\n"
)


def run_preprocess(
    project: Path, name: str, source: Path, data: dict | None = None, **preprocess
) -> tuple[int, str, int, Path]:
    """Run preprocess on dataset ``name``: an image folder read from ``source`` (a folder or an
    archive, linked into ``data/raw/<name>/`` as the download stage would have put it).

    ``data`` adds keys to its ``data:`` entry; ``preprocess`` overrides keys of that section.
    Returns the exit code, stderr, the peak resident memory in bytes, and the output folder.
    """
    raw = project / "data" / "raw" / name
    raw.mkdir(parents=True)
    (raw / source.name).symlink_to(source.resolve())
    params = base_params({name: {"data": {"format": "image-folder", "source": str(source),
                                          **(data or {})}, "train": {}}})
    params["preprocess"].update(preprocess)
    params_file = project / f"params-{name}.yaml"
    write_params(project, params)
    (project / "params.yaml").rename(params_file)
    out = project / "data" / "processed" / name
    stage = [sys.executable, "stages/preprocess.py", name, "--params", params_file.name,
             "--raw", f"data/raw/{name}", "--out", f"data/processed/{name}"]
    result = subprocess.run([sys.executable, "-c", _PEAK_RSS, *stage], cwd=project,
                            capture_output=True, text=True, timeout=120)
    peak = int(result.stdout.split()[-1]) * 1024  # Linux reports KiB
    return result.returncode, result.stderr, peak, out


def assert_refused(code: int, stderr: str, fragments: tuple[str, ...], out: Path) -> str:
    """Exit code 2, one paragraph naming ``fragments``, no traceback, no output: the message."""
    assert code == 2, stderr
    assert stderr.startswith("error: ") and "Traceback" not in stderr, stderr
    message = stderr.strip()
    assert "\n" not in message, stderr  # one paragraph: no second line, let alone a blank one
    for fragment in fragments:
        assert fragment in message, (fragment, message)
    assert not out.exists()
    if out.parent.exists():  # nothing half-written either, under any temporary name
        assert not [p.name for p in out.parent.iterdir() if out.name in p.name]
    return message
