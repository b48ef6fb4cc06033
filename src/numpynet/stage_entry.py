"""Command-line plumbing shared by the stages and the ``numpynet`` command: arguments, paths,
and turning a user-facing error into a message and an exit code.

Imported before NumPy is loaded (see stages/_bootstrap.py), so nothing here may import it.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from numpynet.config import check_dataset_name
from numpynet.errors import ConfigError, NumpynetError, environment_message
from numpynet.stopping import exit_status, stop_message, stoppable

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


def run_stage(main: Callable[[], None], name: str | None = None) -> None:
    """Run a stage; turn a user-facing error into a one-paragraph message and exit code 2.

    User-facing are :class:`NumpynetError`, an ``OSError`` of the machine (full disk, quota,
    read-only or forbidden file: see :func:`numpynet.errors.environment_problem`) and
    ``MemoryError`` (an input too large, or a damaged one declaring a huge size). Any other
    exception is a bug and keeps its traceback. ``name`` is what the message calls the command;
    by default the stage and dataset from the command line (``train@mnist``).

    Ctrl-C, SIGTERM and the end of the parent process (DVC killed) stop the stage alike (see
    :mod:`numpynet.stopping`): one line says what stopped it and what it wrote, and it exits
    with 128 + the signal's number.
    """
    try:
        with stoppable():
            main()
    except NumpynetError as error:
        _fail(str(error))
    except KeyboardInterrupt as stop:
        print(stop_message(stop), file=sys.stderr, flush=True)
        sys.exit(exit_status(stop))
    except MemoryError as error:
        # NumPy's own text says how much it asked for: "Unable to allocate 4.00 TiB for ...".
        detail = f" ({error})" if str(error) else ""
        _fail(
            f"{name or _command_name()} ran out of memory{detail}: an input is larger than this "
            f"machine's free memory, or damaged so that it declares a huge size; check the "
            f"inputs it reads (rerun the stages that write them) or run it where more memory is "
            f"free"
        )
    except OSError as error:
        message = environment_message(error)
        if message is None:
            raise
        _fail(f"{name or _command_name()}: {message}, then run it again")


def _fail(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)
    sys.exit(EXIT_USER_ERROR)


def _command_name() -> str:
    """``train@mnist`` for ``stages/train.py mnist ...``; the script's name without a dataset."""
    script = Path(sys.argv[0]).stem if sys.argv and sys.argv[0] else "numpynet"
    first = sys.argv[1] if len(sys.argv) > 1 else ""
    return f"{script}@{first}" if first and not first.startswith("-") else script
