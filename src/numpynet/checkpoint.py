"""Saving and loading models without pickling: plain arrays plus a JSON architecture.

A model directory holds ``architecture.json`` (what to build) and ``weights.npz`` (the arrays,
written with a fixed timestamp so equal weights give equal bytes).
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np

from numpynet.errors import DataFormatError
from numpynet.files import atomic_directory, load_npz, save_npz, write_json
from numpynet.nn.model import Sequential, build_from_architecture

ARCHITECTURE_FILE = "architecture.json"
WEIGHTS_FILE = "weights.npz"


def save_model(directory: Path | str, model: Sequential, architecture: dict) -> None:
    """Write the model into ``directory``, replacing it only once everything is written."""
    with atomic_directory(directory) as tmp:
        write_json(tmp / ARCHITECTURE_FILE, architecture)
        save_npz(tmp / WEIGHTS_FILE, model.state_dict())


def load_model(directory: Path | str) -> tuple[Sequential, dict]:
    """Rebuild a model saved by :func:`save_model`; returns it with its architecture."""
    directory = Path(directory)
    try:
        architecture = json.loads((directory / ARCHITECTURE_FILE).read_text(encoding="utf-8"))
        weights = load_npz(directory / WEIGHTS_FILE)
        # The rng only seeds initial weights, which load_state_dict overwrites at once.
        model = build_from_architecture(architecture, np.random.default_rng(0))
        model.load_state_dict(weights)
    # EOFError: np.load on an empty (fully truncated) file.
    except (OSError, EOFError, ValueError, KeyError, zipfile.BadZipFile) as error:
        raise DataFormatError(
            f"cannot load the model in {directory}: {error}; rerun the train stage (dvc repro)"
        ) from None
    return model, architecture
