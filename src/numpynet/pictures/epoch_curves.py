"""The per-epoch curves as CSV files: the data of the charts ``dvc plots`` draws.

dvc.yaml declares each file as a chart with ``epoch`` on x, so that ``dvc plots diff`` lines up
runs whose batch sizes, and so whose optimizer steps, differ. Each value sits at its epoch's
number, the training loss (a mean over the epoch's batches) included, where
``learning_curves.png`` draws that mean at the epoch's middle.
"""

from __future__ import annotations

from pathlib import Path

from numpynet.files import atomic_path
from numpynet.pictures.curves import LearningCurves

# The curves written, one file each, ``<name>.csv`` holding ``epoch,<name>``.
EPOCH_CURVES = ("val_accuracy", "val_loss", "train_loss")


def write_epoch_curves(curves: LearningCurves, directory: Path | str) -> None:
    """Write each of ``EPOCH_CURVES`` as ``<name>.csv`` into ``directory``: a header
    ``epoch,<name>``, then one row per epoch, each value as the shortest text that reads back as
    the same float64."""
    directory = Path(directory)
    for name in EPOCH_CURVES:
        rows = [f"epoch,{name}"]
        rows += [f"{epoch},{value!r}" for epoch, value in
                 zip(curves.epoch.tolist(), getattr(curves, name).tolist())]
        with atomic_path(directory / f"{name}.csv") as tmp:
            tmp.write_bytes(("\n".join(rows) + "\n").encode("utf-8"))  # "\n" on every system
