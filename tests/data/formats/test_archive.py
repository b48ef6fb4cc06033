"""Folders and archives: what is listed and read into memory, which folders are seen, and
hostile archives that cannot exhaust memory (members are read within caps, and what is held is
bounded).

The headline cases run the real preprocess stage in a child process and measure its peak
resident memory: a 1.5 MB archive holding a 1.5 GiB member (zip and tar.gz), hundreds of
compressible 10 MiB members, and an archive that comes as close as it can to every default limit
at once. Each must end with exit code 2 and one paragraph, under the 1.5 GB goal. The rest read
archives in this process, with small limits, to show each bound and its message. Members that
climb out with ``..``, absolute paths and links are refused through read_image_folder
(test_image_folder.py).
"""

from __future__ import annotations

import io
import os
import struct
import tarfile
import tracemalloc
import unicodedata
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from helpers.hostile_data import MiB, png, png_zeros, small_dataset, tar_gz_with, zip_with
from helpers.project import make_stage_project
from helpers.properties import EXAMPLES
from helpers.stages import assert_refused, preprocess_image_folder
from numpynet.data.formats.archive import MAX_TAR_EXTENDED_HEADER_BYTES, Holdings, list_location
from numpynet.data.formats.image_folder import may_be_image, read_image_folder
from numpynet.data.read_limits import MEMBER_OVERHEAD_BYTES, ReadLimits
from numpynet.errors import DataFormatError


CONTENT = {"train/cat/1.png": b"one", "train/cat/notes.txt": b"skip me", "top.png": b"two"}


def wants_png(parts: tuple[str, ...]) -> bool:
    return parts[-1].endswith(".png")


def make_folder(root: Path) -> Path:
    for name, data in CONTENT.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    (root / "empty").mkdir()
    return root


def make_tar(path: Path) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        folder = tarfile.TarInfo("empty")
        folder.type = tarfile.DIRTYPE
        tar.addfile(folder)
        for name, data in CONTENT.items():
            info = tarfile.TarInfo("./" + name)  # "./" is dropped from the parts
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def make_zip(path: Path) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("empty/", b"")
        for name, data in CONTENT.items():
            zf.writestr(name, data)
    return path


@pytest.mark.parametrize(("make", "name"), [(make_folder, "d"), (make_tar, "d.tar.gz"),
                                            (make_zip, "d.zip")])
def test_only_files_worth_reading_get_a_source(tmp_path, make, name):
    location = make(tmp_path / name)
    found = list_location(location, wants_png)
    by_parts = {f.parts: f for f in found.files}
    assert set(by_parts) == {tuple(name.split("/")) for name in CONTENT}
    assert by_parts[("train", "cat", "notes.txt")].source is None
    for name in ("train/cat/1.png", "top.png"):
        source = by_parts[tuple(name.split("/"))].source
        data = source.read_bytes() if isinstance(source, Path) else source
        assert data == CONTENT[name]
    assert ("empty",) in found.folders


# ---------------------------------------------------------------------------------------------
# Hostile archives: the stage, default limits, peak memory measured
# ---------------------------------------------------------------------------------------------


PEAK_GOAL = 1_500_000_000  # bytes: preprocess on any hostile archive, default limits
BUILDERS = {"zip": zip_with, "tar.gz": tar_gz_with}


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return make_stage_project(tmp_path / "project")


def read(location: Path, **limits) -> None:
    read_image_folder(location, log=lambda message: None, limits=ReadLimits(**limits))


@pytest.mark.hostile
@pytest.mark.parametrize("kind", BUILDERS)
def test_a_huge_member_is_refused_unread(tmp_path, project, kind):
    # Before: 3.1 GB (zip) and 1.6 GB (tar.gz) of memory, then "cannot identify image file".
    members = {**small_dataset(), "train/cat/big.png": 1536}  # 1.5 GiB of zeros, 1.5 MB packed
    archive = BUILDERS[kind](tmp_path / f"big.{kind}", members)
    assert archive.stat().st_size < 2 * MiB
    code, stderr, peak, out = preprocess_image_folder(project, "big", archive)
    assert_refused(code, stderr, "big." + kind, "'train/cat/big.png'", "1,610,612,736 bytes",
                   "preprocess.max_file_bytes", output=out, one_line=True)
    assert peak < PEAK_GOAL, f"peak {peak / MiB:.0f} MiB"


@pytest.mark.hostile
@pytest.mark.parametrize("kind", BUILDERS)
def test_many_compressible_members_stop_at_max_archive_bytes(tmp_path, project, kind):
    # 200 members of 10 MiB, each under max_file_bytes: 2 GiB held before, in a 2 MB archive.
    members = {**small_dataset(), **{f"train/cat/{k:03d}.png": 10 for k in range(200)}}
    archive = BUILDERS[kind](tmp_path / f"many.{kind}", members)
    code, stderr, peak, out = preprocess_image_folder(project, "many", archive)
    assert_refused(code, stderr, "many." + kind, "preprocess.max_archive_bytes",
                   "extract the archive", output=out, one_line=True)
    assert peak < ReadLimits().max_archive_bytes + 200 * MiB, f"peak {peak / MiB:.0f} MiB"


@pytest.mark.hostile
def test_the_worst_case_within_every_default_limit_stays_under_the_goal(tmp_path, project):
    # Every default limit nearly reached at once: four members of 60 MiB (240 MiB held), each a
    # genuine RGBA PNG of 39,996,000 pixels (just under max_image_pixels), decoding to an RGB set
    # of 480 MB (just under max_dataset_bytes), one image's decoding on top. The last image has
    # another size, so the stage refuses after decoding the others: nothing is written.
    width, height = 6666, 6000
    members = {name: png_zeros(width, height, "RGBA", pad=60 * MiB - 200_000)
               for name in ("train/a/0.png", "train/b/0.png", "test/a/0.png")}
    members["test/b/0.png"] = png_zeros(width, height - 1, "RGBA")
    archive = tar_gz_with(tmp_path / "worst.tar.gz", members)
    code, stderr, peak, out = preprocess_image_folder(project, "worst", archive)
    assert_refused(code, stderr, "'test/b/0.png'", "5999x6666", "must share one size", output=out,
                   one_line=True)
    assert peak < PEAK_GOAL, f"peak {peak / MiB:.0f} MiB"
    print(f"worst case within the default limits: peak {peak / MiB:.0f} MiB")


# ---------------------------------------------------------------------------------------------
# Hostile archives: each bound, in this process
# ---------------------------------------------------------------------------------------------


@pytest.mark.hostile
def test_a_zip_header_that_understates_a_member_is_caught_reading_little(tmp_path):
    # The headers say 100 bytes; the data inflates to 1 GiB. zipfile stops at the declared size
    # and its CRC check fails: a corrupt archive, and only about 100 bytes were read.
    members = {**small_dataset(), "train/cat/liar.png": 1024}
    archive = zip_with(tmp_path / "liar.zip", members, declared={"train/cat/liar.png": 100})
    tracemalloc.start()
    try:
        with pytest.raises(DataFormatError, match=r"liar\.zip is corrupt or truncated"):
            read(archive)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 16 * MiB


@pytest.mark.hostile
@pytest.mark.parametrize(("declared", "content", "expected"), [
    (10, 20, "holds more bytes than its header declares"),  # the header lies
    (100, 101, "it holds more than 100 bytes"),  # a stream that will not stop at its header
    (101, 1, "its header declares 101 bytes"),  # refused unread
])
def test_a_read_never_asks_for_more_than_the_cap(declared, content, expected):
    stream = io.BytesIO(bytes(content))
    holdings = Holdings(Path("a.zip"), ReadLimits(max_file_bytes=100))
    with pytest.raises(DataFormatError, match=expected):
        holdings.read(stream, "m.png", 1, declared)
    assert stream.tell() <= 101


@pytest.mark.hostile
@pytest.mark.parametrize("kind", BUILDERS)
def test_a_member_of_exactly_max_file_bytes_is_read_and_one_more_byte_is_not(tmp_path, kind):
    archive = BUILDERS[kind](tmp_path / f"d.{kind}", small_dataset())
    largest = max(len(data) for data in small_dataset().values())
    read(archive, max_file_bytes=largest)
    with pytest.raises(DataFormatError, match=rf"declares {largest:,} bytes, more than "
                                              rf"preprocess\.max_file_bytes = {largest - 1:,}"):
        read(archive, max_file_bytes=largest - 1)


@pytest.mark.hostile
@pytest.mark.parametrize("kind", BUILDERS)
def test_countless_empty_members_stop_at_max_archive_bytes(tmp_path, kind):
    # A member costs bookkeeping even when empty: 2,000 of them pass 1 MiB of budget.
    members = {**small_dataset(), **{f"train/cat/{k:05d}.txt": b"" for k in range(2000)}}
    archive = BUILDERS[kind](tmp_path / f"count.{kind}", members)
    budget = 1024 * MEMBER_OVERHEAD_BYTES
    with pytest.raises(DataFormatError, match=r"(needs more memory|listing 2,008 entries).*"
                                              r"preprocess\.max_archive_bytes"):
        read(archive, max_archive_bytes=budget)
    read(archive, max_archive_bytes=4 * budget)  # with room, the same archive reads


@pytest.mark.hostile
def test_a_zip_directory_is_sized_up_before_zipfile_parses_it(tmp_path, monkeypatch):
    members = {**small_dataset(), **{f"train/cat/{k:05d}.txt": b"" for k in range(2000)}}
    archive = zip_with(tmp_path / "count.zip", members)
    # An end record that understates the count: the directory's size still tells.
    data = bytearray(archive.read_bytes())
    struct.pack_into("<2H", data, len(data) - 22 + 8, 1, 1)
    archive.write_bytes(bytes(data))
    monkeypatch.setattr(zipfile, "ZipFile", lambda *a, **k: pytest.fail("directory parsed"))
    with pytest.raises(DataFormatError, match=r"count\.zip has a central directory of "
                                              r"\d+,\d{3} bytes listing 1 entry;"):
        list_location(archive, may_be_image, ReadLimits(max_archive_bytes=MiB))


@pytest.mark.hostile
@pytest.mark.parametrize("header", ["pax", "gnu-longname"])
def test_oversized_tar_extended_headers_are_refused_unread(tmp_path, header):
    huge = "x" * (MAX_TAR_EXTENDED_HEADER_BYTES + 1)
    archive = tmp_path / "headers.tar.gz"
    with tarfile.open(archive, "w:gz", format=tarfile.PAX_FORMAT if header == "pax"
                      else tarfile.GNU_FORMAT) as tar:
        info = tarfile.TarInfo("train/cat/" + ("a.png" if header == "pax" else huge + ".png"))
        if header == "pax":
            info.pax_headers = {"comment": huge}
        data = png(np.zeros((4, 5, 3), dtype=np.uint8))
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    with pytest.raises(DataFormatError, match=r"headers\.tar\.gz holds an extended tar header"):
        read(archive)


@pytest.mark.hostile
@pytest.mark.parametrize("sparse", ["old-gnu", "pax-0.0", "pax-0.1", "pax-1.0"])
def test_sparse_members_are_refused_before_their_map_is_read(tmp_path, sparse):
    archive = tmp_path / "sparse.tar"
    data = png(np.zeros((4, 5, 3), dtype=np.uint8))
    with tarfile.open(archive, "w", format=tarfile.GNU_FORMAT if sparse == "old-gnu"
                      else tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo("train/cat/a.png")
        info.size = len(data)
        if sparse == "old-gnu":
            info.type = tarfile.GNUTYPE_SPARSE
        else:
            # Sparse maps that are no numbers: tarfile itself would raise a bare ValueError.
            major, minor = sparse.removeprefix("pax-").split(".")
            info.pax_headers = {"GNU.sparse.major": major, "GNU.sparse.minor": minor,
                                "GNU.sparse.offset": "x", "GNU.sparse.numbytes": "y",
                                "GNU.sparse.map": "a,b", "GNU.sparse.size": "9"}
            if sparse == "pax-0.0":
                del info.pax_headers["GNU.sparse.major"], info.pax_headers["GNU.sparse.minor"]
        tar.addfile(info, io.BytesIO(data))
    with pytest.raises(DataFormatError, match=r"sparse\.tar holds a sparse file"):
        read(archive)


@pytest.mark.hostile
def test_a_member_name_longer_than_any_path_is_refused_as_unsafe(tmp_path):
    name = "train/cat/" + "x" * 5000 + ".png"
    archive = tmp_path / "long.tar.gz"
    with tarfile.open(archive, "w:gz", format=tarfile.GNU_FORMAT) as tar:
        info = tarfile.TarInfo(name)
        tar.addfile(info, io.BytesIO(b""))
    with pytest.raises(DataFormatError, match=r"5,014 characters long, more than any file system "
                                              r"holds; nothing was extracted") as error:
        read(archive)
    assert len(str(error.value)) < 600  # the name is cut short in the message


@pytest.mark.hostile
def test_long_deep_names_are_charged_to_max_archive_bytes(tmp_path):
    # 2,000 members named train/cat/abc...z/.../N.txt (3,800 characters, 62 folders deep, ignored
    # where they lie): kilobytes of tar.gz; 1 KiB each if names were free, 35 KiB with theirs.
    deep = "train/cat/" + "abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz/" * 60
    members = {**small_dataset(), **{f"{deep}{k}.txt": b"" for k in range(2000)}}
    archive = tar_gz_with(tmp_path / "deep.tar.gz", members)
    with pytest.raises(DataFormatError, match=r"more for a long name"):
        read(archive, max_archive_bytes=16 * MiB)
    read(archive, max_archive_bytes=128 * MiB)


@pytest.mark.hostile
def test_a_path_deeper_than_any_dataset_is_refused(tmp_path):
    # What lies above a file costs the layout memory with the square of its depth.
    deep = "ab/" * 70
    archive = tar_gz_with(tmp_path / "deep.tar.gz", {**small_dataset(), f"{deep}x.png": b""})
    with pytest.raises(DataFormatError, match=r"71 components deep, more than the 64"):
        read(archive)
    folder = tmp_path / "folder"
    (folder / ("ab/" * 64)).mkdir(parents=True)
    for name, data in small_dataset().items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
    with pytest.raises(DataFormatError, match=r"lies 64 folders deep, deeper than any dataset"):
        read(folder)


# --- names that are no text: a tar's or a folder's bytes that are not UTF-8 ---------------------


def tar_of_bytes_names(path: Path, names: list[bytes], tar_format: int) -> Path:
    """A tar of one image under each of ``names``, stored as those very bytes."""
    image = png(np.zeros((4, 5, 3), np.uint8))
    with tarfile.open(path, "w", format=tar_format, encoding="utf-8",
                      errors="surrogateescape") as tar:
        for name in names:
            info = tarfile.TarInfo(name.decode("utf-8", "surrogateescape"))
            info.size = len(image)
            tar.addfile(info, io.BytesIO(image))
    return path


_LEGACY_CAT = "кошка".encode("cp1251") + b"/0.png"


@pytest.mark.hostile
@pytest.mark.parametrize("tar_format", [tarfile.GNU_FORMAT, tarfile.PAX_FORMAT,
                                        tarfile.USTAR_FORMAT], ids=["gnu", "pax", "ustar"])
def test_a_tar_member_name_that_is_not_utf8_is_refused_naming_its_bytes(tmp_path, tar_format):
    # tarfile decodes such names with surrogateescape: before, classes of lone surrogates that
    # printed as '\udcea\udcee...' or broke dataset.json.
    names = [_LEGACY_CAT, b"dog/0.png", b"dog/1.png", _LEGACY_CAT.replace(b"/0", b"/1")]
    archive = tar_of_bytes_names(tmp_path / "pets.tar", names, tar_format)
    with pytest.raises(DataFormatError) as refused:
        read_image_folder(archive, log=lambda line: None)
    message = str(refused.value)
    for fragment in [f"the archive {archive} holds '\\xea\\xee\\xf8\\xea\\xe0/0.png', a name "
                     "that is not valid UTF-8", "a legacy encoding", "nothing was decoded",
                     "convmv -f <its encoding> -t utf-8 -r --notest <folder>",
                     "recreate the archive"]:
        assert fragment in message, message
    assert "\\udc" not in message and "\n" not in message


@pytest.mark.hostile
def test_a_folder_entry_named_in_a_legacy_encoding_is_refused(tmp_path):
    folder = tmp_path / "pets"
    for name in (b"dog/0.png", b"dog/1.png", _LEGACY_CAT):
        path = Path(os.fsdecode(bytes(folder) + b"/" + name))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(png(np.zeros((4, 5, 3), np.uint8)))
    with pytest.raises(DataFormatError, match=r"the folder .*pets holds '\\xea\\xee\\xf8\\xea"
                                              r"\\xe0', a name that is not valid UTF-8.* "
                                              r"Rename it in UTF-8 \(convmv"):
        read_image_folder(folder, log=lambda line: None)


@pytest.mark.hostile
@EXAMPLES
@given(name=st.text(st.characters(min_codepoint=0x20, max_codepoint=0x4ff,
                                  blacklist_characters="/\\.", blacklist_categories=("Cs", "Cc")),
                    min_size=1, max_size=8),
       encoding=st.sampled_from(["cp1251", "koi8-r", "latin-1", "cp866", "utf-8", "shift_jis"]))
def test_tar_names_are_read_when_utf8_and_refused_otherwise(tmp_path_factory, name, encoding):
    try:
        stored = name.encode(encoding)
    except UnicodeEncodeError:
        return
    if stored == b"dog":
        return
    archive = tar_of_bytes_names(
        tmp_path_factory.mktemp("tars") / "d.tar",
        [stored + f"/{k}.png".encode() for k in range(3)] + [b"dog/0.png", b"dog/1.png",
                                                              b"dog/2.png"],
        tarfile.GNU_FORMAT,
    )
    try:
        text = stored.decode("utf-8")
    except UnicodeDecodeError:
        with pytest.raises(DataFormatError, match="a name that is not valid UTF-8"):
            read_image_folder(archive, log=lambda line: None)
        return
    classes = read_image_folder(archive, log=lambda line: None).classes
    assert classes == sorted([unicodedata.normalize("NFC", text), "dog"])
