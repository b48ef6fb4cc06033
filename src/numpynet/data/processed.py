"""The processed dataset on disk: what preprocess writes and train and evaluate read.

The one place that spells the layout of ``data/processed/<name>/``:

* ``x_<split>.npy``: float32 images (N, H, W, C), standardized; ``y_<split>.npy``: int64 labels,
  for the splits ``train``, ``val`` and ``test``;
* ``meta.json``: the class names, the image shape, the split sizes and the per-channel mean and
  std of the training split that standardized them.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from numpynet.errors import DataFormatError
from numpynet.files import atomic_directory, load_npy, save_npy, write_json

META_FILE = "meta.json"


class ImageBlocks(Protocol):
    """Images that come a block of rows at a time, so they can be written without being held whole.

    :class:`numpynet.data.preprocess.StandardizedImages` is one.
    """

    @property
    def shape(self) -> tuple[int, ...]: ...

    @property
    def dtype(self) -> np.dtype: ...

    def blocks(self) -> Iterator[np.ndarray]: ...


@dataclass(frozen=True)
class DatasetMeta:
    """What ``meta.json`` says about a processed dataset."""

    classes: list[str]
    image_shape: list[int]  # [height, width, channels]
    sizes: dict[str, int]  # images per split
    mean: list[float]  # per channel, on a 0..1 scale
    std: list[float]
    layout: str = "NHWC"


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
    meta = DatasetMeta(
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
        write_json(out / META_FILE, asdict(meta))


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
            # Blocks are C-contiguous rows in native byte order, what the header's descr states.
            stream.write(np.ascontiguousarray(block, dtype=images.dtype).data)
            written += block.shape[0]
    if written != images.shape[0]:
        raise ValueError(f"{path}: {written} rows written, but the shape says {images.shape[0]}")


def read_meta(directory: Path | str) -> DatasetMeta:
    """The ``meta.json`` of a processed dataset."""
    path = Path(directory) / META_FILE
    try:
        return DatasetMeta(**json.loads(path.read_text(encoding="utf-8")))
    except FileNotFoundError:
        raise DataFormatError(
            f"{path} not found: the preprocess stage has not run; run `dvc repro`"
        ) from None
    except (ValueError, TypeError) as error:
        raise DataFormatError(
            f"{path} is not a meta.json written by the preprocess stage ({error}); "
            f"rerun it with `dvc repro --force preprocess@<name>`"
        ) from None


def split_files(directory: Path | str, splits: tuple[str, ...]) -> list[Path]:
    """The files that hold ``splits`` of the processed dataset in ``directory``, and its meta."""
    directory = Path(directory)
    files = [directory / META_FILE]
    for split in splits:
        files += [directory / f"x_{split}.npy", directory / f"y_{split}.npy"]
    return files


def read_split(directory: Path | str, split: str) -> tuple[np.ndarray, np.ndarray]:
    """The ``(images, labels)`` of one split; the images memory-mapped read-only."""
    directory = Path(directory)
    try:
        images = load_npy(directory / f"x_{split}.npy", mmap=True)
        return images, load_npy(directory / f"y_{split}.npy")
    except FileNotFoundError as error:
        raise DataFormatError(
            f"{error.filename} not found: the preprocess stage has not run; run `dvc repro`"
        ) from None
