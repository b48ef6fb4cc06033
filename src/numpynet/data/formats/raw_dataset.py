"""The common shape of every dataset once its files are parsed, before preprocessing, and where
its parts came from (for the messages of :mod:`.dataset_rule`)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class DatasetOrigin:
    """How a message names the parts of a dataset, and how its files are corrected.

    ``train_images``, ``train_labels``, ``test_images`` and ``test_labels`` name what each part
    was read from (a file, an archive's members, a folder). ``fix`` says how to correct the files
    in their format's way (the end of a message). An image folder's classes are folders:
    ``class_folders`` is the path of the training classes' folders inside the source (``train/``,
    ``mydata/train/``, or ``""``), None for numbered labels; ``carved_test_fraction`` is the share
    of each class the test split took when it was carved off the training images, else None.
    ``classes_from_labels``: the classes are numbered by the training labels (idx files of one's
    own, which name none), rather than named by the dataset. ``correctable``: the files are the
    user's own, so a message says what to change in them before ``fix``; a built-in dataset's
    files are replaced, never corrected, and ``fix`` says how.
    """

    train_images: str
    train_labels: str
    test_images: str
    test_labels: str
    fix: str
    class_folders: str | None = None
    carved_test_fraction: float | None = None
    classes_from_labels: bool = False
    correctable: bool = True


@dataclass(frozen=True)
class RawDataset:
    """Images as uint8 (N, H, W) or (N, H, W, C), labels as integers in ``range(len(classes))``
    once :func:`~numpynet.data.formats.dataset_rule.check_dataset` passed them; ``origin`` names
    their files."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    classes: list[str]
    origin: DatasetOrigin
