"""Running one stage script for real, in a throwaway copy of the project's code.

Only ``src/`` and ``stages/`` are copied (a stage runs the code of the tree it lies in, see
``stages/_bootstrap.py``), with the ``params.yaml`` the test writes, so a stage can be run from any
folder, fail, and leave the user's project untouched. No git and no DVC: for those see
:mod:`helpers.project`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from helpers.project import PROJECT, write_params

_SKIPPED = shutil.ignore_patterns("__pycache__", "*.egg-info")


def code_copy(root: Path, params: dict | None = None) -> Path:
    """Copy the project's code into ``root`` and write ``params``, if given, as its params.yaml."""
    root.mkdir(parents=True, exist_ok=True)
    for name in ("src", "stages"):
        shutil.copytree(PROJECT / name, root / name, ignore=_SKIPPED)
    if params is not None:
        write_params(root, params)
    return root


def run_stage(
    root: Path, stage: str, *args: str, cwd: Path | None = None,
    env: dict[str, str] | None = None, timeout: float = 60,
) -> subprocess.CompletedProcess:
    """Run ``stages/<stage>.py`` of the copy at ``root`` with ``args``, from ``cwd`` (``root``)."""
    environment = {
        key: value for key, value in os.environ.items() if not key.startswith("NUMPYNET_")
    }
    environment.update(no_proxy="127.0.0.1,localhost", NO_PROXY="127.0.0.1,localhost")
    environment.update(env or {})
    return subprocess.run(
        [sys.executable, str(root / "stages" / f"{stage}.py"), *args],
        cwd=cwd or root, env=environment, capture_output=True, text=True, timeout=timeout,
    )
