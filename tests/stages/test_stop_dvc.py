"""Real `dvc repro` in the places and ways people stop it: SIGTERM to DVC during training leaves
no stage running behind it (DVC does not pass the signal on), and the pipeline runs in a git
repository without commits (a downloaded archive after `git init`) and outside git."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

from helpers.project import base_params, dvc, git, idx_dataset, make_dvc_project

pytestmark = pytest.mark.slow

NAME = "digits"  # the dataset of the mirror fixture (tests/conftest.py)
# Epochs of a good fraction of a second, so that DVC is stopped in the middle of training.
LONG_TRAINING = dict(epochs=6, hidden_sizes=[1024, 1024], normalization="batch")
SHORT_TRAINING = dict(epochs=2, hidden_sizes=[16])


def epochs_saved(repo: Path) -> int:
    """Epochs done in the checkpoint (0 while there is none)."""
    try:
        with np.load(repo / "checkpoints" / f"{NAME}.npz", allow_pickle=False) as archive:
            return json.loads(archive["record"].tobytes())["epochs_done"]
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        return 0


def session_processes(session: int) -> list[str]:
    """The live processes of ``session`` (zombies, ended but not yet reaped, do not count), as
    ``pid name``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_bytes()
        except OSError:
            continue
        name, rest = stat[stat.index(b"(") + 1 : stat.rindex(b")")], stat[stat.rindex(b")") + 2 :]
        fields = rest.split()
        if fields[0] != b"Z" and int(fields[3]) == session:
            found.append(f"{entry.name} {name.decode(errors='replace')}")
    return found


@pytest.mark.hostile
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc (Linux)")
@pytest.mark.parametrize("shell", ["/bin/sh", "/bin/bash"])
def test_sigterm_to_dvc_repro_leaves_no_stage_running_and_the_next_run_resumes(
    tmp_path, mirror, environment, shell
):
    """DVC runs the stage as `$SHELL -c <cmd>`: bash replaces itself with the stage, dash (/bin/sh
    on Debian) stays between them. Either way the stage must stop once DVC is gone."""
    if not Path(shell).exists():
        pytest.skip(f"no {shell}")
    env = {**environment, "SHELL": shell}
    repo = make_dvc_project(tmp_path / "project",
                            base_params({NAME: idx_dataset(mirror[1])}, **LONG_TRAINING), env)
    log = tmp_path / "dvc.log"
    with open(log, "w") as output:
        # Its own session, so that every process it starts can be found afterwards.
        repro = subprocess.Popen([sys.executable, "-m", "dvc", "repro"], cwd=repo, env=env,
                                 stdout=output, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            deadline = time.monotonic() + 300
            while epochs_saved(repo) < 1:
                assert repro.poll() is None, log.read_text()
                assert time.monotonic() < deadline
                time.sleep(0.02)
        finally:
            repro.terminate()  # SIGTERM to DVC alone, as `kill <pid>` or a job scheduler sends it
            repro.wait(timeout=60)
    stopped = time.monotonic()
    while session_processes(repro.pid):
        assert time.monotonic() - stopped < 10, (
            f"still running after DVC ended: {session_processes(repro.pid)}\n{log.read_text()}")
        time.sleep(0.05)
    saved = epochs_saved(repo)
    assert 1 <= saved < LONG_TRAINING["epochs"], log.read_text()
    # dash stays between DVC and the stage: the stage watches DVC, its shell's parent.
    cause = (f"dvc (process {repro.pid})" if shell == "/bin/sh"
             else f"its parent process {repro.pid}")
    assert log.read_text().rstrip().splitlines()[-1] == (
        f"interrupted because {cause} ended: the last finished epoch is saved in checkpoints/"
        f"{NAME}.npz: dvc repro resumes from it; no model was written")

    resumed = dvc("repro", cwd=repo, env=env)
    assert f"resuming after epoch {saved}" in resumed.stdout + resumed.stderr
    assert (repo / "metrics" / f"{NAME}.json").is_file()


@pytest.mark.hostile
@pytest.mark.parametrize("where", ["git-without-commits", "no-git"])
def test_the_pipeline_runs_in_a_repository_without_commits_and_outside_git(
    tmp_path, mirror, environment, where
):
    """A downloaded archive after `git init` has no commit, where DVCLive asked git for one and
    ended training with `SCMError: Empty git repo`; outside git (`dvc init --no-scm`) too."""
    repo = make_dvc_project(tmp_path / "project",
                            base_params({NAME: idx_dataset(mirror[1])}, **SHORT_TRAINING),
                            environment)
    shutil.rmtree(repo / ".git")
    if where == "git-without-commits":
        git("init", "-q", "-b", "main", cwd=repo, env=environment)
    else:
        dvc("config", "core.no_scm", "true", cwd=repo, env=environment)
    ran = dvc("repro", cwd=repo, env=environment)
    printed = ran.stdout + ran.stderr
    assert "Traceback" not in printed and "SCMError" not in printed, printed
    assert json.loads((repo / "metrics" / f"{NAME}.json").read_text())[NAME]["accuracy"] > 0
    assert (repo / "dvclive" / NAME / "plots" / "metrics" / "val" / "accuracy.tsv").is_file()
    assert dvc("status", cwd=repo, env=environment).stdout.strip() == (
        "Data and pipelines are up to date.")
