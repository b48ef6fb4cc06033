"""The preprocess stage, run as a process, on hostile image folders: an image bomb and a float
image out of range refused with exit code 2 and little memory, and the configured
``preprocess.max_*`` bounds handed to the library. (Archive bombs through the same stage:
tests/data/formats/test_archive.py; constant images: tests/data/test_standardize.py.)"""

from __future__ import annotations

import gzip
import json
import unicodedata
import zipfile

import numpy as np
import pytest
from PIL import Image

from helpers.hostile_data import (
    encoded,
    png,
    png_declaring,
    small_dataset,
    tar_gz_with,
    write_files,
    zip_with,
)
from helpers.project import make_stage_project
from helpers.properties import CIFAR_PARAMS, CIFAR_STORED, IDX_PARAMS, preprocess
from helpers.stages import assert_refused, preprocess_image_folder
from helpers.synthetic import cifar10_members, tar_bytes
from numpynet.data.catalog import IDX_FILE_NAMES
from numpynet.data.formats.idx import write_idx


@pytest.mark.hostile
def test_the_stage_refuses_a_bomb_with_exit_code_2_and_little_memory(tmp_path):
    archive = tar_gz_with(tmp_path / "bomb.tar.gz",
                          {**small_dataset(), "train/cat/bomb.png": png_declaring(12000, 12000)})
    project = make_stage_project(tmp_path / "project")
    code, stderr, peak, out = preprocess_image_folder(project, "bomb", archive, {"size": [32, 32]})
    assert_refused(code, stderr, "'train/cat/bomb.png'", "preprocess.max_image_pixels",
                   output=out, one_line=True)
    assert "DecompressionBombWarning" not in stderr
    assert peak < 300 * 2**20  # before: 731 MB, the image decoded and converted


@pytest.mark.hostile
@pytest.mark.parametrize(("values", "fragment"), [
    ([0.5, 2.0], "values from 0.5 to 2"), ([0.5, float("nan")], "NaN or infinite"),
])
def test_the_stage_refuses_a_float_image_out_of_range_naming_it(tmp_path, values, fragment):
    floats = Image.frombytes("F", (5, 4), np.resize(np.array(values, np.float32), 20).tobytes())
    files = {**small_dataset(), "train/dog/f.tif": encoded(floats, "TIFF")}
    folder = write_files(tmp_path / "images", files)
    project = make_stage_project(tmp_path / "project")
    code, stderr, _, out = preprocess_image_folder(project, "floats", folder)
    assert_refused(code, stderr, "'train/dog/f.tif'", fragment, "Pillow mode F",
                   "Scale it to [0, 1]" if "2" in fragment else "Replace them", output=out,
                   one_line=True)


@pytest.mark.hostile
def test_the_stage_hands_the_configured_bounds_to_the_library(tmp_path):
    archive = zip_with(tmp_path / "d.zip", small_dataset())
    project = make_stage_project(tmp_path / "project")
    code, stderr, _, out = preprocess_image_folder(project, "tight", archive, max_file_bytes=100)
    assert_refused(code, stderr, "d.zip", "preprocess.max_file_bytes = 100 bytes", output=out,
                   one_line=True)


# --- degenerate datasets: refused by the one rule of numpynet.data.formats.dataset_rule --------

TOY_IDX = {role: name.removesuffix(".gz") for role, name in IDX_FILE_NAMES.items()}
# The fix for idx files of one's own: new files, their new pins.
IDX_FIX = "put their new sha256 under datasets.toy.data.sha256 in params.yaml"


def toy_labels(*counts: int) -> np.ndarray:
    return np.repeat(np.arange(len(counts)), counts).astype(np.uint8)


@pytest.mark.hostile
@pytest.mark.parametrize(
    ("train", "test", "named", "said"),
    [
        ((0, toy_labels()), (4, toy_labels(2, 2)), "train_images", "holds no images"),
        ((8, toy_labels(4, 4), (0, 6)), (4, toy_labels(2, 2), (0, 6)), "train_images",
         "0 x 6 pixels"),
        ((13, np.r_[toy_labels(5, 5), [200, 200, 200]]), (4, toy_labels(2, 2)), "train_labels",
         "labels 2 to 199 (198 classes) have no training image, yet label 200 has 3"),
        ((8, toy_labels(4, 4)), (4, toy_labels(1, 1, 0, 2)), "test_labels",
         "holds label 3, which no training image has"),
        ((3, toy_labels(1, 1, 1)), (3, toy_labels(1, 1, 1)), "train_labels",
         "label 0 has 1 training image (so do label 1 and label 2)"),
        ((8, toy_labels(4, 4)), (0, toy_labels()), "test_images", "holds no images"),
    ],
    ids=["no-training-images", "zero-height", "stray-labels", "class-only-in-test",
         "one-image-per-class", "empty-test-set"],
)
def test_the_stage_refuses_degenerate_idx_files_naming_the_file_the_count_and_the_fix(
    tmp_path, train, test, named, said
):
    # Before: tracebacks (no training images, a zero dimension), a 201-class model, a class the
    # model has no output for, or empty splits that train refused by sending back to preprocess.
    project = make_stage_project(tmp_path / "project", src=False)
    raw = project / "data" / "raw" / "toy"
    raw.mkdir(parents=True)
    for split, (count, labels, *size) in (("train", train), ("test", test)):
        height, width = size[0] if size else (6, 6)
        write_idx(raw / TOY_IDX[f"{split}_images"], np.zeros((count, height, width), np.uint8))
        write_idx(raw / TOY_IDX[f"{split}_labels"], labels.astype(np.uint8))
    code, stderr, out = preprocess(project, "toy", IDX_PARAMS)
    assert_refused(code, stderr, TOY_IDX[named], said, IDX_FIX, output=out, one_line=True)


@pytest.mark.hostile
def test_the_stage_refuses_a_cifar_archive_missing_a_class(tmp_path):
    project = make_stage_project(tmp_path / "project", src=False)
    raw = project / "data" / "raw" / "cifar10"
    raw.mkdir(parents=True)
    y_train = np.r_[toy_labels(*[2] * 9)]  # no truck
    members = cifar10_members(np.zeros((18, 32, 32, 3), np.uint8), y_train,
                              np.zeros((10, 32, 32, 3), np.uint8), toy_labels(*[1] * 10))
    (raw / CIFAR_STORED).write_bytes(tar_bytes(members))
    code, stderr, out = preprocess(project, "cifar10", CIFAR_PARAMS)
    assert_refused(code, stderr, CIFAR_STORED, "holds no training image of label 9 ('truck')",
                   "delete them and run the download stage again", output=out, one_line=True)


@pytest.mark.hostile
def test_the_stage_refuses_an_image_folder_too_small_to_split_and_takes_three_a_class(tmp_path):
    two = {f"{label}/{k}.png": png(np.full((4, 5, 3), 40 * k, np.uint8))
           for label in ("cat", "dog") for k in range(2)}
    project = make_stage_project(tmp_path / "project")
    folder = write_files(tmp_path / "two", two)
    code, stderr, _, out = preprocess_image_folder(project, "two", folder)
    assert_refused(code, stderr, f"{folder} (datasets.two.data.source, read from its copy "
                   "data/raw/two/two): class folder 'cat' holds 2 images",
                   "leaving 1 to train on", "at least 3 without a test/ folder", output=out,
                   one_line=True)
    # One more image a class: one to test, one to validate, one to train on.
    three = {**two, **{f"{label}/2.png": png(np.full((4, 5, 3), 99, np.uint8))
                       for label in ("cat", "dog")}}
    folder = write_files(tmp_path / "three", three)
    code, stderr, _, out = preprocess_image_folder(project, "three", folder)
    assert code == 0, stderr
    sizes = json.loads((out / "meta.json").read_text())["sizes"]
    assert sizes == {"train": 2, "val": 2, "test": 2}


# --- names: the user's source named, names as text, layouts and archives as they really are ------


class _Cp866Name(zipfile.ZipInfo):
    """A member name stored as cp866 bytes without the UTF-8 flag, as a Russian Windows writes."""

    def _encodeFilenameFlags(self):  # zipfile's hook, for the local header and the directory
        return self.filename.encode("cp866"), self.flag_bits & ~0x800


def _cp866_zip(path, files: dict[str, bytes]):
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in files.items():
            zf.writestr(_Cp866Name(name), data)
    return path


def _hostile_source(tmp_path, case: str):
    """The source of ``case``, and what the message says about it."""
    files = small_dataset()
    if case == "broken-image":
        return (write_files(tmp_path / "images", {**files, "train/cat/bad.png": b"not a png"}),
                "cannot decode image 'train/cat/bad.png' in {place}: cannot identify image file;")
    if case == "normalization":
        twins = {f"train/{unicodedata.normalize(form, 'café')}/0.png": files["train/cat/0.png"]
                 for form in ("NFC", "NFD")}
        return (write_files(tmp_path / "images", {**files, **twins}),
                "{place}: the folders 'train/cafe\\u0301' and 'train/caf\\xe9'")
    if case == "cp866-zip":
        renamed = {name.replace("cat", "кот"): data for name, data in files.items()}
        return (_cp866_zip(tmp_path / "images.zip", renamed),
                "archive {place}: member 'train/\\xaa\\xae\\xe2/0.png' has a name of non-ASCII "
                "bytes")
    if case == "split-spelling":
        renamed = {name.replace("train/", "Train/").replace("test/", "Test/"): data
                   for name, data in files.items()}
        return (write_files(tmp_path / "images", renamed),
                "{place}: found Train/ and Test/, named like split folders: preprocess reads "
                "train/ and test/ alone as splits")
    path = tmp_path / "images.tar.gz"
    path.write_bytes(gzip.compress(files["train/cat/0.png"]))
    return path, "{place} is a gzip-compressed file that holds a PNG image, not a tar archive"


@pytest.mark.hostile
@pytest.mark.parametrize("case", ["broken-image", "normalization", "cp866-zip", "split-spelling",
                                  "gzip-of-an-image"])
def test_the_stage_names_the_users_source_and_the_real_cause(tmp_path, case):
    source, said = _hostile_source(tmp_path, case)
    project = make_stage_project(tmp_path / "project")
    code, stderr, _, out = preprocess_image_folder(project, "mine", source)
    place = f"{source} (datasets.mine.data.source, read from its copy data/raw/mine/{source.name})"
    message = assert_refused(code, stderr, said.format(place=place), output=out, one_line=True)
    # The copy (which the next download overwrites) only in parentheses after the source.
    assert "data/raw/mine" not in message.replace(place, "")
    assert "copy it again with dvc repro -f download@mine" in message


@pytest.mark.hostile
def test_the_stage_reads_a_zip_named_tar_gz_as_a_zip_and_says_so(tmp_path):
    # Before: tarfile's "invalid header" about a file that was a good zip.
    zipped = zip_with(tmp_path / "images.zip", small_dataset())
    source = tmp_path / "images.tar.gz"
    zipped.rename(source)
    project = make_stage_project(tmp_path / "project")
    code, stderr, _, out = preprocess_image_folder(project, "mine", source)
    assert code == 0, stderr
    assert (f"note: {source} (datasets.mine.data.source, read from its copy "
            f"data/raw/mine/images.tar.gz) is a zip archive, whatever its name says") in stderr
    assert json.loads((out / "meta.json").read_text())["sizes"]["test"] == 4
