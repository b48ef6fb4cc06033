"""How a stage stops: Ctrl-C, SIGTERM and the end of the process that started it all stop it the
same way, never in the middle of replacing its outputs, and its last line says what it left.

* :func:`stoppable` (around a whole stage, see :func:`numpynet.stage_entry.run_stage`) turns
  SIGTERM into :class:`Stopped`, a ``KeyboardInterrupt``, so that every ``except
  KeyboardInterrupt`` and ``finally`` runs for it as for Ctrl-C; and it watches the parent. DVC
  killed by SIGTERM does not pass the signal on: its stage would go on alone, writing outputs
  that the next ``dvc repro`` is writing too. A thread checks every second whether the process
  that started the stage is still its parent (and, under DVC, whether DVC still is its shell's),
  and stops the stage as SIGTERM would.
* :func:`signals_held` keeps SIGINT and SIGTERM waiting while :mod:`numpynet.files` renames
  outputs into place, so that a stop lands before the first rename or after the last.
* :func:`note_written` records each output renamed into place, so that :func:`stop_message`
  says what was written, or that nothing was.

Imported before NumPy is loaded (see stages/_bootstrap.py): nothing here may import it.
"""

from __future__ import annotations

import _thread
import contextlib
import os
import signal
import threading
from collections.abc import Iterator

# What stops a stage. Not SIGHUP: nohup sets it to be ignored, and that wish is kept.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
# How often the parent is looked at: a stage outlives DVC by about this long.
PARENT_CHECK_SECONDS = 1.0

_written: list[str] = []
# The process that started this one, as it was when the stage's code began to load: a parent
# that ends while NumPy loads is caught too.
_PARENT_AT_START = os.getppid()


class Stopped(KeyboardInterrupt):
    """A stop other than Ctrl-C: SIGTERM, or the parent process gone; ``cause`` says which
    (``"by SIGTERM"``, ``"because its parent process 4321 ended"``).

    A ``KeyboardInterrupt``, so that whatever handles Ctrl-C (the train stage's note on its
    checkpoint) handles it too. A stage may set ``report`` on any ``KeyboardInterrupt`` it lets
    through: what it leaves behind, printed in place of the list of outputs written.
    """

    def __init__(self, cause: str, signum: int = signal.SIGTERM):
        super().__init__(cause)
        self.cause = cause
        self.signum = signum


def note_written(name: str) -> None:
    """Record that the output ``name`` was renamed into place, complete."""
    if name not in _written:  # a checkpoint is rewritten every epoch: named once
        _written.append(name)


def written() -> list[str]:
    """The outputs renamed into place since the stage started, in order."""
    return list(_written)


def stop_message(stop: KeyboardInterrupt) -> str:
    """The line a stopped stage prints last: what stopped it, and what it wrote, or its own
    ``report`` of what it leaves behind."""
    cause = stop.cause if isinstance(stop, Stopped) else "by SIGINT"
    report = getattr(stop, "report", None)
    if report is None:
        names = written()
        if not names:
            report = "nothing was written"
        else:
            listed = names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"
            report = f"{listed} {'was' if len(names) == 1 else 'were'} written in full first"
    return f"interrupted {cause}: {report}"


def exit_status(stop: KeyboardInterrupt) -> int:
    """The shell's convention for a process ended by a signal: 128 + its number."""
    return 128 + (stop.signum if isinstance(stop, Stopped) else signal.SIGINT)


@contextlib.contextmanager
def signals_held() -> Iterator[None]:
    """Hold SIGINT and SIGTERM until the block ends, then deliver the first that came.

    Python's handlers, not the signal mask, are switched: a process-wide signal may reach any
    thread (OpenBLAS has its own), and Python runs its handler in the main thread whichever
    thread received it. Outside the main thread, where handlers cannot be set, nothing is held.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    arrived: list[int] = []
    previous: dict[int, object] = {}
    try:
        for signum in STOP_SIGNALS:
            # An ignored signal stays ignored; one set outside Python (None) is left alone.
            if signal.getsignal(signum) not in (signal.SIG_IGN, None):
                previous[signum] = signal.signal(signum, lambda number, _: arrived.append(number))
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        if arrived:
            # Delivered as it would have been: Ctrl-C's KeyboardInterrupt, a stage's Stopped, or
            # the default action where nothing else was set.
            signal.raise_signal(arrived[0])


@contextlib.contextmanager
def stoppable() -> Iterator[None]:
    """Run the block as a stage: SIGTERM and, under DVC, the end of the parent raise
    :class:`Stopped` in the main thread, and :func:`written` starts empty. Everything is put back
    afterwards."""
    global _lost_parent
    _written.clear()
    _lost_parent = None
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGTERM)
    if previous == signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _stop_on_sigterm)
    # Only under DVC (which sets DVC_STAGE), the one starter that leaves its stage running when it
    # is killed; a stage run by hand under nohup or in the background must outlive its shell.
    watch = _ParentWatch() if "DVC_STAGE" in os.environ else None
    if watch is not None:
        watch.start()
    try:
        yield
    finally:
        if watch is not None:
            watch.finish()
        if previous == signal.SIG_DFL:
            signal.signal(signal.SIGTERM, previous)


def _stop_on_sigterm(signum, frame) -> None:
    raise Stopped(_lost_parent or "by SIGTERM", signum)


# Set by the watch before it sends SIGTERM, so that the stop names its real cause.
_lost_parent: str | None = None


class _ParentWatch(threading.Thread):
    """Sends the main thread SIGTERM once the process that started this one is no longer its
    parent (it ended; this process was handed to init or a subreaper)."""

    def __init__(self):
        super().__init__(name="numpynet-parent-watch", daemon=True)
        self.parent = _PARENT_AT_START
        self.shell_parent = _dvc_shell_parent(self.parent)
        self.done = threading.Event()

    def run(self) -> None:
        global _lost_parent
        while not self.done.wait(PARENT_CHECK_SECONDS):
            lost = self.lost()
            if lost:
                _lost_parent = lost
                if hasattr(signal, "pthread_kill"):
                    # A real signal to the main thread also cuts short a wait it is blocked in.
                    signal.pthread_kill(threading.main_thread().ident, signal.SIGTERM)
                else:  # Windows
                    _thread.interrupt_main(signal.SIGTERM)
                return

    def lost(self) -> str | None:
        """What ended, or None while the parents are in place."""
        if os.getppid() != self.parent:
            return f"because its parent process {self.parent} ended"
        if self.shell_parent is not None and _parent_of(self.parent) != self.shell_parent:
            return f"because dvc (process {self.shell_parent}) ended"
        return None

    def finish(self) -> None:
        self.done.set()
        self.join()


def _dvc_shell_parent(parent: int) -> int | None:
    """The parent of ``parent`` when ``parent`` is the shell DVC runs a stage command in, else
    None (also where /proc cannot tell).

    DVC runs ``$SHELL -c <cmd>``. bash and zsh replace themselves with the command, but dash
    (/bin/sh on Debian and Ubuntu) stays and waits: when DVC ends, that shell is what stays this
    process's parent, so DVC itself must be watched one level up.
    """
    if "DVC_STAGE" not in os.environ:
        return None
    try:
        with open(f"/proc/{parent}/cmdline", "rb") as f:
            arguments = f.read().split(b"\0")
    except OSError:
        return None
    if arguments and arguments[-1] == b"":
        arguments.pop()
    if len(arguments) < 3 or arguments[-2] != b"-c":
        return None
    return _parent_of(parent)


def _parent_of(pid: int) -> int | None:
    """The parent process of ``pid``, from /proc (None when ``pid`` is gone)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return None
    # "pid (name) state ppid ...": the name may hold spaces and parentheses, so split after it.
    return int(stat[stat.rindex(b")") + 2 :].split()[1])
