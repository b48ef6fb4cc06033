"""The processed dataset on disk: what preprocess writes and train and evaluate read.

The one place that spells the layout of ``data/processed/<name>/``:

* ``x_<split>.npy``: float32 images (N, H, W, C), standardized; ``y_<split>.npy``: int64 labels,
  for the splits ``train``, ``val`` and ``test``;
* ``meta.json``: the class names, the image shape, the split sizes and the per-channel mean and
  std of the training split that standardized them.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from numpynet.errors import DataFormatError
from numpynet.files import atomic_directory, load_npy, save_npy, write_json

META_FILE = "meta.json"


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
    splits: dict[str, tuple[np.ndarray, np.ndarray]],
    classes: list[str],
    mean: np.ndarray,
    std: np.ndarray,
) -> None:
    """Write every split's ``(images, labels)`` and ``meta.json``, replacing ``directory`` whole.

    ``mean`` and ``std`` are the per-channel statistics that standardized the images.
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
            save_npy(out / f"x_{split}.npy", images)
            save_npy(out / f"y_{split}.npy", labels)
        write_json(out / META_FILE, asdict(meta))


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
