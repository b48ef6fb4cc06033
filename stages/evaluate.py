"""evaluate stage: score the trained model on the test split.

Reads ``models/<name>/``, ``data/processed/<name>/`` and ``evaluate`` from params.yaml; writes
``metrics/<name>.json`` (test accuracy, loss, per-class accuracy) and
``plots/<name>/confusion.csv`` (one actual,predicted row per test image, for DVC's confusion
template).
"""

import json
from pathlib import Path

import numpy as np

from numpynet.checkpoint import load_model
from numpynet.cli import run_stage, stage_arguments
from numpynet.config import load_params
from numpynet.evaluation import confusion_matrix, loss_and_accuracy, per_class_accuracy, predict_logits
from numpynet.files import load_npy, write_csv, write_json


def main() -> None:
    args = stage_arguments(__doc__)
    params = load_params(args.params)
    params.dataset(args.dataset)  # an unknown name fails here, with the configured ones listed
    config = params.evaluate
    data = Path("data/processed") / args.dataset
    classes = json.loads((data / "meta.json").read_text(encoding="utf-8"))["classes"]
    model, _ = load_model(Path("models") / args.dataset)
    x_test, y_test = load_npy(data / "x_test.npy", mmap=True), load_npy(data / "y_test.npy")

    logits = predict_logits(model, x_test, config.batch_size)
    loss, accuracy = loss_and_accuracy(logits, y_test)
    predictions = logits.argmax(axis=1)
    recall = per_class_accuracy(confusion_matrix(y_test, predictions, len(classes)))
    metrics = {
        "test": {"accuracy": accuracy, "loss": loss},
        # A class absent from the test set has no accuracy: null, since JSON has no NaN.
        "per_class_accuracy": {
            name: None if np.isnan(r) else float(r) for name, r in zip(classes, recall)
        },
    }
    rows = [
        {"actual": classes[a], "predicted": classes[p]} for a, p in zip(y_test.tolist(), predictions.tolist())
    ]
    write_csv(Path("plots") / args.dataset / "confusion.csv", ["actual", "predicted"], rows)
    write_json(Path("metrics") / f"{args.dataset}.json", metrics)


if __name__ == "__main__":
    run_stage(main)
