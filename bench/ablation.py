"""What each ingredient of the recipe adds: the recipe built up one ingredient at a time.

    python bench/ablation.py mnist --data data/processed/mnist --epochs 20 --full-length
    python bench/ablation.py cifar10 --data /path/to/processed/cifar10-jpeg --full-length-only
    python bench/ablation.py cifar10 --data /path/to/processed/cifar10-jpeg --epochs 15 \\
        --hidden-sizes 1024 512

Reads the dataset's settings from params.yaml (``train`` with its overrides) and a processed
dataset (what the preprocess stage writes), then trains with
:func:`numpynet.training.recipe.train_mlp`, the train stage's own code, once per rung of a ladder:
the baseline (none of the ingredients), then + shifts (and flips, where the dataset uses them), +
rotations and zooms (where the dataset uses them), + label smoothing, + batch normalization, + ZCA
whitening and + fewer whitened directions (each where the dataset uses it). Each rung reports the
validation accuracy of the epoch the recipe keeps and, for datasets trained with flips, with the
test-time flip too. The test split is
never read. ``--epochs`` and ``--hidden-sizes`` shorten the runs; the table says which.
``--full-length`` adds one run of the whole recipe without any augmentation at the recipe's own
length and width, to set beside the committed run: what augmentation buys once time is not short.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from functools import partial
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT / "src"))

from numpynet.backend import finish_pinning, pin_backend  # noqa: E402
from numpynet.config import load_params  # noqa: E402
from numpynet.stage_entry import run_stage  # noqa: E402

# The numeric mode of params.yaml, before NumPy loads, as the train stage does; a bad setting is
# a message, not a traceback.
run_stage(lambda: pin_backend(load_params(PROJECT / "params.yaml").numerics.mode), "ablation")
import numpy  # noqa: E402, F401

run_stage(finish_pinning, "ablation")
from numpynet.data.processed import read_meta, read_split  # noqa: E402
from numpynet.evaluation import loss_and_accuracy, predict_logits  # noqa: E402
from numpynet.training.recipe import train_mlp  # noqa: E402


def ladder(recipe) -> list[tuple[str, object]]:
    """(name, settings) from the baseline up to the full recipe, one ingredient at a time."""
    baseline = dataclasses.replace(
        without_augmentation(recipe), label_smoothing=0.0, normalization="none", whitening="none",
        whitening_components=0,
    )
    augmentation = "shifts and flips" if recipe.augment_flip else "shifts"
    if recipe.augment_elastic:
        augmentation += " and elastic distortions"
    rungs = [
        ("baseline (dropout, AdamW, cosine)", baseline),
        (f"+ {augmentation}", dataclasses.replace(
            baseline, augment_shift=recipe.augment_shift, augment_flip=recipe.augment_flip,
            augment_elastic=recipe.augment_elastic)),
    ]
    if recipe.augment_rotate or recipe.augment_zoom:
        name = f"+ rotations (±{recipe.augment_rotate:g}°) and zooms (±{recipe.augment_zoom:.0%})"
        rungs.append((name, dataclasses.replace(rungs[-1][1],
                                                augment_rotate=recipe.augment_rotate,
                                                augment_zoom=recipe.augment_zoom)))
    rungs.append(("+ label smoothing",
                  dataclasses.replace(rungs[-1][1], label_smoothing=recipe.label_smoothing)))
    rungs.append(("+ batch normalization",
                  dataclasses.replace(rungs[-1][1], normalization=recipe.normalization)))
    if recipe.whitening != "none":
        rungs.append(("+ ZCA whitening", dataclasses.replace(rungs[-1][1],
                                                              whitening=recipe.whitening)))
    if recipe.whitening_components:
        name = f"+ only the {recipe.whitening_components} strongest whitened directions"
        rungs.append((name, dataclasses.replace(
            rungs[-1][1], whitening_components=recipe.whitening_components)))
    return rungs


def without_augmentation(recipe):
    """``recipe`` with every augmentation switched off."""
    return dataclasses.replace(recipe, augment_shift=0, augment_flip=False, augment_elastic=0.0,
                               augment_rotate=0.0, augment_zoom=0.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dataset", help="whose settings in params.yaml make the recipe")
    parser.add_argument("--data", type=Path, required=True, help="a processed dataset folder")
    parser.add_argument("--epochs", type=int, help="epochs per run (default: the recipe's)")
    parser.add_argument("--hidden-sizes", type=int, nargs="+", help="a smaller network")
    parser.add_argument("--full-length", action="store_true",
                        help="add the whole recipe without augmentation at its own length")
    parser.add_argument("--full-length-only", action="store_true",
                        help="run only that: the ladder's short runs are measured already")
    parser.add_argument("--log", action="store_true",
                        help="print every epoch's line to stderr as the runs go")
    args = parser.parse_args()

    full = load_params(PROJECT / "params.yaml").train_for(args.dataset)
    changes = {"epochs": args.epochs, "hidden_sizes": args.hidden_sizes}
    recipe = dataclasses.replace(full, **{k: v for k, v in changes.items() if v is not None})
    rungs = [] if args.full_length_only else ladder(recipe)
    if args.full_length or args.full_length_only:
        network = "-".join(map(str, full.hidden_sizes))
        name = f"the recipe without augmentation, {full.epochs} epochs, {network}"
        rungs.append((name, without_augmentation(full)))
    meta = read_meta(args.data)
    train_set, val_set = read_split(args.data, "train"), read_split(args.data, "val")
    print(f"{args.dataset}: {'-'.join(map(str, recipe.hidden_sizes))}, {recipe.epochs} epochs, "
          f"best epoch by {recipe.select_by}; validation accuracy", flush=True)
    print("| recipe | val accuracy | with test-time flip | kept epoch | train s |")
    print("| --- | --- | --- | --- | --- |")
    log = partial(print, file=sys.stderr, flush=True) if args.log else (lambda line: None)
    for name, settings in rungs:
        started = time.perf_counter()
        run = train_mlp(settings, meta, train_set, val_set, log=log)
        seconds = time.perf_counter() - started
        accuracy = run.history[run.selected_epoch - 1]["val_accuracy"]
        flipped = "-"
        if settings.augment_flip:
            logits = predict_logits(run.model, val_set[0], 1000, test_time_flip=True)
            flipped = f"{loss_and_accuracy(logits, val_set[1])[1]:.2%}"
        print(f"| {name} | {accuracy:.2%} | {flipped} | {run.selected_epoch} | {seconds:.0f} |",
              flush=True)


if __name__ == "__main__":
    main()
