"""The model folder (``models/<name>/``): a trained model and all it needs, without pickling.

The one module that writes and reads it. A model folder holds:

* ``architecture.json``: the :class:`~numpynet.nn.model.MLPConfig` to build
  (:class:`~numpynet.records.Architecture`);
* ``weights.npz``: the arrays of :meth:`Sequential.state_dict` (the parameters and, with batch
  normalization, its running statistics), written with a fixed timestamp so equal weights give
  equal bytes;
* ``dataset.json``: what the model takes: the dataset it learned, its class names, the input
  shape and the standardization (:class:`~numpynet.records.DatasetRecord`);
* ``training.json``: how training ended: which epoch's weights were kept and why
  (:class:`~numpynet.records.TrainingRecord`);
* ``provenance.json``: what computed it, the numeric backend
  (:class:`~numpynet.records.ProvenanceRecord`).

The last three are absent from a model saved by an older version, which still loads; a record
that is there is checked, and ``dataset.json`` against the architecture too.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from numpynet.arrays import load_npz
from numpynet.errors import DataFormatError, environment_problem
from numpynet.files import atomic_directory, save_npz
from numpynet.nn.model import MLPConfig, Sequential, build_mlp
from numpynet.records import (
    MODEL_TYPE,
    Architecture,
    DatasetRecord,
    ProvenanceRecord,
    Record,
    TrainingRecord,
    read_record,
    write_record,
)

ARCHITECTURE_FILE = "architecture.json"
WEIGHTS_FILE = "weights.npz"
DATASET_FILE = "dataset.json"
TRAINING_FILE = "training.json"
PROVENANCE_FILE = "provenance.json"


@dataclass(frozen=True)
class SavedModel:
    """A model folder read back: the model, ready to run, and its records (None where a model
    saved by an older version has no such file)."""

    model: Sequential
    config: MLPConfig
    dataset: DatasetRecord | None
    training: TrainingRecord | None
    provenance: ProvenanceRecord | None


def save_model(
    directory: Path | str,
    model: Sequential,
    config: MLPConfig,
    *,
    dataset: DatasetRecord | None = None,
    training: TrainingRecord | None = None,
    provenance: ProvenanceRecord | None = None,
) -> None:
    """Write the model and the records given into ``directory``, replacing it only once
    everything is written."""
    with atomic_directory(directory) as tmp:
        write_record(tmp / ARCHITECTURE_FILE, _architecture_record(config))
        save_npz(tmp / WEIGHTS_FILE, model.state_dict())
        for file_name, record in (
            (DATASET_FILE, dataset), (TRAINING_FILE, training), (PROVENANCE_FILE, provenance)
        ):
            if record is not None:
                write_record(tmp / file_name, record)


def _architecture_record(config: MLPConfig) -> Architecture:
    # Plain JSON types: a NumPy integer (from an array shape) is no JSON number, and a dropout of
    # 0 is written 0.0 whatever type it arrived as.
    return Architecture(
        type=MODEL_TYPE,
        input_size=int(config.input_size),
        hidden_sizes=[int(size) for size in config.hidden_sizes],
        num_classes=int(config.num_classes),
        dropout=float(config.dropout),
        normalization=str(config.normalization),
    )


def _retrain(directory: Path, name: str | None = None) -> str:
    return f"retrain it (dvc repro train@{name or directory.name})"


def _check_weights_size(config: MLPConfig, path: Path) -> None:
    """Refuse an architecture whose parameters alone outweigh ``weights.npz``, before anything
    is built: absurd sizes in ``architecture.json`` would otherwise allocate terabytes."""
    sizes = [config.input_size, *config.hidden_sizes, config.num_classes]
    count = sum(fan_in * fan_out + fan_out for fan_in, fan_out in zip(sizes, sizes[1:]))
    held = path.stat().st_size
    if 4 * count > held:
        raise ValueError(
            f"the layer shapes in {ARCHITECTURE_FILE} need {count:,} float32 numbers "
            f"({4 * count:,} bytes), more than the {held:,} bytes of {WEIGHTS_FILE}: that file is "
            f"truncated, or the two do not belong together"
        )


def _read_weights(path: Path, model: Sequential) -> dict[str, np.ndarray]:
    """The arrays in ``weights.npz``, exactly the names, shapes and dtypes ``model`` holds, all
    finite; ``ValueError`` naming the file otherwise (headers are checked before any data is
    read, so memory stays bounded by what the model needs)."""
    expected = {name: (param.shape, param.dtype) for name, param, _ in model.parameters()}
    expected.update((name, (array.shape, array.dtype)) for name, array in model.buffers())
    weights = load_npz(path, expected)  # its ArrayFileError is a ValueError naming the file
    for name, array in weights.items():
        if not np.isfinite(array).all():
            raise ValueError(f"{path.name}: array {name!r} holds NaN or infinite values")
    return weights


def _optional_record(path: Path, cls: type[Record], fix: str) -> Record | None:
    try:
        return read_record(path, cls, fix)
    except FileNotFoundError:
        return None


def load_model(directory: Path | str) -> SavedModel:
    """Rebuild the model saved by :func:`save_model` in ``directory``, with its records.

    Raises :class:`DataFormatError` naming the file and the fix when a file is missing,
    truncated or corrupt, the weights do not fit the architecture (names, shapes, float32
    dtype) or hold NaN, or a record is not as numpynet writes it. An ``OSError`` of the machine
    (no permission, ...) is left to the caller, whose fix is not retraining.
    """
    directory = Path(directory)
    try:
        architecture = read_record(
            directory / ARCHITECTURE_FILE, Architecture, "rerun the train stage (dvc repro)"
        )
        config = MLPConfig(
            architecture.input_size, tuple(architecture.hidden_sizes), architecture.num_classes,
            architecture.dropout, architecture.normalization,
        )
        _check_weights_size(config, directory / WEIGHTS_FILE)
        # The rng only seeds initial weights, which load_state_dict overwrites at once.
        model = build_mlp(config, np.random.default_rng(0))
        model.load_state_dict(_read_weights(directory / WEIGHTS_FILE, model))
    except (OSError, ValueError) as error:
        if environment_problem(error):
            raise
        raise DataFormatError(
            f"cannot load the model in {directory}: {error}; rerun the train stage (dvc repro)"
        ) from None
    dataset = _optional_record(directory / DATASET_FILE, DatasetRecord, _retrain(directory))
    contradiction = dataset.architecture_problem(architecture) if dataset is not None else None
    if contradiction:
        raise DataFormatError(
            f"{directory / DATASET_FILE} is not as numpynet writes it for the model in "
            f"{directory} ({contradiction}): the file was changed or "
            f"comes from another model; {_retrain(directory, dataset.name)}"
        )
    return SavedModel(
        model,
        config,
        dataset,
        _optional_record(directory / TRAINING_FILE, TrainingRecord, _retrain(directory)),
        _optional_record(directory / PROVENANCE_FILE, ProvenanceRecord, _retrain(directory)),
    )
