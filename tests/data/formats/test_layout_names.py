"""Folder and image names in one Unicode normalization (NFC): class folders typed on Linux and
copied from a Mac are one class, read in NFC; two folders that only their normalization tells
apart are refused, naming both with escapes (on disk, in a zip, in a tar, and for random names by
hypothesis)."""

from __future__ import annotations

import io
import tarfile
import unicodedata
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from helpers.hostile_data import png, write_files
from helpers.properties import EXAMPLES
from numpynet.data.formats.archive import ListedFile, Listing
from numpynet.data.formats.image_folder import find_samples, read_image_folder
from numpynet.errors import DataFormatError

CAFE_NFC, CAFE_NFD = "caf\u00e9", "cafe\u0301"
HERE = Path("dataset")


def images_of(classes: list[str], per_class: int = 3, split: str = "") -> dict[str, bytes]:
    """``per_class`` distinct 4x5 PNGs in each class folder (under ``split/`` when given)."""
    prefix = f"{split}/" if split else ""
    return {f"{prefix}{name}/{k}.png": png(np.full((4, 5, 3), 10 * c + k, np.uint8))
            for c, name in enumerate(classes) for k in range(per_class)}


def packed(files: dict[str, bytes], archive: Path) -> Path:
    """``files`` in a zip (names marked UTF-8, as zipfile writes them) or a pax tar."""
    if archive.suffix == ".zip":
        with zipfile.ZipFile(archive, "w") as zf:
            for name, data in files.items():
                zf.writestr(name, data)
    else:
        with tarfile.open(archive, "w", format=tarfile.PAX_FORMAT) as tar:
            for name, data in files.items():
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return archive


def listing(*names: str) -> Listing:
    """An in-memory listing of image files (their bytes do not matter to the layout)."""
    return Listing([ListedFile(name, tuple(name.split("/")), b"") for name in names], set())


def read(location: Path):
    return read_image_folder(location, log=lambda line: None)


@pytest.mark.hostile
@pytest.mark.parametrize("container", ["folder", "x.zip", "x.tar"])
def test_class_folders_alike_but_for_their_normalization_are_refused_naming_both(
    tmp_path, container
):
    # Before: two classes, 'café' and 'café', that printed identically everywhere.
    files = images_of([CAFE_NFC, CAFE_NFD, "dog"])
    folder = write_files(tmp_path / "folder", files)
    location = folder if container == "folder" else packed(files, tmp_path / container)
    with pytest.raises(DataFormatError) as refused:
        read(location)
    message = str(refused.value)
    for fragment in [str(location), "the folders 'cafe\\u0301' and 'caf\\xe9'",
                     "the first decomposed (NFD), the second composed (NFC)", "print alike",
                     "Merge them: move the images of one into the other"]:
        assert fragment in message, message
    assert "\n" not in message


@pytest.mark.hostile
def test_a_split_folder_in_the_other_normalization_is_named_at_its_own_depth(tmp_path):
    files = {**images_of(["dog", "cat"], split="train"), **images_of(["dog", "cat"], split="test")}
    files |= {f"train/{CAFE_NFD}/{k}.png": png(np.zeros((4, 5, 3), np.uint8)) for k in range(2)}
    files |= {f"train/{CAFE_NFC}/x.png": png(np.zeros((4, 5, 3), np.uint8))}
    with pytest.raises(DataFormatError, match=r"the folders 'train/cafe\\u0301' and "
                                              r"'train/caf\\xe9'"):
        read(write_files(tmp_path / "d", files))


@pytest.mark.hostile
def test_a_class_copied_from_a_mac_is_one_class_with_its_linux_twin(tmp_path):
    # train/ typed on Linux (NFC), test/ copied from a Mac (NFD): before, "class folder
    # 'test/café' has no counterpart in 'train'", naming two folders that print alike.
    files = {**images_of([CAFE_NFC, "dog"], split="train"),
             **images_of([CAFE_NFD, "dog"], per_class=1, split="test")}
    dataset = read(write_files(tmp_path / "d", files))
    assert dataset.classes == [CAFE_NFC, "dog"]
    assert dataset.y_test.tolist() == [0, 1]
    # The class names recorded (dataset.json, the pictures) are NFC whatever the disk holds.
    nfd_only = write_files(tmp_path / "nfd", images_of([CAFE_NFD, "dog"]))
    assert read(nfd_only).classes == [CAFE_NFC, "dog"]


@pytest.mark.hostile
def test_images_alike_but_for_their_normalization_keep_one_order_whatever_the_listing(tmp_path):
    names = [f"a/{CAFE_NFD}.png", f"a/{CAFE_NFC}.png", "a/z.png", "b/1.png"]
    forward = find_samples(listing(*names), HERE)
    backward = find_samples(listing(*reversed(names)), HERE)
    assert [f.name for _, f in forward.train] == [f.name for _, f in backward.train]
    assert [f.name for _, f in forward.train][:2] == sorted(names[:2])


# Letters with accents, in composed and decomposed forms, and the odd singletons whose NFC is
# another character (the Kelvin and Ohm signs, an angstrom).
_LETTERS = st.sampled_from(list("aeoucnzAEK") + ["\u00e9", "\u00f1", "\u00c5", "\u212a",
                                                   "\u2126", "\u212b", "\u1e9b", "\u0419"])
_MARKS = st.sampled_from(["\u0301", "\u0300", "\u0308", "\u0323", "\u0306", ""])
_NAMES = st.lists(st.tuples(_LETTERS, _MARKS).map("".join), min_size=1, max_size=4).map("".join)


@pytest.mark.hostile
@EXAMPLES
@given(name=_NAMES, other=_NAMES, form=st.sampled_from(["NFC", "NFD", "NFKD"]))
def test_random_class_names_are_read_in_nfc_or_refused_when_two_print_alike(name, other, form):
    spelled = unicodedata.normalize(form, other)
    assume(spelled != name)  # the same folder twice is one folder
    files = [f"{n}/{k}.png" for n in (name, spelled) for k in range(2)] + ["0/1.png"]
    clash = unicodedata.normalize("NFC", name) == unicodedata.normalize("NFC", spelled)
    if clash:
        with pytest.raises(DataFormatError) as refused:
            find_samples(listing(*files), HERE)
        message = str(refused.value)
        assert ascii(min(name, spelled)) in message and ascii(max(name, spelled)) in message
        assert "print alike" in message
        return
    layout = find_samples(listing(*files), HERE)
    expected = sorted({unicodedata.normalize("NFC", n) for n in (name, spelled, "0")})
    assert layout.classes == expected
    assert all(unicodedata.is_normalized("NFC", c) for c in layout.classes)
    assert len(layout.train) == 5
