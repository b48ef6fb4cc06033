"""Rules over several settings of a train configuration, and the memory estimates behind some.

Each rule is checked on the shared ``train`` section and again on every dataset whose overrides
touch one of its keys (the merged settings of the others equal the shared ones, already checked).

Where params.yaml fixes a dataset's input size (a built-in dataset, or an image folder with a
declared ``size``: height x width x channels, 3 channels unless ``mode`` is ``L``),
:func:`check_dataset_inputs` adds two estimates the data cannot change: the first layer's weights
join the training memory estimate, and one decoded image must leave room for at least
:data:`FEWEST_IMAGES` of them within ``preprocess.max_dataset_bytes``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable
from typing import TYPE_CHECKING, Callable

from numpynet.config.fields import show
from numpynet.data.catalog import BUILTIN, ImageFolderSource

if TYPE_CHECKING:
    from numpynet.config import DatasetConfig, TrainConfig
    from numpynet.config.preprocess_section import PreprocessConfig

# What the parameters params.yaml fixes may take while training: float32 weights (4 bytes) in five
# copies (weights, gradients, AdamW's two moments, scratch). The input layer and the number of
# classes are unknown until the data is read, so the estimate counts the hidden-to-hidden layers
# and a two-class output: a lower bound, enough to catch a typo such as 1024 -> 102400.
TRAINING_MEMORY_BUDGET_BYTES = 16 * 2**30
_BYTES_PER_PARAMETER = 4
_COPIES_PER_PARAMETER = 5
_FEWEST_CLASSES = 2
# A dataset whose decoded images cannot number this many within preprocess.max_dataset_bytes is
# refused by check: no classifier learns from fewer, and the size is most likely a typo.
FEWEST_IMAGES = 100
# Input values (height x width x channels) of the formats whose files fix them.
_IDX_BUILTIN_INPUTS = (28, 28, 1)  # MNIST and Fashion-MNIST
_CIFAR10_INPUTS = (32, 32, 3)


def check_train_rules(
    shared: TrainConfig, datasets: Iterable[DatasetConfig], problems: list[str]
) -> None:
    """Append to ``problems`` each rule broken by ``shared`` or by a dataset's merged settings."""
    datasets = list(datasets)
    for rule_keys, broken in _TRAIN_RULES:
        _apply_rule(rule_keys, broken, shared, datasets, problems)
    _check_digits_unflipped(shared, datasets, problems)


def _check_digits_unflipped(shared: TrainConfig, datasets, problems: list[str]) -> None:
    """A mirrored digit is another symbol (or none), so MNIST must never be flipped."""
    for dataset in datasets:
        if dataset.source != BUILTIN["mnist"]:
            continue
        flip = dataset.train_overrides.get("augment_flip", shared.augment_flip)
        if flip:
            where = (
                f"datasets.{dataset.name}.train.augment_flip"
                if "augment_flip" in dataset.train_overrides
                else "train.augment_flip"
            )
            problems.append(
                f"{where}: a mirrored digit is not the same digit, so MNIST must not be flipped; "
                f"set datasets.{dataset.name}.train.augment_flip: false"
            )


def _apply_rule(rule_keys, broken, shared: TrainConfig, datasets, problems: list[str]) -> None:
    """Check one rule on ``train`` and on each dataset whose overrides touch its keys.

    A problem is reported under the first of ``rule_keys`` that the settings set themselves, so a
    dataset that overrides ``epochs`` below the shared ``warmup_epochs`` is told at its ``epochs``.
    """
    problem = broken(shared)
    if problem is not None:
        problems.append(f"train.{rule_keys[0]}: {problem}")
    for dataset in datasets:
        overridden = [key for key in rule_keys if key in dataset.train_overrides]
        if not overridden:
            continue  # the same values as the shared section: already checked
        problem = broken(dataclasses.replace(shared, **dataset.train_overrides))
        if problem is not None:
            problems.append(
                f"datasets.{dataset.name}.train.{overridden[0]}: {problem} "
                f"(keys not overridden come from 'train')"
            )


def _min_lr_above_lr(train: TrainConfig) -> str | None:
    if train.min_lr <= train.lr:
        return None
    return f"min_lr ({train.min_lr:g}) is above lr ({train.lr:g}); expected min_lr <= lr"


def _nesterov_without_momentum(train: TrainConfig) -> str | None:
    if not (train.optimizer == "sgd" and train.nesterov and train.momentum == 0):
        return None
    return "nesterov: true needs momentum > 0; set a momentum or nesterov: false"


def _warmup_longer_than_run(train: TrainConfig) -> str | None:
    if train.warmup_epochs <= train.epochs:
        return None
    return (
        f"warmup_epochs ({train.warmup_epochs:g}) is more than epochs ({train.epochs}); "
        f"expected warmup_epochs <= epochs, since the warmup is part of the run"
    )


def _batch_statistics_of_one(train: TrainConfig) -> str | None:
    if not (train.normalization == "batch" and train.batch_size < 2):
        return None
    return (
        "batch normalization measures each batch's spread, which needs batch_size >= 2; "
        "raise batch_size or set normalization: none"
    )


def _components_without_whitening(train: TrainConfig) -> str | None:
    if not (train.whitening_components and train.whitening == "none"):
        return None
    return (
        f"whitening_components: {train.whitening_components} keeps that many whitened "
        f"directions, but whitening is 'none'; set whitening: zca or whitening_components: 0"
    )


def training_memory_bytes(hidden_sizes: list[int], inputs: int | None = None) -> int:
    """A lower bound of the bytes training needs for the layers that params.yaml fixes.

    Counts the input layer's link to the first hidden layer when the number of ``inputs`` is
    known, the hidden-to-hidden layers and the last hidden layer's link to a two-class output,
    weights and biases, as float32 in five copies (see TRAINING_MEMORY_BUDGET_BYTES).
    """
    sizes = [*([inputs] if inputs else []), *hidden_sizes, _FEWEST_CLASSES]
    parameters = sum(fan_in * fan_out + fan_out for fan_in, fan_out in zip(sizes, sizes[1:]))
    return parameters * _BYTES_PER_PARAMETER * _COPIES_PER_PARAMETER


def _layers_too_large(train: TrainConfig) -> str | None:
    needed = training_memory_bytes(train.hidden_sizes)
    if needed <= TRAINING_MEMORY_BUDGET_BYTES:
        return None
    return (
        f"{show(train.hidden_sizes)} need about {needed / 2**30:,.1f} GiB to train (float32 "
        f"weights, gradients, two AdamW moments and scratch, hidden layers alone); expected "
        f"layers that fit in {TRAINING_MEMORY_BUDGET_BYTES / 2**30:g} GiB"
    )


# Rules over a whole train configuration: (the keys involved, the check returning the problem).
_TRAIN_RULES: tuple[tuple[tuple[str, ...], Callable[[TrainConfig], str | None]], ...] = (
    (("min_lr", "lr"), _min_lr_above_lr),
    (("nesterov", "momentum", "optimizer"), _nesterov_without_momentum),
    (("warmup_epochs", "epochs"), _warmup_longer_than_run),
    (("hidden_sizes",), _layers_too_large),
    (("batch_size", "normalization"), _batch_statistics_of_one),
    (("whitening_components", "whitening"), _components_without_whitening),
)


def input_shape(dataset: DatasetConfig) -> tuple[int, int, int] | None:
    """(height, width, channels) of the dataset's images when params.yaml fixes them, else None."""
    source = dataset.source
    if isinstance(source, ImageFolderSource):
        if source.size is None:
            return None  # the images' own size, unknown until they are read
        return (*source.size, 1 if source.mode == "L" else 3)
    if source.format == "cifar10-binary":
        return _CIFAR10_INPUTS
    builtin = BUILTIN.get(dataset.name)
    if builtin is not None and source.format == "idx" and source.files == builtin.files:
        return _IDX_BUILTIN_INPUTS  # the pinned files themselves
    return None


def check_dataset_inputs(
    shared: TrainConfig | None,
    preprocess: PreprocessConfig | None,
    datasets: Iterable[DatasetConfig],
    problems: list[str],
) -> None:
    """Append the problems of datasets whose fixed input size cannot fit in memory.

    For each dataset whose :func:`input_shape` is known: its first layer joins the training
    memory estimate (with its merged ``hidden_sizes``), and one decoded image must leave room
    for :data:`FEWEST_IMAGES` within ``preprocess.max_dataset_bytes``. A section that failed its
    own checks (None) is skipped.
    """
    for dataset in datasets:
        shape = input_shape(dataset)
        if shape is None:
            continue
        declared = isinstance(dataset.source, ImageFolderSource)
        where = f"datasets.{dataset.name}.data.size" if declared else None
        if shared is not None:
            _check_first_layer(shared, dataset, shape, where, problems)
        if preprocess is not None and declared:
            _check_image_bytes(preprocess, shape, where, problems)


def _check_first_layer(shared, dataset, shape, where, problems: list[str]) -> None:
    hidden = dataset.train_overrides.get("hidden_sizes", shared.hidden_sizes)
    if training_memory_bytes(hidden) > TRAINING_MEMORY_BUDGET_BYTES:
        return  # the hidden layers alone are too large: reported at hidden_sizes already
    inputs = math.prod(shape)
    needed = training_memory_bytes(hidden, inputs)
    if needed <= TRAINING_MEMORY_BUDGET_BYTES:
        return
    if where is None:
        overridden = "hidden_sizes" in dataset.train_overrides
        where = (f"datasets.{dataset.name}.train.hidden_sizes" if overridden
                 else "train.hidden_sizes")
    problems.append(
        f"{where}: inputs of {_hwc(shape)} (height x width x channels, {inputs:,} values) "
        f"with hidden_sizes "
        f"{show(hidden)} need about {needed / 2**30:,.1f} GiB to train (float32 weights, "
        f"gradients, two AdamW moments and scratch; the first layer alone {inputs:,} x "
        f"{hidden[0]:,} weights); expected layers that fit in "
        f"{TRAINING_MEMORY_BUDGET_BYTES / 2**30:g} GiB: declare a smaller size (or mode L) or a "
        f"narrower first hidden layer"
    )


def _check_image_bytes(preprocess, shape, where: str, problems: list[str]) -> None:
    per_image = math.prod(shape)
    room = preprocess.max_dataset_bytes // per_image
    if room >= FEWEST_IMAGES:
        return
    problems.append(
        f"{where}: one {_hwc(shape)} image (height x width x channels) decodes to "
        f"{per_image:,} bytes (four times that as "
        f"float32), so preprocess.max_dataset_bytes ({preprocess.max_dataset_bytes:,}) holds "
        f"only {room:,} of them, fewer than the {FEWEST_IMAGES} any dataset needs; declare a "
        f"smaller size (or mode L), or raise preprocess.max_dataset_bytes"
    )


def _hwc(shape: tuple[int, int, int]) -> str:
    return "x".join(map(str, shape))
