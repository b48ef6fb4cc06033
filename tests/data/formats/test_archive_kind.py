"""An archive is what its first bytes say, whatever its name: a zip named .tar.gz, a tar named
.zip and the like are read as what they are (with a note); a gzip that holds no tar, a 7-Zip or
RAR archive, an image, a web page or an empty file are refused naming what they are and the fix;
random bytes under any archive name are read or refused, never a traceback."""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from helpers.hostile_data import png, small_dataset
from helpers.properties import EXAMPLES
from numpynet.data.formats.archive_kind import ArchiveKind, NotAnArchive, archive_kind
from numpynet.data.formats.image_folder import read_image_folder
from numpynet.errors import DataFormatError

FILES = small_dataset()


def zip_bytes() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for name, data in FILES.items():
            zf.writestr(name, data)
    return buffer.getvalue()


def tar_bytes(compression: str = "", tar_format: int = tarfile.PAX_FORMAT) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode=f"w:{compression}", format=tar_format) as tar:
        for name, data in FILES.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def v7_tar_bytes() -> bytes:
    """A pre-POSIX tar: every header without the ``ustar`` magic, its checksum recomputed."""
    data = bytearray(tar_bytes(tar_format=tarfile.GNU_FORMAT))
    offset = 0
    while data[offset : offset + 512] != bytes(512):
        data[offset + 257 : offset + 265] = bytes(8)
        data[offset + 148 : offset + 156] = b" " * 8
        data[offset + 148 : offset + 156] = f"{sum(data[offset : offset + 512]):06o}\x00 ".encode()
        size = int(data[offset + 124 : offset + 136].rstrip(b"\x00 ") or b"0", 8)
        offset += 512 + -(-size // 512) * 512
    return bytes(data)


CONTENTS = {
    "zip": (zip_bytes, ArchiveKind("zip")),
    "tar": (tar_bytes, ArchiveKind("tar")),
    "tar.gz": (lambda: tar_bytes("gz"), ArchiveKind("tar", "gz")),
    "tar.bz2": (lambda: tar_bytes("bz2"), ArchiveKind("tar", "bz2")),
    "tar.xz": (lambda: tar_bytes("xz"), ArchiveKind("tar", "xz")),
    "v7 tar": (v7_tar_bytes, ArchiveKind("tar")),
    # A self-extracting program: the zip's directory is found from the end.
    "sfx zip": (lambda: b"MZ" + bytes(1000) + zip_bytes(), ArchiveKind("zip")),
}


def read(location: Path) -> tuple:
    notes: list[str] = []
    return read_image_folder(location, log=notes.append), notes


@pytest.mark.hostile
@pytest.mark.parametrize("content", sorted(CONTENTS))
@pytest.mark.parametrize("name", ["d.tar.gz", "d.zip", "d.tgz", "d.tar", "d"])
def test_an_archive_is_read_as_what_its_bytes_say_whatever_its_name(tmp_path, content, name):
    make, kind = CONTENTS[content]
    path = tmp_path / name
    path.write_bytes(make())
    assert archive_kind(path) == kind
    dataset, notes = read(path)
    assert dataset.classes == ["cat", "dog"] and dataset.x_train.shape == (4, 4, 5, 3)
    if name.endswith(kind.suffixes):
        assert notes == []
    else:
        # Before: tarfile's "invalid header" or zipfile's "File is not a zip file".
        assert notes == [f"note: {path} is {kind.description}, whatever its name says; read "
                         f"as one (a name ending in {kind.suffixes[0]} would say so)"]


def compressed(compression: str, data: bytes) -> bytes:
    return {"gz": gzip.compress, "bz2": bz2.compress, "xz": lzma.compress}[compression](data)


@pytest.mark.hostile
@pytest.mark.parametrize(("data", "said", "fix"), [
    (compressed("gz", png(np.zeros((4, 5, 3), np.uint8))),
     "is a gzip-compressed file that holds a PNG image, not a tar archive",
     "Give the folder of class folders as the source, or an archive of it: a .zip, or a .tar.gz "
     "(tar -czf <name>.tar.gz <folder>)"),
    (compressed("gz", zip_bytes()), "is a gzip-compressed zip archive",
     "Decompress it first (gunzip) and give the .zip"),
    (compressed("bz2", b"name,label\ncat.png,0\n" * 40),
     "is a bzip2-compressed file that holds no tar archive (what it holds starts with the text "
     "'name,lab')", "Give the folder"),
    (compressed("xz", b""), "is a xz-compressed file that holds nothing", "Give the folder"),
    (compressed("gz", tar_bytes("gz")), "is a gzip-compressed gzip stream (compressed twice)",
     "Decompress it once (gunzip) and give the result"),
    (b"7z\xbc\xaf\x27\x1c" + bytes(100), "is a 7-Zip archive", "Give the folder"),
    (b"Rar!\x1a\x07\x01\x00" + bytes(100), "is a RAR archive", "Give the folder"),
    (b"\x28\xb5\x2f\xfd" + bytes(100), "is a Zstandard-compressed file", "Give the folder"),
    (png(np.zeros((4, 5, 3), np.uint8)), "is a PNG image", "Give the folder"),
    (b"\xef\xbb\xbf  <!DOCTYPE html><title>Sign in</title>", "is a web page (HTML)",
     "Give the folder"),
    (b"", "is an empty file", "Give the folder"),
    (b"%PDF-1.7\n", "is a PDF document", "Give the folder"),
    (bytes(range(256)) * 3, "is no archive format preprocess reads (it starts with the bytes "
                            "00 01 02 03 04 05 06 07)", "Give the folder"),
], ids=["gzip-of-png", "gzip-of-zip", "bzip2-of-csv", "empty-xz", "gzip-twice", "7z", "rar",
        "zstd", "png", "html", "empty", "pdf", "unknown"])
@pytest.mark.parametrize("name", ["d.tar.gz", "d.zip"])
def test_a_file_that_is_no_archive_preprocess_reads_is_refused_naming_what_it_is(
    tmp_path, data, said, fix, name
):
    path = tmp_path / name
    path.write_bytes(data)
    with pytest.raises(DataFormatError) as refused:
        read(path)
    message = str(refused.value)
    assert message.startswith(f"{path} {said}: preprocess reads a folder, a zip, or a tar (plain "
                              f"or compressed with gzip, bzip2 or xz), whatever the name; nothing "
                              f"was decoded. {fix}"), message
    assert "\n" not in message


@pytest.mark.hostile
@pytest.mark.parametrize("damage", ["cut-gzip", "bad-bzip2", "bad-xz", "cut-tar"])
def test_a_damaged_stream_is_refused_as_corrupt_not_with_a_traceback(tmp_path, damage):
    data = {
        "cut-gzip": tar_bytes("gz")[:20],
        "bad-bzip2": b"BZh9" + bytes(range(200)),  # bz2 raised a bare OSError: a traceback
        "bad-xz": b"\xfd7zXZ\x00" + bytes(200),
        "cut-tar": tar_bytes()[:300],
    }[damage]
    path = tmp_path / "d.tar.gz"
    path.write_bytes(data)
    with pytest.raises(DataFormatError, match=f"archive {path} is corrupt or truncated: .*; "
                                              f"recreate it"):
        read(path)


_MAGIC = [b"", b"PK\x03\x04", b"PK\x05\x06", b"\x1f\x8b\x08", b"BZh9", b"\xfd7zXZ\x00"]


@pytest.mark.hostile
@EXAMPLES
@given(magic=st.sampled_from(_MAGIC), rest=st.binary(max_size=1200),
       name=st.sampled_from(["d.zip", "d.tar.gz", "d.tar", "d.tbz2"]))
def test_any_bytes_under_an_archive_name_are_read_or_refused_never_a_traceback(
    tmp_path_factory, magic, rest, name
):
    path = tmp_path_factory.mktemp("bytes") / name
    path.write_bytes(magic + rest)
    try:
        archive_kind(path)
    except (NotAnArchive, tarfile.ReadError):
        pass
    with pytest.raises(DataFormatError):  # no dataset is in these few bytes
        read(path)
