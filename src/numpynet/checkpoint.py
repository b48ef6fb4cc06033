"""Saving and loading models without pickling: plain arrays plus a JSON architecture.

A model directory holds ``architecture.json`` (the :class:`MLPConfig` to build), ``weights.npz``
(the arrays of :meth:`Sequential.state_dict`: the parameters and, with batch normalization, its
running statistics; written with a fixed timestamp so equal weights give equal bytes) and, when
the caller gives one, ``provenance.json`` (what computed it: the numeric backend, see
:func:`numpynet.backend.backend_provenance`), ``training.json`` (how training ended: which
epoch's weights were kept and why) and ``dataset.json`` (what the model takes: the dataset it was
trained on, its class names, the input shape and the standardization its inputs went through).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from numpynet.arrays import load_npz
from numpynet.errors import DataFormatError, environment_problem
from numpynet.files import atomic_directory, parse_json, save_npz, write_json
from numpynet.nn.model import MLPConfig, Sequential, build_mlp

ARCHITECTURE_FILE = "architecture.json"
WEIGHTS_FILE = "weights.npz"
PROVENANCE_FILE = "provenance.json"
TRAINING_FILE = "training.json"
DATASET_FILE = "dataset.json"
# Written into architecture.json beside the config, so a different kind of model, should one be
# added, is told apart from an MLP. Unchanged from earlier files, which therefore still load.
MODEL_TYPE = "mlp"


def save_model(
    directory: Path | str,
    model: Sequential,
    config: MLPConfig,
    provenance: dict | None = None,
    training: dict | None = None,
    dataset: dict | None = None,
) -> None:
    """Write the model into ``directory``, replacing it only once everything is written.

    ``provenance``, ``training`` and ``dataset``, if given, must be JSON-able; they are written
    key-sorted, like the rest.
    """
    with atomic_directory(directory) as tmp:
        write_json(tmp / ARCHITECTURE_FILE, {"type": MODEL_TYPE, **config.to_dict()})
        save_npz(tmp / WEIGHTS_FILE, model.state_dict())
        if provenance is not None:
            write_json(tmp / PROVENANCE_FILE, provenance)
        if training is not None:
            write_json(tmp / TRAINING_FILE, training)
        if dataset is not None:
            write_json(tmp / DATASET_FILE, dataset)


def _read_config(path: Path) -> MLPConfig:
    """The config in ``architecture.json``; ``ValueError`` naming the file and the problem."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict) or data.get("type") != MODEL_TYPE:
            found = data.get("type") if isinstance(data, dict) else type(data).__name__
            raise ValueError(f"expected an object with \"type\": {MODEL_TYPE!r}, got {found!r}")
        return MLPConfig.from_dict({key: value for key, value in data.items() if key != "type"})
    except ValueError as error:  # json.JSONDecodeError is a ValueError too
        raise ValueError(f"{path.name}: {error}") from None


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


def load_model(directory: Path | str) -> tuple[Sequential, MLPConfig]:
    """Rebuild a model saved by :func:`save_model`; return it with its config.

    Raises :class:`DataFormatError` naming the directory and the fix when a file is missing,
    truncated or corrupt, or the weights do not fit the architecture (names, shapes, float32
    dtype), or hold NaN. An ``OSError`` of the machine (no permission, ...) is left to the
    caller, whose fix is not retraining.
    """
    directory = Path(directory)
    try:
        config = _read_config(directory / ARCHITECTURE_FILE)
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
    return model, config


def read_record(directory: Path | str, file_name: str) -> dict:
    """The JSON object in ``directory/file_name``, or {} when the file does not exist (a model
    saved before it was written).

    Raises :class:`DataFormatError` naming the file when it exists but is not a JSON object.
    """
    path = Path(directory) / file_name
    try:
        record = parse_json(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as error:
        if environment_problem(error):
            raise
        record = error
    if not isinstance(record, dict):
        raise DataFormatError(
            f"cannot read {path}: expected a JSON object ({record}); rerun the train stage "
            f"(dvc repro)"
        )
    return record
