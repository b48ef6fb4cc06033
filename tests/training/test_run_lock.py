"""One training run per checkpoint (numpynet.training.run_lock): refused while another process
holds the lock, free again however that process ended, kill -9 included."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

from numpynet.training.run_lock import RunLocked, lock_file, run_lock

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="Windows has no flock")

SRC = Path(__file__).resolve().parents[2] / "src"
# Holds the lock of the checkpoint argv[1], says so, and waits to be killed.
HOLDER = f"""
import sys, time
sys.path.insert(0, {str(SRC)!r})
from numpynet.training.run_lock import run_lock
with run_lock(sys.argv[1]):
    print("locked", flush=True)
    time.sleep(600)
"""


def holding(checkpoint: Path) -> subprocess.Popen:
    process = subprocess.Popen([sys.executable, "-c", HOLDER, str(checkpoint)],
                               stdout=subprocess.PIPE, text=True)
    assert process.stdout.readline() == "locked\n"
    return process


def test_a_lock_held_by_a_live_process_is_refused_naming_it(tmp_path):
    checkpoint = tmp_path / "checkpoints" / "digits.npz"
    holder = holding(checkpoint)
    try:
        with pytest.raises(RunLocked, match=rf"process {holder.pid} is training from it.*"
                                            rf"kill {holder.pid}"):
            with run_lock(checkpoint):
                pass
    finally:
        holder.terminate()
        holder.wait()


@pytest.mark.hostile
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["kill-9", "sigterm"])
def test_the_lock_of_a_process_that_died_is_free(tmp_path, sig):
    checkpoint = tmp_path / "digits.npz"
    holder = holding(checkpoint)
    holder.send_signal(sig)
    holder.wait()
    with run_lock(checkpoint):  # a file a killed holder left, with its PID, blocks nothing
        assert lock_file(checkpoint).read_text().strip().isdigit()
    assert not lock_file(checkpoint).exists()


def test_the_lock_file_lies_beside_the_checkpoint_and_goes_with_the_run(tmp_path):
    checkpoint = tmp_path / "checkpoints" / "digits.npz"
    with run_lock(checkpoint):
        assert lock_file(checkpoint) == tmp_path / "checkpoints" / "digits.npz.lock"
        with pytest.raises(RunLocked):  # another descriptor, even in this process
            with run_lock(checkpoint):
                pass
    assert list(checkpoint.parent.iterdir()) == []
