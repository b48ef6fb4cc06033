"""Resume, proven with real `dvc repro`: a run stopped mid-training by a signal to its process
group continues at the next `dvc repro` and ends with an uninterrupted run's bytes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import zipfile

import numpy as np
import pytest

from helpers.project import (
    base_params,
    dvc,
    idx_dataset,
    make_built_dvc_project,
    make_dvc_project,
    tree_digest,
    write_params,
)

pytestmark = pytest.mark.slow

NAME = "digits"  # the dataset of the mirror fixture (tests/conftest.py)
# Wide enough that an epoch takes a good fraction of a second (time to stop it between two),
# with every ingredient that keeps state across epochs: dropout and augmentation draws, batch
# normalization statistics, warmup and cosine schedule, AdamW moments, the best epoch kept.
TRAIN = dict(epochs=8, hidden_sizes=[1536, 1536], normalization="batch", dropout=0.3,
             augment_shift=1, label_smoothing=0.1, warmup_epochs=1, select_by="val_accuracy")
OUTPUTS = ("models", "metrics", "plots", "dvclive")


@pytest.fixture(scope="module")
def params(mirror):
    return base_params({NAME: idx_dataset(mirror[1])}, **TRAIN)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, params, environment):
    repo = tmp_path_factory.mktemp("whole") / "project"
    make_built_dvc_project(repo, params, environment)
    return tree_digest(*(repo / name for name in OUTPUTS))


def checkpointed_epochs(path) -> int:
    """Epochs done in the checkpoint at ``path`` (0 while there is none)."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            return json.loads(archive["record"].tobytes())["epochs_done"]
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        return 0


def stop_mid_training(repo, environment, sig, command=("repro",), meanwhile=None):
    """Start `dvc <command>`; once two epochs are saved, call ``meanwhile()`` (if given), then
    send ``sig`` to the whole process group. Return the exit status and what dvc printed."""
    checkpoint = repo / "checkpoints" / f"{NAME}.npz"
    with open(repo.parent / "first.log", "w+") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "dvc", *command], cwd=repo, env=environment,
            stdout=output, stderr=subprocess.STDOUT, start_new_session=True,
        )
        try:
            deadline = time.monotonic() + 300
            while checkpointed_epochs(checkpoint) < 2:
                assert process.poll() is None, "dvc ended before it could be stopped"
                assert time.monotonic() < deadline
                time.sleep(0.02)
            if meanwhile is not None:
                meanwhile()
        finally:
            os.killpg(process.pid, sig)
            status = process.wait(timeout=120)
        output.seek(0)
        return status, output.read()


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL], ids=["ctrl-c", "kill"])
def test_a_stopped_repro_resumes_to_the_bytes_of_an_uninterrupted_run(
    tmp_path, params, environment, uninterrupted, sig
):
    repo = make_dvc_project(tmp_path / "project", params, environment)
    status, printed = stop_mid_training(repo, environment, sig)
    assert status != 0, printed
    checkpoint = repo / "checkpoints" / f"{NAME}.npz"
    saved = checkpointed_epochs(checkpoint)
    assert 2 <= saved < TRAIN["epochs"], printed
    if sig == signal.SIGINT:
        assert "dvc repro resumes from it" in printed

    resumed = dvc("repro", cwd=repo, env=environment)
    assert f"resuming after epoch {saved}" in resumed.stdout + resumed.stderr
    assert tree_digest(*(repo / name for name in OUTPUTS)) == uninterrupted
    assert not checkpoint.exists()  # a finished run cleans up
    assert dvc("status", cwd=repo, env=environment).stdout.strip() == (
        "Data and pipelines are up to date."
    )


def test_changed_params_discard_the_checkpoint_and_train_from_the_start(
    tmp_path, params, environment
):
    repo = make_dvc_project(tmp_path / "project", params, environment)
    stop_mid_training(repo, environment, signal.SIGINT)
    write_params(repo, {**params, "train": {**params["train"], "lr": 0.002}})
    rerun = dvc("repro", cwd=repo, env=environment)
    printed = rerun.stdout + rerun.stderr
    assert "discarded the checkpoint" in printed and "parameters differ" in printed
    assert "resuming" not in printed and "epoch   1/8" in printed
    assert not (repo / "checkpoints" / f"{NAME}.npz").exists()


def test_exp_show_lists_the_progress_while_exp_run_trains(tmp_path, params, environment):
    repo = make_dvc_project(tmp_path / "project", params, environment)
    seen = []

    def look():
        table = dvc("exp", "show", "--json", cwd=repo, env=environment)
        workspace = json.loads(table.stdout)[0]["data"]["metrics"]
        seen.append(workspace[f"dvclive/{NAME}/metrics.json"]["data"][NAME]["epoch"])

    stop_mid_training(repo, environment, signal.SIGINT, ("exp", "run"), meanwhile=look)
    assert 2 <= seen[0] < TRAIN["epochs"]
