"""Command-line plumbing shared by the stages and the ``numpynet`` command: arguments, paths,
and turning a user-facing error into a message and an exit code."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from numpynet.config import check_dataset_name
from numpynet.errors import ConfigError, NumpynetError

EXIT_USER_ERROR = 2


def stage_arguments(
    description: str,
    project_root: Path,
    inputs: Sequence[str] = (),
    outputs: Sequence[str] = (),
    dataset: bool = True,
    argv: list[str] | None = None,
) -> argparse.Namespace:
    """Parse a stage's arguments: a dataset name, ``--params`` and its paths, from dvc.yaml.

    Each name in ``inputs`` and ``outputs`` becomes a required ``--<name>`` path option. The
    dataset name must match the pattern params validation enforces, and every output must lie
    inside ``project_root``: a stage never writes, or replaces, anything outside the project.
    """
    parser = argparse.ArgumentParser(description=description)
    if dataset:
        parser.add_argument("dataset", help="a dataset configured under 'datasets:' in params.yaml")
    parser.add_argument("--params", default="params.yaml", help="the parameters file")
    for name in (*inputs, *outputs):
        parser.add_argument(f"--{name.replace('_', '-')}", dest=name, type=Path, required=True)
    args = parser.parse_args(argv)
    if dataset:
        check_dataset_name(args.dataset)
    # Lexically, not through symlinks: a data/ folder linked to another disk is still inside.
    root = os.path.abspath(project_root)
    for name in outputs:
        path = os.path.abspath(getattr(args, name))
        if os.path.commonpath([root, path]) != root or path == root:
            raise ConfigError(
                f"--{name.replace('_', '-')} {getattr(args, name)}: outputs must lie inside the "
                f"project ({root}); pass a path below it, as dvc.yaml does"
            )
    return args


def run_stage(main: Callable[[], None]) -> None:
    """Run a stage; turn a user-facing error into a one-paragraph message and a non-zero exit."""
    try:
        main()
    except NumpynetError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(EXIT_USER_ERROR)
    except KeyboardInterrupt:
        print("interrupted: nothing was written", file=sys.stderr)
        sys.exit(130)
