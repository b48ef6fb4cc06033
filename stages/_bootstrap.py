"""Imported first by every stage script: this tree's code, on a pinned numeric backend.

* ``src/`` of the tree this file lies in goes first on ``sys.path``, so a stage runs the code of
  the tree it runs in (a queued or ``--temp`` experiment's own copy), never whatever version of
  numpynet happens to be installed.
* :mod:`numpynet.backend` fixes the BLAS kernel, NumPy's dispatch level and the BLAS thread count.
"""

import sys
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_ROOT / "src"))

from numpynet.backend import pin_backend, pin_blas_threads  # noqa: E402  (needs the path above)
from numpynet.cli import run_stage  # noqa: E402

run_stage(pin_backend)  # before NumPy loads; a bad setting exits 2 with a message
import numpy  # noqa: E402, F401  (loads OpenBLAS with those settings)

pin_blas_threads()
