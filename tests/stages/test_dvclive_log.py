"""The stages' DVCLive log (stages/_dvclive_log.py): no NaN or infinity in the training log, and
a log written in a git repository without commits."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest

from helpers.project import NAME, PROJECT, dvc_environment
from numpynet.errors import OutputError


@pytest.mark.hostile
def test_the_training_log_refuses_a_non_finite_value(tmp_path):
    sys.path.insert(0, str(PROJECT / "stages"))
    try:
        from _dvclive_log import LiveLogger
    finally:
        sys.path.pop(0)
    logger = LiveLogger(tmp_path / "dvclive" / NAME, NAME)
    logger.log_epoch(3, {"epoch": 1, "train_loss": 1.0, "train_accuracy": 0.5, "val_loss": 1.0,
                         "val_accuracy": 0.5})
    summary = (tmp_path / "dvclive" / NAME / "metrics.json").read_bytes()
    with pytest.raises(OutputError, match=r"val/loss = nan .*metrics\.json"):
        logger.log_epoch(6, {"epoch": 2, "train_loss": 1.0, "train_accuracy": 0.5,
                             "val_loss": math.nan, "val_accuracy": 0.5})
    with pytest.raises(OutputError, match="train/batch_loss = inf"):
        logger.log_step(7, 0.1, math.inf)
    assert (tmp_path / "dvclive" / NAME / "metrics.json").read_bytes() == summary
    assert json.loads(summary)  # strict JSON still


@pytest.mark.hostile
def test_the_training_log_is_written_in_a_git_repository_without_commits(tmp_path, monkeypatch):
    """As DVC runs the train stage in a downloaded archive after `git init` and `dvc init`:
    DVCLive 3.49 asked git for the current commit and failed with `SCMError: Empty git repo`."""
    sys.path.insert(0, str(PROJECT / "stages"))
    try:
        from _dvclive_log import LiveLogger
    finally:
        sys.path.pop(0)
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    subprocess.run([sys.executable, "-m", "dvc", "init", "-q"], cwd=tmp_path, check=True,
                   env=dvc_environment())
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DVC_ROOT", str(tmp_path))  # set by DVC for the commands it runs
    logger = LiveLogger(tmp_path / "dvclive" / NAME, NAME)
    logger.log_step(1, 0.1, 2.0)
    logger.log_epoch(1, {"epoch": 1, "train_loss": 1.0, "train_accuracy": 0.5, "val_loss": 1.0,
                         "val_accuracy": 0.5})
    assert json.loads((tmp_path / "dvclive" / NAME / "metrics.json").read_text())[NAME] == {
        "epoch": 1, "val_accuracy": 0.5}
