"""The train stage chooses its model from the validation split and never reads the test split;
its whitening is folded into the saved model. Damaged processed data is refused naming the file
and the fix, a damaged checkpoint is discarded, and an unreadable input is named."""

from __future__ import annotations

import errno
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from helpers.hostile_data import data_damage, huge_header, rewrite_npz
from helpers.project import (
    NAME,
    base_params,
    dvc_environment,
    make_dvc_project,
    tiny_project,
    write_data,
)
from helpers.stages import assert_refused, run_stage_in_process
from numpynet.data.processed import read_split, write_processed
from numpynet.evaluation import loss_and_accuracy, predict_logits
from numpynet.model_folder import WEIGHTS_FILE, load_model


MNIST = "mnist"  # a built-in name, so params.yaml is valid; the data is made up here


def test_train_stage_selects_on_validation_and_needs_no_test_split(tmp_path):
    env = dvc_environment()
    params = base_params({MNIST: {"data": {"format": "idx"}, "train": {}}}, epochs=3,
                         select_by="val_accuracy",
                         normalization="batch", label_smoothing=0.1, augment_shift=1,
                         whitening="zca")
    repo = make_dvc_project(tmp_path / "project", params, env)
    rng = np.random.default_rng(0)
    means = rng.standard_normal((3, 4, 4, 1)).astype(np.float32) * 2

    def split(count):
        labels = np.arange(count, dtype=np.int64) % 3
        noise = rng.standard_normal((count, 4, 4, 1)).astype(np.float32)
        return means[labels] + noise, labels

    # No test split at all: a stage that peeked at it would fail to find x_test.npy.
    write_processed(repo / "data" / "processed" / MNIST, {"train": split(300), "val": split(60)},
                    ["a", "b", "c"], np.zeros(1), np.ones(1))
    result = subprocess.run(
        [sys.executable, "stages/train.py", MNIST, "--data", f"data/processed/{MNIST}",
         "--model", f"models/{MNIST}", "--live", f"dvclive/{MNIST}",
         "--checkpoint", f"checkpoints/{MNIST}.npz"],
        cwd=repo, capture_output=True, text=True, env=env,
    )
    assert result.returncode == 0, result.stderr
    training = json.loads((repo / "models" / MNIST / "training.json").read_text())
    log = (repo / "dvclive" / MNIST / "plots" / "metrics" / "val" / "accuracy.tsv").read_text()
    accuracies = [float(line.split("\t")[-1]) for line in log.splitlines()[1:]]
    assert not (repo / "checkpoints" / f"{MNIST}.npz").exists()  # removed once the model is saved
    assert training["select_by"] == "val_accuracy"
    assert training["selected_epoch"] == accuracies.index(max(accuracies)) + 1
    assert training["val_accuracy"] == max(accuracies)
    # The whitening folded into the first layer: the saved model takes the stored images as they
    # are and scores what the kept epoch logged (up to a prediction that rounding may tip).
    model = load_model(repo / "models" / MNIST).model
    x_val, y_val = read_split(repo / "data" / "processed" / MNIST, "val")
    _, accuracy = loss_and_accuracy(predict_logits(model, x_val, 100), y_val)
    assert abs(accuracy - training["val_accuracy"]) <= 1 / 60


# ---------------------------------------------------------------------------------------------
# Damaged inputs: processed data, a checkpoint, an unreadable file
# ---------------------------------------------------------------------------------------------


@pytest.mark.hostile
def test_the_train_stage_starts_afresh_from_a_checkpoint_with_a_huge_header(tmp_path):
    project = tiny_project(tmp_path / "p")
    write_data(project)
    checkpoint = project / "checkpoints" / f"{NAME}.npz"
    checkpoint.parent.mkdir()
    rewrite_npz(checkpoint, {}, {"record": huge_header("|u1")})
    code, stderr = run_stage_in_process(project, "train")
    assert code == 0, stderr
    assert f"discarded the checkpoint checkpoints/{NAME}.npz" in stderr
    assert (project / "models" / NAME / WEIGHTS_FILE).is_file()
    assert not checkpoint.exists()


def _damaged_data_cases(split):
    return [pytest.param(split, case, id=f"{split}-{case}") for case in data_damage(split)]


@pytest.mark.hostile
@pytest.mark.parametrize("split, case",
                         _damaged_data_cases("train") + _damaged_data_cases("val")[:3])
def test_the_train_stage_refuses_damaged_processed_data(tmp_path, split, case):
    damage, file_name, named = data_damage(split)[case]
    project = tiny_project(tmp_path / "p")
    folder = write_data(project)
    damage(folder)
    code, stderr = run_stage_in_process(project, "train")
    fix = "dvc repro" if named == "dvc repro" else f"dvc repro --force preprocess@{NAME}"
    assert_refused(code, stderr, f"data/processed/{NAME}/{file_name}", named, fix)
    assert not (project / "models").exists() and not (project / "checkpoints").exists()


@pytest.mark.hostile
def test_an_unreadable_input_names_the_file(tmp_path, monkeypatch):
    project = tiny_project(tmp_path / "p")
    write_data(project)
    real = Path.read_text

    def forbidden(path, *args, **kwargs):
        if path.name == "meta.json":
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(Path, "read_text", forbidden)
    code, stderr = run_stage_in_process(project, "train")
    assert_refused(code, stderr, f"train@{NAME}", "permission denied",
                   f"data/processed/{NAME}/meta.json", "chmod")
