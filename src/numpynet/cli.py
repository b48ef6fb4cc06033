"""The ``numpynet`` console command: ``check``, ``info``, ``predict`` and ``--version``.

Kept apart from :mod:`numpynet.stage_entry`, which every stage imports, so that the commands'
imports (the model loader and all it needs) are no stage's dependency.
"""

from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path

from numpynet import __version__
from numpynet.config import load_params
from numpynet.model_info import describe_model
from numpynet.predict import format_json, format_text, predict
from numpynet.stage_entry import run_stage


def _check_params(args: argparse.Namespace) -> None:
    params = load_params(args.params)
    print(f"{args.params} is valid; datasets: {', '.join(params.datasets)}")


def _show_model(args: argparse.Namespace) -> None:
    print("\n".join(describe_model(args.model, args.metrics)))


def _predict(args: argparse.Namespace) -> None:
    predictions = predict(args.images, args.model, args.top_k)
    print(format_json(predictions) if args.json else format_text(predictions))


_PREDICT_DESCRIPTION = """\
Classify image files with a trained model: print each image's most probable classes.

Images are converted the way preprocessing converts an image folder: to grayscale or RGB as
the model was trained (an alpha channel is dropped, a palette becomes its colours), resized with
bilinear resampling to the training size, pixels taken as stored (no EXIF rotation), then
standardized with the training set's mean and std. Only the model folder is read, not data/.
Models trained on MNIST-style data expect white digits on a black background: invert
black-on-white scans first. Trained with label smoothing (the default recipe), a model's top
probability stays near 90% even when it is sure.

Every image is checked before anything is printed: a missing file, a folder or a file Pillow
cannot decode stops the command with its name."""


_DESCRIPTION = """\
numpynet trains multilayer perceptrons written in plain NumPy, through a DVC pipeline.
Run the pipeline with `dvc repro` (see README.md); these commands help around it."""


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``numpynet`` console command."""
    # A terminal or pipe in ASCII or Latin-1 cannot show every class or file name: what it cannot
    # show is written as an escape (\u0430) instead of ending in a UnicodeEncodeError. (stderr
    # does this by default; stdout does not.)
    for stream in (sys.stdout, sys.stderr):
        if isinstance(stream, io.TextIOWrapper):
            stream.reconfigure(errors="backslashreplace")
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
    predict_command = commands.add_parser(
        "predict",
        help="classify image files with a trained model",
        description=_PREDICT_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    predict_command.add_argument("images", nargs="+", metavar="IMAGE", help="image files")
    predict_command.add_argument(
        "--model", type=Path, metavar="MODEL",
        help="a model folder, e.g. models/mnist (default: the only model under models/)",
    )
    predict_command.add_argument(
        "--top-k", type=int, metavar="K",
        help="how many classes to show per image, 1 to the number of classes (default: 3)",
    )
    predict_command.add_argument(
        "--json", action="store_true",
        help='print a JSON list of {"image", "predictions": [{"class", "probability"}]}',
    )
    predict_command.set_defaults(handler=_predict)
    args = parser.parse_args(argv)
    run_stage(lambda: args.handler(args), name=f"numpynet {args.command}")
