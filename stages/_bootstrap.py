"""Imported first by every stage script: this tree's code, on a pinned numeric backend.

* ``src/`` of the tree this file lies in goes first on ``sys.path``, so a stage runs the code of
  the tree it runs in (a queued or ``--temp`` experiment's own copy), never whatever version of
  numpynet happens to be installed.
* :func:`numpynet.backend.pin_backend` fixes the BLAS kernel and thread count before NumPy loads.
"""

import sys
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_ROOT / "src"))

from numpynet.backend import pin_backend  # noqa: E402  (needs the path above)

pin_backend()
