"""Reading a user's own image dataset: a folder, or an archive of one, with a folder per class.

The pieces, each documented where its rules live:

* :mod:`numpynet.data.archive_listing`: listing a folder or a ``.tar``/``.tar.gz``/``.zip``
  archive, in memory, rejecting archive members that could escape the dataset;
* :mod:`numpynet.data.folder_layout`: ``[train|test/]<class>/<image>``, wrapping folders, and
  which files are ignored;
* :mod:`numpynet.data.image_decode` and :mod:`numpynet.data.image_modes`: decoding with Pillow,
  modes and sizes;
* :mod:`numpynet.data.limits`: the bounds on the memory all of this may take.

When there is no ``test`` folder, the test split is carved off the training images: per class,
``test_fraction`` of its images, chosen by ``seed``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from numpynet.data.archive_listing import list_location
from numpynet.data.folder_layout import find_samples, ignored_summary, labelled, may_be_image
from numpynet.data.image_decode import decode_images
from numpynet.data.limits import DEFAULT_LIMITS, ReadLimits
from numpynet.data.raw_dataset import RawDataset
from numpynet.data.split import stratified_split
from numpynet.log import Log, log_to_stderr


def read_image_folder(
    location: Path,
    *,
    mode: str | None = None,
    size: tuple[int, int] | None = None,
    test_fraction: float = 0.2,
    seed: int = 0,
    log: Log = log_to_stderr,
    limits: ReadLimits = DEFAULT_LIMITS,
) -> RawDataset:
    """Read the images under ``location`` (a folder or an archive) into uint8 NHWC arrays.

    ``mode`` is ``"L"`` or ``"RGB"``; ``None`` picks ``"RGB"`` if any image has color, else
    ``"L"``. ``size`` is (height, width) to resize every image to; ``None`` requires all images
    to share one size. Without a ``test`` folder, ``test_fraction`` (in (0, 1)) of each class,
    chosen by ``seed``, becomes the test split. Labels index ``classes``, the sorted class folder
    names. Samples come in sorted path order, so the same input always gives the same arrays. A
    summary of ignored files (see :mod:`numpynet.data.folder_layout`) goes to ``log``. Reading
    stays within ``limits``; past one, a DataFormatError names the file and the bound.
    """
    size = None if size is None else (int(size[0]), int(size[1]))  # a list from YAML works too
    location = Path(location)
    layout = find_samples(list_location(location, may_be_image, limits), location)
    if layout.ignored:
        log(ignored_summary(layout.ignored))

    train_files, y_train = labelled(layout.train, layout.classes)
    test_files, y_test = labelled(layout.test, layout.classes)
    if not test_files:
        keep, held_out = stratified_split(y_train, test_fraction, np.random.default_rng(seed))
        test_files, y_test = [train_files[i] for i in held_out], y_train[held_out]
        train_files, y_train = [train_files[i] for i in keep], y_train[keep]

    # One array for both splits, so that one color image makes both RGB; they are views of it.
    images = decode_images(train_files + test_files, location, mode, size, limits)
    x_train, x_test = images[: len(train_files)], images[len(train_files) :]
    return RawDataset(x_train, y_train, x_test, y_test, layout.classes)
