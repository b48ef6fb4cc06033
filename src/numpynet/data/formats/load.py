"""Reading a downloaded dataset, whatever its format, into uint8 images and integer labels that
meet the one rule of :mod:`.dataset_rule`."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from numpynet.data.catalog import FORMATS, DatasetSource, ImageFolderSource
from numpynet.data.formats.cifar import TEST_MEMBER, TRAIN_MEMBERS, read_cifar10_binary
from numpynet.data.formats.dataset_rule import check_dataset
from numpynet.data.formats.idx import load_idx_dataset
from numpynet.data.formats.image_folder import read_image_folder
from numpynet.data.read_limits import DEFAULT_LIMITS, ReadLimits
from numpynet.data.formats.raw_dataset import DatasetOrigin, RawDataset
from numpynet.data.formats.source_names import SourceNames
from numpynet.errors import DataFormatError


def load_raw_dataset(
    source: DatasetSource | ImageFolderSource, raw_dir: Path, limits: ReadLimits = DEFAULT_LIMITS
) -> RawDataset:
    """Parse the files the download stage wrote for ``source`` into arrays.

    An image folder is read within ``limits`` (the idx and CIFAR-10 files are pinned by their
    checksums, so their sizes are known).

    Class names come from ``source.classes`` when set, else from the files themselves when they
    carry any (CIFAR-10's ``batches.meta.txt``), else they are "0" .. "K-1", K the largest
    training label + 1. Raises :class:`DataFormatError` naming the file when the dataset breaks
    the rule of :mod:`.dataset_rule` (a label with no class, a class without 2 training images,
    no test image, a zero image dimension).
    """
    raw_dir = Path(raw_dir)
    if isinstance(source, ImageFolderSource):
        return _read_own_images(source, raw_dir, limits)
    if source.format in ("idx", "cifar10-binary"):
        raw = _read_labelled_files(source, raw_dir)
    else:
        raise ValueError(
            f"unsupported dataset format {source.format!r}; supported: "
            f"{', '.join(FORMATS)}"
        )
    # One place for every format, before anything is split: see dataset_rule.
    check_dataset(raw)
    return raw


def _read_own_images(source: ImageFolderSource, raw_dir: Path, limits: ReadLimits) -> RawDataset:
    """A user's image folder or archive, from the copy the download stage made of it; what a
    message names is the source (:mod:`.source_names`), and it ends saying how the copy catches
    up with a corrected source."""
    names = SourceNames(raw_dir / source.local_name, source)
    if not names.read.exists():
        raise DataFormatError(
            f"{names.read} does not exist: the download stage copies {names.key} there; run it "
            f"first (dvc repro download@{source.name})"
        )
    try:
        raw = read_image_folder(
            names,
            mode=source.mode,
            size=source.size,
            test_fraction=source.test_fraction,
            seed=source.split_seed,
            limits=limits,
        )
        check_dataset(raw)
    except DataFormatError as error:
        # Every message here is about the source's files (or a bound on reading them).
        raise type(error)(f"{error}{names.after_correction()}") from None
    return raw


def _read_labelled_files(source: DatasetSource, raw_dir: Path) -> RawDataset:
    """An idx or CIFAR-10 binary dataset, its classes named, and where each part came from."""
    file_classes: tuple[str, ...] | None = None
    if source.format == "idx":
        paths = {role: raw_dir / remote.local_name for role, remote in source.files.items()}
        x_train, y_train, x_test, y_test = load_idx_dataset(paths)
        origin = DatasetOrigin(
            train_images=str(paths["train_images"]), train_labels=str(paths["train_labels"]),
            test_images=str(paths["test_images"]), test_labels=str(paths["test_labels"]),
            fix=_idx_fix(source), correctable=source.classes is None,
        )
    else:
        archive = raw_dir / source.files["archive"].local_name
        x_train, y_train, x_test, y_test, file_classes = read_cifar10_binary(archive)
        train = f"{archive} (members {_base(TRAIN_MEMBERS[0])} .. {_base(TRAIN_MEMBERS[-1])})"
        test = f"{archive} (member {_base(TEST_MEMBER)})"
        origin = DatasetOrigin(train, train, test, test, fix=_REDOWNLOAD, correctable=False)
    names = source.classes if source.classes is not None else file_classes
    if names is None:
        # Numbered by the training labels: a test label past them is no class (dataset_rule).
        names = tuple(str(label) for label in range(int(y_train.max(initial=0)) + 1))
        origin = replace(origin, classes_from_labels=True)
    return RawDataset(x_train, y_train, x_test, y_test, list(names), origin)


# A built-in dataset's files are pinned to the official ones, which meet the rule: files that
# break it do not belong to the dataset.
_REDOWNLOAD = ("the files do not belong to this dataset: delete them and run the download stage "
               "again")


def _idx_fix(source: DatasetSource) -> str:
    if source.classes is not None:
        return _REDOWNLOAD
    return (f"correct the files where they are served, put their new sha256 under "
            f"datasets.{source.name}.data.sha256 in params.yaml, and run dvc repro")


def _base(member: str) -> str:
    return member.rsplit("/", 1)[-1]
