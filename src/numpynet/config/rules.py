"""Rules over several settings of a train configuration, and the memory estimate behind one.

Each rule is checked on the shared ``train`` section and again on every dataset whose overrides
touch one of its keys (the merged settings of the others equal the shared ones, already checked).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import TYPE_CHECKING, Callable

from numpynet.config.fields import show
from numpynet.data.catalog import BUILTIN

if TYPE_CHECKING:
    from numpynet.config import DatasetConfig, TrainConfig

# What the parameters params.yaml fixes may take while training: float32 weights (4 bytes) in five
# copies (weights, gradients, AdamW's two moments, scratch). The input layer and the number of
# classes are unknown until the data is read, so the estimate counts the hidden-to-hidden layers
# and a two-class output: a lower bound, enough to catch a typo such as 1024 -> 102400.
TRAINING_MEMORY_BUDGET_BYTES = 16 * 2**30
_BYTES_PER_PARAMETER = 4
_COPIES_PER_PARAMETER = 5
_FEWEST_CLASSES = 2


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


def training_memory_bytes(hidden_sizes: list[int]) -> int:
    """A lower bound of the bytes training needs for the layers that ``hidden_sizes`` fixes.

    Counts the hidden-to-hidden layers and the last hidden layer's link to a two-class output,
    weights and biases, as float32 in five copies (see TRAINING_MEMORY_BUDGET_BYTES).
    """
    sizes = [*hidden_sizes, _FEWEST_CLASSES]
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
)
