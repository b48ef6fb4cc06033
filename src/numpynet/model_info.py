"""What ``numpynet info`` prints about a saved model: network, size, data, training, backend."""

from __future__ import annotations

from pathlib import Path

from numpynet.errors import DataFormatError, environment_problem
from numpynet.files import RefusedFileError
from numpynet.model_folder import load_model
from numpynet.predict import one_line
from numpynet.records import (
    DatasetRecord,
    EvaluationScores,
    ProvenanceRecord,
    TrainingRecord,
    read_json_file,
    record_problem,
)

_MAX_LISTED_CLASSES = 10


def describe_model(directory: Path | str, metrics: Path | str | None = None) -> list[str]:
    """Lines describing the model saved in ``directory``, one fact per line.

    ``metrics`` is a metrics JSON written by the evaluate stage; when not given,
    ``metrics/<dataset>.json`` is used if it exists (relative to the current directory, the
    project root in a DVC project). Facts a model saved by an older version does not record are
    left out. Raises :class:`DataFormatError` naming the file when the model cannot be read.
    """
    directory = Path(directory)
    saved = load_model(directory)
    config = saved.config
    sizes = [config.input_size, *config.hidden_sizes, config.num_classes]
    extras = ["batch normalization"] if config.normalization == "batch" else []
    extras.append(f"dropout {config.dropout:g}")
    parameters = sum(param.size for _, param, _ in saved.model.parameters())
    lines = [
        f"model       {directory}",
        f"network     {' -> '.join(map(str, sizes))} ({', '.join(extras)})",
        f"parameters  {parameters:,} (float32, {parameters * 4 / 2**20:.1f} MiB)",
    ]
    if saved.dataset is not None:
        lines.append(_describe_dataset(saved.dataset))
    if saved.training is not None:
        lines.append(_describe_training(saved.training))
    if saved.provenance is not None:
        lines.append(_describe_provenance(saved.provenance))
    name = saved.dataset.name if saved.dataset is not None else directory.name
    metrics_path = Path(metrics) if metrics is not None else Path("metrics") / f"{name}.json"
    if metrics is not None or metrics_path.is_file():
        scores = _read_scores(metrics_path, name)
        lines.append(
            f"test        accuracy {scores.accuracy:.2%}, loss {scores.loss:.4f} "
            f"(from {metrics_path})"
        )
    return lines


def _describe_dataset(dataset: DatasetRecord) -> str:
    classes = [one_line(c) for c in dataset.classes]
    listed = ", ".join(classes[:_MAX_LISTED_CLASSES])
    if len(classes) > _MAX_LISTED_CLASSES:
        listed += f", ... ({len(classes)} in all)"
    shape = "x".join(map(str, dataset.image_shape))
    return f"trained on  {dataset.name}: {shape} images ({dataset.layout}), classes {listed}"


def _describe_training(training: TrainingRecord) -> str:
    return (
        f"training    {training.epochs} epochs; kept epoch {training.selected_epoch} "
        f"(by {training.select_by}: validation accuracy {training.val_accuracy:.2%})"
    )


def _describe_provenance(provenance: ProvenanceRecord) -> str:
    # Models saved before numeric modes existed say kernel_class.
    mode = provenance.numeric_mode or provenance.kernel_class
    kernel = (
        f" (OpenBLAS {provenance.blas_kernel} kernel, {provenance.blas_threads} threads)"
        if provenance.blas_kernel is not None else ""
    )
    blas = f", {provenance.blas}" if provenance.blas is not None else ""  # exact mode: any BLAS
    return f"computed    numeric mode {mode}{kernel}, NumPy {provenance.numpy}{blas}"


def _read_scores(path: Path, name: str) -> EvaluationScores:
    """The scores of dataset ``name`` in the metrics file at ``path``."""
    fix = "rerun the evaluate stage (dvc repro) or pass another file with --metrics"
    try:
        # A regular file of bounded size: --metrics /dev/zero or a FIFO is refused at once.
        metrics = read_json_file(path)
    except RefusedFileError as error:  # its message names the file already
        raise DataFormatError(f"{error}; {fix}") from None
    except (OSError, ValueError) as error:
        if environment_problem(error):
            raise
        raise DataFormatError(f"cannot read the metrics file {path}: {error}; {fix}") from None
    if not isinstance(metrics, dict):
        raise DataFormatError(f"{path} is not a metrics file written by the evaluate stage; {fix}")
    if name not in metrics:
        # Another dataset's metrics (a mistyped --metrics, a renamed model): saying nothing would
        # look like a model never evaluated.
        held = ", ".join(sorted(map(str, metrics))) or "no dataset"
        raise DataFormatError(
            f"{path} holds the test scores of {held}, not of {name}, the dataset of this model; "
            f"pass metrics/{name}.json with --metrics, or rerun the evaluate stage (dvc repro "
            f"evaluate@{name})"
        )
    scores, problem = record_problem(EvaluationScores, metrics[name])
    if problem:
        raise DataFormatError(f"{path} is not as numpynet writes it ({name}: {problem}); {fix}")
    return scores
