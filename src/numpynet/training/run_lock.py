"""One training run per checkpoint: a second run of the same checkpoint is refused while the
first is alive.

Two runs of one checkpoint would each resume from it, overwrite each other's epochs and write the
same model folder; it happens when a run outlives the ``dvc repro`` that started it and the next
``dvc repro`` starts another. The lock is ``fcntl.flock`` on ``<checkpoint>.lock`` beside the
checkpoint: the operating system releases it when its process ends in any way (kill -9
included), so a dead run never blocks the next one, and no stale lock needs clearing by hand.
The holder writes its PID into the file, for the refusal to name. (Windows has no ``flock``:
there the runs are not locked.)
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from numpynet.errors import NumpynetError

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None


class RunLocked(NumpynetError):
    """Another live process trains from the same checkpoint."""


def lock_file(checkpoint: Path | str) -> Path:
    """The lock file of ``checkpoint``: beside it, named after it."""
    checkpoint = Path(checkpoint)
    return checkpoint.with_name(f"{checkpoint.name}.lock")


@contextlib.contextmanager
def run_lock(checkpoint: Path | str) -> Iterator[None]:
    """Hold the lock of ``checkpoint`` for the block, or raise :class:`RunLocked` at once, naming
    the process that holds it, when another process does.

    The lock file is removed when the block ends, while it is still held.
    """
    if fcntl is None:
        yield
        return
    path = lock_file(checkpoint)
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = _acquire(path, checkpoint)
    try:
        os.ftruncate(descriptor, 0)
        os.write(descriptor, f"{os.getpid()}\n".encode("ascii"))
        yield
    finally:
        with contextlib.suppress(OSError):
            path.unlink()
        os.close(descriptor)


def _acquire(path: Path, checkpoint: Path | str) -> int:
    """An open descriptor of ``path``, locked by this process."""
    while True:
        descriptor = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(descriptor)
            os.close(descriptor)
            raise RunLocked(_refusal(checkpoint, holder)) from None
        except BaseException:
            os.close(descriptor)
            raise
        # A run that finished between the open and the lock removed the file it held: this lock
        # is then on a file nobody else will open. Only the file at the path counts.
        try:
            current = os.stat(path)
        except FileNotFoundError:
            current = None
        if current is not None and os.path.samestat(current, os.fstat(descriptor)):
            return descriptor
        os.close(descriptor)


def _holder(descriptor: int) -> int | None:
    """The PID the lock's holder wrote, or None before it has written it."""
    text = os.pread(descriptor, 32, 0).decode("ascii", errors="replace").strip()
    return int(text) if text.isdigit() else None


def _refusal(checkpoint: Path | str, holder: int | None) -> str:
    who = f"process {holder}" if holder is not None else "another process"
    stop = f"kill {holder}" if holder is not None else "stop it"
    return (
        f"{checkpoint} is in use: {who} is training from it now, and a second run would "
        f"overwrite its epochs and its model; wait until it ends, or stop it ({stop}: it keeps "
        f"its last finished epoch), then run the train stage again (dvc repro)"
    )
