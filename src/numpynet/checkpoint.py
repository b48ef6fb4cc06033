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
import zipfile
from pathlib import Path

import numpy as np

from numpynet.errors import DataFormatError
from numpynet.files import atomic_directory, load_npz, save_npz, write_json
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


def _read_weights(path: Path) -> dict[str, np.ndarray]:
    """The arrays in ``weights.npz``; ``ValueError`` naming the file if it cannot be read."""
    try:
        return load_npz(path)
    # EOFError: an empty file. Missing files (OSError) keep NumPy's message, which names them.
    except (ValueError, EOFError, zipfile.BadZipFile):
        # NumPy's own messages for a damaged file advise loading it with unsafe deserialization
        # switched on, which is the wrong fix: the file must be written again.
        raise ValueError(
            f"{path.name} is not an archive of plain numeric arrays "
            f"(truncated, corrupt or holding Python objects)"
        ) from None


def load_model(directory: Path | str) -> tuple[Sequential, MLPConfig]:
    """Rebuild a model saved by :func:`save_model`; return it with its config.

    Raises :class:`DataFormatError` naming the directory and the fix when a file is missing,
    truncated or corrupt, or the weights do not fit the architecture.
    """
    directory = Path(directory)
    try:
        config = _read_config(directory / ARCHITECTURE_FILE)
        weights = _read_weights(directory / WEIGHTS_FILE)
        # The rng only seeds initial weights, which load_state_dict overwrites at once.
        model = build_mlp(config, np.random.default_rng(0))
        model.load_state_dict(weights)
    except (OSError, ValueError) as error:
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
        record = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as error:
        record = error
    if not isinstance(record, dict):
        raise DataFormatError(
            f"cannot read {path}: expected a JSON object ({record}); rerun the train stage "
            f"(dvc repro)"
        )
    return record
