"""The ``numpynet`` console command: ``check``, ``info`` and ``--version``.

Kept apart from :mod:`numpynet.cli`, which every stage imports, so that the commands' imports
(the model loader and all it needs) are no stage's dependency.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from numpynet import __version__
from numpynet.cli import run_stage
from numpynet.config import load_params
from numpynet.model_info import describe_model


def _check_params(args: argparse.Namespace) -> None:
    params = load_params(args.params)
    print(f"{args.params} is valid; datasets: {', '.join(params.datasets)}")


def _show_model(args: argparse.Namespace) -> None:
    print("\n".join(describe_model(args.model, args.metrics)))


_DESCRIPTION = """\
numpynet trains multilayer perceptrons written in plain NumPy, through a DVC pipeline.
Run the pipeline with `dvc repro` (see README.md); these commands help around it."""


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``numpynet`` console command."""
    parser = argparse.ArgumentParser(prog="numpynet", description=_DESCRIPTION)
    parser.add_argument("--version", action="version", version=f"numpynet {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    check = commands.add_parser(
        "check",
        help="check params.yaml and list every problem, without running anything",
        description="Check params.yaml as every stage does before it starts: unknown keys, "
        "wrong types, out-of-range values and inconsistent settings, all listed at once.",
    )
    check.add_argument("--params", default="params.yaml", help="the file (default: %(default)s)")
    check.set_defaults(handler=_check_params)
    info = commands.add_parser(
        "info",
        help="describe a trained model: network, size, data, training, backend, test scores",
        description="Describe the model the train stage saved in MODEL (models/<dataset>): its "
        "network and parameter count, the data it was trained on, the epoch it kept, the BLAS "
        "kernel that computed it and, when metrics/<dataset>.json exists, its test scores.",
    )
    info.add_argument("model", type=Path, metavar="MODEL", help="a model folder, e.g. models/mnist")
    info.add_argument(
        "--metrics", type=Path, help="a metrics JSON (default: metrics/<dataset>.json)"
    )
    info.set_defaults(handler=_show_model)
    args = parser.parse_args(argv)
    run_stage(lambda: args.handler(args))
