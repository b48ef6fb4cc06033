"""The processed dataset on disk: what preprocess writes and train and evaluate read.

The one place that spells the layout of ``data/processed/<name>/``:

* ``x_<split>.npy``: float32 images (N, H, W, C), standardized; ``y_<split>.npy``: int64 labels,
  for the splits ``train``, ``val`` and ``test``;
* ``meta.json``: the class names, the image shape, the split sizes and the per-channel mean and
  std of the training split that standardized them (:class:`numpynet.records.ProcessedMeta`).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

import numpy as np

from numpynet.arrays import ArrayFileError, load_npy, npy_header
from numpynet.errors import DataFormatError
from numpynet.files import atomic_directory, save_npy
from numpynet.records import ProcessedMeta, read_record, write_record

META_FILE = "meta.json"


class ImageBlocks(Protocol):
    """Images that come a block at a time, so they can be written without being held whole: each
    block a C-contiguous run of their values, in order (whole rows, or pieces of a large row).

    :class:`numpynet.data.standardize.StandardizedImages` is one.
    """

    @property
    def shape(self) -> tuple[int, ...]: ...

    @property
    def dtype(self) -> np.dtype: ...

    def blocks(self) -> Iterator[np.ndarray]: ...


def write_processed(
    directory: Path | str,
    splits: dict[str, tuple[np.ndarray | ImageBlocks, np.ndarray]],
    classes: list[str],
    mean: np.ndarray,
    std: np.ndarray,
) -> None:
    """Write every split's ``(images, labels)`` and ``meta.json``, replacing ``directory`` whole.

    ``mean`` and ``std`` are the per-channel statistics that standardized the images. A split's
    images may come as :class:`ImageBlocks`, streamed to their file a block at a time; the bytes
    are those of the whole array saved at once.
    """
    meta = ProcessedMeta(
        classes=list(classes),
        image_shape=list(splits["train"][0].shape[1:]),
        sizes={split: int(labels.shape[0]) for split, (_, labels) in splits.items()},
        mean=mean.tolist(),
        std=std.tolist(),
    )
    with atomic_directory(directory) as out:
        for split, (images, labels) in splits.items():
            if isinstance(images, np.ndarray):
                save_npy(out / f"x_{split}.npy", images)
            else:
                _save_blocks(out / f"x_{split}.npy", images)
            save_npy(out / f"y_{split}.npy", labels)
        write_record(out / META_FILE, meta)


def _save_blocks(path: Path, images: ImageBlocks) -> None:
    """Write ``images`` as the ``.npy`` file :func:`~numpynet.files.save_npy` writes for them.

    Not atomic by itself: it is only called inside the directory that replaces the output whole.
    """
    header = {
        "descr": np.lib.format.dtype_to_descr(images.dtype),
        "fortran_order": False,
        "shape": tuple(int(n) for n in images.shape),  # Python ints: their repr goes in the file
    }
    written = 0
    with open(path, "wb") as stream:
        np.lib.format.write_array_header_1_0(stream, header)
        for block in images.blocks():
            # Blocks are C-contiguous runs of values (whole rows, or pieces of one) in native byte
            # order, what the header's descr states.
            stream.write(np.ascontiguousarray(block, dtype=images.dtype).data)
            written += block.size
    if written != math.prod(images.shape):
        raise ValueError(f"{path}: {written} values written, but the shape says {images.shape}")


def _rerun(directory: Path) -> str:
    return f"rerun the preprocess stage: dvc repro --force preprocess@{Path(directory).name}"


def read_meta(directory: Path | str) -> ProcessedMeta:
    """The ``meta.json`` of a processed dataset, checked (:class:`DataFormatError` naming the file
    and the fix otherwise)."""
    path = Path(directory) / META_FILE
    try:
        return read_record(path, ProcessedMeta, _rerun(path.parent))
    except FileNotFoundError:
        raise DataFormatError(
            f"{path} not found: the preprocess stage has not run; run `dvc repro`"
        ) from None


def split_files(directory: Path | str, splits: tuple[str, ...]) -> list[Path]:
    """The files that hold ``splits`` of the processed dataset in ``directory``, and its meta."""
    directory = Path(directory)
    files = [directory / META_FILE]
    for split in splits:
        files += [directory / f"x_{split}.npy", directory / f"y_{split}.npy"]
    return files


def read_split(
    directory: Path | str, split: str, meta: ProcessedMeta | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The ``(images, labels)`` of one split; the images memory-mapped read-only.

    Both files are checked against ``meta`` (read from ``directory`` when not given) before
    they are used: float32 images of the recorded shape, one int64 label per image, each a
    class of ``meta.json``, and no NaN or infinity among the images. Raises
    :class:`DataFormatError` naming the file and the fix.
    """
    directory = Path(directory)
    meta = read_meta(directory) if meta is None else meta
    x_path, y_path = directory / f"x_{split}.npy", directory / f"y_{split}.npy"
    try:
        problem = _split_problem(x_path, y_path, split, meta)
        if problem is None:
            images, labels = load_npy(x_path, mmap=True), load_npy(y_path)
            problem = _values_problem(x_path, images, y_path, labels, len(meta.classes))
    except FileNotFoundError as error:
        raise DataFormatError(
            f"{error.filename} not found: the preprocess stage has not run; run `dvc repro`"
        ) from None
    except ArrayFileError as error:
        problem = str(error)
    if problem:
        raise DataFormatError(f"{problem}; {_rerun(directory)}")
    return images, labels


def _split_problem(x_path: Path, y_path: Path, split: str, meta: ProcessedMeta) -> str | None:
    """What the headers of a split's two files contradict (each other or meta.json), or None."""
    (x_shape, x_dtype), (y_shape, y_dtype) = npy_header(x_path), npy_header(y_path)
    if x_dtype != np.float32 or list(x_shape[1:]) != meta.image_shape:
        return (f"{x_path} holds {x_dtype} images of shape {x_shape}, but the preprocess stage "
                f"writes float32 images of shape (N, {', '.join(map(str, meta.image_shape))}), "
                f"as {META_FILE} says")
    if y_dtype != np.int64 or len(y_shape) != 1:
        return (f"{y_path} holds {y_dtype} labels of shape {y_shape}, but the preprocess stage "
                f"writes int64 labels of shape (N,)")
    if x_shape[0] != y_shape[0] or meta.sizes.get(split, x_shape[0]) != x_shape[0]:
        return (f"{x_path} holds {x_shape[0]} images and {y_path} {y_shape[0]} labels, where "
                f"{META_FILE} says {meta.sizes.get(split, 'nothing')}: the files do not belong "
                f"together")
    if x_shape[0] == 0:
        return f"{x_path} holds no images: the {split} split is empty"
    return None


def _values_problem(x_path, images, y_path, labels, num_classes: int) -> str | None:
    """A label outside the classes or a non-finite pixel, or None. Images are scanned a block
    at a time, so a memory-mapped split is never copied whole."""
    outside = np.flatnonzero((labels < 0) | (labels >= num_classes))
    if outside.size:
        return (f"{y_path}: label {labels[outside[0]]} (sample {outside[0]}) is no class of "
                f"{META_FILE}, which lists {num_classes} (labels 0 to {num_classes - 1})")
    rows = max(1, (1 << 24) // max(1, math.prod(images.shape[1:])))
    for start in range(0, images.shape[0], rows):
        if not np.isfinite(images[start : start + rows]).all():
            last = min(start + rows, images.shape[0]) - 1
            return f"{x_path}: an image among samples {start} to {last} holds NaN or infinity"
    return None
