"""The train stage stopped: SIGTERM stops it as Ctrl-C does, keeping the checkpoint of the last
finished epoch and saying so in one line, and a second run of a checkpoint in use is refused
while the first lives (numpynet.training.run_lock). Real stage processes, no DVC (for a real
`dvc repro` killed mid-training see tests/stages/test_stop_dvc.py)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

from helpers.project import NAME, make_stage_project, tiny_params, write_data
from helpers.stages import STAGE_ARGS, assert_refused, run_stage_process

CHECKPOINT = Path("checkpoints") / f"{NAME}.npz"


def endless_training(root: Path) -> Path:
    """A project (code included, for stage processes) whose training never ends by itself."""
    project = make_stage_project(root, tiny_params(epochs=100000, hidden_sizes=[32]))
    write_data(project, counts=(400, 40, 40))
    return project


def start_training(project: Path) -> subprocess.Popen:
    environment = {key: value for key, value in os.environ.items()
                   if not key.startswith("NUMPYNET_")}
    return subprocess.Popen(
        [sys.executable, str(project / "stages" / "train.py"), *STAGE_ARGS["train"]],
        cwd=project, env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def epochs_saved(project: Path) -> int:
    """Epochs done in the project's checkpoint (0 while there is none)."""
    try:
        with np.load(project / CHECKPOINT, allow_pickle=False) as archive:
            return json.loads(archive["record"].tobytes())["epochs_done"]
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        return 0


def wait_for(condition, process: subprocess.Popen, what: str, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if process.poll() is not None:
            pytest.fail(f"the training ended before {what}:\n{process.communicate()[1]}")
        assert time.monotonic() < deadline, f"waited {seconds} s for {what}"
        time.sleep(0.02)


@pytest.mark.hostile
def test_sigterm_stops_training_like_ctrl_c_keeping_the_last_epoch(tmp_path):
    project = endless_training(tmp_path / "p")
    training = start_training(project)
    try:
        wait_for(lambda: epochs_saved(project) >= 2, training, "two epochs were saved")
    finally:
        training.send_signal(signal.SIGTERM)
        _, stderr = training.communicate(timeout=60)
    assert training.returncode == 128 + signal.SIGTERM, stderr
    assert "Traceback" not in stderr
    assert stderr.splitlines()[-1] == (
        f"interrupted by SIGTERM: the last finished epoch is saved in {CHECKPOINT}: dvc repro "
        f"resumes from it; no model was written")
    assert epochs_saved(project) >= 2
    assert not (project / "models").exists()


@pytest.mark.hostile
def test_a_second_run_of_the_same_checkpoint_is_refused_while_the_first_lives(tmp_path):
    project = endless_training(tmp_path / "p")
    lock = project / "checkpoints" / f"{NAME}.npz.lock"
    first = start_training(project)
    try:
        wait_for(lambda: epochs_saved(project) >= 1, first, "an epoch was saved")
        assert lock.read_text() == f"{first.pid}\n"
        second = run_stage_process(project, "train", *STAGE_ARGS["train"], timeout=120)
        saved = epochs_saved(project)
        assert first.poll() is None, "the first run must go on"
    finally:
        first.send_signal(signal.SIGTERM)
        first.communicate(timeout=60)
    assert_refused(second.returncode, second.stderr, str(CHECKPOINT), f"process {first.pid}",
                   f"kill {first.pid}", "dvc repro", one_line=True)
    # The refused run touched nothing: the first run's checkpoint was neither discarded nor
    # restarted, and no model was written.
    assert epochs_saved(project) >= saved >= 1
    assert not (project / "models").exists()
    assert not lock.exists()  # the first run removed its lock file as it stopped
