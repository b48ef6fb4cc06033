"""The one typed, validated view of ``params.yaml``.

Stage entry points call :func:`load_params` once and pass plain values from the result into the
library; nothing else reads ``params.yaml``. The file is read exactly as DVC reads it (ruamel.yaml,
YAML 1.2; see :mod:`numpynet.config.file`). Validation happens before any work: every unknown key,
wrong type and out-of-range value is reported at once, each with its full key path and what would
be accepted.

Besides types, the checks catch plausible mistakes that would otherwise pass here and fail much
later, mid-run:

* Dataset names must match :data:`DATASET_NAME_PATTERN`: a letter, then letters, digits, ``-`` or
  ``_``, :data:`MAX_DATASET_NAME_LENGTH` characters at most. A name becomes a folder
  (``data/raw/<name>``) and a DVC stage name (``download@<name>``), so anything else (``..``, a
  ``/``, a space, a ``;``) is refused. Stages check their command-line name with
  :func:`check_dataset_name`.
* Sizes are bounded by what fits in memory: each hidden layer, ``train.batch_size`` and
  ``evaluate.batch_size`` at most :data:`MAX_LAYER_SIZE`/:data:`MAX_BATCH_SIZE`, ``epochs`` at
  most :data:`MAX_EPOCHS`, and the hidden layers' weights, with their gradients, two AdamW moments
  and scratch, within 16 GiB (see :mod:`numpynet.config.rules`); where a dataset's input size is
  fixed (a built-in dataset, an image folder's ``size``), the first layer counts too, and one
  decoded image must leave room for 100 within ``preprocess.max_dataset_bytes``.
* ``preprocess.max_*`` bound the memory reading an image folder may take (see
  :mod:`numpynet.config.preprocess_section`); they may be left out, taking their defaults.
* ``warmup_epochs`` may not exceed ``epochs``; ``min_lr`` may not exceed ``lr``; batch
  normalization needs ``batch_size`` >= 2; the built-in MNIST is never flipped
  (``augment_flip``), since a mirrored digit is another symbol.
* ``numerics.mode`` is one of :data:`numpynet.backend.NUMERIC_MODES`; whether this CPU can run
  it is checked where it computes (the train and evaluate stages), not here.
* ``download`` keys are bounded too (see :mod:`numpynet.config.download_section`); its
  ``deadline_s`` and ``max_bytes`` may be left out, taking their defaults.

Rules that involve several keys are checked on the shared ``train`` section and again on each
dataset's merged settings, reported under the dataset's key when its overrides take part.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from numpynet.backend import NUMERIC_MODES
from numpynet.config.data_source import parse_data_source
from numpynet.config.download_section import (  # noqa: F401 (MAX_* are part of this API)
    MAX_DEADLINE_S,
    MAX_DOWNLOAD_BYTES,
    MAX_TIMEOUT_S,
    DownloadConfig,
)
from numpynet.config.fields import (
    describe,
    field_check,
    parse_fields,
    parse_section,
    show,
    show_key,
)
from numpynet.config.file import read_params_file
from numpynet.config.preprocess_section import PreprocessConfig
from numpynet.config.rules import check_dataset_inputs, check_train_rules
from numpynet.data.catalog import DatasetSource, ImageFolderSource
from numpynet.errors import ConfigError

MAX_DATASET_NAME_LENGTH = 64
DATASET_NAME_PATTERN = rf"[A-Za-z][A-Za-z0-9_-]{{0,{MAX_DATASET_NAME_LENGTH - 1}}}"
_DATASET_NAME_RULE = (
    f"expected a letter followed by letters, digits, '-' or '_', "
    f"{MAX_DATASET_NAME_LENGTH} characters at most (pattern {DATASET_NAME_PATTERN})"
)

MAX_LAYER_SIZE = 65_536
MAX_BATCH_SIZE = 65_536
MAX_EPOCHS = 100_000
MAX_SHIFT_PIXELS = 16
MAX_ELASTIC_ALPHA = 100.0  # past this the displacement field tears images apart
MAX_ROTATION_DEGREES = 45.0  # a digit turned further is read as another (6 and 9, 1 and 7)
MAX_ZOOM = 0.5  # zoomed out by half, a 28-pixel digit is 14 pixels: the most worth teaching
SELECTION_CRITERIA = ("val_accuracy", "val_loss", "last")
# none, or batch normalization after each hidden Linear.
NORMALIZATIONS = ("none", "batch")

# A file with more problems than this is most likely not a params file; list the first ones.
_MAX_LISTED_PROBLEMS = 30


# float32's range for a setting that must stay positive: training computes in float32, where a
# smaller number becomes 0 or loses its precision (an eps of 1e-50 is 0, and AdamW divides by
# it) and a larger one becomes infinity.
FLOAT32_SMALLEST_NORMAL = 2.0**-126
FLOAT32_LARGEST = float.fromhex("0x1.fffffep+127")


def _positive_in_float32():
    return field_check(
        lambda v: FLOAT32_SMALLEST_NORMAL <= v <= FLOAT32_LARGEST,
        f"a number from {FLOAT32_SMALLEST_NORMAL:.3g} to {FLOAT32_LARGEST:.3g} (what float32, "
        f"in which training computes, holds without rounding it to 0 or infinity)",
    )


def _from_1_to(limit: int):
    return field_check(lambda v: 1 <= v <= limit, f"an integer from 1 to {limit}")


def check_dataset_name(name: Any) -> None:
    """Raise ConfigError unless ``name`` matches :data:`DATASET_NAME_PATTERN`."""
    if not _is_dataset_name(name):
        raise ConfigError(f"dataset name {show(name)} is not valid: {_DATASET_NAME_RULE}")


def _is_dataset_name(name: Any) -> bool:
    return isinstance(name, str) and re.fullmatch(DATASET_NAME_PATTERN, name) is not None


@dataclass(frozen=True)
class TrainConfig:
    seed: int = field(metadata=field_check(lambda v: v >= 0, "an integer >= 0"))
    hidden_sizes: list[int] = field(
        metadata=field_check(
            lambda v: len(v) > 0 and all(0 < n <= MAX_LAYER_SIZE for n in v),
            f"a non-empty list of integers from 1 to {MAX_LAYER_SIZE} "
            f"(at least one hidden layer)",
        )
    )
    dropout: float = field(metadata=field_check(lambda v: 0 <= v < 1, "a number in [0, 1)"))
    epochs: int = field(metadata=_from_1_to(MAX_EPOCHS))
    batch_size: int = field(metadata=_from_1_to(MAX_BATCH_SIZE))
    optimizer: str = field(
        metadata=field_check(lambda v: v in ("sgd", "adamw"), "'sgd' or 'adamw'")
    )
    lr: float = field(metadata=_positive_in_float32())
    momentum: float = field(metadata=field_check(lambda v: 0 <= v < 1, "a number in [0, 1)"))
    nesterov: bool = field(metadata={})
    betas: list[float] = field(
        metadata=field_check(
            lambda v: len(v) == 2 and all(0 <= b < 1 for b in v), "two numbers in [0, 1)"
        )
    )
    eps: float = field(metadata=_positive_in_float32())
    weight_decay: float = field(metadata=field_check(lambda v: v >= 0, "a number >= 0"))
    schedule: str = field(
        metadata=field_check(lambda v: v in ("cosine", "constant"), "'cosine' or 'constant'")
    )
    warmup_epochs: float = field(
        metadata=field_check(lambda v: v >= 0, "a number of epochs >= 0")
    )
    min_lr: float = field(metadata=field_check(lambda v: v >= 0, "a number >= 0"))
    normalization: str = field(
        metadata=field_check(lambda v: v in NORMALIZATIONS, "'none' or 'batch'")
    )
    whitening: str = field(
        metadata=field_check(lambda v: v in ("none", "zca"), "'none' or 'zca'")
    )
    label_smoothing: float = field(
        metadata=field_check(lambda v: 0 <= v < 1, "a number in [0, 1)")
    )
    augment_shift: int = field(
        metadata=field_check(
            lambda v: 0 <= v <= MAX_SHIFT_PIXELS, f"an integer from 0 to {MAX_SHIFT_PIXELS}"
        )
    )
    augment_flip: bool = field(metadata={})
    augment_elastic: float = field(
        metadata=field_check(
            lambda v: 0 <= v <= MAX_ELASTIC_ALPHA, f"a number from 0 to {MAX_ELASTIC_ALPHA:g}"
        )
    )
    select_by: str = field(
        metadata=field_check(
            lambda v: v in SELECTION_CRITERIA, " or ".join(map(repr, SELECTION_CRITERIA))
        )
    )
    # Later additions, with defaults: a params.yaml written before them means what it meant.
    augment_rotate: float = field(
        default=0.0,
        metadata=field_check(
            lambda v: 0 <= v <= MAX_ROTATION_DEGREES,
            f"a number of degrees from 0 to {MAX_ROTATION_DEGREES:g}",
        ),
    )
    augment_zoom: float = field(
        default=0.0,
        metadata=field_check(lambda v: 0 <= v <= MAX_ZOOM, f"a number from 0 to {MAX_ZOOM:g}"),
    )
    whitening_components: int = field(
        default=0,
        metadata=field_check(
            lambda v: v >= 0, "an integer >= 0 (0: keep every whitened direction)"
        ),
    )


@dataclass(frozen=True)
class EvaluateConfig:
    batch_size: int = field(metadata=_from_1_to(MAX_BATCH_SIZE))
    test_time_flip: bool = field(metadata={})


@dataclass(frozen=True)
class NumericsConfig:
    """How the train and evaluate stages compute: a kernel class or exact (numpynet.backend)."""

    mode: str = field(
        metadata=field_check(
            lambda v: v in NUMERIC_MODES, " or ".join(map(repr, NUMERIC_MODES))
        )
    )


@dataclass(frozen=True)
class DatasetConfig:
    """One entry of ``datasets:``: where the data comes from, and its own training settings."""

    name: str
    source: DatasetSource | ImageFolderSource
    train_overrides: dict[str, Any]


@dataclass(frozen=True)
class Params:
    """Everything ``params.yaml`` says, validated."""

    datasets: dict[str, DatasetConfig]
    download: DownloadConfig
    preprocess: PreprocessConfig
    train: TrainConfig
    evaluate: EvaluateConfig
    numerics: NumericsConfig

    def dataset(self, name: str) -> DatasetConfig:
        """The dataset called ``name``, or a ConfigError listing the configured ones."""
        if name not in self.datasets:
            known = ", ".join(sorted(self.datasets)) or "none"
            raise ConfigError(
                f"dataset {show(name)} is not configured in params.yaml (configured: {known}); "
                f"add it under 'datasets:'"
            )
        return self.datasets[name]

    def train_for(self, name: str) -> TrainConfig:
        """The shared ``train`` settings with dataset ``name``'s overrides applied."""
        return dataclasses.replace(self.train, **self.dataset(name).train_overrides)


_SECTIONS = {
    "download": DownloadConfig,
    "preprocess": PreprocessConfig,
    "train": TrainConfig,
    "evaluate": EvaluateConfig,
    "numerics": NumericsConfig,
}


def load_params(path: Path | str = "params.yaml") -> Params:
    """Read and validate ``params.yaml``; raise ConfigError naming every problem found."""
    return parse_params(read_params_file(path), source=str(path))


def parse_params(raw: Any, source: str = "params.yaml") -> Params:
    """Validate an already-parsed params mapping (see :func:`load_params`)."""
    problems: list[str] = []
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: expected a mapping of sections at the top level")
    allowed = {"datasets", *_SECTIONS}
    for key in sorted(set(raw) - allowed, key=str):
        problems.append(
            f"{show_key(key)}: unknown section (accepted: {', '.join(sorted(allowed))})"
        )

    sections = {}
    for name, cls in _SECTIONS.items():
        sections[name] = parse_section(cls, raw.get(name), name, problems)
    datasets = _parse_datasets(raw.get("datasets"), problems)
    if sections["train"] is not None:
        check_train_rules(sections["train"], datasets.values(), problems)
    check_dataset_inputs(sections["train"], sections["preprocess"], datasets.values(), problems)

    if problems:
        listing = "\n".join(f"  - {p}" for p in problems[:_MAX_LISTED_PROBLEMS])
        if len(problems) > _MAX_LISTED_PROBLEMS:
            listing += f"\n  ... and {len(problems) - _MAX_LISTED_PROBLEMS} more"
        raise ConfigError(f"{source} has {len(problems)} problem(s):\n{listing}")
    return Params(datasets=datasets, **sections)


def _parse_datasets(raw: Any, problems: list[str]) -> dict[str, DatasetConfig]:
    if raw is None:
        problems.append(
            "datasets: section is missing "
            "(e.g. 'datasets: {mnist: {data: {format: idx}, train: {}}}')"
        )
        return {}
    if not isinstance(raw, dict) or not raw:
        problems.append(f"datasets: expected a non-empty mapping of names, got {describe(raw)}")
        return {}
    datasets = {}
    for name, entry in raw.items():
        if not _is_dataset_name(name):
            # Checked first: the name becomes a folder and a stage name.
            problems.append(
                f"datasets.{show(name)}: not a valid dataset name; {_DATASET_NAME_RULE}"
            )
            continue
        path = f"datasets.{name}"
        if not isinstance(entry, dict):
            problems.append(
                f"{path}: expected a mapping with 'data' and 'train', got {describe(entry)}"
            )
            continue
        for key in sorted(set(entry) - {"data", "train"}, key=str):
            problems.append(f"{path}.{show_key(key)}: unknown key (accepted: data, train)")
        before = len(problems)
        source = parse_data_source(name, entry.get("data"), f"{path}.data", problems)
        overrides = entry.get("train")
        if not isinstance(overrides, dict):
            # DVC tracks datasets.<name>.train for each train stage, so it must exist, even empty.
            problems.append(
                f"{path}.train: expected a mapping of overrides of the 'train' section "
                f"({{}} for none), got {describe(overrides)}"
            )
        else:
            overrides = parse_fields(
                TrainConfig, overrides, f"{path}.train", problems, required=False
            )
        if len(problems) == before:
            datasets[name] = DatasetConfig(name, source, overrides)
    return datasets
