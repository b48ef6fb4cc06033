"""Reading a downloaded dataset, whatever its format, into uint8 images and integer labels."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from numpynet.data.catalog import FORMATS, DatasetSource, ImageFolderSource
from numpynet.data.formats.cifar import read_cifar10_binary
from numpynet.data.formats.idx import load_idx_dataset
from numpynet.data.formats.image_folder import read_image_folder
from numpynet.data.read_limits import DEFAULT_LIMITS, ReadLimits
from numpynet.data.formats.raw_dataset import RawDataset
from numpynet.errors import DataFormatError


def load_raw_dataset(
    source: DatasetSource | ImageFolderSource, raw_dir: Path, limits: ReadLimits = DEFAULT_LIMITS
) -> RawDataset:
    """Parse the files the download stage wrote for ``source`` into arrays.

    An image folder is read within ``limits`` (the idx and CIFAR-10 files are pinned by their
    checksums, so their sizes are known).

    Class names come from ``source.classes`` when set, else from the files themselves when they
    carry any (CIFAR-10's ``batches.meta.txt``), else they are "0" .. "N-1" for the N labels seen.
    Raises :class:`DataFormatError` when a label has no class name.
    """
    raw_dir = Path(raw_dir)
    if isinstance(source, ImageFolderSource):
        return read_image_folder(
            raw_dir / source.local_name,
            mode=source.mode,
            size=source.size,
            test_fraction=source.test_fraction,
            seed=source.split_seed,
            limits=limits,
        )
    file_classes: tuple[str, ...] | None = None
    if source.format == "idx":
        paths = {role: raw_dir / remote.local_name for role, remote in source.files.items()}
        x_train, y_train, x_test, y_test = load_idx_dataset(paths)
    elif source.format == "cifar10-binary":
        archive = raw_dir / source.files["archive"].local_name
        x_train, y_train, x_test, y_test, file_classes = read_cifar10_binary(archive)
    else:
        raise ValueError(
            f"unsupported dataset format {source.format!r}; supported: "
            f"{', '.join(FORMATS)}"
        )
    classes = _class_names(source, file_classes, y_train, y_test, raw_dir)
    return RawDataset(x_train, y_train, x_test, y_test, classes)


def _class_names(
    source: DatasetSource,
    file_classes: tuple[str, ...] | None,
    y_train: np.ndarray,
    y_test: np.ndarray,
    raw_dir: Path,
) -> list[str]:
    num_labels = int(max(y_train.max(initial=0), y_test.max(initial=0))) + 1
    names = source.classes if source.classes is not None else file_classes
    if names is None:
        return [str(label) for label in range(num_labels)]
    if num_labels > len(names):
        raise DataFormatError(
            f"{raw_dir}: the {source.name} files hold label {num_labels - 1} but the dataset "
            f"names only {len(names)} classes ({', '.join(names)}); the files do not belong to "
            f"this dataset: delete them and run the download stage again"
        )
    return list(names)
