"""The stages' plumbing (numpynet.stage_entry): a safe dataset name, outputs only inside the
project, programming errors that keep their traceback, and a stage that stops, with one line,
when it gets SIGTERM or the process that started it ends."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from numpynet.errors import ConfigError
from numpynet.stage_entry import run_stage, stage_arguments


def parse(tmp_path: Path, *argv: str):
    return stage_arguments("a stage", tmp_path, inputs=["data"], outputs=["out"], argv=list(argv))


def test_paths_inside_the_project_are_accepted(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = parse(tmp_path, "mnist", "--data", "data/x", "--out", "models/mnist")
    assert (args.dataset, args.data, args.out) == ("mnist", Path("data/x"), Path("models/mnist"))


@pytest.mark.parametrize("name", ["x;touch FILE;", "../../../somewhere", "a b", "1abc", ""])
def test_an_unsafe_dataset_name_is_refused(tmp_path, monkeypatch, name):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match="a letter followed by"):
        parse(tmp_path, name, "--data", "data/x", "--out", "models/x")


@pytest.mark.parametrize("out", ["../outside", "/tmp/elsewhere", ".", "models/../../outside"])
def test_an_output_outside_the_project_is_refused(tmp_path, monkeypatch, out):
    project = tmp_path / "project"
    project.mkdir()
    monkeypatch.chdir(project)
    with pytest.raises(ConfigError, match="outputs must lie inside the project"):
        parse(project, "mnist", "--data", "data/x", "--out", out)


def test_inputs_may_lie_anywhere(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert parse(tmp_path, "mnist", "--data", "/elsewhere/x", "--out", "o").data == Path("/elsewhere/x")


@pytest.mark.hostile
@pytest.mark.parametrize("error", [RuntimeError("bug"), OSError(errno.EINVAL, "Invalid argument"),
                                   KeyError("x"), ValueError("bug")])
def test_programming_errors_still_raise_with_their_traceback(error):
    def broken():
        raise error

    with pytest.raises(type(error)):
        run_stage(broken)


@pytest.mark.hostile
def test_a_programming_error_still_shows_its_traceback():
    def buggy_stage():
        return {}["a key no input can explain"]

    with pytest.raises(KeyError):
        run_stage(buggy_stage)


# --- stopping: SIGTERM, and a parent that ends -----------------------------------------------

SRC = Path(__file__).resolve().parents[1] / "src"
# A stage that runs until it is stopped; it says when it is running.
ENDLESS_STAGE = f"""
import sys, time
sys.path.insert(0, {str(SRC)!r})
from numpynet.stage_entry import run_stage

def main():
    print("running", flush=True)
    while True:
        time.sleep(0.01)

run_stage(main, name="endless")
"""
# Starts ENDLESS_STAGE (through `sh -c`, as DVC starts a stage, when asked) with its output in
# the files named, prints its PID, and waits.
LAUNCHER = """
import os, shlex, subprocess, sys, time
stage, out, err, through_shell = sys.argv[1:5]
under_dvc = sys.argv[5:] != ["by-hand"]
command = [sys.executable, "-c", stage]
if through_shell == "yes":
    # `; exit $?` keeps the shell in between whatever it does with a lone command (dash stays).
    command = ["/bin/sh", "-c", shlex.join(command) + "; exit $?"]
environment = {key: value for key, value in os.environ.items() if key != "DVC_STAGE"}
if under_dvc:
    environment["DVC_STAGE"] = "train@x"  # as DVC sets it for every stage command
child = subprocess.Popen(command, stdout=open(out, "w"), stderr=open(err, "w"), env=environment)
print(child.pid, flush=True)
time.sleep(600)
"""


def wait_for(condition, seconds: float, what: str):
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"waited {seconds} s for {what}"
        time.sleep(0.02)


def ended(pid: int) -> bool:
    """Whether process ``pid`` is gone or a zombie (ended, not yet reaped by its new parent)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] == b"Z"
    except FileNotFoundError:
        return True


def the_stage_process(tmp_path: Path) -> subprocess.Popen:
    out = tmp_path / "out.txt"
    process = subprocess.Popen([sys.executable, "-c", ENDLESS_STAGE], stdout=open(out, "w"),
                               stderr=subprocess.PIPE, text=True)
    wait_for(lambda: out.read_text() == "running\n", 30, "the stage to start")
    return process


@pytest.mark.hostile
def test_sigterm_stops_a_stage_like_ctrl_c_with_one_line(tmp_path):
    process = the_stage_process(tmp_path)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=30)
    assert process.returncode == 128 + signal.SIGTERM
    assert stderr == "interrupted by SIGTERM: nothing was written\n"


def test_ctrl_c_says_the_same_with_its_own_exit_status(tmp_path):
    process = the_stage_process(tmp_path)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=30)
    assert (process.returncode, stderr) == (130, "interrupted by SIGINT: nothing was written\n")


def children_of(pid: int) -> list[int]:
    """The processes whose parent is ``pid``, from /proc."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_bytes()
            except OSError:
                continue
            if int(stat.rsplit(b")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


@pytest.mark.hostile
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc (Linux)")
@pytest.mark.parametrize("through_shell", [False, True], ids=["started-directly", "through-sh-c"])
def test_a_stage_whose_starter_is_killed_stops_within_seconds(tmp_path, through_shell):
    """As when DVC is killed: nobody passes the signal on, so the stage must notice by itself.
    DVC starts a stage as `$SHELL -c <cmd>`, and dash (/bin/sh on Debian) stays in between."""
    out, err = tmp_path / "out.txt", tmp_path / "err.txt"
    launcher = subprocess.Popen(
        [sys.executable, "-c", LAUNCHER, ENDLESS_STAGE, str(out), str(err),
         "yes" if through_shell else "no"], stdout=subprocess.PIPE, text=True)
    try:
        child = int(launcher.stdout.readline())
        wait_for(lambda: out.exists() and out.read_text() == "running\n", 30, "the stage")
        stage = children_of(child)[0] if through_shell else child
    finally:
        launcher.kill()
        launcher.wait()
    started = time.monotonic()
    wait_for(lambda: ended(stage), 10, "the orphaned stage to stop")
    assert time.monotonic() - started < 5
    cause = (f"dvc (process {launcher.pid})" if through_shell
             else f"its parent process {launcher.pid}")
    assert err.read_text() == f"interrupted because {cause} ended: nothing was written\n"
    wait_for(lambda: ended(child), 10, "the shell to end after the stage")


@pytest.mark.hostile
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc (Linux)")
def test_a_stage_run_by_hand_outlives_the_shell_that_started_it(tmp_path):
    """`nohup python stages/train.py ... &` from a shell that then exits: the user's wish that it
    go on is kept; only a stage of DVC's (DVC_STAGE set) stops when its starter ends."""
    out, err = tmp_path / "out.txt", tmp_path / "err.txt"
    launcher = subprocess.Popen(
        [sys.executable, "-c", LAUNCHER, ENDLESS_STAGE, str(out), str(err), "no", "by-hand"],
        stdout=subprocess.PIPE, text=True)
    try:
        child = int(launcher.stdout.readline())
        wait_for(lambda: out.exists() and out.read_text() == "running\n", 30, "the stage")
    finally:
        launcher.kill()
        launcher.wait()
    try:
        time.sleep(3)  # three times the watch's period
        assert not ended(child) and err.read_text() == ""
    finally:
        os.kill(child, signal.SIGTERM)
    wait_for(lambda: ended(child), 10, "the stage to stop on SIGTERM")


@pytest.mark.hostile
def test_ctrl_c_while_a_stage_loads_its_modules_is_the_same_line_not_a_traceback(tmp_path):
    """Between stages/_bootstrap.py and run_stage, NumPy and matplotlib load for a second or two."""
    stages = Path(__file__).resolve().parents[1] / "stages"
    loading = (f"import os, signal, sys; sys.argv = [{str(stages / 'validate.py')!r}, '--help']; "
               f"sys.path.insert(0, {str(stages)!r}); import _bootstrap; "
               f"os.kill(os.getpid(), signal.SIGINT); import time; time.sleep(5)")
    result = subprocess.run([sys.executable, "-c", loading], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode in (-signal.SIGINT, 130)
    assert result.stderr == "interrupted by SIGINT: nothing was written\n"
