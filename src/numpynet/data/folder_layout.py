"""The layout of an image dataset: which files are samples of which split and class.

Layout, in a directory or in a ``.tar``, ``.tar.gz``, ``.tgz`` or ``.zip`` archive::

    train/<class>/<image>        test/<class>/<image>      (official split)
    <class>/<image>                                       (no split: a test split is carved off)

A single wrapping folder around either layout (``mydata/train/cat/1.png``) is descended into.
The classes are the sorted names of the class folders of the training split.

Ignored files (counted, and summarized in one line by :func:`ignored_summary`):

* files whose extension is not an image extension (:data:`IMAGE_EXTENSIONS`, any case);
* hidden files and everything in hidden folders (a name starting with ``.``: ``.DS_Store``,
  ``.ipynb_checkpoints/``) and in ``__MACOSX/`` folders (macOS zip metadata);
* images outside a class folder: directly in a split folder, next to the class folders, or in
  sub-folders of a class folder.

An empty class folder, a test class absent from training, a folder next to ``train``/``test``
other than those two, fewer than two classes: each raises
:class:`~numpynet.errors.DataFormatError` naming the folder.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from numpynet.data.archive_listing import ListedFile, Listing, Parts
from numpynet.errors import DataFormatError

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"})
SPLITS = ("train", "test")
_EXPECTED_LAYOUT = (
    "expected train/<class>/<image> and test/<class>/<image>, or <class>/<image> without split "
    "folders (optionally inside one wrapping folder)"
)

Samples = list[tuple[Parts, ListedFile]]  # ((class, image name), file), within one split


@dataclass(frozen=True)
class FolderLayout:
    """The samples found at a location, and what was left out.

    ``test`` is empty when there is no ``test`` folder: the caller carves the split off ``train``.
    """

    train: Samples
    test: Samples
    classes: list[str]
    ignored: list[str]  # names of the files that are no sample


def may_be_image(parts: Sequence[str]) -> bool:
    """Worth reading: a visible file with an image extension (its place is judged later)."""
    return not _is_hidden(parts) and _suffix(parts[-1]).lower() in IMAGE_EXTENSIONS


def find_samples(listing: Listing, location: Path) -> FolderLayout:
    """Sort the images of ``listing`` into training and test samples of their classes.

    Raises :class:`DataFormatError` for a layout that cannot be read (see the module docstring).
    """
    images = [f for f in listing.files if may_be_image(f.parts)]
    folders = {p for p in listing.folders if not _is_hidden(p)}
    # A folder that holds any visible file exists even where the archive lists no folder entry.
    for f in listing.files:
        if not _is_hidden(f.parts):
            folders.update(f.parts[:i] for i in range(1, len(f.parts)))
    root = _dataset_root(images, folders)
    top_folders = sorted(p[-1] for p in folders if p[:-1] == root)

    splits_present = [s for s in SPLITS if s in top_folders]
    train: Samples
    test: Samples = []
    if splits_present:
        others = [f for f in top_folders if f not in SPLITS]
        if others:
            raise DataFormatError(
                f"{location}: found folder {_join(root, others[0])!r} next to "
                f"{splits_present[0]!r}; only 'train' and 'test' splits are read (the validation "
                f"set is carved off train); move or remove it. {_EXPECTED_LAYOUT}"
            )
        if "train" not in splits_present:
            raise DataFormatError(
                f"{location}: found a 'test' folder but no 'train' folder; {_EXPECTED_LAYOUT}"
            )
        train = _class_samples(images, folders, root + ("train",), location)
        if "test" in splits_present:
            test = _class_samples(images, folders, root + ("test",), location)
            _check_test_classes(train, test, root, location)
    else:
        train = _class_samples(images, folders, root, location)
    if not train:
        raise DataFormatError(f"{location}: no class folders with images found; {_EXPECTED_LAYOUT}")
    classes = sorted({parts[0] for parts, _ in train})
    if len(classes) < 2:
        raise DataFormatError(
            f"{location} has {len(classes)} class folder{'s' if len(classes) != 1 else ''} "
            f"({', '.join(classes) or 'none'}); a classifier needs at least 2"
        )
    used = {id(f) for _, f in train + test}
    ignored = [f.name for f in listing.files if id(f) not in used]
    return FolderLayout(train, test, classes, ignored)


def labelled(samples: Samples, classes: list[str]) -> tuple[list[ListedFile], np.ndarray]:
    """The files of ``samples`` and their int64 labels, the index of their class in ``classes``."""
    index = {name: i for i, name in enumerate(classes)}
    labels = np.array([index[parts[0]] for parts, _ in samples], dtype=np.int64)
    return [f for _, f in samples], labels


def ignored_summary(ignored: list[str]) -> str:
    """One line counting the ignored files, naming the first in sorted order as an example."""
    what = "file that is hidden, not an image," if len(ignored) == 1 else (
        "files that are hidden, not images,"
    )
    return f"ignored {len(ignored)} {what} or outside a class folder (e.g. {min(ignored)})"


def _is_hidden(parts: Sequence[str]) -> bool:
    return any(part.startswith(".") or part == "__MACOSX" for part in parts)


def _suffix(name: str) -> str:
    """The extension of a file name, as ``PurePath(name).suffix`` has it.

    Without building a path object, which costs more than the rest of a listing's check.
    """
    dot = name.rfind(".")
    return name[dot:] if 0 < dot < len(name) - 1 else ""


def _dataset_root(images: list[ListedFile], folders: set[Parts]) -> Parts:
    """The folder the layout starts in: descend through single wrapping folders.

    A lone top folder is a wrapper unless it is a split folder or holds images itself (then it is
    a class folder, of a dataset with just one class).
    """
    root: Parts = ()
    image_parts = [f.parts for f in images]
    while True:
        depth = len(root)
        below = [p for p in [*image_parts, *folders] if len(p) > depth and p[:depth] == root]
        children = {p[depth] for p in below}
        if len(children) != 1:
            return root
        candidate = root + (children.pop(),)
        holds_images = any(p[:-1] == candidate for p in image_parts)
        if candidate[-1] in SPLITS or candidate not in folders or holds_images:
            return root
        root = candidate


def _class_samples(
    images: list[ListedFile], folders: set[Parts], split: Parts, location: Path
) -> Samples:
    """The images directly in the class folders under ``split``, sorted; none may be empty."""
    depth = len(split)
    samples = sorted(
        ((f.parts[depth:], f) for f in images
         if len(f.parts) == depth + 2 and f.parts[:depth] == split),
        key=lambda sample: sample[0],
    )
    class_folders = {p[-1] for p in folders if p[:-1] == split}
    empty = sorted(class_folders - {parts[0] for parts, _ in samples})
    if empty:
        raise DataFormatError(
            f"{location}: class folder {_join(split, empty[0])!r} holds no images directly "
            f"(extensions {', '.join(sorted(IMAGE_EXTENSIONS))}); add images or remove it"
        )
    return samples


def _check_test_classes(train: Samples, test: Samples, root: Parts, location: Path) -> None:
    if not test:
        raise DataFormatError(
            f"{location}: folder {_join(root, 'test')!r} has no class folders; add "
            "test/<class>/<image>, or remove it to have a test split carved off train"
        )
    strangers = sorted({parts[0] for parts, _ in test} - {parts[0] for parts, _ in train})
    if strangers:
        raise DataFormatError(
            f"{location}: class folder {_join(root + ('test',), strangers[0])!r} has no "
            f"counterpart in {_join(root, 'train')!r}; every test class must also be a training "
            "class (the model has no output for it)"
        )


def _join(parts: Parts, name: str) -> str:
    return "/".join(parts + (name,))
