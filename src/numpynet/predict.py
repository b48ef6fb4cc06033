"""``numpynet predict``: classify image files with a trained model folder and nothing else.

A model folder written by the train stage records what its inputs went through (``dataset.json``:
class names, image shape, per-channel mean and std), so images are turned into the model's input
here exactly as preprocessing turns an image folder's images into the dataset: decoded by
:func:`numpynet.data.formats.image_decode.decode_images` (converted to grayscale or RGB, an alpha
channel dropped, resized bilinearly to the training size, pixels taken as stored, without EXIF
rotation), then standardized by :func:`numpynet.data.standardize.standardize`, the same float32
arithmetic, so an image saved from a processed dataset gives its processed values bit for bit.
Nothing under ``data/`` is read.

Every image is read and checked before anything is computed or returned: one bad file fails the
whole call, naming it, and nothing is printed for the others.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from numpynet.data.formats.archive import ListedFile
from numpynet.data.formats.image_decode import decode_images
from numpynet.data.read_limits import PILLOW_PIXEL_CEILING, ReadLimits
from numpynet.data.standardize import standardize
from numpynet.errors import ConfigError, DataFormatError
from numpynet.evaluation import check_finite_outputs, predict_logits
from numpynet.model_folder import ARCHITECTURE_FILE, DATASET_FILE, load_model
from numpynet.nn.loss import log_softmax
from numpynet.nn.model import Sequential
from numpynet.portable_math import exp

# One image at a time, named on the command line: any photo Pillow opens (a 108-megapixel one
# takes 330 MB while it is decoded), not preprocess's bound against a folder of bombs.
_ONE_IMAGE = ReadLimits(max_image_pixels=PILLOW_PIXEL_CEILING)

MODELS_DIR = Path("models")
DEFAULT_TOP_K = 3
_BATCH_SIZE = 256


@dataclass(frozen=True)
class InputSpec:
    """What a model takes, from its ``dataset.json``: classes, image shape, standardization."""

    name: str
    classes: list[str]
    image_shape: tuple[int, int, int]  # height, width, channels
    mean: np.ndarray  # float64 per channel, on a 0..1 scale
    std: np.ndarray
    # Trained on randomly mirrored images: each image is also classified mirrored and the two
    # predictions averaged, as evaluate does (evaluate.test_time_flip).
    mirrored: bool = False


@dataclass(frozen=True)
class Prediction:
    """The ``top`` classes of one image, most probable first, as ``(class, probability)``."""

    image: str
    top: list[tuple[str, float]]


def find_model(models_dir: Path = MODELS_DIR) -> Path:
    """The one model folder under ``models_dir`` (relative: to the current directory).

    Raises :class:`ConfigError` when there is none or more than one, listing what is there.
    """
    found = sorted(p for p in models_dir.glob("*") if (p / ARCHITECTURE_FILE).is_file())
    if len(found) == 1:
        return found[0]
    if not found:
        raise ConfigError(
            f"no trained model in {models_dir}/ (looked in {models_dir.resolve()}): run "
            f"`dvc repro` in the project to train one, or pass --model with a model folder"
        )
    listed = ", ".join(str(p) for p in found)
    raise ConfigError(
        f"{models_dir}/ holds {len(found)} models ({listed}); choose one with --model, "
        f"e.g. --model {found[0]}"
    )


def load_predictor(directory: Path | str) -> tuple[Sequential, InputSpec]:
    """The model saved in ``directory`` and the input it takes.

    Raises :class:`ConfigError` when the folder does not exist and :class:`DataFormatError` when
    it cannot be loaded or lacks ``dataset.json`` (a model from an older version).
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise ConfigError(
            f"model folder {directory} does not exist (or is not a folder): run `dvc repro` to "
            f"train it, or pass --model with a model folder such as models/<dataset>"
        )
    saved = load_model(directory)
    record = saved.dataset
    if record is None:
        raise DataFormatError(
            f"{directory} has no {DATASET_FILE}: the model predates self-contained models, which "
            f"record their classes, input shape and standardization; retrain it with "
            f"`dvc repro train@{directory.name}`"
        )
    spec = InputSpec(
        name=record.name,
        classes=list(record.classes),
        image_shape=tuple(record.image_shape),
        mean=np.asarray(record.mean, dtype=np.float64),
        std=np.asarray(record.std, dtype=np.float64),
        mirrored=saved.training is not None and saved.training.augment_flip,
    )
    return saved.model, spec


def read_images(paths: list[str], spec: InputSpec) -> np.ndarray:
    """The image files at ``paths`` as uint8 (N, H, W, C), decoded as preprocessing decodes.

    Raises :class:`DataFormatError` naming the first file that is missing, a folder, or not an
    image Pillow can decode.
    """
    height, width, channels = spec.image_shape
    mode = "L" if channels == 1 else "RGB"
    images = np.empty((len(paths), height, width, channels), dtype=np.uint8)
    for i, given in enumerate(paths):
        path = Path(given)
        name = one_line(given)  # a name with a line break stays one line in the message
        if given == "-":
            raise DataFormatError(
                "'-' given as an image: predict reads image files, not standard input; save the "
                "image to a file and pass its path"
            )
        if path.is_dir():
            raise DataFormatError(f"{name} is a folder; pass image files (e.g. {name}/*.png)")
        if not path.exists():
            raise DataFormatError(f"image file {name} not found; check the path")
        if not path.is_file():
            raise DataFormatError(f"{name} is not a regular file; pass image files")
        listed = ListedFile(name=given, parts=(path.name,), source=path)
        try:
            images[i] = decode_images([listed], path.parent, mode, (height, width), _ONE_IMAGE)[0]
        except DataFormatError as error:
            cause = error.__cause__ or error  # Pillow's own words, without the dataset wording
            raise DataFormatError(
                f"cannot read image {name}: {cause}; pass a PNG, JPEG or other image file "
                f"that Pillow can open"
            ) from None
    return images


def prepare_images(paths: list[str], spec: InputSpec) -> np.ndarray:
    """The model's float32 input for ``paths``: :func:`read_images`, then standardized."""
    return standardize(read_images(paths, spec), spec.mean, spec.std)


def probabilities(model: Sequential, inputs: np.ndarray, mirrored: bool = False) -> np.ndarray:
    """Softmax of the model's logits (inference mode; averaged with the mirrored images' when
    ``mirrored``), float64, one row per image."""
    logits = predict_logits(model, inputs, _BATCH_SIZE, test_time_flip=mirrored)
    return exp(log_softmax(logits.astype(np.float64)))


def predict(
    paths: list[str], model_dir: Path | str | None = None, top_k: int | None = None
) -> list[Prediction]:
    """The ``top_k`` most probable classes of each image file in ``paths``.

    ``model_dir`` defaults to the one model under ``models/`` (:func:`find_model`); ``top_k``
    to :data:`DEFAULT_TOP_K` (or every class, when there are fewer), and must lie between 1 and
    the number of classes. Everything is checked before the model runs.
    """
    directory = find_model() if model_dir is None else model_dir
    model, spec = load_predictor(directory)
    count = len(spec.classes)
    if top_k is None:
        top_k = min(DEFAULT_TOP_K, count)
    elif not 1 <= top_k <= count:
        raise ConfigError(
            f"--top-k {top_k}: expected a number from 1 to {count}, the number of classes "
            f"this model knows"
        )
    if not paths:
        return []
    probs = probabilities(model, prepare_images(paths, spec), spec.mirrored)
    check_finite_outputs(probs, directory, paths[0] if len(paths) == 1 else f"{len(paths)} images")
    # Stable sort: equal probabilities keep the classes' order.
    order = np.argsort(-probs, axis=1, kind="stable")[:, :top_k]
    return [
        Prediction(name, [(spec.classes[c], float(p[c])) for c in best])
        for name, p, best in zip(paths, probs, order)
    ]


def format_text(predictions: list[Prediction]) -> str:
    """One line per image, names aligned: ``digit.png: 7 (99.1%), 9 (0.5%), 2 (0.2%)``; a line
    break or other control character in a file or class name written as an escape."""
    width = max((len(one_line(p.image)) for p in predictions), default=0) + 1
    return "\n".join(
        f"{one_line(p.image) + ':':<{width}} "
        + ", ".join(f"{one_line(name)} ({_percent(prob)})" for name, prob in p.top)
        for p in predictions
    )


def one_line(name: str) -> str:
    """``name`` with line breaks, tabs and other control characters written as escapes
    (``\\n``), so a class name from a folder name never breaks one-line-per-fact output."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in name)


def _percent(probability: float) -> str:
    # Below what one decimal shows, say so instead of printing a misleading 0.0%.
    return "<0.1%" if probability < 0.0005 else f"{probability:.1%}"


def format_json(predictions: list[Prediction]) -> str:
    """A JSON list of ``{"image": ..., "predictions": [{"class": ..., "probability": ...}]}``."""
    return json.dumps(
        [
            {"image": p.image,
             "predictions": [{"class": name, "probability": prob} for name, prob in p.top]}
            for p in predictions
        ],
        indent=2,
        allow_nan=False,  # probabilities are finite (checked above): never a NaN that JSON lacks
    )
