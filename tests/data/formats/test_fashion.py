"""Fashion-MNIST: the built-in entry, md5-only verification of its archives over a loopback
server, and the idx checks on files under its names."""

from __future__ import annotations

import gzip
import hashlib
import struct
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from numpynet.data.catalog import BUILTIN, DatasetSource, RemoteFile
from numpynet.data.fetch.download import download_dataset
from numpynet.data.formats.idx import write_idx
from numpynet.data.formats.load import load_raw_dataset
from numpynet.errors import DataFormatError, DownloadError
from helpers.synthetic import MNIST_FILE_NAMES, make_synthetic_idx_dataset

FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                   "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")


def quiet(line: str) -> None:
    pass


def md5_pinned_source(directory: Path, url: str) -> DatasetSource:
    """The built-in Fashion-MNIST entry, pinning the md5s of the .gz files in ``directory``."""
    builtin = BUILTIN["fashion-mnist"]
    files = {
        role: RemoteFile(remote.name, md5=hashlib.md5((directory / remote.name).read_bytes())
                         .hexdigest())
        for role, remote in builtin.files.items()
    }
    return replace(builtin, files=files, urls=(url,))


def test_builtin_entry():
    fashion = BUILTIN["fashion-mnist"]
    assert fashion.format == "idx"
    assert fashion.urls[0] == "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
    assert {role: remote.name for role, remote in fashion.files.items()} == MNIST_FILE_NAMES
    # The official archives' md5s: zalandoresearch/fashion-mnist README, torchvision's
    # FashionMNIST.resources.
    assert {role: remote.md5 for role, remote in fashion.files.items()} == {
        "train_images": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        "train_labels": "25c81989df183df01b3e8a0aad5dffbe",
        "test_images": "bef4ecab320f06d8554ea6380940ec79",
        "test_labels": "bb300cfdad3c16e7a12a480ee83cd310",
    }
    assert all(remote.sha256 is None and remote.decompress for remote in fashion.files.values())
    assert fashion.classes == FASHION_CLASSES


def test_download_and_load_with_md5_only_pins(http_server, tmp_path):
    make_synthetic_idx_dataset(http_server.root, 40, 20, np.random.default_rng(0))
    source = md5_pinned_source(http_server.root, http_server.url)
    raw_dir = tmp_path / "raw"
    download_dataset(source, raw_dir, mirror=None, timeout=5, log=quiet)
    assert sorted(p.name for p in raw_dir.iterdir()) == sorted(
        name.removesuffix(".gz") for name in MNIST_FILE_NAMES.values()
    )
    raw = load_raw_dataset(source, raw_dir)
    assert raw.x_train.shape == (40, 28, 28) and raw.x_test.shape == (20, 28, 28)
    assert raw.classes == list(FASHION_CLASSES)


def test_recompressed_copy_is_rejected_under_md5_only_pins(http_server, tmp_path):
    make_synthetic_idx_dataset(http_server.root, 40, 20, np.random.default_rng(0))
    source = md5_pinned_source(http_server.root, http_server.url)
    # A mirror that re-compressed the same content at another level.
    make_synthetic_idx_dataset(http_server.root, 40, 20, np.random.default_rng(0),
                               compresslevel=1)
    raw_dir = tmp_path / "raw"
    with pytest.raises(DownloadError) as caught:
        download_dataset(source, raw_dir, mirror=None, timeout=5, log=quiet)
    message = str(caught.value)
    pinned = source.files["train_images"].md5
    assert "train-images-idx3-ubyte.gz" in message and f"≠ pinned {pinned}" in message
    assert "only the publisher's original archive can be verified for this file" in message
    assert list(raw_dir.iterdir()) == []


def serve_idx(root: Path, role: str, raw: bytes) -> None:
    (root / MNIST_FILE_NAMES[role]).write_bytes(gzip.compress(raw, mtime=0))


def idx_file_bytes(array: np.ndarray, tmp_path: Path) -> bytes:
    path = tmp_path / "scratch.idx"
    write_idx(path, array)
    return path.read_bytes()


def test_count_mismatch_is_a_data_format_error(http_server, tmp_path):
    make_synthetic_idx_dataset(http_server.root, 40, 20, np.random.default_rng(0))
    serve_idx(http_server.root, "test_labels", idx_file_bytes(np.zeros(19, np.uint8), tmp_path))
    source = md5_pinned_source(http_server.root, http_server.url)
    raw_dir = tmp_path / "raw"
    download_dataset(source, raw_dir, mirror=None, timeout=5, log=quiet)
    with pytest.raises(DataFormatError) as caught:
        load_raw_dataset(source, raw_dir)
    message = str(caught.value)
    assert "t10k-images-idx3-ubyte" in message and "t10k-labels-idx1-ubyte" in message
    assert "20 images" in message and "19 labels" in message


def test_bad_magic_is_a_data_format_error(http_server, tmp_path):
    make_synthetic_idx_dataset(http_server.root, 40, 20, np.random.default_rng(0))
    serve_idx(http_server.root, "train_labels", b"\x01\x00\x08\x01" + struct.pack(">I", 40)
              + bytes(40))
    source = md5_pinned_source(http_server.root, http_server.url)
    raw_dir = tmp_path / "raw"
    download_dataset(source, raw_dir, mirror=None, timeout=5, log=quiet)
    with pytest.raises(DataFormatError) as caught:
        load_raw_dataset(source, raw_dir)
    assert "train-labels-idx1-ubyte" in str(caught.value)
    assert "bad magic number" in str(caught.value)


def test_labels_beyond_ten_classes_are_rejected(http_server, tmp_path):
    make_synthetic_idx_dataset(http_server.root, 40, 20, np.random.default_rng(0))
    serve_idx(http_server.root, "test_labels",
              idx_file_bytes(np.full(20, 10, np.uint8), tmp_path))
    source = md5_pinned_source(http_server.root, http_server.url)
    raw_dir = tmp_path / "raw"
    download_dataset(source, raw_dir, mirror=None, timeout=5, log=quiet)
    with pytest.raises(DataFormatError, match="label 10 but the dataset names only 10 classes"):
        load_raw_dataset(source, raw_dir)
