"""What a dataset is: its format, the two kinds of source, and the built-in datasets.

A dataset comes either from a list of URLs with pinned files (:class:`DatasetSource`: the built-in
datasets and the user's own idx files) or from one location the user names
(:class:`ImageFolderSource`). Both are plain descriptions; fetching them is
:mod:`numpynet.data.fetch`' job and parsing them :mod:`numpynet.data.formats`'s.

A file may be pinned two ways, and matching either pin is enough:

* ``sha256`` of the content *as stored* (after decompression when the file is decompressed).
  Mirrors often re-compress archives, so the served ``.gz`` bytes vary between sources while the
  content they carry must not: this pin accepts any honest mirror.
* ``md5`` of the bytes *as served*: the checksum publishers print next to their archives. It only
  matches the publisher's original compression, so a re-compressed mirror copy cannot be proven
  by it. Datasets we have never had a genuine copy of (to compute a content sha256 from) carry
  only this pin.

A built-in file also pins its sizes, so that a download stops as soon as a source sends more than a
genuine copy holds (see :mod:`numpynet.data.fetch.transport`): ``served_size``, the publisher's
file as served, and ``max_stored_size``, the most the stored content can hold (its exact size where
known). Any other file is capped by ``download.max_bytes`` (default :data:`DEFAULT_MAX_BYTES`).
"""

from __future__ import annotations

import os
import posixpath
import re
import urllib.parse
from dataclasses import dataclass, field

_HEX_DIGITS = {"sha256": 64, "md5": 32}

# The four files of a dataset in the idx format, by role, under the names MNIST gave them.
IDX_FILE_NAMES = {
    "train_images": "train-images-idx3-ubyte.gz",
    "train_labels": "train-labels-idx1-ubyte.gz",
    "test_images": "t10k-images-idx3-ubyte.gz",
    "test_labels": "t10k-labels-idx1-ubyte.gz",
}
IDX_ROLES = tuple(IDX_FILE_NAMES)

# Every format a dataset can have, each with the keys params.yaml accepts under
# ``datasets.<name>.data`` for it. The reader for each is chosen in numpynet.data.formats.
FORMATS: dict[str, tuple[str, ...]] = {
    "idx": ("format", "urls", "sha256"),
    "cifar10-binary": ("format", "urls"),
    "image-folder": ("format", "source", "sha256", "mode", "size", "test_fraction", "split_seed"),
}

_URL_SCHEMES = ("http://", "https://", "file://")

# Bounds on every download, the defaults of download.deadline_s and download.max_bytes: an hour
# lets CIFAR-10's 170 MB through a link of 50 KB/s; 8 GiB is far more than any dataset this trains
# on in memory needs, and still fits the disk of a small machine.
DEFAULT_DEADLINE_S = 3600.0
DEFAULT_MAX_BYTES = 8 << 30

# The archives an image folder may come as: archive.py's TAR_SUFFIXES and ZIP_SUFFIXES
# (a test keeps the two lists equal; params validation must not import the readers).
IMAGE_ARCHIVE_SUFFIXES = (
    ".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz", ".zip"
)


def is_url(location: str) -> bool:
    """Whether ``location`` is an http(s):// or file:// URL rather than a local path."""
    return location.lower().startswith(_URL_SCHEMES)


def url_file_name(url: str) -> str | None:
    """The file name an archive's URL is stored under, or None when its path has no usable one.

    The name is the last segment of the URL's path (a trailing ``/`` ignored; the query string,
    such as a signed link's signature, is never part of it), percent-decoded. It must end in one
    of :data:`IMAGE_ARCHIVE_SUFFIXES`, so that a link to a page is caught before the download
    (what the archive is, its first bytes decide: formats/archive_kind.py), and be a plain file
    name: no ``/`` or ``\\`` once decoded, no leading ``.``, no control characters.
    """
    try:
        path = urllib.parse.urlparse(url).path.rstrip("/")
    except ValueError:  # e.g. an unclosed [ in the host
        return None
    name = urllib.parse.unquote(posixpath.basename(path))
    if (
        not name
        or name.startswith(".")
        or any(c in name for c in "/\\") or any(ord(c) < 32 or ord(c) == 127 for c in name)
        or not name.lower().endswith(IMAGE_ARCHIVE_SUFFIXES)
    ):
        return None
    return name


def local_file_name(location: str) -> str:
    """The name a local folder or archive is stored under: the last component of its path.

    Lexical (``images/pets/`` gives ``pets``), so it does not depend on the current directory or
    on where a link points; "" for a path that names no component of its own (``.``, ``..``, ``/``).
    """
    name = posixpath.basename(posixpath.normpath(os.path.expanduser(location)))
    return "" if name in (".", "..", "/") else name


def is_hex_digest(value: object, algorithm: str) -> bool:
    """Whether ``value`` is spelled like a digest of ``algorithm`` ('sha256' or 'md5')."""
    digits = _HEX_DIGITS[algorithm]
    return isinstance(value, str) and re.fullmatch(f"[0-9a-fA-F]{{{digits}}}", value) is not None


@dataclass(frozen=True)
class RemoteFile:
    """One file of a dataset: its name at the source and the checksums that prove it.

    ``sha256`` is of the stored content (decompressed when ``decompress``), ``md5`` of the bytes
    as served; at least one must be given. ``decompress`` defaults to whether ``name`` ends in
    ``.gz``: such files are gunzipped while they download and stored without the suffix.
    ``served_size`` is the exact size of the publisher's file as served and ``max_stored_size``
    the most bytes the stored content may have (see the module docstring); None where unpinned.
    """

    name: str
    sha256: str | None = None
    md5: str | None = None
    decompress: bool | None = None
    served_size: int | None = None
    max_stored_size: int | None = None

    def __post_init__(self) -> None:
        if self.sha256 is None and self.md5 is None:
            raise ValueError(f"{self.name}: pin at least one checksum (sha256 or md5)")
        for algorithm, digits in _HEX_DIGITS.items():
            value = getattr(self, algorithm)
            if value is None:
                continue
            if not is_hex_digest(value, algorithm):
                raise ValueError(
                    f"{self.name}: {algorithm} must be {digits} hexadecimal digits, got {value!r}"
                )
            # Digests are compared as strings: one spelling avoids false mismatches.
            object.__setattr__(self, algorithm, value.lower())
        if self.decompress is None:
            object.__setattr__(self, "decompress", self.name.endswith(".gz"))
        for size in (self.served_size, self.max_stored_size):
            if size is not None and (not isinstance(size, int) or size <= 0):
                raise ValueError(f"{self.name}: sizes must be positive integers, got {size!r}")

    @property
    def local_name(self) -> str:
        """The name the file is stored under: without ``.gz`` when it is decompressed."""
        return self.name.removesuffix(".gz") if self.decompress else self.name


@dataclass(frozen=True)
class DatasetSource:
    """A downloadable dataset.

    ``files`` maps a role to the file that plays it: ``"train_images"``, ``"train_labels"``,
    ``"test_images"``, ``"test_labels"`` for the ``"idx"`` format (MNIST-style files), a single
    ``"archive"`` for ``"cifar10-binary"``. ``urls`` are base URLs, canonical first, tried in
    order. ``format`` names the reader that parses the files. ``classes`` names the labels
    0, 1, ... in order; ``None`` leaves the reader to name them.
    """

    name: str
    format: str
    files: dict[str, RemoteFile] = field(hash=False)
    urls: tuple[str, ...]
    classes: tuple[str, ...] | None = None


@dataclass(frozen=True)
class ImageFolderSource:
    """A user's own images, laid out as ``[<split>/]<class>/<image>`` (see formats/image_folder.py).

    ``location`` is a directory, a ``.tar``/``.tar.gz``/``.tgz``/``.zip`` archive, or an archive's
    URL; ``sha256`` pins the archive's bytes (required for a URL, so downloads are verified).
    """

    name: str
    location: str
    sha256: str | None
    mode: str | None
    size: tuple[int, int] | None
    test_fraction: float
    split_seed: int
    format: str = "image-folder"

    @property
    def is_url(self) -> bool:
        """Whether the images are fetched from a URL rather than read from a local path."""
        return is_url(self.location)

    @property
    def local_name(self) -> str:
        """The file or folder name the source gets inside ``data/raw/<name>/``.

        For a URL the last segment of its path (:func:`url_file_name`), for a local path its last
        component (:func:`local_file_name`); params validation refuses locations without one.
        """
        if self.is_url:
            return url_file_name(self.location) or ""
        return local_file_name(self.location)


MNIST = DatasetSource(
    name="mnist",
    format="idx",
    files={
        # sha256 of the decompressed idx files; md5 of the official .gz archives (yann.lecun.com,
        # also pinned by torchvision's MNIST.resources).
        "train_images": RemoteFile(
            "train-images-idx3-ubyte.gz",
            sha256="ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
            md5="f68b3c2dcbeaaa9fbdd348bbdeb94873",
            served_size=9_912_422, max_stored_size=47_040_016,
        ),
        "train_labels": RemoteFile(
            "train-labels-idx1-ubyte.gz",
            sha256="65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
            md5="d53e105ee54ea40749a09fcbcd1e9432",
            served_size=28_881, max_stored_size=60_008,
        ),
        "test_images": RemoteFile(
            "t10k-images-idx3-ubyte.gz",
            sha256="0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
            md5="9fb629c4189551a2d022fa330f9573f3",
            served_size=1_648_877, max_stored_size=7_840_016,
        ),
        "test_labels": RemoteFile(
            "t10k-labels-idx1-ubyte.gz",
            sha256="ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
            md5="ec29112dd5afa0611ce80d1b7f02629c",
            served_size=4_542, max_stored_size=10_008,
        ),
    },
    urls=(
        "https://yann.lecun.com/exdb/mnist/",
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
    ),
    classes=tuple(str(digit) for digit in range(10)),
)

FASHION_MNIST = DatasetSource(
    name="fashion-mnist",
    format="idx",
    files={
        # md5s of the official .gz archives, as published in the zalandoresearch/fashion-mnist
        # README and pinned by torchvision's FashionMNIST.resources. No genuine copy has been at
        # hand to compute content sha256s from, so a re-compressed mirror copy is rejected.
        "train_images": RemoteFile("train-images-idx3-ubyte.gz",
                                   md5="8d4fb7e6c68d591d4c3dfef9ec88bf0d",
                                   served_size=26_421_880, max_stored_size=47_040_016),
        "train_labels": RemoteFile("train-labels-idx1-ubyte.gz",
                                   md5="25c81989df183df01b3e8a0aad5dffbe",
                                   served_size=29_515, max_stored_size=60_008),
        "test_images": RemoteFile("t10k-images-idx3-ubyte.gz",
                                  md5="bef4ecab320f06d8554ea6380940ec79",
                                  served_size=4_422_102, max_stored_size=7_840_016),
        "test_labels": RemoteFile("t10k-labels-idx1-ubyte.gz",
                                  md5="bb300cfdad3c16e7a12a480ee83cd310",
                                  served_size=5_148, max_stored_size=10_008),
    },
    urls=(
        # The publisher's own bucket serves http only (an S3 website endpoint); the md5 pins,
        # not the transport, prove what arrives.
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
        # Keras's copy (tf.keras.datasets.fashion_mnist); same sizes as the originals.
        "https://storage.googleapis.com/tensorflow/tf-keras-datasets/",
    ),
    classes=("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
             "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
)

CIFAR10 = DatasetSource(
    name="cifar10",
    format="cifar10-binary",
    files={
        # md5 of the official archive as listed on https://www.cs.toronto.edu/~kriz/cifar.html.
        # Stored decompressed (a plain .tar) so the reader can seek to its members cheaply.
        # Its served size is the official one; the tar's own size has never been checked against
        # a genuine copy, so it is bounded instead: six batches of 10,000 records of 3,073 bytes
        # plus 1 MiB for the two small text files, the tar headers and padding (11,680 bytes in a
        # GNU tar of the same members, 21,920 in a pax one).
        "archive": RemoteFile("cifar-10-binary.tar.gz",
                              md5="c32a1d4ab5d03f1284b67883e8d87530", decompress=True,
                              served_size=170_052_171,
                              max_stored_size=6 * 10_000 * 3_073 + (1 << 20)),
    },
    urls=("https://www.cs.toronto.edu/~kriz/",),
    classes=("airplane", "automobile", "bird", "cat", "deer",
             "dog", "frog", "horse", "ship", "truck"),
)

BUILTIN: dict[str, DatasetSource] = {
    source.name: source for source in (MNIST, FASHION_MNIST, CIFAR10)
}

