"""Imported first by every stage script: this tree's code, and for the stages that compute, the
numeric mode that ``params.yaml`` names.

* ``src/`` of the tree this file lies in goes first on ``sys.path``, so a stage runs the code of
  the tree it runs in (a queued or ``--temp`` experiment's own copy), never whatever version of
  numpynet happens to be installed.
* The train and evaluate stages, whose bytes depend on ``numerics.mode`` (a DVC param of exactly
  those two), compute in that mode: :mod:`numpynet.backend` fixes the BLAS kernel, NumPy's
  dispatch level and the BLAS thread count before NumPy loads, or switches to exact products.
  The other stages compute nothing that a BLAS kernel or an instruction set could change.
* Ctrl-C while the stage's own modules load, before ``run_stage`` takes over, ends with the
  line ``run_stage`` prints (:mod:`numpynet.stopping`), not a traceback.
"""

import argparse
import sys
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_ROOT / "src"))

from numpynet.backend import finish_pinning, pin_backend  # noqa: E402  (needs the path above)
from numpynet.config import load_params  # noqa: E402
from numpynet.stage_entry import run_stage  # noqa: E402
from numpynet.stopping import stop_message  # noqa: E402

NUMERIC_STAGES = ("train", "evaluate")


def _interrupted_while_loading(kind, error, traceback) -> None:
    """Ctrl-C while the stage's modules load (NumPy, matplotlib: a second or two, outside
    run_stage) ends with the line run_stage prints, not a traceback: nothing was written yet."""
    if issubclass(kind, KeyboardInterrupt):
        print(stop_message(error), file=sys.stderr, flush=True)
    else:
        sys.__excepthook__(kind, error, traceback)


sys.excepthook = _interrupted_while_loading


def _pin_from_params() -> None:
    # The stage parses its arguments itself later; only --params matters here.
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--params", default="params.yaml")
    params_file = parser.parse_known_args()[0].params
    pin_backend(load_params(params_file).numerics.mode)


# --help computes nothing: it must work without a params.yaml.
if Path(sys.argv[0]).stem in NUMERIC_STAGES and not {"-h", "--help"} & set(sys.argv[1:]):
    run_stage(_pin_from_params)  # before NumPy loads; a bad setting exits 2 with a message
    import numpy  # noqa: E402, F401  (loads OpenBLAS with those settings)

    run_stage(finish_pinning)
