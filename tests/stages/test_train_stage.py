"""The train stage chooses its model from the validation split and never reads the test split;
its whitening is folded into the saved model. Damaged processed data is refused naming the file
and the fix, a damaged, altered or special (FIFO, /dev/zero) checkpoint is discarded with one line
and training starts afresh, and an unreadable input is named."""

from __future__ import annotations

import errno
import json
import os
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
    tree_bytes,
    write_data,
)
from helpers.special_files import SPECIAL_KINDS, make_special, within
from helpers.stages import assert_refused, run_stage_in_process
from numpynet.data.processed import read_split, write_processed
from numpynet.evaluation import loss_and_accuracy, predict_logits
from numpynet.files import save_npz
from numpynet.model_folder import WEIGHTS_FILE, load_model
from numpynet.training.checkpoints import CheckpointStore


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


def _finished_run_with_its_checkpoint(project: Path, monkeypatch) -> Path:
    """Run the train stage once, keeping the checkpoint it removes at the end: the last epoch's
    state, with the fingerprint of this very run."""
    with monkeypatch.context() as patch:
        patch.setattr(CheckpointStore, "remove", lambda self: None)
        code, stderr = run_stage_in_process(project, "train")
    assert code == 0, stderr
    checkpoint = project / "checkpoints" / f"{NAME}.npz"
    assert checkpoint.is_file()
    return checkpoint


@pytest.mark.hostile
@pytest.mark.parametrize("change, named", [
    ({"epochs_done": 10000}, "epochs_done is 10000, but this run has 2 epochs"),
    ({"best_epoch": -1, "best_score": 0.5},
     "it keeps a best epoch, but this run keeps the last one"),
])
def test_the_train_stage_starts_afresh_from_an_altered_checkpoint(tmp_path, monkeypatch, change,
                                                                   named):
    project = tiny_project(tmp_path / "p")
    write_data(project)
    checkpoint = _finished_run_with_its_checkpoint(project, monkeypatch)
    fresh = tree_bytes(project / "models" / NAME)
    arrays = dict(np.load(checkpoint))
    record = {**json.loads(arrays["record"].tobytes()), **change}  # the fingerprint kept
    arrays["record"] = np.frombuffer(json.dumps(record).encode(), np.uint8)
    save_npz(checkpoint, arrays)
    code, stderr = run_stage_in_process(project, "train")
    assert code == 0, stderr
    lines = [line for line in stderr.splitlines() if "checkpoint" in line]
    assert lines == [f"starting from epoch 1: discarded the checkpoint checkpoints/{NAME}.npz, "
                     f"as its content is not as numpynet writes it ({named})"], stderr
    assert tree_bytes(project / "models" / NAME) == fresh  # trained afresh: the same model
    assert not checkpoint.exists()


@pytest.mark.hostile
@pytest.mark.parametrize("kind", SPECIAL_KINDS)
def test_the_train_stage_discards_a_checkpoint_that_is_no_regular_file(tmp_path, kind):
    project = tiny_project(tmp_path / "p")
    write_data(project)
    checkpoint = make_special(project / "checkpoints" / f"{NAME}.npz", kind)
    code, stderr = within(lambda: run_stage_in_process(project, "train"))
    assert code == 0, stderr
    assert (f"discarded the checkpoint checkpoints/{NAME}.npz, as it cannot be read: "
            f"checkpoints/{NAME}.npz") in stderr and "not a regular file" in stderr, stderr
    assert (project / "models" / NAME / WEIGHTS_FILE).is_file()
    assert not os.path.lexists(checkpoint)


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
    # No model and no checkpoint; the run lock, taken before anything is read, made the
    # checkpoints/ folder and removed its lock file.
    assert not (project / "models").exists()
    assert not list((project / "checkpoints").iterdir())


@pytest.mark.hostile
def test_an_unreadable_input_names_the_file(tmp_path, monkeypatch):
    project = tiny_project(tmp_path / "p")
    write_data(project)
    real = os.open  # records are opened with os.open (numpynet.files.open_regular_file)

    def forbidden(path, *args, **kwargs):
        if Path(path).name == "meta.json":
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(os, "open", forbidden)
    code, stderr = run_stage_in_process(project, "train")
    assert_refused(code, stderr, f"train@{NAME}", "permission denied",
                   f"data/processed/{NAME}/meta.json", "chmod")


@pytest.mark.hostile
def test_a_checkpoint_that_diverges_on_resume_is_removed_so_the_next_run_starts_afresh(
    tmp_path, monkeypatch
):
    """Weights made huge but finite pass every check of the checkpoint; resuming is exact, so
    every rerun from it would diverge again: the diverged run removes it."""
    project = tiny_project(tmp_path / "p")
    write_data(project)
    save = CheckpointStore.save

    def save_then_stop(self, *args, **kwargs):
        save(self, *args, **kwargs)
        raise KeyboardInterrupt  # stopped after the first epoch, its checkpoint kept

    with monkeypatch.context() as patch:
        patch.setattr(CheckpointStore, "save", save_then_stop)
        code, _ = run_stage_in_process(project, "train")
    checkpoint = project / "checkpoints" / f"{NAME}.npz"
    assert code == 130 and checkpoint.is_file()
    arrays = dict(np.load(checkpoint))
    for name in [name for name in arrays if name.startswith("model:") and "weight" in name]:
        arrays[name] = arrays[name] * np.float32(1e30)  # the fingerprint kept
    save_npz(checkpoint, arrays)
    code, stderr = run_stage_in_process(project, "train")
    assert_refused(code, stderr, "training loss became", "lower train.lr")
    assert not checkpoint.exists()
    code, stderr = run_stage_in_process(project, "train")
    assert code == 0, stderr
    assert (project / "models" / NAME / WEIGHTS_FILE).is_file()
