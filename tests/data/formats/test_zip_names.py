"""Zip member names in an encoding the archive does not mark: a cp866 (or any non-UTF-8) name
without the UTF-8 flag is refused naming the member, escaped, instead of read as cp437 mojibake;
a name marked UTF-8, by the flag or by a Unicode Path field that matches, is read exactly; ASCII
names need no mark; the fix the message gives (python -m zipfile -c) works."""

from __future__ import annotations

import struct
import subprocess
import sys
import unicodedata
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from helpers.hostile_data import png, write_files
from helpers.properties import EXAMPLES
from numpynet.data.formats.image_folder import read_image_folder
from numpynet.data.formats.zip_names import UNICODE_PATH_FIELD, UTF8_FLAG
from numpynet.errors import DataFormatError

PIXELS = png(np.full((4, 5, 3), 7, np.uint8))


class StoredAs(zipfile.ZipInfo):
    """A member whose name is written as ``encoding``'s bytes, without the UTF-8 flag: what
    Windows tools write in their code page (and Info-ZIP's zip and macOS write in UTF-8)."""

    encoding = "cp866"

    def _encodeFilenameFlags(self):  # zipfile's hook, for the local header and the directory
        return self.filename.encode(self.encoding), self.flag_bits & ~UTF8_FLAG


def legacy_zip(path: Path, classes: list[str], encoding: str = "cp866",
               extra: bytes = b"") -> Path:
    """Three images in each class folder, their names stored in ``encoding``, unmarked."""
    info_class = type("Stored", (StoredAs,), {"encoding": encoding})
    with zipfile.ZipFile(path, "w") as zf:
        for name in classes:
            for k in range(3):
                info = info_class(f"{name}/{k}.png")
                info.extra = extra
                zf.writestr(info, PIXELS)
    return path


def unicode_path_field(text: str, stored: bytes) -> bytes:
    """Info-ZIP's Unicode Path extra field: version 1, the CRC-32 of the stored name, UTF-8."""
    data = b"\x01" + struct.pack("<I", zlib.crc32(stored)) + text.encode("utf-8")
    return struct.pack("<HH", UNICODE_PATH_FIELD, len(data)) + data


def refusal(location: Path) -> str:
    with pytest.raises(DataFormatError) as refused:
        read_image_folder(location, log=lambda line: None)
    message = str(refused.value)
    assert "\n" not in message
    return message


@pytest.mark.hostile
def test_a_zip_of_cp866_names_without_the_utf8_flag_is_refused_naming_a_member(tmp_path):
    # Before: classes '¬«Γ' and 'ß«íá¬á' (cp437 readings), silently.
    archive = legacy_zip(tmp_path / "pets.zip", ["кот", "собака"])
    message = refusal(archive)
    for fragment in [
        str(archive),
        "member '\\xaa\\xae\\xe2/0.png' has a name of non-ASCII bytes that the archive does not "
        "mark as UTF-8", "as the zip standard's code page 437 it says '¬«Γ/0.png'",
        "the bytes alone cannot tell which encoding wrote them", "nothing was decoded",
        "python -m zipfile -c <name>.zip <folder>/", "7z a -mcu=on", "tar -czf <name>.tar.gz",
        "give the folder itself as the source",
    ]:
        assert fragment in message, message


@pytest.mark.hostile
def test_unmarked_utf8_names_are_refused_too_saying_what_they_would_read_as(tmp_path):
    # Info-ZIP's zip on Linux and macOS's Archive Utility write these: the bytes cannot prove it.
    message = refusal(legacy_zip(tmp_path / "pets.zip", ["café", "dog"], encoding="utf-8"))
    assert "member 'caf\\xc3\\xa9/0.png'" in message
    assert ("read as UTF-8 it says 'café/0.png', as the zip standard's code page 437 "
            "'caf├⌐/0.png'") in message


@pytest.mark.hostile
def test_the_fix_the_message_gives_reads_the_names_exactly(tmp_path):
    folder = write_files(tmp_path / "pets", {f"{c}/{k}.png": PIXELS
                                             for c in ("кот", "café") for k in range(3)})
    archive = tmp_path / "pets.zip"
    subprocess.run([sys.executable, "-m", "zipfile", "-c", str(archive), f"{folder}/"],
                   check=True, cwd=tmp_path)
    dataset = read_image_folder(archive, log=lambda line: None)
    assert dataset.classes == ["café", "кот"]


@pytest.mark.hostile
def test_a_unicode_path_field_for_the_stored_bytes_gives_the_name(tmp_path):
    stored = "кот".encode("cp866")
    with zipfile.ZipFile(tmp_path / "marked.zip", "w") as zf:
        for name in ("кот", "dog"):
            for k in range(3):
                info = StoredAs(f"{name}/{k}.png")
                folder = name.encode("cp866")
                info.extra = unicode_path_field(f"{name}/{k}.png", folder + f"/{k}.png".encode())
                zf.writestr(info, PIXELS)
    assert read_image_folder(tmp_path / "marked.zip", log=lambda line: None).classes == [
        "dog", "кот"]
    # A field left from another name (its CRC is of other bytes) says nothing: refused.
    stale = legacy_zip(tmp_path / "stale.zip", ["кот", "dog"],
                       extra=unicode_path_field("кот/0.png", b"other bytes"))
    assert "does not mark as UTF-8" in refusal(stale)
    assert stored in stale.read_bytes()


@pytest.mark.hostile
def test_a_name_marked_utf8_that_is_not_is_refused_as_corrupt(tmp_path):
    # zipfile lets this escape as a UnicodeDecodeError: was a traceback.
    class Lying(zipfile.ZipInfo):
        def _encodeFilenameFlags(self):
            return self.filename.encode("cp866"), self.flag_bits | UTF8_FLAG

    with zipfile.ZipFile(tmp_path / "lying.zip", "w") as zf:
        for name in ("кот", "dog"):
            zf.writestr(Lying(f"{name}/0.png"), PIXELS)
    message = refusal(tmp_path / "lying.zip")
    assert "is corrupt: a member name marked as UTF-8 (general purpose bit 11) is not UTF-8 " \
           "(around '\\xaa\\xae\\xe2/0.png')" in message, message


@pytest.mark.hostile
def test_ascii_names_need_no_mark(tmp_path):
    archive = legacy_zip(tmp_path / "plain.zip", ["cat", "dog"])
    assert read_image_folder(archive, log=lambda line: None).classes == ["cat", "dog"]


_CODE_PAGES = ["cp866", "cp1251", "cp1252", "cp437", "cp850", "cp932", "latin-1", "utf-8"]


@pytest.mark.hostile
@EXAMPLES
@given(
    name=st.text(st.characters(min_codepoint=0x20, max_codepoint=0x4ff,
                               blacklist_characters="/\\.", blacklist_categories=("Cs", "Cc")),
                 min_size=1, max_size=8),
    encoding=st.sampled_from(_CODE_PAGES),
    marked=st.booleans(),
)
def test_any_unmarked_non_ascii_name_is_refused_and_any_marked_one_read_exactly(
    tmp_path_factory, name, encoding, marked
):
    assume(name != "zz")
    try:
        stored = name.encode(encoding)
    except UnicodeEncodeError:
        return  # not a name that code page can write
    archive = tmp_path_factory.mktemp("zips") / "d.zip"
    if marked:
        with zipfile.ZipFile(archive, "w") as zf:  # zipfile marks every non-ASCII name UTF-8
            for folder in (name, "zz"):
                for k in range(3):
                    zf.writestr(f"{folder}/{k}.png", PIXELS)
    else:
        legacy_zip(archive, [name, "zz"], encoding=encoding)
    if stored.isascii() or marked:
        classes = read_image_folder(archive, log=lambda line: None).classes
        assert classes == sorted([unicodedata.normalize("NFC", name), "zz"])
        return
    message = refusal(archive)
    assert "does not mark as UTF-8" in message
    assert stored.decode("ascii", "backslashreplace").replace("'", "\\'") in message
