"""The one rule every dataset meets before it is split (numpynet.data.formats.dataset_rule): each
degenerate case of idx files, CIFAR-10 archives and image folders refused naming the file, the
count and the fix; hypothesis over label arrays against the rule stated independently; the
smallest dataset the rule accepts gives every split and class a sample. (The same cases through
the preprocess stage: tests/stages/test_preprocess_stage.py.)"""

from __future__ import annotations

import tempfile
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from helpers.properties import EXAMPLES
from helpers.synthetic import cifar10_members, tar_bytes
from numpynet.data.catalog import (
    BUILTIN,
    IDX_FILE_NAMES,
    DatasetSource,
    ImageFolderSource,
    RemoteFile,
)
from numpynet.data.formats.dataset_rule import MIN_TRAINING_IMAGES, check_dataset
from numpynet.data.formats.idx import write_idx
from numpynet.data.formats.load import load_raw_dataset
from numpynet.data.formats.raw_dataset import DatasetOrigin, RawDataset
from numpynet.data.split import stratified_split
from numpynet.errors import DataFormatError

# A user's own idx dataset: it names no classes, so its labels number them.
MINE = DatasetSource("mine", "idx", {role: RemoteFile(name, sha256="0" * 64)
                                     for role, name in IDX_FILE_NAMES.items()}, ())
STORED = {role: name.removesuffix(".gz") for role, name in IDX_FILE_NAMES.items()}
IDX_FIX = "put their new sha256 under datasets.mine.data.sha256 in params.yaml"


def images(count: int, height: int = 3, width: int = 3) -> np.ndarray:
    return np.zeros((count, height, width), np.uint8)


def write_idx_files(raw: Path, x_train, y_train, x_test, y_test) -> Path:
    """The four idx files under the names the download stage stores them by."""
    raw.mkdir(parents=True, exist_ok=True)
    arrays = {"train_images": x_train, "train_labels": y_train, "test_images": x_test,
              "test_labels": y_test}
    for role, array in arrays.items():
        write_idx(raw / STORED[role], np.asarray(array, dtype=np.uint8))
    return raw


def refusal(source, raw: Path) -> str:
    with pytest.raises(DataFormatError) as caught:
        load_raw_dataset(source, raw)
    return str(caught.value)


def labels(*counts: int) -> np.ndarray:
    """``counts[k]`` images of label k, in label order."""
    return np.repeat(np.arange(len(counts)), counts)


# --- idx files of one's own -------------------------------------------------------------------


@pytest.mark.hostile
@pytest.mark.parametrize(
    ("train", "test", "named", "said"),
    [
        ((images(0), labels()), (images(4), labels(2, 2)), "train_images",
         ["holds no images", "at least 2 images of each of at least 2 classes"]),
        ((images(8, 0, 28), labels(4, 4)), (images(4, 0, 28), labels(2, 2)), "train_images",
         ["0 x 28 pixels", "at least 1 row, 1 column and 1 channel"]),
        ((images(8, 28, 0), labels(4, 4)), (images(4, 28, 0), labels(2, 2)), "train_images",
         ["28 x 0 pixels"]),
        ((images(8), labels(4, 4)), (images(0), labels()), "test_images",
         ["holds no images", "at least 1 test image", "add test images"]),
    ],
    ids=["no-training-images", "zero-height", "zero-width", "no-test-images"],
)
def test_idx_files_with_no_images_or_a_zero_dimension_are_refused(
    tmp_path, train, test, named, said
):
    raw = write_idx_files(tmp_path / "raw", *train, *test)
    message = refusal(MINE, raw)
    assert str(raw / STORED[named]) in message
    for fragment in [*said, IDX_FIX]:
        assert fragment in message, message


@pytest.mark.hostile
def test_a_few_stray_large_labels_are_refused_as_a_gap_not_trained_as_201_classes(tmp_path):
    y_train = np.r_[labels(*[30] * 10), [200, 200, 200]]
    raw = write_idx_files(tmp_path / "raw", images(y_train.size), y_train, images(10),
                          labels(*[1] * 10))
    message = refusal(MINE, raw)
    assert str(raw / STORED["train_labels"]) in message
    for fragment in ["labels 10 to 199 (190 classes) have no training image",
                     "yet label 200 has 3", "K the largest training label + 1 (201 here)",
                     "stray large labels", "renumber the classes without gaps", IDX_FIX]:
        assert fragment in message, message


@pytest.mark.hostile
def test_a_gap_in_the_middle_names_each_run_of_missing_labels(tmp_path):
    y_train = labels(3, 0, 3, 0, 0, 3, 0, 0, 0, 3, 0, 3, 0, 3)
    raw = write_idx_files(tmp_path / "raw", images(y_train.size), y_train, images(2), labels(1, 1))
    message = refusal(MINE, raw)
    assert "labels 1, 3 to 4, 6 to 8 and 2 more runs (8 classes)" in message, message
    assert "yet label 13 has 3" in message


@pytest.mark.hostile
def test_a_class_only_in_the_test_split_is_refused_naming_both_files(tmp_path):
    raw = write_idx_files(tmp_path / "raw", images(8), labels(4, 4), images(5), labels(1, 1, 0, 3))
    message = refusal(MINE, raw)
    assert message.startswith(f"{raw / STORED['test_labels']} holds label 3, which no training "
                              f"image has: {raw / STORED['train_labels']} holds labels 0 to 1")
    assert "3 test images have a label past them" in message
    assert "add training images of label 3" in message and IDX_FIX in message


@pytest.mark.hostile
@pytest.mark.parametrize(
    ("counts", "said"),
    [
        ((1, 1, 1), "label 0 has 1 training image (so do label 1 and label 2)"),
        ((5, 1, 5), "label 1 has 1 training image: every class needs at least 2"),
        ((1, 1, 1, 1, 1, 1), "label 0 has 1 training image (so do label 1, label 2 and 3 more "
                             "classes)"),
    ],
    ids=["one-image-per-class", "one-small-class", "many-small-classes"],
)
def test_a_class_with_one_training_image_is_refused(tmp_path, counts, said):
    y_train = labels(*counts)
    raw = write_idx_files(tmp_path / "raw", images(y_train.size), y_train, images(2), labels(1, 1))
    message = refusal(MINE, raw)
    assert str(raw / STORED["train_labels"]) in message
    for fragment in [said, "one for the validation split and one to train on",
                     "add training images of it", IDX_FIX]:
        assert fragment in message, message


@pytest.mark.hostile
def test_a_single_class_is_refused(tmp_path):
    raw = write_idx_files(tmp_path / "raw", images(6), labels(6), images(2), labels(2))
    message = refusal(MINE, raw)
    assert str(raw / STORED["train_labels"]) in message
    assert "every training image has label 0: a classifier needs at least 2 classes" in message


@pytest.mark.hostile
def test_a_built_in_dataset_refuses_files_that_lack_one_of_its_classes(tmp_path):
    y_train = np.r_[labels(*[3] * 9)]  # no image of label 9 among MNIST's ten digits
    raw = write_idx_files(tmp_path / "raw", images(y_train.size), y_train, images(2), labels(1, 1))
    message = refusal(BUILTIN["mnist"], raw)
    assert message.startswith(f"{raw / STORED['train_labels']} holds no training image of "
                              f"label 9:")
    assert "delete them and run the download stage again" in message


# --- CIFAR-10 and image folders ---------------------------------------------------------------


def cifar_archive(raw: Path, y_train: np.ndarray, y_test: np.ndarray) -> Path:
    raw.mkdir(parents=True, exist_ok=True)
    members = cifar10_members(np.zeros((y_train.size, 32, 32, 3), np.uint8), y_train,
                              np.zeros((y_test.size, 32, 32, 3), np.uint8), y_test)
    (raw / "cifar-10-binary.tar").write_bytes(tar_bytes(members))
    return raw / "cifar-10-binary.tar"


@pytest.mark.hostile
@pytest.mark.parametrize(
    ("counts", "said"),
    [
        ((2, 2, 2, 0, 2, 2, 2, 2, 2, 2), "holds no training image of label 3 ('cat')"),
        ((2, 2, 2, 2, 2, 1, 2, 2, 2, 2), "label 5 ('dog') has 1 training image"),
    ],
    ids=["a-class-missing", "a-class-of-one-image"],
)
def test_a_cifar_archive_missing_a_class_or_with_one_image_of_it_is_refused(
    tmp_path, counts, said
):
    archive = cifar_archive(tmp_path, labels(*counts), labels(*[1] * 10))
    message = refusal(BUILTIN["cifar10"], tmp_path)
    assert message.startswith(f"{archive} (members data_batch_1.bin .. data_batch_5.bin)")
    assert said in message and "delete them and run the download stage again" in message


def image_folder(root: Path, paths: list[str]) -> Path:
    for relative in paths:
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        Image.new("L", (3, 2), 100).save(root / relative, format="PNG")
    return root


def folder_source(location: Path) -> ImageFolderSource:
    return ImageFolderSource("pets", location.name, None, None, None, 0.2, 0)


@pytest.mark.hostile
@pytest.mark.parametrize(
    ("per_class", "said"),
    [
        (1, "class folder 'cat' holds 1 image, of which the test split (test_fraction 0.2) took "
            "0, leaving 1 to train on (so does class folder 'dog')"),
        (2, "class folder 'cat' holds 2 images, of which the test split (test_fraction 0.2) "
            "took 1, leaving 1 to train on (so does class folder 'dog')"),
    ],
    ids=["one-image-per-class", "two-images-per-class"],
)
def test_an_image_folder_without_a_test_split_needs_three_images_a_class(
    tmp_path, per_class, said
):
    folder = image_folder(tmp_path / "pets", [f"{c}/{k}.png" for c in ("cat", "dog")
                                              for k in range(per_class)])
    message = refusal(folder_source(folder), tmp_path)
    # The source as params.yaml gives it, the copy read in parentheses (test_source_names.py).
    assert message.startswith(f"pets (datasets.pets.data.source, read from its copy {folder}): ")
    for fragment in [said, "so at least 3 without a test/ folder",
                     "add images to it, or remove the folder"]:
        assert fragment in message, message
    # Three a class pass: one for test, one for validation, one to train on.
    image_folder(folder, [f"{c}/2.png" for c in ("cat", "dog")] + ["cat/1.png", "dog/1.png"])
    raw = load_raw_dataset(folder_source(folder), tmp_path)
    assert np.bincount(raw.y_train).tolist() == [2, 2] and raw.y_test.size == 2


@pytest.mark.hostile
def test_an_image_folder_with_one_training_image_of_a_class_is_refused(tmp_path):
    folder = image_folder(tmp_path / "pets", ["mine/train/cat/0.png", "mine/train/cat/1.png",
                                              "mine/train/dog/0.png", "mine/test/dog/0.png"])
    message = refusal(folder_source(folder), tmp_path)
    assert message.startswith(f"pets (datasets.pets.data.source, read from its copy {folder}): "
                              f"class folder 'mine/train/dog' holds 1 image: every class needs "
                              f"at least 2 training images")


@pytest.mark.hostile
def test_an_image_with_no_channels_is_refused_whatever_the_format():
    origin = DatasetOrigin("x_train", "y_train", "x_test", "y_test", fix="fix it")
    raw = RawDataset(np.zeros((4, 2, 2, 0), np.uint8), labels(2, 2),
                     np.zeros((1, 2, 2, 0), np.uint8), labels(1), ["a", "b"], origin)
    with pytest.raises(DataFormatError, match=r"x_train: its images are 2 x 2 pixels of 0 "
                                              r"channels: .*; fix it"):
        check_dataset(raw)


# --- the rule over label arrays (hypothesis) ---------------------------------------------------


def expected_problem(y_train: list[int], y_test: list[int]) -> str | None:
    """The rule as docs/datasets.md states it, for idx files of one's own: which file a refusal
    names first, or None when the dataset is accepted."""
    if not y_train:
        return "train_images"
    classes = max(y_train) + 1
    if any(label >= classes for label in y_test):
        return "test_labels"
    counts = Counter(y_train)
    if classes < 2 or any(counts[k] < MIN_TRAINING_IMAGES for k in range(classes)):
        return "train_labels"
    if not y_test:
        return "test_images"
    return None


@st.composite
def label_arrays(draw) -> tuple[list[int], list[int]]:
    """Training and test labels near the rule's edges: a few classes of 0 to 5 images each
    (mostly enough), now and then stray labels up to 255, and test labels that may name one
    class past the training ones."""
    # Each strategy's simplest value (which hypothesis tries most) is the valid one.
    classes = draw(st.integers(2, 6) | st.just(1))
    counts = draw(st.lists(st.sampled_from([2, 3, 5, 2, 4, 1, 0]), min_size=classes,
                           max_size=classes))
    y_train = draw(st.permutations(np.repeat(np.arange(classes), counts).tolist()))
    strays = draw(st.just([]) | st.lists(st.integers(0, 255), min_size=1, max_size=3))
    y_test = draw(st.lists(st.integers(0, classes - 1), min_size=1, max_size=5)
                  | st.lists(st.integers(0, classes), min_size=1, max_size=5) | st.just([]))
    return [*y_train, *strays], y_test


@pytest.mark.hostile
@EXAMPLES
@given(arrays=label_arrays(), val_fraction=st.floats(0.01, 0.99))
def test_label_arrays_are_accepted_exactly_when_they_meet_the_rule(arrays, val_fraction):
    y_train, y_test = arrays
    problem = expected_problem(y_train, y_test)
    with tempfile.TemporaryDirectory() as folder:
        raw = write_idx_files(Path(folder), images(len(y_train), 2, 2), y_train,
                              images(len(y_test), 2, 2), y_test)
        if problem is not None:
            message = refusal(MINE, raw)
            assert str(raw / STORED[problem]) in message, message
            assert IDX_FIX in message and "\n" not in message
            return
        dataset = load_raw_dataset(MINE, raw)
    classes = max(y_train) + 1
    assert dataset.classes == [str(k) for k in range(classes)]
    # Whatever val_fraction, the validation split takes at least one image of every class and
    # training keeps one: no empty split for a later stage to stumble on.
    kept, held_out = stratified_split(dataset.y_train, val_fraction, np.random.default_rng(0))
    for split in (kept, held_out):
        assert set(dataset.y_train[split].tolist()) == set(range(classes))
