"""The ``download:`` section of ``params.yaml``: how downloads behave, and how far they may go.

Not a DVC dependency: none of it changes the bytes stored, only whether a transfer is given up.

* ``timeout_s`` is at most :data:`MAX_TIMEOUT_S`, a day (from about 1e10 s on, the socket layer
  raises OverflowError).
* ``deadline_s``, the time one attempt at one file may take, is at most :data:`MAX_DEADLINE_S`, a
  week; ``max_bytes``, the cap on a file without a pinned size, at most :data:`MAX_DOWNLOAD_BYTES`.
  Both may be left out and take :data:`~numpynet.data.catalog.DEFAULT_DEADLINE_S` (an hour) and
  :data:`~numpynet.data.catalog.DEFAULT_MAX_BYTES` (8 GiB), so a params file written before they
  existed still works.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from numpynet.config.fields import field_check
from numpynet.data.catalog import DEFAULT_DEADLINE_S, DEFAULT_MAX_BYTES

MAX_TIMEOUT_S = 86_400.0  # a day; socket.settimeout raises OverflowError from about 1e10 s
MAX_DEADLINE_S = 604_800.0  # a week: a file that needs longer needs another source
MAX_DOWNLOAD_BYTES = 1 << 40  # 1 TiB: far past any dataset, and still catches a typo


@dataclass(frozen=True)
class DownloadConfig:
    """How downloads behave. Not a DVC dependency: none of it changes the downloaded bytes."""

    timeout_s: float = field(
        metadata=field_check(
            lambda v: 0 < v <= MAX_TIMEOUT_S, f"a number of seconds > 0 and <= {MAX_TIMEOUT_S:g}"
        )
    )
    # Whole-file bounds (see numpynet.data.fetch.transport); optional, with these defaults.
    deadline_s: float = field(
        default=DEFAULT_DEADLINE_S,
        metadata=field_check(
            lambda v: 0 < v <= MAX_DEADLINE_S,
            f"a number of seconds > 0 and <= {MAX_DEADLINE_S:g} (a week)",
        ),
    )
    max_bytes: int = field(
        default=DEFAULT_MAX_BYTES,
        metadata=field_check(
            lambda v: 1 <= v <= MAX_DOWNLOAD_BYTES,
            f"an integer number of bytes from 1 to {MAX_DOWNLOAD_BYTES} (1 TiB)",
        ),
    )
