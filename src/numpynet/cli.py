"""Command-line plumbing: the ``numpynet`` console command and the stages' error handling."""

from __future__ import annotations

import argparse
import sys
from typing import Callable

from numpynet.errors import NumpynetError

EXIT_USER_ERROR = 2


def stage_arguments(description: str, argv: list[str] | None = None) -> argparse.Namespace:
    """Parse the arguments every stage takes: the dataset name and the params file."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("dataset", help="a dataset name configured under 'datasets:' in params.yaml")
    parser.add_argument("--params", default="params.yaml", help="the parameters file")
    return parser.parse_args(argv)


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


def _check_params(args: argparse.Namespace) -> None:
    from numpynet.config import load_params

    params = load_params(args.params)
    print(f"{args.params} is valid; datasets: {', '.join(params.datasets)}")


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``numpynet`` console command."""
    parser = argparse.ArgumentParser(prog="numpynet", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    check = commands.add_parser("check", help="validate params.yaml without running anything")
    check.add_argument("--params", default="params.yaml")
    check.set_defaults(handler=_check_params)
    args = parser.parse_args(argv)
    run_stage(lambda: args.handler(args))
