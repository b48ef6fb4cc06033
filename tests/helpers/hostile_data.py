"""Hostile inputs, built in milliseconds: archive and image bombs, damaged arrays and processed
data, and a disk that fails every write.

Zeros compress to almost nothing, and deflating a MiB of them after a full flush gives the same
bytes every time: so a member of 1.5 GiB is that chunk repeated (plus a CRC of the zeros), not
1.5 GiB pushed through zlib. An ``.npy`` header may declare a huge array in a file of a few bytes
(:func:`huge_header`); :func:`data_damage` lists every way a processed dataset can be broken.
"""

from __future__ import annotations

import builtins
import contextlib
import errno as errno_codes
import io
import json
import os
import struct
import tarfile
import zipfile
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

from numpynet.model_folder import WEIGHTS_FILE

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


def write_files(root: Path, files: dict[str, bytes]) -> Path:
    """Write each of ``files`` (relative path -> bytes) under ``root``; return ``root``."""
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    return root


def encoded(image: Image.Image, fmt: str) -> bytes:
    """``image`` saved in format ``fmt``, as bytes."""
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


def fake_image_folder(root: Path) -> Path:
    """A small folder of 'images' whose bytes are their paths (a copy does not decode them)."""
    for relative in ("train/cat/0.png", "train/dog/0.png", "test/cat/0.png"):
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_bytes(relative.encode())
    return root


# Class names with every awkward character: CSV, text and JSON output must survive them.
ODD_CLASSES = ("a,b", 'say "hi"', "two\nlines", "ünï 中文 😀", "$\\frac{$", "100%",
               "tab\there")


def small_dataset(seed: int = 0) -> dict[str, bytes]:
    """Eight 4x5 RGB PNGs in train/ and test/ folders of two classes."""
    rng = np.random.default_rng(seed)
    return {f"{split}/{label}/{k}.png": png(rng.integers(0, 256, (4, 5, 3), dtype=np.uint8))
            for split in ("train", "test") for label in ("cat", "dog") for k in range(2)}


# ---------------------------------------------------------------------------------------------
# Damaged arrays: .npy headers that lie, .npz files written member by member
# ---------------------------------------------------------------------------------------------

HUGE = 2**40  # elements a header may declare in a file of a few bytes


def huge_header(dtype="<f4", shape=(HUGE,)) -> bytes:
    """An .npy member whose header declares ``shape`` but whose data is 64 bytes."""
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buffer, {"descr": dtype, "fortran_order": False, "shape": shape}
    )
    return buffer.getvalue() + b"\0" * 64


def rewrite_npz(path: Path, arrays: dict, raw: dict[str, bytes] | None = None) -> None:
    """Write ``arrays`` (and ``raw`` member bytes) as an uncompressed .npz, like np.savez."""
    with zipfile.ZipFile(path, "w") as archive:
        for name, array in arrays.items():
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, np.asarray(array), allow_pickle=True)
            archive.writestr(f"{name}.npy", buffer.getvalue())
        for name, content in (raw or {}).items():
            archive.writestr(f"{name}.npy", content)


def huge_header_weights(model: Path, arrays: dict) -> None:
    """Damage the weights of ``model`` (its ``arrays``): one member's header declares 2**40
    floats."""
    del arrays["layers.1.bias"]
    rewrite_npz(model / WEIGHTS_FILE, arrays, {"layers.1.bias": huge_header()})


# ---------------------------------------------------------------------------------------------
# Damaged processed data: every way data/processed/<name>/ can be broken
# ---------------------------------------------------------------------------------------------


def _save(name, make):
    def damage(folder: Path) -> None:
        np.save(folder / name, make(np.load(folder / name)), allow_pickle=True)
    return damage


def _cut(name, keep):
    def damage(folder: Path) -> None:
        content = (folder / name).read_bytes()
        (folder / name).write_bytes(content[: int(len(content) * keep)])
    return damage


def _raw(name, content):
    def damage(folder: Path) -> None:
        (folder / name).write_bytes(content)
    return damage


def _meta(**values):
    def damage(folder: Path) -> None:
        meta = json.loads((folder / "meta.json").read_text())
        (folder / "meta.json").write_text(json.dumps({**meta, **values}))
    return damage


def _set(array, index, value):
    array = array.copy()
    array[index] = value
    return array


def data_damage(split: str) -> dict:
    """Every way to damage the ``split`` of a processed dataset: case -> (damage(folder), the
    file the message must name, what else it must say)."""
    x, y = f"x_{split}.npy", f"y_{split}.npy"
    return {
        "missing_images": (lambda f: (f / x).unlink(), x, "dvc repro"),
        "missing_labels": (lambda f: (f / y).unlink(), y, "dvc repro"),
        "missing_meta": (lambda f: (f / "meta.json").unlink(), "meta.json", "dvc repro"),
        "truncated_images": (_cut(x, 0.6), x, "truncated or corrupt"),
        "truncated_labels": (_cut(y, 0.9), y, "truncated or corrupt"),
        "empty_file": (_raw(x, b""), x, "not a NumPy array file"),
        "not_npy": (_raw(y, b"label,0\n"), y, "not a NumPy array file"),
        "huge_header_images": (_raw(x, huge_header("<f4", (HUGE, 4, 4, 1))), x, "1099511627776"),
        "huge_header_labels": (_raw(y, huge_header("<i8")), y, "1099511627776"),
        "pickled_images": (_save(x, lambda a: np.array([{}], dtype=object)), x, "pickled"),
        "float64_images": (_save(x, lambda a: a.astype(np.float64)), x, "float64"),
        "float_labels": (_save(y, lambda a: a.astype(np.float32)), y, "float32"),
        "int32_labels": (_save(y, lambda a: a.astype(np.int32)), y, "int32"),
        "column_labels": (_save(y, lambda a: a[:, None]), y, "(N,)"),
        "fewer_images": (_save(x, lambda a: a[:-3]), x, "do not belong together"),
        "fewer_labels": (_save(y, lambda a: a[:-3]), y, "do not belong together"),
        "other_image_shape": (_save(x, lambda a: np.zeros((len(a), 5, 5, 1), np.float32)), x,
                              "5, 5, 1"),
        "label_too_large": (_save(y, lambda a: _set(a, 4, 3)), y, "label 3"),
        "negative_label": (_save(y, lambda a: _set(a, 4, -1)), y, "label -1"),
        "nan_pixel": (_save(x, lambda a: _set(a, (7, 1, 1, 0), np.nan)), x, "NaN"),
        "infinite_pixel": (_save(x, lambda a: _set(a, (7, 1, 1, 0), -np.inf)), x, "infinity"),
        "empty_split": (lambda f: (np.save(f / x, np.zeros((0, 4, 4, 1), np.float32)),
                                   np.save(f / y, np.zeros(0, np.int64)), _meta(
                                       sizes={split: 0})(f)), x, "empty"),
        "meta_not_json": (_raw("meta.json", b"{classes"), "meta.json", "meta.json"),
        "meta_absurd_shape": (_meta(image_shape=[10**6, 10**6, 1]), x, "1000000"),
        "meta_classes_string": (_meta(classes="abc"), "meta.json", "classes"),
        "meta_nan_std": (_raw("meta.json", b'{"classes": ["a", "b", "c"], "image_shape": '
                              b'[4, 4, 1], "sizes": {}, "mean": [0.0], "std": [NaN]}'),
                         "meta.json", "NaN"),
        "meta_two_channels": (_meta(image_shape=[4, 4, 2]), "meta.json", "channels"),
        "meta_unknown_key": (_meta(extra=1), "meta.json", "extra"),
    }


# ---------------------------------------------------------------------------------------------
# A disk that fails: every write under a path fails as a full disk (or another errno) would
# ---------------------------------------------------------------------------------------------


class _FailingFile:
    """A file opened for writing whose every write fails as the disk would."""

    def __init__(self, stream, code: int):
        self._stream, self._code = stream, code

    def _fail(self, *args, **kwargs):
        raise OSError(self._code, os.strerror(self._code))

    write = writelines = truncate = _fail

    def __getattr__(self, name):
        return getattr(self._stream, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self._stream.close()

    def __iter__(self):
        return iter(self._stream)


@contextlib.contextmanager
def failing_writes(monkeypatch, fragment: str, code: int = errno_codes.ENOSPC):
    """Make every write to a file whose path contains ``fragment`` fail with errno ``code``."""
    real_open = io.open

    def patched(file, mode="r", *args, **kwargs):
        stream = real_open(file, mode, *args, **kwargs)
        path = os.fsdecode(file) if isinstance(file, (str, bytes, os.PathLike)) else ""
        if fragment in path and any(flag in mode for flag in "wax+"):
            return _FailingFile(stream, code)
        return stream

    with monkeypatch.context() as patch:
        patch.setattr(io, "open", patched)
        patch.setattr(builtins, "open", patched)
        yield
