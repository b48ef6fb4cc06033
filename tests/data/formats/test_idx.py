"""The idx reader: round trips, every malformed case it must reject (and hypothesis's, through
the preprocess stage), and the real MNIST files."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from helpers.project import SHARED_DATASETS, temporary_stage_project
from helpers.properties import EXAMPLES, IDX_FILES, IDX_PARAMS, mutated, preprocess
from helpers.stages import assert_refused
from helpers.synthetic import make_synthetic_idx_dataset, stored_paths, synthetic_source
from numpynet.data.catalog import BUILTIN, IDX_FILE_NAMES
from numpynet.data.fetch.download import download_dataset
from numpynet.data.formats.idx import load_idx_dataset, read_idx, write_idx
from numpynet.errors import DataFormatError


@pytest.mark.parametrize("shape", [(7,), (3, 4), (5, 28, 28), (2, 3, 4, 5)])
def test_round_trip(tmp_path, shape):
    array = np.random.default_rng(0).integers(0, 256, size=shape, dtype=np.uint8)
    path = tmp_path / "a.idx"
    write_idx(path, array)
    loaded = read_idx(path)
    assert loaded.dtype == np.uint8 and loaded.shape == shape
    np.testing.assert_array_equal(loaded, array)


def test_round_trip_of_empty_array(tmp_path):
    write_idx(tmp_path / "a.idx", np.zeros((0, 28, 28), np.uint8))
    assert read_idx(tmp_path / "a.idx").shape == (0, 28, 28)


def test_write_rejects_other_dtypes(tmp_path):
    with pytest.raises(TypeError):
        write_idx(tmp_path / "a.idx", np.zeros(3, np.float32))


def idx_bytes(type_code: int, shape: tuple[int, ...], data: bytes) -> bytes:
    return struct.pack(f">BBBB{len(shape)}I", 0, 0, type_code, len(shape), *shape) + data


def write_raw(tmp_path: Path, raw: bytes) -> Path:
    path = tmp_path / "bad.idx"
    path.write_bytes(raw)
    return path


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"\x01\x00\x08\x01" + struct.pack(">I", 2) + b"ab", "bad magic number"),
        (b"\x1f\x8b\x08\x00\x00\x00\x00\x00", "gzip"),
        (idx_bytes(0x0D, (2,), b"\x00" * 8), "unsupported idx data type 0x0d (float32)"),
        (idx_bytes(0x08, (2, 3), b"\x00" * 5), "truncated: header declares 6 bytes of data"),
        (idx_bytes(0x08, (2, 3), b"\x00" * 7), "unexpected bytes"),
        (b"\x00\x00", "too short"),
        (b"", "too short"),
        (b"\x00\x00\x08\x03" + struct.pack(">I", 60000), "truncated header"),
        (b"\x00\x00\x08\x00", "0 dimensions"),
    ],
    ids=["bad-magic", "still-gzipped", "float-type", "truncated-data", "extra-bytes",
         "shorter-than-magic", "empty", "shorter-than-header", "zero-dims"],
)
def test_malformed_files_are_rejected(tmp_path, raw, expected):
    path = write_raw(tmp_path, raw)
    with pytest.raises(DataFormatError) as caught:
        read_idx(path)
    assert expected in str(caught.value)
    assert str(path) in str(caught.value)


def test_truncated_message_counts_bytes(tmp_path):
    path = write_raw(tmp_path, idx_bytes(0x08, (10, 28, 28), b"\x00" * 100))
    with pytest.raises(DataFormatError, match="declares 7840 bytes of data .* file has 100"):
        read_idx(path)


def write_dataset(directory: Path, sizes: dict[str, tuple[int, ...]]) -> dict[str, Path]:
    paths = {}
    for role, shape in sizes.items():
        paths[role] = directory / f"{role}.idx"
        write_idx(paths[role], np.zeros(shape, np.uint8))
    return paths


GOOD_SIZES = {
    "train_images": (6, 28, 28),
    "train_labels": (6,),
    "test_images": (4, 28, 28),
    "test_labels": (4,),
}


def test_load_idx_dataset(tmp_path):
    x_train, y_train, x_test, y_test = load_idx_dataset(write_dataset(tmp_path, GOOD_SIZES))
    assert x_train.shape == (6, 28, 28) and y_train.shape == (6,)
    assert x_test.shape == (4, 28, 28) and y_test.shape == (4,)


def test_load_idx_dataset_rejects_count_mismatch(tmp_path):
    paths = write_dataset(tmp_path, {**GOOD_SIZES, "test_labels": (5,)})
    with pytest.raises(DataFormatError) as caught:
        load_idx_dataset(paths)
    message = str(caught.value)
    assert str(paths["test_images"]) in message and str(paths["test_labels"]) in message
    assert "4 images" in message and "5 labels" in message


@pytest.mark.parametrize(
    ("role", "shape", "expected"),
    [
        ("train_images", (6, 784), "3-D images"),
        ("train_labels", (6, 1), "1-D labels"),
        ("test_images", (4, 14, 14), "image size"),
    ],
)
def test_load_idx_dataset_rejects_wrong_shapes(tmp_path, role, shape, expected):
    paths = write_dataset(tmp_path, {**GOOD_SIZES, role: shape})
    with pytest.raises(DataFormatError, match=expected):
        load_idx_dataset(paths)


def test_load_idx_dataset_rejects_missing_role(tmp_path):
    paths = write_dataset(tmp_path, GOOD_SIZES)
    del paths["test_labels"]
    with pytest.raises(DataFormatError, match="test_labels"):
        load_idx_dataset(paths)


def test_synthetic_dataset_loads_with_all_classes(tmp_path):
    files = make_synthetic_idx_dataset(tmp_path / "www", 50, 20, np.random.default_rng(3))
    source = synthetic_source(files)
    download_dataset(source, tmp_path / "raw", mirror=str(tmp_path / "www"), timeout=5,
                     log=lambda line: None)
    x_train, y_train, x_test, y_test = load_idx_dataset(stored_paths(source, tmp_path / "raw"))
    assert x_train.shape == (50, 28, 28) and x_test.shape == (20, 28, 28)
    assert set(y_train.tolist()) == set(range(10))
    # The blob makes classes separable: per-class mean images differ clearly.
    means = np.stack([x_train[y_train == c].mean(axis=0) for c in range(10)])
    assert np.abs(means[0] - means[1]).max() > 100


@pytest.mark.skipif(
    not (SHARED_DATASETS / "mnist").is_dir(),
    reason=f"real MNIST not found at {SHARED_DATASETS / 'mnist'}",
)
def test_real_mnist_through_local_mirror(tmp_path):
    download_dataset(BUILTIN["mnist"], tmp_path / "raw", mirror=str(SHARED_DATASETS), timeout=10,
                     log=lambda line: None)
    paths = stored_paths(BUILTIN["mnist"], tmp_path / "raw")
    x_train, y_train, x_test, y_test = load_idx_dataset(paths)
    assert x_train.shape == (60000, 28, 28) and y_train.shape == (60000,)
    assert x_test.shape == (10000, 28, 28) and y_test.shape == (10000,)
    assert x_train.dtype == np.uint8
    assert set(np.unique(y_train).tolist()) == set(range(10))
    assert set(np.unique(y_test).tolist()) == set(range(10))


# ---------------------------------------------------------------------------------------------
# Malformed idx files, as the preprocess stage meets them (hypothesis)
# ---------------------------------------------------------------------------------------------


@pytest.mark.hostile
@EXAMPLES
@given(role=st.sampled_from(sorted(IDX_FILES)), data=st.data())
def test_malformed_idx_files_pass_or_are_refused_naming_the_file(role, data):
    stored_name = IDX_FILE_NAMES[role].removesuffix(".gz")
    with temporary_stage_project() as project:
        raw = project / "data" / "raw" / "toy"
        raw.mkdir(parents=True)
        for other, content in IDX_FILES.items():
            (raw / IDX_FILE_NAMES[other].removesuffix(".gz")).write_bytes(content)
        content, unreadable = mutated(IDX_FILES[role], data.draw, header_bytes=16)
        (raw / stored_name).write_bytes(content)
        code, stderr, out = preprocess(project, "toy", IDX_PARAMS)
        if code != 0 or unreadable:
            assert_refused(code, stderr, stored_name, output=out)
        else:
            assert (out / "meta.json").is_file()
