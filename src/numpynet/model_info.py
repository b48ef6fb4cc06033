"""What ``numpynet info`` prints about a saved model: network, size, data, training, backend."""

from __future__ import annotations

import contextlib
from pathlib import Path

from numpynet.checkpoint import (
    DATASET_FILE,
    PROVENANCE_FILE,
    TRAINING_FILE,
    load_model,
    read_record,
)
from numpynet.errors import DataFormatError, environment_problem
from numpynet.files import parse_json
from numpynet.predict import dataset_record_problem, one_line

_MAX_LISTED_CLASSES = 10


def describe_model(directory: Path | str, metrics: Path | str | None = None) -> list[str]:
    """Lines describing the model saved in ``directory``, one fact per line.

    ``metrics`` is a metrics JSON written by the evaluate stage; when not given,
    ``metrics/<dataset>.json`` is used if it exists (relative to the current directory, the
    project root in a DVC project). Facts a model saved by an older version does not record are
    left out. Raises :class:`DataFormatError` naming the file when the model cannot be read.
    """
    directory = Path(directory)
    model, config = load_model(directory)
    sizes = [config.input_size, *config.hidden_sizes, config.num_classes]
    extras = ["batch normalization"] if config.normalization == "batch" else []
    extras.append(f"dropout {config.dropout:g}")
    parameters = sum(param.size for _, param, _ in model.parameters())
    lines = [
        f"model       {directory}",
        f"network     {' -> '.join(map(str, sizes))} ({', '.join(extras)})",
        f"parameters  {parameters:,} (float32, {parameters * 4 / 2**20:.1f} MiB)",
    ]
    dataset = read_record(directory, DATASET_FILE)
    # A model saved before dataset.json existed has none; one that has it must agree with itself.
    problem = dataset_record_problem(dataset, config) if dataset else None
    if problem:
        raise DataFormatError(
            f"{directory / DATASET_FILE} is not as numpynet writes it for the model in "
            f"{directory} ({problem}): the file was changed or comes from another model; retrain "
            f"it (dvc repro train@{directory.name})"
        )
    name = str(dataset.get("name", directory.name))
    for file_name, describe in _RECORDS:
        record = read_record(directory, file_name)
        if record:
            with _reading(directory / file_name):
                lines.append(describe(record))
    metrics_path = Path(metrics) if metrics is not None else Path("metrics") / f"{name}.json"
    if metrics is not None or metrics_path.is_file():
        scores = _read_metrics(metrics_path).get(name, {})
        if scores:
            with _reading(metrics_path):
                lines.append(
                    f"test        accuracy {scores['accuracy']:.2%}, loss {scores['loss']:.4f} "
                    f"(from {metrics_path})"
                )
    return lines


def _describe_dataset(dataset: dict) -> str:
    classes = [one_line(str(c)) for c in dataset["classes"]]
    listed = ", ".join(classes[:_MAX_LISTED_CLASSES])
    if len(classes) > _MAX_LISTED_CLASSES:
        listed += f", ... ({len(classes)} in all)"
    shape = "x".join(map(str, dataset["image_shape"]))
    return f"trained on  {dataset['name']}: {shape} images ({dataset['layout']}), classes {listed}"


def _describe_training(training: dict) -> str:
    return (
        f"training    {training['epochs']} epochs; kept epoch {training['selected_epoch']} "
        f"(by {training['select_by']}: validation accuracy {training['val_accuracy']:.2%})"
    )


def _describe_provenance(provenance: dict) -> str:
    # Models saved before numeric modes existed say kernel_class.
    mode = provenance.get("numeric_mode", provenance.get("kernel_class"))
    kernel = (
        f" (OpenBLAS {provenance['blas_kernel']} kernel, {provenance['blas_threads']} threads)"
        if "blas_kernel" in provenance else ""
    )
    blas = f", {provenance['blas']}" if "blas" in provenance else ""  # exact mode: any BLAS
    return f"computed    numeric mode {mode}{kernel}, NumPy {provenance['numpy']}{blas}"


# The records a model folder may hold, each with the line that describes it, in print order.
_RECORDS = (
    (DATASET_FILE, _describe_dataset),
    (TRAINING_FILE, _describe_training),
    (PROVENANCE_FILE, _describe_provenance),
)


@contextlib.contextmanager
def _reading(path: Path):
    """Turn a record missing a key, or holding a value of the wrong type, into a message."""
    try:
        yield
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        raise DataFormatError(
            f"{path} is not as numpynet writes it ({type(error).__name__}: {error}); rerun the "
            f"stage that writes it (dvc repro)"
        ) from None


def _read_metrics(path: Path) -> dict:
    try:
        metrics = parse_json(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        if environment_problem(error):
            raise
        raise DataFormatError(
            f"cannot read the metrics file {path}: {error}; rerun the evaluate stage (dvc repro) "
            f"or pass another file with --metrics"
        ) from None
    if not isinstance(metrics, dict):
        raise DataFormatError(f"{path} is not a metrics file written by the evaluate stage")
    return metrics
