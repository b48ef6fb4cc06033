"""The one rule every dataset meets before it is split and standardized, whatever its format.

A dataset that breaks it would train a model that means nothing (201 classes from a few stray
labels), or write empty splits that a later stage refuses with a message pointing back at
preprocess. So :func:`check_dataset` refuses it, naming the file, the count and the fix:

* every image has at least 1 row, 1 column and 1 channel;
* there are K >= 2 classes, numbered 0 .. K-1, and every label is one of them. K is the number
  of classes the dataset names (a built-in dataset's, CIFAR-10's ``batches.meta.txt``, an image
  folder's class folders), or else, for idx files of one's own, the largest training label + 1:
  a class is what the model is trained on, so a test label no training image has is refused;
* every class has at least :data:`MIN_TRAINING_IMAGES` training images, so that the validation
  split takes one and training keeps one. A label with none is a gap: labels 0..9 and a few stray
  200s leave 10..199 empty, and are refused as such rather than trained as 201 classes;
* the test split holds at least 1 image, for evaluate to score the model on.

Small classes are not refused beyond that: a long tail of classes with a few images each is a
real dataset, and any threshold would be arbitrary. A stray label above the others always leaves
a gap below it, unless it is exactly K; then it is a class of its own and needs 2 images too.
"""

from __future__ import annotations

import numpy as np

from numpynet.data.formats.raw_dataset import DatasetOrigin, RawDataset
from numpynet.errors import DataFormatError

# One image for the validation split, one to train on (see numpynet.data.split).
MIN_TRAINING_IMAGES = 2
# Offending classes a message names; the others are counted.
_NAMED = 3


def check_dataset(raw: RawDataset) -> None:
    """Raise :class:`DataFormatError` when ``raw`` breaks the rule of the module docstring.

    The message names the file (``raw.origin``), the count and the fix. Labels are counted once,
    in O(N + K): nothing here grows with the images' size.
    """
    origin, classes = raw.origin, raw.classes
    _check_image_size(raw.x_train.shape, origin.train_images, origin.fix)
    _check_image_size(raw.x_test.shape, origin.test_images, origin.fix)
    if raw.y_train.size == 0:
        raise DataFormatError(
            f"{origin.train_images} holds no images: training needs at least "
            f"{MIN_TRAINING_IMAGES} images of each of at least 2 classes; {origin.fix}"
        )
    _check_labels_are_classes(raw.y_train, raw, origin.train_labels)
    _check_labels_are_classes(raw.y_test, raw, origin.test_labels)
    if len(classes) < 2:
        raise DataFormatError(
            f"{origin.train_labels}: every training image has label 0: a classifier needs at "
            f"least 2 classes; {origin.fix}"
        )
    counts = np.bincount(raw.y_train, minlength=len(classes))
    missing = np.flatnonzero(counts == 0)
    if missing.size:
        raise DataFormatError(_gap_message(missing, counts, raw))
    few = np.flatnonzero(counts < MIN_TRAINING_IMAGES)
    if few.size:
        raise DataFormatError(_few_message(few, counts, raw))
    if raw.y_test.size == 0:
        raise DataFormatError(
            f"{origin.test_images} holds no images: evaluate needs at least 1 test image to score "
            f"the model on; {_fix(origin, 'add test images')}"
        )


def _check_image_size(shape: tuple[int, ...], images: str, fix: str) -> None:
    """Refuse images with no rows, no columns or no channels (an idx header may declare them)."""
    if 0 not in shape[1:]:
        return
    size = " x ".join(map(str, shape[1:3]))
    channels = f" of {shape[3]} channels" if len(shape) > 3 else ""
    raise DataFormatError(
        f"{images}: its images are {size} pixels{channels}: an image needs at least 1 row, 1 "
        f"column and 1 channel; {fix}"
    )


def _check_labels_are_classes(labels: np.ndarray, raw: RawDataset, where: str) -> None:
    """Refuse a label outside 0..K-1: past the classes the dataset names, or, where the classes
    are numbered by the training labels, a test label no training image has."""
    count = len(raw.classes)
    outside = (labels < 0) | (labels >= count)
    if not outside.any():
        return
    strays = labels[outside]
    label = int(strays.max()) if (strays >= count).any() else int(strays.min())
    origin, images = raw.origin, _plural(strays.size, "image has", "images have")
    if origin.classes_from_labels:
        correction = f"remove those test images or add training images of label {label}"
        raise DataFormatError(
            f"{where} holds label {label}, which no training image has: {origin.train_labels} "
            f"holds labels 0 to {count - 1}, and {strays.size:,} test {images} a label past "
            f"them; every test class must also be a training class (the model has no output "
            f"for it): {_fix(origin, correction)}"
        )
    raise DataFormatError(
        f"{where} holds label {label} but the dataset names only {count} classes "
        f"({_names(raw.classes)}): {strays.size:,} {images} a label outside 0 to {count - 1}; "
        f"{origin.fix}"
    )


def _gap_message(missing: np.ndarray, counts: np.ndarray, raw: RawDataset) -> str:
    """Classes without a training image: a gap in numbered labels, or a named class absent."""
    origin = raw.origin
    if origin.classes_from_labels:
        last = len(counts) - 1
        labels = (f"label {missing[0]} has" if missing.size == 1 else
                  f"labels {_label_ranges(missing)} ({missing.size:,} classes) have")
        return (
            f"{origin.train_labels}: {labels} no training image, yet label {last} has "
            f"{counts[last]:,}: the labels must number the classes 0 to K-1, K the largest "
            f"training label + 1 ({last + 1} here), each with training images; a few stray "
            f"large labels are usually damaged or mislabelled images: "
            + _fix(origin, "correct or remove the images past the gap, or renumber the classes "
                           "without gaps")
        )
    named = ", ".join(_class(origin, raw.classes, k) for k in missing[:_NAMED])
    more = f" and {missing.size - _NAMED:,} more" if missing.size > _NAMED else ""
    return (
        f"{origin.train_labels} holds no training image of {named}{more}: every class the "
        f"dataset names needs training images; {origin.fix}"
    )


def _few_message(few: np.ndarray, counts: np.ndarray, raw: RawDataset) -> str:
    """Classes with a training image too few for the validation split to take one."""
    # Gaps are refused first, so every class here has exactly 1 training image.
    origin, first = raw.origin, int(few[0])
    named = [_class(origin, raw.classes, k) for k in few[1:_NAMED]]
    if few.size > _NAMED:
        named.append(f"{few.size - _NAMED:,} more classes")
    others = f" (so {'does' if few.size == 2 else 'do'} {_listed(named)})" if named else ""
    need = (f"every class needs at least {MIN_TRAINING_IMAGES} training images, one for the "
            f"validation split and one to train on")
    name = _class(origin, raw.classes, first)
    if origin.class_folders is None:
        return (
            f"{origin.train_labels}: {name} has {counts[first]} training image{others}: {need}; "
            + _fix(origin, "add training images of it, or remove the class and renumber the "
                           "labels above it")
        )
    if origin.carved_test_fraction is None:
        return (f"{origin.train_labels}: {name} holds {counts[first]} image{others}: {need}; "
                f"{origin.fix}")
    taken = int(np.count_nonzero(raw.y_test == first))
    return (
        f"{origin.train_labels}: {name} holds {counts[first] + taken} "
        f"{_plural(counts[first] + taken, 'image', 'images')}, of which the test split "
        f"(test_fraction {origin.carved_test_fraction}) took {taken}, leaving {counts[first]} to "
        f"train on{others}: {need}, so at least {MIN_TRAINING_IMAGES + 1} without a test/ "
        f"folder; {origin.fix}"
    )


def _fix(origin: DatasetOrigin, correction: str) -> str:
    """``correction`` (what to change in the files), then how the format applies it; the
    format's fix alone for files that are replaced rather than corrected (a built-in dataset's)."""
    return f"{correction}, then {origin.fix}" if origin.correctable else origin.fix


def _class(origin: DatasetOrigin, classes: list[str], k: int) -> str:
    """Class ``k`` as a message names it: its folder, or its label (and name, if it has one)."""
    if origin.class_folders is not None:
        return f"class folder {origin.class_folders + classes[k]!r}"
    name = classes[k]
    return f"label {k}" if name == str(k) else f"label {k} ({name!r})"


def _label_ranges(labels: np.ndarray) -> str:
    """Sorted labels as runs, "3, 5 and 10 to 199"; past three runs, how many more."""
    breaks = np.flatnonzero(np.diff(labels) > 1) + 1
    starts, ends = labels[np.r_[0, breaks]], labels[np.r_[breaks - 1, labels.size - 1]]
    runs = [str(a) if a == b else f"{a} to {b}" for a, b in zip(starts[:_NAMED], ends[:_NAMED])]
    if starts.size > _NAMED:
        runs.append(f"{starts.size - _NAMED:,} more runs")
    return _listed(runs)


def _listed(items: list[str]) -> str:
    """"a", "a and b", "a, b and c"."""
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _names(classes: list[str]) -> str:
    shown = ", ".join(classes[:10])
    return shown + (", ..." if len(classes) > 10 else "")


def _plural(count: int, one: str, many: str) -> str:
    return one if count == 1 else many
