"""What a dataset is: URLs told from local paths, the built-in entries, the sizes they pin (the
download's caps), and the archive suffixes params accept, the reader reads."""

from __future__ import annotations

import gzip
import io
import tarfile

import pytest

from helpers.project import SHARED_DATASETS
from numpynet.data.catalog import BUILTIN, IMAGE_ARCHIVE_SUFFIXES, is_url
from numpynet.data.formats.archive import TAR_SUFFIXES, ZIP_SUFFIXES


@pytest.mark.parametrize("location, expected", [
    ("https://example.org/pets.zip", True), ("HTTP://EXAMPLE.ORG/a", True),
    ("file:///srv/pets.tar.gz", True), ("images/pets.tar.gz", False), ("/srv/pets", False),
    ("ftp://example.org/pets.zip", False), ("https:/pets", False),
])
def test_is_url(location, expected):
    assert is_url(location) is expected


def test_builtin_mnist_entry():
    mnist = BUILTIN["mnist"]
    assert mnist.format == "idx" and mnist.urls[0] == "https://yann.lecun.com/exdb/mnist/"
    assert set(mnist.files) == {"train_images", "train_labels", "test_images", "test_labels"}
    assert all(len(f.sha256) == 64 for f in mnist.files.values())
    # The official archives' md5s (yann.lecun.com; torchvision's MNIST.resources).
    assert [f.md5 for f in mnist.files.values()] == [
        "f68b3c2dcbeaaa9fbdd348bbdeb94873", "d53e105ee54ea40749a09fcbcd1e9432",
        "9fb629c4189551a2d022fa330f9573f3", "ec29112dd5afa0611ce80d1b7f02629c",
    ]
    assert [f.local_name for f in mnist.files.values()] == [
        "train-images-idx3-ubyte", "train-labels-idx1-ubyte",
        "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte",
    ]
    assert mnist.classes == tuple("0123456789")


# ---------------------------------------------------------------------------------------------
# Pinned sizes: the caps of the built-in files
# ---------------------------------------------------------------------------------------------


SHARED_MNIST = SHARED_DATASETS / "mnist"
SIZES = {  # served (.gz) and stored (decompressed) sizes of the official files
    "mnist": {"train_images": (9912422, 47040016), "train_labels": (28881, 60008),
              "test_images": (1648877, 7840016), "test_labels": (4542, 10008)},
    "fashion-mnist": {"train_images": (26421880, 47040016), "train_labels": (29515, 60008),
                      "test_images": (4422102, 7840016), "test_labels": (5148, 10008)},
}


@pytest.mark.hostile
@pytest.mark.parametrize("name", sorted(SIZES))
def test_built_in_idx_files_pin_their_official_sizes(name):
    files = BUILTIN[name].files
    assert {role: (f.served_size, f.max_stored_size) for role, f in files.items()} == SIZES[name]


@pytest.mark.hostile
def test_cifar10_bound_holds_a_tar_of_the_official_members():
    archive = BUILTIN["cifar10"].files["archive"]
    assert archive.served_size == 170_052_171
    members = {f"cifar-10-batches-bin/{n}.bin": 30_730_000 for n in
               ("data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5",
                "test_batch")}
    members.update({"cifar-10-batches-bin/batches.meta.txt": 61,
                    "cifar-10-batches-bin/readme.html": 88})
    for fmt in (tarfile.GNU_FORMAT, tarfile.PAX_FORMAT):
        size = _tar_size(members, fmt)
        assert 184_380_000 < size <= archive.max_stored_size, (fmt, size)


def _tar_size(members: dict[str, int], fmt: int) -> int:
    """The size of a tar of ``members`` (zeros), counted without keeping it."""

    class Counter:
        total = 0

        def write(self, data):
            self.total += len(data)
            return len(data)

        def tell(self):
            return self.total

    sink = Counter()
    with tarfile.open(fileobj=sink, mode="w", format=fmt) as tar:
        directory = tarfile.TarInfo("cifar-10-batches-bin")
        directory.type = tarfile.DIRTYPE
        tar.addfile(directory)
        zeros = bytes(max(members.values()))
        for name, size in members.items():
            tar.addfile(_info(name, size), io.BytesIO(zeros[:size]))
    return sink.total


def _info(name: str, size: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = size
    return info


@pytest.mark.hostile
@pytest.mark.skipif(not SHARED_MNIST.is_dir(), reason="no real MNIST copy on this machine")
def test_real_mnist_fits_its_pinned_sizes_exactly():
    for remote in BUILTIN["mnist"].files.values():
        with gzip.open(SHARED_MNIST / remote.name) as stream:
            assert len(stream.read()) == remote.max_stored_size


# ---------------------------------------------------------------------------------------------
# Image archives
# ---------------------------------------------------------------------------------------------


@pytest.mark.hostile
def test_the_archive_suffixes_params_accept_are_those_the_reader_reads():
    assert set(IMAGE_ARCHIVE_SUFFIXES) == set(TAR_SUFFIXES) | set(ZIP_SUFFIXES)
