"""Reading a user's own image dataset: a folder, or an archive of one, with a folder per class.

Layout, in a directory or in a ``.tar``, ``.tar.gz``, ``.tgz`` or ``.zip`` archive::

    train/<class>/<image>        test/<class>/<image>      (official split)
    <class>/<image>                                       (no split: a test split is carved off)

A single wrapping folder around either layout (``mydata/train/cat/1.png``) is descended into.
When there is a ``train`` folder but no ``test`` folder, the test split is carved off ``train``
exactly as for the layout without split folders: per class, ``test_fraction`` of its images,
chosen by ``seed``. The classes are the sorted names of the class folders of the training split.

Ignored files (counted, and reported in one line through ``log``):

* files whose extension is not an image extension (:data:`IMAGE_EXTENSIONS`, any case);
* hidden files and everything in hidden folders (a name starting with ``.``: ``.DS_Store``,
  ``.ipynb_checkpoints/``) and in ``__MACOSX/`` folders (macOS zip metadata);
* images outside a class folder: directly in a split folder, next to the class folders, or in
  sub-folders of a class folder.

Everything else must be readable: an image Pillow cannot decode, an empty class folder, a test
class absent from training, a folder next to ``train``/``test`` other than those two, fewer than
two classes: each raises :class:`~numpynet.errors.DataFormatError` naming the file or folder.

Images are decoded by Pillow and converted to one mode, ``"L"`` (grayscale, one channel) or
``"RGB"`` (three); an alpha channel is dropped, palette images count as color when the mode is
inferred, EXIF orientation is not applied (pixels are taken as stored), and of an animated image
only the first frame is read. Without a declared size every image must have the same size; with
one, each is resized to it with bilinear resampling (:data:`RESAMPLING`).

Archives are read in one sequential pass without extracting anything to disk. Every member is
checked first: absolute paths, ``..`` components, links and special files are rejected with
:class:`UnsafeArchiveError`, so a hostile archive cannot reach files outside the dataset.
"""

from __future__ import annotations

import gzip
import io
import lzma
import os
import re
import stat
import tarfile
import zipfile
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from numpynet.data.preprocess import stratified_split
from numpynet.data.raw_dataset import RawDataset
from numpynet.errors import DataFormatError
from numpynet.log import Log, log_to_stderr

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"})
TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz")
ZIP_SUFFIXES = (".zip",)
SPLITS = ("train", "test")
RESAMPLING = Image.Resampling.BILINEAR
# Pillow modes whose pixels carry no color; anything else (RGB, RGBA, CMYK, palette...) is color.
_GRAYSCALE_MODES = frozenset({"1", "L", "LA", "La", "I", "I;16", "I;16L", "I;16B", "I;16N", "F"})
# What a damaged archive raises while being read, by format and compression.
_ARCHIVE_ERRORS = (
    tarfile.TarError, zipfile.BadZipFile, gzip.BadGzipFile, zlib.error, lzma.LZMAError, EOFError
)
_EXPECTED_LAYOUT = (
    "expected train/<class>/<image> and test/<class>/<image>, or <class>/<image> without split "
    "folders (optionally inside one wrapping folder)"
)


class UnsafeArchiveError(DataFormatError):
    """An archive member could write outside the destination: absolute, ``..``, link, device."""


@dataclass(frozen=True)
class _File:
    """A file of the dataset: where it sits, and how to get its bytes."""

    name: str  # path inside the location, "/"-separated, as the user sees it in messages
    parts: tuple[str, ...]
    source: Path | bytes | None  # a file on disk, an archive member's bytes, or not read (stray)


@dataclass(frozen=True)
class _Listing:
    """Everything found at a location: its files and the folders (explicit or implied)."""

    files: list[_File]
    folders: set[tuple[str, ...]]


# ---------------------------------------------------------------------------------------------
# Public API
# ---------------------------------------------------------------------------------------------


def read_image_folder(
    location: Path,
    *,
    mode: str | None = None,
    size: tuple[int, int] | None = None,
    test_fraction: float = 0.2,
    seed: int = 0,
    log: Log = log_to_stderr,
) -> RawDataset:
    """Read the images under ``location`` (a folder or an archive) into uint8 NHWC arrays.

    ``mode`` is ``"L"`` or ``"RGB"``; ``None`` picks ``"RGB"`` if any image has color, else
    ``"L"``. ``size`` is (height, width) to resize every image to; ``None`` requires all images
    to share one size. Without a ``test`` folder, ``test_fraction`` of each class (chosen by
    ``seed``) becomes the test split. Labels index ``classes``, the sorted class folder names.
    Samples come in sorted path order, so the same input always gives the same arrays. A summary
    of ignored files (see the module docstring) goes to ``log``.
    """
    size = None if size is None else (int(size[0]), int(size[1]))  # a list from YAML works too
    location = Path(location)
    listing = _list_location(location)
    train, test, ignored = _assign_samples(listing, location)
    classes = sorted({parts[0] for parts, _ in train})
    if len(classes) < 2:
        raise DataFormatError(
            f"{location} has {len(classes)} class folder{'s' if len(classes) != 1 else ''} "
            f"({', '.join(classes) or 'none'}); a classifier needs at least 2"
        )
    if ignored:
        log(_ignored_summary(ignored))

    train_files, y_train = _labelled(train, classes)
    test_files, y_test = _labelled(test, classes)
    if not test_files:
        keep, held_out = stratified_split(y_train, test_fraction, np.random.default_rng(seed))
        test_files, y_test = [train_files[i] for i in held_out], y_train[held_out]
        train_files, y_train = [train_files[i] for i in keep], y_train[keep]

    # One array for both splits, so that one color image makes both RGB; they are views of it.
    images = _decode_all(train_files + test_files, location, mode, size)
    x_train, x_test = images[: len(train_files)], images[len(train_files) :]
    return RawDataset(x_train, y_train, x_test, y_test, classes)


# ---------------------------------------------------------------------------------------------
# Listing a folder or an archive
# ---------------------------------------------------------------------------------------------


def _list_location(location: Path) -> _Listing:
    """Every file and folder at ``location``; image bytes are read only for possible images."""
    if location.is_dir():
        return _list_directory(location)
    if not location.exists():
        raise DataFormatError(f"dataset location {location} does not exist")
    try:
        if _has_suffix(location, ZIP_SUFFIXES):
            return _list_zip(location)
        if _has_suffix(location, TAR_SUFFIXES):
            return _list_tar(location)
    except _ARCHIVE_ERRORS as exc:
        raise DataFormatError(f"archive {location} is corrupt or truncated: {exc}") from exc
    raise DataFormatError(
        f"{location} is neither a folder nor a supported archive ({_supported_archives()})"
    )


def _list_directory(root: Path) -> _Listing:
    files, folders = [], set()
    # Links to folders are not followed (a link cycle would never end); links to files are read.
    for folder, subfolders, names in os.walk(root):
        relative = Path(folder).relative_to(root).parts
        folders.update(relative + (sub,) for sub in subfolders)
        for name in names:
            parts = relative + (name,)
            path = Path(folder, name)
            files.append(_File("/".join(parts), parts, path if _may_be_image(parts) else None))
    return _Listing(files, folders)


def _list_tar(archive: Path) -> _Listing:
    files, folders = [], set()
    # Iterating the members in order, reading each right after its header, keeps a compressed
    # archive to one sequential decompression pass (lookups by name would restart it).
    with tarfile.open(archive, "r:*") as tar:
        for member in tar:
            parts = _check_tar_member(member, archive)
            if member.isdir():
                folders.add(parts)
            elif _may_be_image(parts):
                files.append(_File(member.name, parts, tar.extractfile(member).read()))
            else:
                files.append(_File(member.name, parts, None))
    return _Listing(files, folders)


def _list_zip(archive: Path) -> _Listing:
    files, folders = [], set()
    with zipfile.ZipFile(archive) as zf:
        infos = zf.infolist()
        for info in infos:  # all members are checked before any is read
            _check_zip_member(info, archive)
        for info in infos:
            parts = _member_parts(info.filename)
            if info.is_dir():
                folders.add(parts)
            elif _may_be_image(parts):
                files.append(_File(info.filename, parts, _read_zip_member(zf, info, archive)))
            else:
                files.append(_File(info.filename, parts, None))
    return _Listing(files, folders)


def _read_zip_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, archive: Path) -> bytes:
    try:
        return zf.read(info)
    except (RuntimeError, NotImplementedError) as exc:  # encrypted, or an unknown compression
        raise DataFormatError(f"cannot read {info.filename!r} in {archive}: {exc}") from exc


# ---------------------------------------------------------------------------------------------
# Archive member checks
# ---------------------------------------------------------------------------------------------

_DRIVE = re.compile(r"^[A-Za-z]:")


def _member_parts(name: str) -> tuple[str, ...]:
    """Path components of an archive member name, ``.`` and empty ones dropped."""
    return tuple(part for part in name.replace("\\", "/").split("/") if part not in ("", "."))


def _unsafe_name_reason(name: str) -> str | None:
    """Why a member name could land outside the destination, or None if it cannot."""
    # Backslashes count as separators: Windows tools write them, and Windows honours them.
    if name.startswith(("/", "\\")) or _DRIVE.match(name):
        return "its path is absolute"
    if ".." in name.replace("\\", "/").split("/"):
        return "its path contains '..'"
    return None


def _reject(archive: Path, member: str, reason: str) -> UnsafeArchiveError:
    return UnsafeArchiveError(
        f"unsafe archive {archive}: member {member!r} is rejected because {reason}; "
        "nothing was extracted"
    )


def _check_tar_member(member: tarfile.TarInfo, archive: Path) -> tuple[str, ...]:
    """Return the member's path components, or raise if it is anything but a plain file/folder."""
    reason = _unsafe_name_reason(member.name)
    if reason is None:
        if member.issym() or member.islnk():
            kind = "symbolic" if member.issym() else "hard"
            reason = f"it is a {kind} link (to {member.linkname!r}), which could point outside"
        elif member.ischr() or member.isblk() or member.isfifo():
            reason = "it is a device or FIFO, not a regular file"
        elif not (member.isfile() or member.isdir()):
            reason = f"its tar type {member.type!r} is neither a regular file nor a folder"
    if reason is not None:
        raise _reject(archive, member.name, reason)
    return _member_parts(member.name)


def _check_zip_member(info: zipfile.ZipInfo, archive: Path) -> None:
    reason = _unsafe_name_reason(info.filename)
    # Unix zip tools store the file type in the high 16 bits of the external attributes.
    if reason is None and stat.S_ISLNK(info.external_attr >> 16):
        reason = "it is a symbolic link, which could point outside"
    if reason is not None:
        raise _reject(archive, info.filename, reason)


# ---------------------------------------------------------------------------------------------
# Layout: which files are samples of which split and class
# ---------------------------------------------------------------------------------------------


def _is_hidden(parts: Sequence[str]) -> bool:
    return any(part.startswith(".") or part == "__MACOSX" for part in parts)


def _may_be_image(parts: Sequence[str]) -> bool:
    """Worth reading: a visible file with an image extension (its place is judged later)."""
    return not _is_hidden(parts) and Path(parts[-1]).suffix.lower() in IMAGE_EXTENSIONS


Samples = list[tuple[tuple[str, ...], _File]]  # ((class, image name), file), within one split


def _assign_samples(listing: _Listing, location: Path) -> tuple[Samples, Samples, list[str]]:
    """Split the images into training and test samples; return also the ignored files' names.

    Test samples are empty when there is no ``test`` folder (the caller carves them off).
    """
    images = [f for f in listing.files if _may_be_image(f.parts)]
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
    used = {id(f) for _, f in train + test}
    ignored = [f.name for f in listing.files if id(f) not in used]
    return train, test, ignored


def _dataset_root(images: list[_File], folders: set[tuple[str, ...]]) -> tuple[str, ...]:
    """The folder the layout starts in: descend through single wrapping folders.

    A lone top folder is a wrapper unless it is a split folder or holds images itself (then it is
    a class folder, of a dataset with just one class).
    """
    root: tuple[str, ...] = ()
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
    images: list[_File], folders: set[tuple[str, ...]], split: tuple[str, ...], location: Path
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


def _check_test_classes(
    train: Samples, test: Samples, root: tuple[str, ...], location: Path
) -> None:
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


def _labelled(samples: Samples, classes: list[str]) -> tuple[list[_File], np.ndarray]:
    index = {name: i for i, name in enumerate(classes)}
    labels = np.array([index[parts[0]] for parts, _ in samples], dtype=np.int64)
    return [f for _, f in samples], labels


def _ignored_summary(ignored: list[str]) -> str:
    what = "file that is hidden, not an image," if len(ignored) == 1 else (
        "files that are hidden, not images,"
    )
    return f"ignored {len(ignored)} {what} or outside a class folder (e.g. {min(ignored)})"


# ---------------------------------------------------------------------------------------------
# Decoding
# ---------------------------------------------------------------------------------------------


def _open_image(f: _File, location: Path) -> Image.Image:
    """Open ``f`` lazily (header only); raise a DataFormatError naming it if Pillow cannot."""
    try:
        source = f.source if isinstance(f.source, Path) else io.BytesIO(f.source)
        return Image.open(source)
    # Pillow's format plugins fail on garbage in many ways (OSError, SyntaxError, struct.error,
    # IndexError, EOFError, DecompressionBombError...); any of them means this file is bad.
    except Exception as exc:
        raise _undecodable(f, location, exc) from exc


def _undecodable(f: _File, location: Path, exc: Exception) -> DataFormatError:
    return DataFormatError(
        f"cannot decode image {f.name!r} in {location}: {exc}; remove or fix the file"
    )


def _decode_all(
    files: list[_File], location: Path, mode: str | None, size: tuple[int, int] | None
) -> np.ndarray:
    """Decode ``files`` into one uint8 (N, H, W, C) array, opening each file once.

    Without a declared ``size`` the first image sets it and every other must match. Without a
    ``mode`` the array starts grayscale and turns RGB at the first color image: the gray images
    decoded so far get their value in all three channels, just what Pillow's conversion gives.
    """
    out: np.ndarray | None = None
    first_name = ""
    for i, f in enumerate(files):
        with _open_image(f, location) as image:
            shape = (image.height, image.width)
            if out is None:
                first_name = f.name
                channels = 1 if (mode or _natural_mode(image)) == "L" else 3
                out = np.empty((len(files), *(size or shape), channels), dtype=np.uint8)
            elif mode is None and out.shape[-1] == 1 and _natural_mode(image) == "RGB":
                gray, out = out, np.empty(out.shape[:3] + (3,), dtype=np.uint8)
                out[:i] = gray[:i]  # broadcasts the single channel to three
                del gray
            if size is None and shape != out.shape[1:3]:
                raise DataFormatError(
                    f"image {f.name!r} in {location} is {_hw(shape)} (height x width), but "
                    f"{first_name!r} and the images before it are {_hw(out.shape[1:3])}; images "
                    "must share one size, or declare a size (height, width) to resize them all to"
                )
            out[i] = _pixels(image, f, location, out.shape[1:])
    if out is None:
        raise ValueError("no files to decode")
    return out


def _natural_mode(image: Image.Image) -> str:
    """The mode an image keeps when the dataset's mode is inferred: "L" if it has no color."""
    return "L" if image.mode in _GRAYSCALE_MODES else "RGB"


def _pixels(
    image: Image.Image, f: _File, location: Path, shape: tuple[int, int, int]
) -> np.ndarray:
    """The image converted and resized to ``shape`` (height, width, channels)."""
    height, width, channels = shape
    try:
        if image.mode != ("L" if channels == 1 else "RGB"):
            image = image.convert("L" if channels == 1 else "RGB")
        if image.size != (width, height):  # Pillow sizes are (width, height)
            image = image.resize((width, height), RESAMPLING)
        return np.asarray(image).reshape(shape)
    except Exception as exc:  # truncated or malformed data surfaces only when decoding
        raise _undecodable(f, location, exc) from exc


# ---------------------------------------------------------------------------------------------
# Small helpers
# ---------------------------------------------------------------------------------------------


def _has_suffix(path: Path, suffixes: Iterable[str]) -> bool:
    return path.name.lower().endswith(tuple(suffixes))


def _supported_archives() -> str:
    return ", ".join(TAR_SUFFIXES + ZIP_SUFFIXES)


def _join(parts: tuple[str, ...], name: str) -> str:
    return "/".join(parts + (name,))


def _hw(shape: tuple[int, int]) -> str:
    return f"{shape[0]}x{shape[1]}"
