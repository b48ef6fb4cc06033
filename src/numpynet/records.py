"""The JSON files numpynet writes for itself, each one typed record read back through one parser.

Every JSON file a stage writes and a later stage (or command) reads is a frozen dataclass below,
written by :func:`write_record` and read back by :func:`read_record`, which checks it with the
field parser of ``params.yaml`` (:func:`numpynet.config.fields.parse_fields`: each field's type
from its annotation, ranges from its metadata) and then the rules across fields. Code that holds
a record trusts it.

==================  ===============================  =========================================
record              file                              written by, read by
==================  ===============================  =========================================
ProcessedMeta       data/processed/<name>/meta.json  preprocess; train, evaluate
Architecture        models/<name>/architecture.json  train; evaluate, predict, info
DatasetRecord       models/<name>/dataset.json       train; evaluate, predict, info
TrainingRecord      models/<name>/training.json      train; evaluate, predict, info
ProvenanceRecord    models/<name>/provenance.json    train; evaluate, predict, info
FolderContents      models/<name>/contents.json      train; evaluate, predict, info
EvaluationScores    metrics/<name>.json              evaluate; info (and ``dvc metrics``)
EpochRow            (each row of a checkpoint's log) train; train, when it resumes
==================  ===============================  =========================================

Every one is read by :func:`read_json_file`: a regular file (a FIFO or ``/dev/zero`` is refused
before a byte is read) of at most :data:`MAX_RECORD_BYTES`.

The model folder's files are put together in :mod:`numpynet.model_folder`; the processed dataset's
in :mod:`numpynet.data.processed`.
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from numpynet.config import NORMALIZATIONS, SELECTION_CRITERIA
from numpynet.config.fields import field_check, parse_fields
from numpynet.errors import DataFormatError, environment_problem
from numpynet.files import RefusedFileError, parse_json, read_regular_file, write_json

# Images are stored channels last; the one layout there is, written down so that a file of
# another layout, should one come, is told apart.
LAYOUT = "NHWC"
# Written into architecture.json beside the config, so a different kind of model, should one be
# added, is told apart from an MLP.
MODEL_TYPE = "mlp"
# The largest JSON file numpynet reads back. Its records take a few KiB: the largest, a
# dataset.json or meta.json, grows with the class names (10,000 classes of 255 bytes take
# 2.5 MiB), a checkpoint's with the epochs (about 150 bytes each). Parsed, JSON takes about ten
# times its size in memory.
MAX_RECORD_BYTES = 16 << 20
_RECORD_BOUND = "MAX_RECORD_BYTES in src/numpynet/records.py; raise it for a larger one"

Record = TypeVar("Record")


class _Record:
    """What every record has: :meth:`problem`, the rule across its fields (none by default)."""

    def problem(self) -> str | None:
        """What contradicts itself across fields, or None."""
        return None


def _images_problem(shape: list[int], mean: list[float], std: list[float]) -> str | None:
    """The image shape and the per-channel standardization of a dataset, checked together."""
    if len(shape) != 3 or not all(n > 0 for n in shape) or shape[2] not in (1, 3):
        return "image_shape: expected [height, width, channels] with 1 or 3 channels"
    if len(mean) != shape[2] or len(std) != shape[2] or not all(v > 0 for v in std):
        return (f"mean, std: expected {shape[2]} finite number(s) each, one per channel, std "
                f"positive")
    return None


_NAMES = field_check(lambda names: len(names) > 0, "a non-empty list of class names")
_LAYOUT = field_check(lambda layout: layout == LAYOUT, f'"{LAYOUT}"')
_POSITIVE = field_check(lambda n: n >= 1, "an integer >= 1")
_FRACTION = field_check(lambda a: 0 <= a <= 1, "a fraction")
_NOT_NEGATIVE = field_check(lambda x: x >= 0, "a number >= 0")


@dataclass(frozen=True)
class ProcessedMeta(_Record):
    """``meta.json`` of a processed dataset: its classes, image shape, split sizes and the
    per-channel mean and std (of the training split, on a 0..1 scale) that standardized it."""

    classes: list[str] = dataclasses.field(metadata=_NAMES)
    image_shape: list[int]  # [height, width, channels]
    sizes: dict[str, int] = dataclasses.field(
        metadata=field_check(lambda sizes: all(n >= 0 for n in sizes.values()),
                             "a count of images per split")
    )
    mean: list[float]
    std: list[float]
    layout: str = dataclasses.field(default=LAYOUT, metadata=_LAYOUT)

    def problem(self) -> str | None:
        return _images_problem(self.image_shape, self.mean, self.std)


@dataclass(frozen=True)
class Architecture(_Record):
    """``architecture.json``: the :class:`~numpynet.nn.model.MLPConfig` a model is built from
    (converted both ways in :mod:`numpynet.model_folder`)."""

    type: str = dataclasses.field(
        metadata=field_check(lambda kind: kind == MODEL_TYPE, f'"{MODEL_TYPE}"')
    )
    input_size: int = dataclasses.field(metadata=_POSITIVE)
    hidden_sizes: list[int] = dataclasses.field(
        metadata=field_check(lambda sizes: all(n >= 1 for n in sizes), "a list of integers >= 1")
    )
    num_classes: int = dataclasses.field(metadata=_POSITIVE)
    dropout: float = dataclasses.field(
        metadata=field_check(lambda p: 0 <= p < 1, "a number in [0, 1)")
    )
    # Written only when not the default, which a file without the key means: a model without
    # normalization keeps the exact architecture.json (and so the DVC hash) it had before.
    normalization: str = dataclasses.field(
        default="none",
        metadata=field_check(lambda name: name in NORMALIZATIONS, f"one of {list(NORMALIZATIONS)}"),
    )


@dataclass(frozen=True)
class DatasetRecord(_Record):
    """``dataset.json``: what a model takes, so it needs nothing else to classify an image: the
    dataset it learned, its classes, the input image shape and the standardization."""

    name: str = dataclasses.field(metadata=field_check(bool, "the dataset's name"))
    classes: list[str] = dataclasses.field(metadata=_NAMES)
    image_shape: list[int]
    mean: list[float]
    std: list[float]
    layout: str = dataclasses.field(default=LAYOUT, metadata=_LAYOUT)

    @classmethod
    def of(cls, name: str, meta: ProcessedMeta) -> DatasetRecord:
        """The record of a model trained on the processed dataset ``name`` described by ``meta``."""
        return cls(name, meta.classes, meta.image_shape, meta.mean, meta.std, meta.layout)

    def problem(self) -> str | None:
        return _images_problem(self.image_shape, self.mean, self.std)

    def architecture_problem(self, architecture: Architecture) -> str | None:
        """Where the record contradicts the architecture beside it, or None."""
        if len(self.classes) != architecture.num_classes:
            return (f"{len(self.classes)} classes, but the architecture has "
                    f"{architecture.num_classes} outputs")
        if math.prod(self.image_shape) != architecture.input_size:
            return (f"image_shape {self.image_shape}, but the architecture takes "
                    f"{architecture.input_size} values")
        return None


@dataclass(frozen=True)
class TrainingRecord(_Record):
    """``training.json``: how training ended: which epoch's weights were kept, by which rule,
    their validation scores, and whether training mirrored images (predict then mirrors too)."""

    epochs: int = dataclasses.field(metadata=_POSITIVE)
    select_by: str = dataclasses.field(
        metadata=field_check(lambda rule: rule in SELECTION_CRITERIA,
                             f"one of {list(SELECTION_CRITERIA)}")
    )
    selected_epoch: int = dataclasses.field(metadata=_POSITIVE)
    val_accuracy: float
    val_loss: float
    augment_flip: bool = False

    def problem(self) -> str | None:
        if self.selected_epoch > self.epochs:
            return f"selected_epoch: {self.selected_epoch} of only {self.epochs} epochs"
        return None


@dataclass(frozen=True)
class ProvenanceRecord(_Record):
    """``provenance.json``: what computed a model (see :func:`numpynet.backend.backend_provenance`).

    In the exact mode only the mode and NumPy's version are recorded: any BLAS computes its bits.
    """

    numpy: str
    numeric_mode: str | None = None  # None only in a model saved before numeric modes existed
    kernel_class: str | None = None  # what those older models recorded instead
    blas: str | None = None
    numpy_simd: str | None = None
    blas_kernel: str | None = None
    blas_threads: int | None = None

    def problem(self) -> str | None:
        if self.numeric_mode is None and self.kernel_class is None:
            return "numeric_mode: missing"
        if (self.blas_kernel is None) != (self.blas_threads is None):
            return "blas_kernel, blas_threads: expected both or neither"
        return None


@dataclass(frozen=True)
class EvaluationScores(_Record):
    """One dataset's entry in ``metrics/<name>.json``: test accuracy and loss, and the epoch whose
    weights training kept (absent for a model that does not record it)."""

    accuracy: float = dataclasses.field(metadata=_FRACTION)
    loss: float
    selected_epoch: int | None = None


@dataclass(frozen=True)
class FolderContents(_Record):
    """``contents.json``: the SHA-256 of every other file of a model folder, written last by
    :func:`numpynet.model_folder.save_model`, so that a file edited afterwards or copied in from
    another model folder is told apart from the files saved together."""

    files: dict[str, str] = dataclasses.field(
        metadata=field_check(
            lambda files: all(re.fullmatch(r"[0-9a-f]{64}", digest) for digest in files.values()),
            "a mapping of file names to SHA-256 digests (64 lowercase hex digits)",
        )
    )


@dataclass(frozen=True)
class EpochRow(_Record):
    """One epoch's row of the training log (the columns of
    :data:`numpynet.training.loop.LOG_COLUMNS`), as a checkpoint keeps it."""

    epoch: int = dataclasses.field(metadata=_POSITIVE)
    lr: float = dataclasses.field(metadata=_NOT_NEGATIVE)
    train_loss: float = dataclasses.field(metadata=_NOT_NEGATIVE)
    train_accuracy: float = dataclasses.field(metadata=_FRACTION)
    val_loss: float = dataclasses.field(metadata=_NOT_NEGATIVE)
    val_accuracy: float = dataclasses.field(metadata=_FRACTION)


def record_problem(cls: type[Record], data) -> tuple[Record | None, str | None]:
    """``data`` (parsed JSON) as a ``cls`` record, or (None, what is wrong with it)."""
    if not isinstance(data, dict):
        return None, f"expected a JSON object, got {type(data).__name__}"
    problems: list[str] = []
    values = parse_fields(cls, data, "", problems, required=True)
    if problems:
        return None, "; ".join(problems)
    record = cls(**values)
    problem = record.problem()
    return (None, problem) if problem else (record, None)


def read_record(path: Path | str, cls: type[Record], fix: str) -> Record:
    """The ``cls`` record in the JSON file at ``path``.

    Raises :class:`DataFormatError` naming the file, the problem and ``fix`` (how to write it
    anew) when the file is not valid JSON or not such a record; ``FileNotFoundError`` when it is
    missing, for the caller to word. An ``OSError`` of the machine (no permission) is left alone.
    """
    path = Path(path)
    try:
        data = read_json_file(path)
    except FileNotFoundError:
        raise
    except RefusedFileError as error:  # its message names the file already
        raise DataFormatError(f"{error}; {fix}") from None
    except (OSError, ValueError) as error:
        if environment_problem(error):
            raise
        raise DataFormatError(f"cannot read {path}: {error}; {fix}") from None
    record, problem = record_problem(cls, data)
    if problem:
        raise DataFormatError(f"{path} is not as numpynet writes it ({problem}); {fix}")
    return record


def read_json_file(path: Path | str) -> Any:
    """The JSON in the file at ``path``, read as numpynet reads back the files it writes.

    Raises :class:`~numpynet.files.RefusedFileError` (a ``ValueError`` naming the file) unless
    it is a regular file of at most :data:`MAX_RECORD_BYTES`, refused before it is read;
    ``ValueError`` when it is not UTF-8 JSON, or holds NaN or Infinity; ``OSError`` when it
    cannot be read (``FileNotFoundError``, ``IsADirectoryError`` ...), for the caller to word.
    """
    return parse_json(read_regular_file(path, MAX_RECORD_BYTES, _RECORD_BOUND).decode("utf-8"))


def record_json(record) -> dict:
    """``record`` as the JSON object written for it: a field that is None (an optional one) is
    left out, as is a normalization of ``"none"`` (which an older architecture.json lacks)."""
    data = {key: value for key, value in dataclasses.asdict(record).items() if value is not None}
    if isinstance(record, Architecture) and record.normalization == "none":
        del data["normalization"]
    return data


def write_record(path: Path | str, record) -> None:
    """Write ``record`` as key-sorted JSON, atomically (equal records give equal bytes)."""
    write_json(path, record_json(record))

