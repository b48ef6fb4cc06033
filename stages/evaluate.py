"""evaluate stage: score the trained model on the test split.

Reads ``--model`` (``models/<name>``), its ``--training-log``, ``--data``
(``data/processed/<name>``) and from params.yaml ``evaluate`` and whether the dataset trains on
mirrored images (``augment_flip``, for ``evaluate.test_time_flip``); writes ``--metrics``
(``metrics/<name>.json``: test accuracy and loss, and the epoch whose weights training kept, under
the dataset's name, so every dataset gets its own columns in ``dvc exp show``), ``--curves``
(the training log, published unchanged as a plot committed to git), ``--confusion`` (one
actual,predicted row per test image, for DVC's confusion template) and ``--per-class``
(each class's accuracy, a bar plot that ``dvc plots diff`` compares).
"""

import _bootstrap  # noqa: I001  (first: this tree's code, on a pinned numeric backend)

from pathlib import Path

import numpy as np

from numpynet.checkpoint import TRAINING_FILE, load_model, read_record
from numpynet.cli import run_stage, stage_arguments
from numpynet.config import load_params
from numpynet.data.processed import read_meta, read_split
from numpynet.evaluation import (
    confusion_matrix,
    loss_and_accuracy,
    per_class_accuracy,
    predict_logits,
)
from numpynet.errors import DataFormatError
from numpynet.files import write_csv, write_json, write_text


def read_training_log(path: Path) -> str:
    """The train stage's per-epoch log, as text."""
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise DataFormatError(
            f"cannot read the training log {path} ({error}); rerun the train stage (dvc repro)"
        ) from None


def main() -> None:
    args = stage_arguments(
        __doc__,
        _bootstrap.PROJECT_ROOT,
        inputs=["data", "model", "training_log"],
        outputs=["metrics", "curves", "confusion", "per_class"],
    )
    params = load_params(args.params)
    # An unknown name fails here, with the configured ones listed. Only a model trained on
    # mirrored images is asked about mirrored ones: a mirrored digit is not the same digit.
    test_time_flip = params.evaluate.test_time_flip and params.train_for(args.dataset).augment_flip
    classes = read_meta(args.data).classes
    x_test, y_test = read_split(args.data, "test")
    model, _ = load_model(args.model)
    curves = read_training_log(args.training_log)

    logits = predict_logits(model, x_test, params.evaluate.batch_size, test_time_flip)
    loss, accuracy = loss_and_accuracy(logits, y_test)
    predictions = logits.argmax(axis=1)
    recall = per_class_accuracy(confusion_matrix(y_test, predictions, len(classes)))
    write_csv(
        args.confusion,
        ["actual", "predicted"],
        [
            {"actual": classes[actual], "predicted": classes[predicted]}
            for actual, predicted in zip(y_test.tolist(), predictions.tolist())
        ],
    )
    # A class absent from the test set has no accuracy: an empty cell.
    write_csv(
        args.per_class,
        ["class", "accuracy"],
        [
            {"class": name, "accuracy": "" if np.isnan(r) else float(r)}
            for name, r in zip(classes, recall)
        ],
    )
    write_text(args.curves, curves)
    metrics = {"accuracy": accuracy, "loss": loss}
    selected_epoch = read_record(args.model, TRAINING_FILE).get("selected_epoch")
    if selected_epoch is not None:
        metrics["selected_epoch"] = selected_epoch
    write_json(args.metrics, {args.dataset: metrics})


if __name__ == "__main__":
    run_stage(main)
