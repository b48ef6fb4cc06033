"""CIFAR-10's binary distribution: the reader, every malformed archive it must reject (and
hypothesis's, through the preprocess stage), and the download of a synthetic archive through the
real code and a loopback server."""

from __future__ import annotations

import gzip
import hashlib
import io
import tarfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from helpers.project import temporary_stage_project
from helpers.properties import (
    CIFAR_MEMBERS,
    CIFAR_PARAMS,
    CIFAR_STORED,
    EXAMPLES,
    mutated,
    preprocess,
)
from helpers.stages import assert_refused
from helpers.synthetic import (
    CIFAR10_CLASSES,
    cifar10_members,
    random_cifar10_split,
    tar_bytes,
    write_cifar10_binary,
    write_tar_gz,
)
from numpynet.data.catalog import BUILTIN, RemoteFile
from numpynet.data.fetch.download import download_dataset
from numpynet.data.formats.cifar import (
    BATCH_DIR,
    META_MEMBER,
    RECORD_BYTES,
    TEST_MEMBER,
    TRAIN_MEMBERS,
    read_cifar10_binary,
)
from numpynet.data.formats.load import load_raw_dataset
from numpynet.errors import DataFormatError, DownloadError


ARCHIVE_NAME = "cifar-10-binary.tar.gz"


@pytest.fixture
def splits():
    rng = np.random.default_rng(0)
    return (*random_cifar10_split(23, rng), *random_cifar10_split(7, rng))


def test_round_trip(tmp_path, splits):
    x_train, y_train, x_test, y_test = splits
    archive = tmp_path / ARCHIVE_NAME
    write_cifar10_binary(archive, *splits)
    got_x_train, got_y_train, got_x_test, got_y_test, classes = read_cifar10_binary(archive)
    for got, expected in [(got_x_train, x_train), (got_y_train, y_train),
                          (got_x_test, x_test), (got_y_test, y_test)]:
        assert got.dtype == np.uint8
        np.testing.assert_array_equal(got, expected)
    assert got_x_train.shape == (23, 32, 32, 3) and got_x_test.shape == (7, 32, 32, 3)
    assert got_x_train.flags.c_contiguous and got_x_test.flags.c_contiguous
    assert classes == CIFAR10_CLASSES


def hand_made_record(label: int) -> bytes:
    """One record written byte by byte from the format's description, independent of helpers."""
    record = bytearray([label]) + bytearray([10] * 1024 + [20] * 1024 + [30] * 1024)
    record[1 + 2 * 32 + 5] = 255  # red plane, row 2, column 5
    record[1 + 1024 + 0 * 32 + 31] = 254  # green plane, row 0, column 31
    record[1 + 2048 + 31 * 32 + 0] = 253  # blue plane, row 31, column 0
    return bytes(record)


def test_channel_major_records_become_nhwc(tmp_path):
    members = {name: hand_made_record(1) for name in TRAIN_MEMBERS}
    members[TEST_MEMBER] = hand_made_record(3) + hand_made_record(9)
    write_tar_gz(tmp_path / ARCHIVE_NAME, members)
    x_train, y_train, x_test, y_test, classes = read_cifar10_binary(tmp_path / ARCHIVE_NAME)
    assert x_train.shape == (5, 32, 32, 3) and y_train.tolist() == [1] * 5
    assert y_test.tolist() == [3, 9] and classes is None
    image = x_test[0]
    assert image[0, 0].tolist() == [10, 20, 30]
    assert image[2, 5].tolist() == [255, 20, 30]
    assert image[0, 31].tolist() == [10, 254, 30]
    assert image[31, 0].tolist() == [10, 20, 253]


def test_uncompressed_tar_is_read(tmp_path, splits):
    gz = tmp_path / ARCHIVE_NAME
    write_cifar10_binary(gz, *splits)
    plain = tmp_path / "cifar-10-binary.tar"
    plain.write_bytes(gzip.decompress(gz.read_bytes()))
    np.testing.assert_array_equal(read_cifar10_binary(plain)[0], splits[0])


def test_train_batches_are_concatenated_in_order(tmp_path, splits):
    x_train, y_train, x_test, y_test = splits
    archive = tmp_path / ARCHIVE_NAME
    members = cifar10_members(*splits)
    # Reversed member order in the archive must not change the batch order.
    write_tar_gz(archive, dict(reversed(list(members.items()))))
    got_x_train, got_y_train = read_cifar10_binary(archive)[:2]
    np.testing.assert_array_equal(got_x_train, x_train)
    np.testing.assert_array_equal(got_y_train, y_train)


# --- malformed archives -----------------------------------------------------------------------

def write_with(tmp_path: Path, splits, **changes: bytes | None) -> Path:
    """Write a valid archive with some members replaced (bytes) or left out (None)."""
    members = cifar10_members(*splits)
    for name, data in changes.items():
        member = f"{BATCH_DIR}/{name}"
        if data is None:
            del members[member]
        else:
            members[member] = data
    archive = tmp_path / ARCHIVE_NAME
    write_tar_gz(archive, members)
    return archive


def read_error(archive: Path) -> str:
    with pytest.raises(DataFormatError) as caught:
        read_cifar10_binary(archive)
    message = str(caught.value)
    assert str(archive) in message
    return message


def test_member_not_a_whole_number_of_records(tmp_path, splits):
    batch = cifar10_members(*splits)[TRAIN_MEMBERS[2]]
    archive = write_with(tmp_path, splits, **{"data_batch_3.bin": batch[:-1]})
    message = read_error(archive)
    assert TRAIN_MEMBERS[2] in message
    assert f"{len(batch) - 1:,} bytes" in message
    assert "not a whole number of 3,073-byte records" in message


def test_label_out_of_range(tmp_path, splits):
    x_train, y_train, x_test, y_test = splits
    y_test = y_test.copy()
    y_test[4] = 10
    archive = tmp_path / ARCHIVE_NAME
    write_cifar10_binary(archive, x_train, y_train, x_test, y_test)
    message = read_error(archive)
    assert TEST_MEMBER in message and "record 4 has label 10" in message


def test_missing_test_batch(tmp_path, splits):
    message = read_error(write_with(tmp_path, splits, **{"test_batch.bin": None}))
    assert TEST_MEMBER in message and "missing" in message


def test_missing_train_batch(tmp_path, splits):
    message = read_error(write_with(tmp_path, splits, **{"data_batch_5.bin": None}))
    assert TRAIN_MEMBERS[4] in message and "missing" in message


def test_empty_batch(tmp_path, splits):
    message = read_error(write_with(tmp_path, splits, **{"data_batch_1.bin": b""}))
    assert TRAIN_MEMBERS[0] in message and "empty" in message


def test_link_in_place_of_a_batch_is_rejected(tmp_path, splits):
    members = cifar10_members(*splits)
    del members[TEST_MEMBER]
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        link = tarfile.TarInfo(TEST_MEMBER)
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tar.addfile(link)
    archive = tmp_path / "cifar-10-binary.tar"
    archive.write_bytes(buffer.getvalue())
    message = read_error(archive)
    assert TEST_MEMBER in message and "not a regular file" in message


def test_meta_with_wrong_class_count(tmp_path, splits):
    message = read_error(write_with(tmp_path, splits, **{"batches.meta.txt": b"cat\ndog\n"}))
    assert META_MEMBER in message and "2 classes" in message


@pytest.mark.parametrize("compressed", [True, False], ids=["tar.gz", "tar"])
def test_truncated_archive(tmp_path, splits, compressed):
    gz = tmp_path / ARCHIVE_NAME
    write_cifar10_binary(gz, *splits)
    data = gz.read_bytes() if compressed else gzip.decompress(gz.read_bytes())
    archive = tmp_path / ("cut.tar.gz" if compressed else "cut.tar")
    archive.write_bytes(data[: len(data) * 2 // 3])
    read_error(archive)


def test_not_an_archive(tmp_path):
    archive = tmp_path / "cifar-10-binary.tar"
    archive.write_bytes(b"\0\1" * RECORD_BYTES)
    assert "cannot read it" in read_error(archive)


# --- through the download code ----------------------------------------------------------------

def source_pinning(md5: str, url: str):
    """The built-in CIFAR-10 entry, with a synthetic archive's md5 and a loopback URL."""
    builtin = BUILTIN["cifar10"]
    return replace(builtin, files={"archive": RemoteFile(ARCHIVE_NAME, md5=md5, decompress=True)},
                   urls=(url,))


def test_builtin_cifar10_entry():
    cifar = BUILTIN["cifar10"]
    assert cifar.format == "cifar10-binary"
    assert cifar.urls == ("https://www.cs.toronto.edu/~kriz/",)
    [(role, remote)] = cifar.files.items()
    assert role == "archive" and remote.name == ARCHIVE_NAME
    # The official archive's md5 (https://www.cs.toronto.edu/~kriz/cifar.html).
    assert remote.md5 == "c32a1d4ab5d03f1284b67883e8d87530" and remote.sha256 is None
    assert remote.decompress and remote.local_name == "cifar-10-binary.tar"
    assert cifar.classes == CIFAR10_CLASSES == ("airplane", "automobile", "bird", "cat", "deer",
                                                "dog", "frog", "horse", "ship", "truck")


def test_download_and_load_over_loopback(http_server, tmp_path, splits):
    md5 = write_cifar10_binary(http_server.root / ARCHIVE_NAME, *splits)
    source = source_pinning(md5, http_server.url)
    raw_dir = tmp_path / "raw"
    download_dataset(source, raw_dir, mirror=None, timeout=5, log=lambda line: None)
    assert sorted(p.name for p in raw_dir.iterdir()) == ["cifar-10-binary.tar"]
    assert (raw_dir / "cifar-10-binary.tar").read_bytes() == gzip.decompress(
        (http_server.root / ARCHIVE_NAME).read_bytes()
    )
    raw = load_raw_dataset(source, raw_dir)
    for got, expected in zip((raw.x_train, raw.y_train, raw.x_test, raw.y_test), splits):
        np.testing.assert_array_equal(got, expected)
    assert raw.classes == list(CIFAR10_CLASSES)


def test_truncated_download_is_rejected_and_leaves_nothing(http_server, tmp_path, splits):
    md5 = write_cifar10_binary(http_server.root / ARCHIVE_NAME, *splits)
    served = http_server.root / ARCHIVE_NAME
    served.write_bytes(served.read_bytes()[:-500])
    raw_dir = tmp_path / "raw"
    with pytest.raises(DownloadError) as caught:
        download_dataset(source_pinning(md5, http_server.url), raw_dir, mirror=None, timeout=5,
                         log=lambda line: None)
    assert ARCHIVE_NAME in str(caught.value)
    assert list(raw_dir.iterdir()) == []


def test_recompressed_archive_is_rejected_under_md5_only_pin(http_server, tmp_path, splits):
    md5 = write_cifar10_binary(http_server.root / ARCHIVE_NAME, *splits)
    served = http_server.root / ARCHIVE_NAME
    served.write_bytes(gzip.compress(gzip.decompress(served.read_bytes()), compresslevel=1))
    assert hashlib.md5(served.read_bytes()).hexdigest() != md5
    raw_dir = tmp_path / "raw"
    with pytest.raises(DownloadError, match="only the publisher's original archive"):
        download_dataset(source_pinning(md5, http_server.url), raw_dir, mirror=None, timeout=5,
                         log=lambda line: None)
    assert list(raw_dir.iterdir()) == []


# --- class names --------------------------------------------------------------------------------

def stored_archive(raw_dir: Path, splits, **kwargs) -> None:
    members = cifar10_members(*splits, **kwargs)
    write_tar_gz(raw_dir / "a.tar.gz", members)
    plain = gzip.decompress((raw_dir / "a.tar.gz").read_bytes())
    (raw_dir / "cifar-10-binary.tar").write_bytes(plain)


def test_class_names_prefer_the_source_then_the_archive_then_numbers(tmp_path, splits):
    stored_archive(tmp_path, splits, classes=tuple(f"meta{i}" for i in range(10)))
    builtin = BUILTIN["cifar10"]
    assert load_raw_dataset(builtin, tmp_path).classes == list(CIFAR10_CLASSES)
    unnamed = replace(builtin, classes=None)
    assert load_raw_dataset(unnamed, tmp_path).classes == [f"meta{i}" for i in range(10)]
    stored_archive(tmp_path, splits, classes=None)
    assert load_raw_dataset(unnamed, tmp_path).classes == [str(i) for i in range(10)]


def test_labels_beyond_the_named_classes_are_rejected(tmp_path, splits):
    stored_archive(tmp_path, splits)
    source = replace(BUILTIN["cifar10"], classes=("a", "b"))
    with pytest.raises(DataFormatError, match="label 9 but the dataset names only 2 classes"):
        load_raw_dataset(source, tmp_path)


def test_unknown_format_lists_the_supported_ones(tmp_path):
    source = replace(BUILTIN["cifar10"], format="hdf5")
    with pytest.raises(ValueError, match="'hdf5'.*idx, cifar10-binary"):
        load_raw_dataset(source, tmp_path)


# ---------------------------------------------------------------------------------------------
# Malformed archives, as the preprocess stage meets them (hypothesis)
# ---------------------------------------------------------------------------------------------


@st.composite
def broken_cifar_archive(draw):
    """A CIFAR-10 binary tar with one member damaged, dropped or added, or the tar itself damaged."""
    members = dict(CIFAR_MEMBERS)
    how = draw(st.sampled_from(["member", "drop", "extra", "tar", "label"]))
    name = draw(st.sampled_from(sorted(members)))
    if how == "member":
        members[name] = mutated(members[name], draw, header_bytes=4)[0]
    elif how == "drop":
        del members[name]
    elif how == "extra":
        members[f"cifar-10-batches-bin/{draw(st.sampled_from(['x.bin', 'data_batch_6.bin']))}"] = (
            draw(st.binary(max_size=3073 * 2)))
    elif how == "label" and name.endswith(".bin"):
        records = bytearray(members[name])
        record = draw(st.integers(0, len(records) // 3073 - 1))
        records[record * 3073] = draw(st.integers(10, 255))
        members[name] = bytes(records)
    data = tar_bytes(members)
    if how == "tar":
        data = mutated(data, draw, header_bytes=512)[0]
    return data


@pytest.mark.hostile
@EXAMPLES
@given(broken_cifar_archive())
def test_malformed_cifar_archives_pass_or_are_refused_naming_the_archive(archive):
    with temporary_stage_project() as project:
        raw = project / "data" / "raw" / "cifar10"
        raw.mkdir(parents=True)
        (raw / CIFAR_STORED).write_bytes(archive)
        code, stderr, out = preprocess(project, "cifar10", CIFAR_PARAMS)
        if code != 0:
            assert_refused(code, stderr, CIFAR_STORED, output=out)
        else:
            assert (out / "meta.json").is_file()
