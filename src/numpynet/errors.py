"""Errors a user can act on.

Every error raised for bad input (a corrupt download, a malformed file, a wrong parameter, a
diverging loss) derives from :class:`NumpynetError`. Its message names the problem and the fix;
the stage entry points print it without a traceback and exit non-zero.

A few ``OSError`` codes are problems of the machine, not of numpynet or its inputs (a full disk,
a read-only or forbidden folder): :func:`environment_problem` turns them into an
:class:`OutputError` naming the path and the fix. Any other ``OSError`` stays a bug's traceback.
"""

from __future__ import annotations

import errno
import os


class NumpynetError(Exception):
    """Base class for errors caused by input or configuration, not by a bug."""


class ConfigError(NumpynetError):
    """``params.yaml`` holds an unknown key, a wrong type or an out-of-range value."""


class DownloadError(NumpynetError):
    """No source delivered a file whose content matches its pinned checksum."""


class DataFormatError(NumpynetError):
    """A data file is malformed: bad magic number, truncated, inconsistent sizes."""


class TrainingDiverged(NumpynetError):
    """The loss became NaN or infinite."""


class OutputError(NumpynetError):
    """An output cannot be written: the disk is full or not writable, or the output would hold a
    NaN or infinite number. The previous output, if any, is left as it was."""


# errno -> (what happened, what to do). Only codes that say the machine is at fault: a code that
# may also mean a bug (EINVAL, EBADF, ENOENT of a path the code made up) keeps its traceback.
_ENVIRONMENT_ERRNOS = {
    errno.ENOSPC: ("no space left on the device", "free disk space (df -h shows where)"),
    errno.EDQUOT: ("disk quota exceeded", "free space within your quota or ask for a larger one"),
    errno.EFBIG: ("the file is too large for its file system", "put the project on a file "
                  "system that holds large files"),
    errno.EROFS: ("the file system is read-only", "run the project in a writable folder"),
    errno.EACCES: ("permission denied", "fix the permissions of the file and its folder "
                   "(ls -ld; chmod u+rwx on the folder, u+rw on the file)"),
    errno.EPERM: ("operation not permitted", "fix the file's permissions or attributes "
                  "(lsattr; chattr -i)"),
    errno.EIO: ("input/output error", "check the disk or network file system (dmesg)"),
    errno.EISDIR: ("a folder stands where a file belongs", "move that folder away"),
    errno.ENOTDIR: ("a file stands where a folder belongs", "move that file away"),
}


def environment_problem(error: BaseException) -> tuple[str, str] | None:
    """``(what happened, the fix)`` when ``error`` is an ``OSError`` of the machine, else None."""
    if not isinstance(error, OSError):
        return None
    if error.errno == errno.EFBIG:
        limit = _file_size_limit()
        if limit is not None:
            # The process's own limit, not the file system, is what a file hits first here.
            return (f"the file is larger than this process may write (a file-size limit of "
                    f"{limit:,} bytes, set with ulimit -f)",
                    "raise the limit (ulimit -f unlimited) in the shell that runs it")
    return _ENVIRONMENT_ERRNOS.get(error.errno)


def _file_size_limit() -> int | None:
    """The process's file-size limit in bytes (RLIMIT_FSIZE), or None when there is none."""
    try:
        import resource
    except ImportError:  # not on Windows, which has no such limit
        return None
    soft, _ = resource.getrlimit(resource.RLIMIT_FSIZE)
    return None if soft == resource.RLIM_INFINITY else soft


def environment_message(error: BaseException) -> str | None:
    """``"<what happened>: <file>; <the fix>"`` for an ``OSError`` of the machine, else None."""
    problem = environment_problem(error)
    if problem is None:
        return None
    what, fix = problem
    where = f": {error.filename}" if getattr(error, "filename", None) else ""
    return f"{what}{where}; {fix}"


def write_failure(
    error: OSError, dest: os.PathLike | str, existed: bool, culprit: str | None = None
) -> OutputError | None:
    """The :class:`OutputError` for ``error`` raised while writing ``dest``, or None when
    ``error`` is no problem of the machine (then it is a bug and keeps its traceback).

    ``existed`` says whether ``dest`` was there before: it still is, unchanged. ``culprit`` is
    the file the system call named, when it is not ``dest`` itself.
    """
    problem = environment_problem(error)
    if problem is None:
        return None
    what, fix = problem
    where = f" ({culprit})" if culprit and culprit != str(dest) else ""
    kept = f"the previous {dest} is unchanged" if existed else "no partial output is left"
    return OutputError(
        f"cannot write {dest}: {what}{where}; nothing was written and {kept}; {fix}, then run "
        f"it again"
    )
