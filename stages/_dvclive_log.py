"""The training log in DVCLive's files: written live by train, read back by evaluate.

The library knows nothing of DVCLive: :func:`numpynet.training.loop.fit` reports to any
:class:`~numpynet.training.loop.MetricsLogger`, and :class:`LiveLogger` is the one the train stage
passes. DVCLive's step is the optimizer step (from 1): every step logs ``lr`` and
``train/batch_loss``; every epoch, at its last step, logs ``train/loss``, ``train/accuracy``,
``val/loss`` and ``val/accuracy``, each into its own ``.tsv`` file under ``plots/metrics/``.

After every epoch ``metrics.json`` is rewritten: what ``dvc exp show`` lists while a run trains.
It holds the progress only, under the dataset's name (``{"mnist": {"epoch": 12,
"val_accuracy": 0.99}, "step": 5064}``): every dataset's columns get their own names, and the
table stays narrow enough to show the test metrics and the parameters beside them.
"""

from __future__ import annotations

import contextlib
import csv
import math
from pathlib import Path

import numpy as np

from numpynet.errors import DataFormatError, OutputError, environment_message

STEP_METRICS = ("lr", "train/batch_loss")
EPOCH_METRICS = {  # DVCLive's name -> the column of numpynet.training.loop.LOG_COLUMNS
    "train/loss": "train_loss",
    "train/accuracy": "train_accuracy",
    "val/loss": "val_loss",
    "val/accuracy": "val_accuracy",
}


class LiveLogger:
    """Logs :func:`~numpynet.training.loop.fit`'s numbers with DVCLive into ``directory``."""

    def __init__(self, directory: Path, dataset: str):
        self.dataset = dataset
        self.directory = Path(directory)
        # No report, no dvc.yaml of DVCLive's own and no experiment saved by DVCLive: dvc.yaml
        # declares these files, and `dvc exp run` makes the experiment.
        with self._writing():
            self.live = _live_class()(str(directory), report=None, save_dvc_exp=False, dvcyaml=None)

    def log_step(self, step: int, lr: float, loss: float) -> None:
        """Log one optimizer step's learning rate and batch loss."""
        self._check_finite(step, {"lr": lr, "train/batch_loss": loss})
        with self._writing():
            self.live.step = step
            self.live.log_metric("lr", lr)
            self.live.log_metric("train/batch_loss", loss)

    def log_epoch(self, step: int, row: dict) -> None:
        """Log one epoch's train and validation loss and accuracy, and the summary."""
        self._check_finite(step, {name: row[column] for name, column in EPOCH_METRICS.items()})
        with self._writing():
            self.live.step = step
            for name, column in EPOCH_METRICS.items():
                self.live.log_metric(name, row[column])
            # DVCLive's summary holds every metric's latest value; DVCLive lets it be replaced.
            self.live.summary = {
                self.dataset: {"epoch": row["epoch"], "val_accuracy": row["val_accuracy"]}
            }
            self.live.make_summary()  # adds DVCLive's "step"

    @contextlib.contextmanager
    def _writing(self):
        """DVCLive writes its files in place: a full disk or a forbidden folder becomes a message
        naming the log (the model is saved only after training, so no model is half-written)."""
        try:
            yield
        except OSError as error:
            message = environment_message(error)
            if message is None:
                raise
            raise OutputError(
                f"cannot write the training log in {self.directory}: {message}, then run the "
                f"train stage again (dvc repro)"
            ) from None

    def _check_finite(self, step: int, values: dict) -> None:
        """Refuse NaN and infinity before DVCLive writes them: its metrics.json would hold
        ``NaN``, which is no JSON, and its plots a gap that looks like a value."""
        for name, value in values.items():
            if not math.isfinite(value):
                raise OutputError(
                    f"refusing to log {name} = {value} at step {step} into "
                    f"{self.directory / 'plots' / 'metrics' / name}.tsv and "
                    f"{self.directory / 'metrics.json'}: training produced a value that is not "
                    f"a finite number; check the inputs (dvc repro --force preprocess@"
                    f"{self.dataset}) or lower train.lr, then run it again"
                )


def _live_class():
    """DVCLive's ``Live``, made to log in a git repository without commits too.

    DVCLive asks git for the current commit while it looks for the experiment it belongs to,
    and in a repository without one (``git init`` on a downloaded archive, not yet committed)
    that question raises ``SCMError: Empty git repo`` (DVCLive 3.49), ending training. The log
    itself needs no commit: there, ``Live`` is set up as DVCLive sets itself up outside git,
    logging files only (no experiment, and DVC Studio gets no live updates; ``dvc exp run``
    refuses such a repository anyway).
    """
    from dvclive import Live  # only the train stage needs DVCLive (and DVC) loaded
    from scmrepo.exceptions import SCMError

    class LiveWithoutCommits(Live):
        def _init_dvc(self):
            try:
                super()._init_dvc()
            except SCMError:
                self._dvc_repo = None
                self._dvc_file = self._init_dvc_file()

    return LiveWithoutCommits


def read_metric(directory: Path, name: str) -> tuple[np.ndarray, np.ndarray]:
    """The ``(steps, values)`` DVCLive logged for the metric ``name`` in ``directory``."""
    path = Path(directory) / "plots" / "metrics" / f"{name}.tsv"
    try:
        with open(path, encoding="utf-8", newline="") as f:
            rows = list(csv.DictReader(f, delimiter="\t"))
        leaf = name.rsplit("/", 1)[-1]
        steps = np.array([int(row["step"]) for row in rows], dtype=np.int64)
        values = np.array([float(row[leaf]) for row in rows], dtype=np.float64)
    except (OSError, KeyError, ValueError, TypeError) as error:
        raise DataFormatError(
            f"cannot read the training log {path} ({error}); rerun the train stage (dvc repro)"
        ) from None
    return steps, values


def read_log(directory: Path) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], int]:
    """A run's whole log, as arrays in order: the per-epoch metrics (by their ``LOG_COLUMNS``
    names), the per-step ones (``lr`` and ``loss``), and the number of steps in an epoch."""
    steps = {name: read_metric(directory, name)[1] for name in STEP_METRICS}
    epoch_end, _ = read_metric(directory, "train/loss")
    epochs = {column: read_metric(directory, name)[1] for name, column in EPOCH_METRICS.items()}
    if not (len(epoch_end) and all(len(v) == epoch_end[-1] for v in steps.values())):
        raise DataFormatError(
            f"the training log in {directory} is incomplete; rerun the train stage (dvc repro)"
        )
    step_columns = {"lr": steps["lr"], "loss": steps["train/batch_loss"]}
    return epochs, step_columns, int(epoch_end[0])  # every epoch has as many steps
