"""Progress messages for the person running a stage: one line each, on stderr.

Library functions that report progress take a ``log`` callable (tests pass a recorder) whose
default is :func:`log_to_stderr`, so stdout stays free for a command's actual output.
"""

from __future__ import annotations

import sys
from typing import Callable

Log = Callable[[str], None]


def log_to_stderr(message: str) -> None:
    """Print ``message`` as one line on stderr, flushed at once so it interleaves with tqdm."""
    print(message, file=sys.stderr, flush=True)
