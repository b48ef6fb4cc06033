"""The built-in datasets: where their files live and the checksums that prove them genuine.

Checksums are sha256 digests of the *decompressed* files. Mirrors often re-compress archives, so
the ``.gz`` bytes vary between sources while the content they carry must not.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from numpynet.errors import NumpynetError


@dataclass(frozen=True)
class RemoteFile:
    """One file of a dataset: its name at the source and the sha256 of its decompressed content."""

    name: str
    sha256: str

    @property
    def local_name(self) -> str:
        """The name the file is stored under once downloaded: decompressed, so no ``.gz``."""
        return self.name.removesuffix(".gz")


@dataclass(frozen=True)
class DatasetSource:
    """A downloadable dataset.

    ``files`` maps a role (``"train_images"``, ``"train_labels"``, ``"test_images"``,
    ``"test_labels"``) to the file that plays it; ``urls`` are base URLs, canonical first, tried in
    order. ``format`` names the reader that parses the files (``"idx"`` for MNIST-style files).
    """

    name: str
    format: str
    files: dict[str, RemoteFile] = field(hash=False)
    urls: tuple[str, ...]


MNIST = DatasetSource(
    name="mnist",
    format="idx",
    files={
        "train_images": RemoteFile(
            "train-images-idx3-ubyte.gz",
            "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
        ),
        "train_labels": RemoteFile(
            "train-labels-idx1-ubyte.gz",
            "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
        ),
        "test_images": RemoteFile(
            "t10k-images-idx3-ubyte.gz",
            "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
        ),
        "test_labels": RemoteFile(
            "t10k-labels-idx1-ubyte.gz",
            "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
        ),
    },
    urls=(
        "https://yann.lecun.com/exdb/mnist/",
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
    ),
)

# Fashion-MNIST and CIFAR-10 join as further entries; nothing else needs to change.
BUILTIN: dict[str, DatasetSource] = {MNIST.name: MNIST}


def builtin_source(name: str) -> DatasetSource:
    """Return the built-in dataset called ``name``.

    Raises :class:`NumpynetError` listing the known names when there is none by that name.
    """
    try:
        return BUILTIN[name]
    except KeyError:
        known = ", ".join(sorted(BUILTIN))
        raise NumpynetError(
            f"unknown dataset {name!r}: the built-in datasets are {known}; "
            f"choose one of these names in params.yaml"
        ) from None
