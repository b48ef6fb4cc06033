"""Reading a user's own image dataset: a folder, or an archive of one, with a folder per class.

Layout, in a directory or in a ``.tar``, ``.tar.gz``, ``.tgz`` or ``.zip`` archive::

    train/<class>/<image>        test/<class>/<image>      (official split)
    <class>/<image>                                       (no split: a test split is carved off)

A single wrapping folder around either layout (``mydata/train/cat/1.png``) is descended into.
The classes are the sorted names of the class folders of the training split, in Unicode NFC
(:mod:`numpynet.data.formats.layout_names`). When there is no ``test`` folder, the test split is
carved off the training images: per class, ``test_fraction`` of its images, chosen by ``seed``.

The split folders are ``train`` and ``test`` exactly. A folder of class folders spelled otherwise
(``Train``, ``TEST``) or named for a validation split (``val``, ``valid``, ``validation``, any
case) is refused with the names to give it, rather than read as a class holding no images: the
documented layout has one spelling, and a looser one would read a dataset differently on a file
system that keeps ``train`` and ``Train`` apart.

Ignored files (counted, and summarized in one line by :func:`ignored_summary`):

* files whose extension is not an image extension (:data:`IMAGE_EXTENSIONS`, any case);
* hidden files and everything in hidden folders (a name starting with ``.``: ``.DS_Store``,
  ``.ipynb_checkpoints/``) and in ``__MACOSX/`` folders (macOS zip metadata);
* images outside a class folder: directly in a split folder, next to the class folders, or in
  sub-folders of a class folder.

An empty class folder, a test class absent from training, a folder next to ``train``/``test``
other than those two, a split folder spelled otherwise, two folders alike but for their Unicode
normalization, fewer than two classes: each raises :class:`~numpynet.errors.DataFormatError`
naming the folder, in the source the user gave (:mod:`numpynet.data.formats.source_names`).

The other pieces, each documented where its rules live: :mod:`numpynet.data.formats.archive`
(listing a folder or an archive in memory, rejecting members that could escape the dataset or
whose names are no text; what an archive is, :mod:`numpynet.data.formats.archive_kind`),
:mod:`numpynet.data.formats.image_decode` and :mod:`numpynet.data.formats.image_modes` (decoding
with Pillow, modes and sizes) and :mod:`numpynet.data.read_limits` (the bounds on the memory
all of this may take).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from numpynet.data.formats.archive import ListedFile, Listing, Parts, list_location, misnamed
from numpynet.data.formats.image_decode import decode_images
from numpynet.data.formats.layout_names import normalized
from numpynet.data.formats.source_names import SourceNames
from numpynet.data.read_limits import DEFAULT_LIMITS, ReadLimits
from numpynet.data.formats.raw_dataset import DatasetOrigin, RawDataset
from numpynet.data.split import stratified_split
from numpynet.errors import DataFormatError
from numpynet.log import Log, log_to_stderr

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"})
SPLITS = ("train", "test")
# Names that say "split" but are not the two preprocess reads: other cases of train and test, and
# validation folders (the validation split is carved off train). Compared in lower case.
_SPLIT_SPELLINGS = {"train": "train", "test": "test", "val": None, "valid": None,
                    "validation": None}
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
    class_folders: str = ""  # where the training classes' folders are: "train/", "mydata/", ""


def may_be_image(parts: Sequence[str]) -> bool:
    """Worth reading: a visible file with an image extension (its place is judged later)."""
    return not _is_hidden(parts) and _suffix(parts[-1]).lower() in IMAGE_EXTENSIONS


def find_samples(listing: Listing, location: Path | SourceNames) -> FolderLayout:
    """Sort the images of ``listing`` into training and test samples of their classes.

    Folder and image names are read in NFC (:mod:`.layout_names`). ``location`` (a path, or the
    :class:`SourceNames` of a user's source) names the dataset in messages. Raises
    :class:`DataFormatError` for a layout that cannot be read (see the module docstring).
    """
    names = SourceNames.of(location)
    place = names.place()
    images = [f for f in listing.files if may_be_image(f.parts)]
    folders = {p for p in listing.folders if not _is_hidden(p)}
    # A folder that holds any visible file exists even where the archive lists no folder entry.
    for f in listing.files:
        if not _is_hidden(f.parts):
            folders.update(f.parts[:i] for i in range(1, len(f.parts)))
    images, folders = normalized(images, folders, names)
    root = _dataset_root(images, folders)
    top_folders = sorted(p[-1] for p in folders if p[:-1] == root)
    _refuse_misnamed_splits(images, folders, root, top_folders, place)

    splits_present = [s for s in SPLITS if s in top_folders]
    train_root = root + ("train",) if splits_present else root
    train: Samples
    test: Samples = []
    if splits_present:
        others = [f for f in top_folders if f not in SPLITS]
        if others:
            raise DataFormatError(
                f"{place}: found folder {_join(root, others[0])!r} next to "
                f"{splits_present[0]!r}; only 'train' and 'test' splits are read (the validation "
                f"set is carved off train); move or remove it. {_EXPECTED_LAYOUT}"
            )
        if "train" not in splits_present:
            raise DataFormatError(
                f"{place}: found a 'test' folder but no 'train' folder; {_EXPECTED_LAYOUT}"
            )
        train = _class_samples(images, folders, root + ("train",), place)
        if "test" in splits_present:
            test = _class_samples(images, folders, root + ("test",), place)
            _check_test_classes(train, test, root, place)
    else:
        train = _class_samples(images, folders, root, place)
    if not train:
        raise DataFormatError(f"{place}: no class folders with images found; {_EXPECTED_LAYOUT}")
    classes = sorted({parts[0] for parts, _ in train})
    if len(classes) < 2:
        raise DataFormatError(
            f"{place} has {len(classes)} class folder{'s' if len(classes) != 1 else ''} "
            f"({', '.join(classes) or 'none'}); a classifier needs at least 2"
        )
    used = {id(f) for _, f in train + test}
    ignored = [f.name for f in listing.files if not may_be_image(f.parts)]
    ignored += [f.name for f in images if id(f) not in used]
    return FolderLayout(train, test, classes, ignored, "".join(f"{part}/" for part in train_root))


def _refuse_misnamed_splits(
    images: list[ListedFile], folders: set[Parts], root: Parts, top_folders: list[str],
    place: str,
) -> None:
    """Refuse folders named like splits that preprocess does not read as splits: ``Train/`` and
    ``TEST/`` (only ``train/`` and ``test/``, lowercase, are), and validation folders. Read by the
    documented layout, ``Train/`` and ``Test/`` are two classes holding no images directly, and
    ``val/`` beside ``Train/`` a third: messages about classes that send the user looking in the
    wrong place. A folder so named that holds images directly is a class (``Train/`` of a
    dataset of vehicles) and passes; so does one holding no folder (an empty class folder,
    refused as such)."""
    image_folders = {f.parts[:-1] for f in images}
    spelled = [
        name for name in top_folders
        if name.lower() in _SPLIT_SPELLINGS and name not in SPLITS
        and root + (name,) not in image_folders
        and any(p[:-1] == root + (name,) for p in folders)
    ]
    if not spelled:
        return
    # train first, then test, then the validation spellings, as a layout reads them
    order = list(_SPLIT_SPELLINGS)
    spelled.sort(key=lambda name: (order.index(name.lower()), name))
    found = _listed([_join(root, name) + "/" for name in spelled])
    meant = {_SPLIT_SPELLINGS[name.lower()] for name in spelled}
    has_train = "train" in top_folders or "train" in meant
    has_test = "test" in top_folders or "test" in meant
    fixes = []
    for name in spelled:
        split = _SPLIT_SPELLINGS[name.lower()]
        if split is None:
            into = "train/<class>/" if has_train or has_test else "<class>/ beside it"
            fixes.append(f"move the images in {name}/<class>/ into {into} (the validation split "
                         f"is carved off the training images) and remove {name}/")
        elif split in top_folders:
            fixes.append(f"merge {name}/ into the {split}/ beside it")
        else:
            fixes.append(f"rename {name}/ to {split}/")
    if has_test and not has_train:
        fixes.append("add a train/ folder beside test/ (a test split needs one)")
    taken = "it for a class" if len(spelled) == 1 else "them for classes"
    raise DataFormatError(
        f"{place}: found {found}, named like split folders: preprocess reads train/ and test/ "
        f"alone as splits, by these exact lowercase names (the validation split is carved off "
        f"train/), and would take {taken} holding no images; nothing was decoded. "
        f"{_first_upper(_listed(fixes))}"
    )


def _first_upper(text: str) -> str:
    return text[:1].upper() + text[1:]


def _listed(items: list[str]) -> str:
    """"a", "a and b", "a, b and c"."""
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


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
        # Any spelling of a split stops the descent: Train/ alone is refused as misnamed, not
        # taken for a wrapper (Test/ alone would be trained on).
        split_like = candidate[-1].lower() in _SPLIT_SPELLINGS
        if split_like or candidate not in folders or holds_images:
            return root
        root = candidate


def _class_samples(
    images: list[ListedFile], folders: set[Parts], split: Parts, place: str
) -> Samples:
    """The images directly in the class folders under ``split``, sorted; none may be empty.

    Sorted by their parts, then by their stored names: two names equal once normalized keep
    one order whatever order the listing gave them in."""
    depth = len(split)
    samples = sorted(
        ((f.parts[depth:], f) for f in images
         if len(f.parts) == depth + 2 and f.parts[:depth] == split),
        key=lambda sample: (sample[0], sample[1].name),
    )
    class_folders = {p[-1] for p in folders if p[:-1] == split}
    empty = sorted(class_folders - {parts[0] for parts, _ in samples})
    if empty:
        raise DataFormatError(
            f"{place}: class folder {_join(split, empty[0])!r} holds no images directly "
            f"(extensions {', '.join(sorted(IMAGE_EXTENSIONS))}); add images or remove it"
        )
    return samples


def _check_test_classes(train: Samples, test: Samples, root: Parts, place: str) -> None:
    if not test:
        raise DataFormatError(
            f"{place}: folder {_join(root, 'test')!r} has no class folders; add "
            "test/<class>/<image>, or remove it to have a test split carved off train"
        )
    strangers = sorted({parts[0] for parts, _ in test} - {parts[0] for parts, _ in train})
    if strangers:
        raise DataFormatError(
            f"{place}: class folder {_join(root + ('test',), strangers[0])!r} has no "
            f"counterpart in {_join(root, 'train')!r}; every test class must also be a training "
            "class (the model has no output for it)"
        )


def _join(parts: Parts, name: str) -> str:
    return "/".join(parts + (name,))


def read_image_folder(
    location: Path | SourceNames,
    *,
    mode: str | None = None,
    size: tuple[int, int] | None = None,
    test_fraction: float = 0.2,
    seed: int = 0,
    log: Log = log_to_stderr,
    limits: ReadLimits = DEFAULT_LIMITS,
) -> RawDataset:
    """Read the images under ``location`` (a folder or an archive) into uint8 NHWC arrays.

    ``location`` may be the :class:`SourceNames` of a user's source, copied by the download
    stage: messages then name the source and its files, the copy only in parentheses. ``mode``
    is ``"L"`` or ``"RGB"``; ``None`` picks ``"RGB"`` if any image has color, else ``"L"``.
    ``size`` is (height, width) to resize every image to; ``None`` requires all images to share
    one size. Without a ``test`` folder, ``test_fraction`` (in (0, 1)) of each class, chosen by
    ``seed``, becomes the test split. Labels index ``classes``, the sorted class folder names (in
    NFC). Samples come in sorted path order, so the same input always gives the same arrays. A
    summary of ignored files (see the module docstring), and a note when an archive's name says
    another format than its bytes, go to ``log``. Reading stays within ``limits``; past one, a
    DataFormatError names the file and the bound.
    """
    size = None if size is None else (int(size[0]), int(size[1]))  # a list from YAML works too
    names = SourceNames.of(location)
    listing = list_location(names, may_be_image, limits)
    if listing.kind is not None and misnamed(listing.kind, names.read.name):
        log(f"note: {names.place()} is {listing.kind.description}, whatever its name says; read "
            f"as one (a name ending in {listing.kind.suffixes[0]} would say so)")
    layout = find_samples(listing, names)
    if layout.ignored:
        log(ignored_summary(layout.ignored))

    train_files, y_train = labelled(layout.train, layout.classes)
    test_files, y_test = labelled(layout.test, layout.classes)
    carved = not test_files
    if carved:
        keep, held_out = stratified_split(y_train, test_fraction, np.random.default_rng(seed))
        test_files, y_test = [train_files[i] for i in held_out], y_train[held_out]
        train_files, y_train = [train_files[i] for i in keep], y_train[keep]

    # One array for both splits, so that one color image makes both RGB; they are views of it.
    images = decode_images(train_files + test_files, names, mode, size, limits)
    x_train, x_test = images[: len(train_files)], images[len(train_files) :]
    place = names.place()
    test = f"the test split carved off {place}" if carved else place
    origin = DatasetOrigin(
        train_images=place, train_labels=place, test_images=test,
        test_labels=test, fix="add images to it, or remove the folder",
        class_folders=layout.class_folders,
        carved_test_fraction=test_fraction if carved else None,
    )
    return RawDataset(x_train, y_train, x_test, y_test, layout.classes, origin)
