"""Files that are no regular files, put where numpynet reads one back, and a guard against a read
that never returns.

A FIFO with no writer makes a plain ``open`` wait forever, and ``/dev/zero`` never ends: a reader
that trusts either hangs or runs out of memory. :func:`make_special` puts one of
:data:`SPECIAL_KINDS` at a path (the link kinds through a symbolic link, as a careless ``ln -s``
would); :func:`within` runs a call in a thread and fails the test, instead of hanging it, when
the call does not return in time.
"""

from __future__ import annotations

import functools
import os
import stat
import tempfile
import threading
from pathlib import Path
from typing import Callable, TypeVar

SPECIAL_KINDS = ("fifo", "dev_zero", "link_to_dev_zero", "link_to_fifo")
# Refusing a special file takes a system call or two; this leaves room for a slow, busy machine.
SECONDS = 10

Result = TypeVar("Result")


def make_special(path: Path, kind: str) -> Path:
    """Replace whatever is at ``path`` by a special file of ``kind`` (one of SPECIAL_KINDS)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if os.path.lexists(path):
        path.unlink()
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "dev_zero":
        # The device itself where this process may make one (root, outside a locked-down
        # container); a link to it elsewhere.
        if _can_make_devices():
            os.mknod(path, 0o666 | stat.S_IFCHR, os.makedev(*_DEV_ZERO))
        else:
            path.symlink_to("/dev/zero")
    elif kind == "link_to_dev_zero":
        path.symlink_to("/dev/zero")
    elif kind == "link_to_fifo":
        target = path.parent / f"{path.name}.fifo-target"
        if os.path.lexists(target):
            target.unlink()
        os.mkfifo(target)
        path.symlink_to(target)
    else:
        raise ValueError(f"unknown kind {kind!r}")
    return path


_DEV_ZERO = (os.major(os.stat("/dev/zero").st_rdev), os.minor(os.stat("/dev/zero").st_rdev))


@functools.cache
def _can_make_devices() -> bool:
    """Whether this process may create a device node."""
    with tempfile.TemporaryDirectory() as folder:
        try:
            os.mknod(Path(folder) / "zero", 0o600 | stat.S_IFCHR, os.makedev(*_DEV_ZERO))
        except OSError:
            return False
    return True


def within(call: Callable[[], Result], seconds: float = SECONDS) -> Result:
    """``call()``'s result (or its exception, raised again here), failing the test when it has
    not returned after ``seconds``: a read that waits on a FIFO must not hang the suite."""
    outcome: dict = {}

    def run() -> None:
        try:
            outcome["result"] = call()
        except BaseException as error:  # handed to the test's thread below
            outcome["error"] = error

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        raise AssertionError(f"still reading after {seconds} s: it waits on a FIFO or reads an "
                             f"endless device")
    if "error" in outcome:
        raise outcome["error"]
    return outcome["result"]
