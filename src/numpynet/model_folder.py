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
  (:class:`~numpynet.records.ProvenanceRecord`);
* ``contents.json``: the SHA-256 of each file above, written last
  (:class:`~numpynet.records.FolderContents`).

The dataset, training and provenance records are absent from a model saved without them, which
still loads; a record that is there is checked, and ``dataset.json`` against the architecture
too. Then ``contents.json`` ties the files together: a file edited after the model was saved, or
copied in from another model folder (same shapes: it would load, and label digits "sandal"), is
refused by name. A folder without ``contents.json`` (saved before it existed, or assembled by
hand) is refused too, with the fix: retrain it. Each file must be a regular file: a FIFO or a
device (``/dev/zero``) is refused before a byte is read.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from numpynet.arrays import load_npz
from numpynet.errors import DataFormatError, environment_problem
from numpynet.files import atomic_directory, open_regular_file, regular_file_path, save_npz
from numpynet.nn.model import MLPConfig, Sequential, build_mlp
from numpynet.records import (
    MODEL_TYPE,
    Architecture,
    DatasetRecord,
    FolderContents,
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
CONTENTS_FILE = "contents.json"
# The files contents.json ties together: every file save_model writes but contents.json itself.
TIED_FILES = (ARCHITECTURE_FILE, WEIGHTS_FILE, DATASET_FILE, TRAINING_FILE, PROVENANCE_FILE)


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
    """Write the model and the records given into ``directory``, then ``contents.json`` (the
    digest of each), replacing ``directory`` only once everything is written."""
    with atomic_directory(directory) as tmp:
        write_record(tmp / ARCHITECTURE_FILE, _architecture_record(config))
        save_npz(tmp / WEIGHTS_FILE, model.state_dict())
        for file_name, record in (
            (DATASET_FILE, dataset), (TRAINING_FILE, training), (PROVENANCE_FILE, provenance)
        ):
            if record is not None:
                write_record(tmp / file_name, record)
        # The digests of the bytes on disk, as load_model reads them back.
        written = [name for name in TIED_FILES if (tmp / name).exists()]
        write_record(tmp / CONTENTS_FILE,
                     FolderContents({name: _file_digest(tmp / name) for name in written}))


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


def _file_digest(path: Path) -> str:
    """The SHA-256 of the regular file at ``path``."""
    digest = hashlib.sha256()
    with open_regular_file(path) as stream:
        while chunk := stream.read(1 << 22):
            digest.update(chunk)
    return digest.hexdigest()


def _check_weights_size(config: MLPConfig, path: os.PathLike) -> None:
    """Refuse an architecture whose parameters alone outweigh ``weights.npz``, before anything
    is built: absurd sizes in ``architecture.json`` would otherwise allocate terabytes."""
    sizes = [config.input_size, *config.hidden_sizes, config.num_classes]
    count = sum(fan_in * fan_out + fan_out for fan_in, fan_out in zip(sizes, sizes[1:]))
    held = os.stat(path).st_size
    if 4 * count > held:
        raise ValueError(
            f"the layer shapes in {ARCHITECTURE_FILE} need {count:,} float32 numbers "
            f"({4 * count:,} bytes), more than the {held:,} bytes of {WEIGHTS_FILE}: that file is "
            f"truncated, or the two do not belong together"
        )


def _read_weights(path: os.PathLike, model: Sequential) -> dict[str, np.ndarray]:
    """The arrays in ``weights.npz``, exactly the names, shapes and dtypes ``model`` holds, all
    finite; ``ValueError`` naming the file otherwise (headers are checked before any data is
    read, so memory stays bounded by what the model needs)."""
    expected = {name: (param.shape, param.dtype) for name, param, _ in model.parameters()}
    expected.update((name, (array.shape, array.dtype)) for name, array in model.buffers())
    weights = load_npz(path, expected)  # its ArrayFileError is a ValueError naming the file
    for name, array in weights.items():
        if not np.isfinite(array).all():
            raise ValueError(f"{WEIGHTS_FILE}: array {name!r} holds NaN or infinite values")
    return weights


def _optional_record(path: Path, cls: type[Record], fix: str) -> Record | None:
    try:
        return read_record(path, cls, fix)
    except FileNotFoundError:
        return None


def _check_is_a_model_folder(directory: Path) -> None:
    """Refuse, with the fix, a path that is no model folder at all: a file (one of a model's, or
    anything else), the folder of all models, a path that does not exist. Retraining fixes none
    of these; pointing at the right folder does."""
    if os.path.lexists(directory) and not directory.is_dir():
        # A file (a model's own, or any other), a device, a FIFO, a link to nowhere or a loop.
        parent = directory.parent
        within = (f"; the model folder that holds it is {parent}"
                  if (parent / ARCHITECTURE_FILE).is_file() else "")
        kind = "a file" if directory.is_file() else "no folder"
        raise DataFormatError(
            f"{directory} is {kind}, not a model folder: pass the folder the train stage wrote "
            f"(models/<dataset>){within}"
        )
    if directory.is_dir() and not os.path.lexists(directory / ARCHITECTURE_FILE):
        models = sorted(str(child) for child in directory.iterdir()
                        if (child / ARCHITECTURE_FILE).is_file())
        if models:
            raise DataFormatError(
                f"{directory} holds model folders, not one model: pass one of "
                f"{', '.join(models[:5])}{' ...' if len(models) > 5 else ''}"
            )
    if not os.path.lexists(directory):
        raise DataFormatError(
            f"no model folder {directory}: pass the folder the train stage wrote "
            f"(models/<dataset>), or train one with dvc repro train@{directory.name}"
        )


def load_model(directory: Path | str) -> SavedModel:
    """Rebuild the model saved by :func:`save_model` in ``directory``, with its records.

    Raises :class:`DataFormatError` naming the file and the fix when a file is missing,
    truncated or corrupt, no regular file, the weights do not fit the architecture (names,
    shapes, float32 dtype) or hold NaN, a record is not as numpynet writes it, or the files were
    not saved together (``contents.json``: one edited or from another model, one missing or
    added, or no ``contents.json`` at all). An ``OSError`` of the machine (no permission, ...)
    is left to the caller, whose fix is not retraining.
    """
    directory = Path(directory)
    _check_is_a_model_folder(directory)
    try:
        architecture = read_record(
            directory / ARCHITECTURE_FILE, Architecture, "rerun the train stage (dvc repro)"
        )
        config = MLPConfig(
            architecture.input_size, tuple(architecture.hidden_sizes), architecture.num_classes,
            architecture.dropout, architecture.normalization,
        )
        # Checked a regular file once, and read through that very file: no FIFO or device can
        # be swapped in between.
        with regular_file_path(directory / WEIGHTS_FILE) as weights_file:
            _check_weights_size(config, weights_file)
            # The rng only seeds initial weights, which load_state_dict overwrites at once.
            model = build_mlp(config, np.random.default_rng(0))
            model.load_state_dict(_read_weights(weights_file, model))
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
    training = _optional_record(directory / TRAINING_FILE, TrainingRecord, _retrain(directory))
    provenance = _optional_record(
        directory / PROVENANCE_FILE, ProvenanceRecord, _retrain(directory)
    )
    # Last: each file is what numpynet writes (the messages above say what is wrong with one);
    # now, whether they were saved together.
    _check_saved_together(directory)
    return SavedModel(model, config, dataset, training, provenance)


def _check_saved_together(directory: Path) -> None:
    """Refuse a model folder whose files are not those save_model wrote together, by
    ``contents.json``: one edited, copied in from another model folder, missing or added.

    The fix names the folder's own stage (``models/<name>`` is written by ``train@<name>``), not
    the dataset in ``dataset.json``, which may be the file that came from elsewhere.
    """
    fix = (f"copy the whole folder of the model you want, every file together, or "
           f"{_retrain(directory)}")
    contents = _optional_record(directory / CONTENTS_FILE, FolderContents, fix)
    if contents is None:
        raise DataFormatError(
            f"{directory} has no {CONTENTS_FILE}, the record of its files that numpynet writes "
            f"last when it saves a model: the model was saved by an older numpynet, or its "
            f"folder was put together by hand, and nothing shows that its files belong to one "
            f"model; {_retrain(directory)}"
        )
    unknown = sorted(set(contents.files) - set(TIED_FILES))
    if unknown or not {ARCHITECTURE_FILE, WEIGHTS_FILE} <= set(contents.files):
        raise DataFormatError(
            f"{directory / CONTENTS_FILE} is not as numpynet writes it (files: expected "
            f"{ARCHITECTURE_FILE}, {WEIGHTS_FILE} and any of {', '.join(TIED_FILES[2:])}, "
            f"got {sorted(contents.files)}); {fix}"
        )
    for file_name in TIED_FILES:
        path = directory / file_name
        recorded = contents.files.get(file_name)
        present = path.exists()  # a dangling link counts as missing
        if recorded is None and present:
            raise DataFormatError(
                f"{path} does not belong to the model in {directory}: the model was saved "
                f"without it ({CONTENTS_FILE} lists no such file), so it was copied in from "
                f"another model folder; remove it, or {fix}"
            )
        if recorded is not None and not present:
            raise DataFormatError(
                f"{path} is missing: the model in {directory} was saved with it "
                f"({CONTENTS_FILE} lists it), so the folder is incomplete; {fix}"
            )
    differing = [
        file_name for file_name, digest in contents.files.items()
        if _file_digest(directory / file_name) != digest
    ]
    if differing:
        differing.sort(key=TIED_FILES.index)
        named = " and ".join(filter(None, (", ".join(differing[:-1]), differing[-1])))
        verb, content = ("does", "its content") if len(differing) == 1 else ("do", "their contents")
        raise DataFormatError(
            f"{named} in {directory} {verb} not belong with the rest of the model: {content} "
            f"differ{'s' if len(differing) == 1 else ''} from what {CONTENTS_FILE} recorded when "
            f"the model was saved, so the folder mixes files of different models (or one was "
            f"edited since); {fix}"
        )