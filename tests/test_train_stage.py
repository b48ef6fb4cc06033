"""The train stage chooses its model from the validation split and never reads the test split;
its whitening is folded into the saved model."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np

from helpers.project import base_params, dvc_environment, make_project
from numpynet.model_folder import load_model
from numpynet.data.processed import read_split, write_processed
from numpynet.evaluation import loss_and_accuracy, predict_logits

NAME = "mnist"  # a built-in name, so params.yaml is valid; the data is made up here


def test_train_stage_selects_on_validation_and_needs_no_test_split(tmp_path):
    env = dvc_environment()
    params = base_params({NAME: {"data": {"format": "idx"}, "train": {}}}, epochs=3,
                         select_by="val_accuracy",
                         normalization="batch", label_smoothing=0.1, augment_shift=1,
                         whitening="zca")
    repo = make_project(tmp_path / "project", params, env)
    rng = np.random.default_rng(0)
    means = rng.standard_normal((3, 4, 4, 1)).astype(np.float32) * 2

    def split(count):
        labels = np.arange(count, dtype=np.int64) % 3
        noise = rng.standard_normal((count, 4, 4, 1)).astype(np.float32)
        return means[labels] + noise, labels

    # No test split at all: a stage that peeked at it would fail to find x_test.npy.
    write_processed(repo / "data" / "processed" / NAME, {"train": split(300), "val": split(60)},
                    ["a", "b", "c"], np.zeros(1), np.ones(1))
    result = subprocess.run(
        [sys.executable, "stages/train.py", NAME, "--data", f"data/processed/{NAME}",
         "--model", f"models/{NAME}", "--live", f"dvclive/{NAME}",
         "--checkpoint", f"checkpoints/{NAME}.npz"],
        cwd=repo, capture_output=True, text=True, env=env,
    )
    assert result.returncode == 0, result.stderr
    training = json.loads((repo / "models" / NAME / "training.json").read_text())
    log = (repo / "dvclive" / NAME / "plots" / "metrics" / "val" / "accuracy.tsv").read_text()
    accuracies = [float(line.split("\t")[-1]) for line in log.splitlines()[1:]]
    assert not (repo / "checkpoints" / f"{NAME}.npz").exists()  # removed once the model is saved
    assert training["select_by"] == "val_accuracy"
    assert training["selected_epoch"] == accuracies.index(max(accuracies)) + 1
    assert training["val_accuracy"] == max(accuracies)
    # The whitening folded into the first layer: the saved model takes the stored images as they
    # are and scores what the kept epoch logged (up to a prediction that rounding may tip).
    model = load_model(repo / "models" / NAME).model
    x_val, y_val = read_split(repo / "data" / "processed" / NAME, "val")
    _, accuracy = loss_and_accuracy(predict_logits(model, x_val, 100), y_val)
    assert abs(accuracy - training["val_accuracy"]) <= 1 / 60
