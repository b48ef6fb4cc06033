"""train stage: fit the NumPy MLP on the training split, watching the validation split.

Reads ``data/processed/<name>/`` and from params.yaml ``train`` with the overrides in
``datasets.<name>.train``; writes ``models/<name>/`` (``architecture.json`` + ``weights.npz``)
and the per-epoch log ``plots/<name>/training.csv``.
"""

import json
import math
import resource
import sys
from functools import partial
from pathlib import Path

import numpy as np

from numpynet.checkpoint import save_model
from numpynet.cli import run_stage, stage_arguments
from numpynet.config import load_params
from numpynet.files import load_npy, write_csv
from numpynet.nn.model import build_from_architecture, mlp_architecture
from numpynet.nn.schedule import learning_rate
from numpynet.training import LOG_COLUMNS, fit, make_optimizer, steps_per_epoch


def main() -> None:
    args = stage_arguments(__doc__)
    config = load_params(args.params).train_for(args.dataset)
    data = Path("data/processed") / args.dataset
    meta = json.loads((data / "meta.json").read_text(encoding="utf-8"))
    x_train = load_npy(data / "x_train.npy", mmap=True)
    x_val = load_npy(data / "x_val.npy", mmap=True)
    y_train, y_val = load_npy(data / "y_train.npy"), load_npy(data / "y_val.npy")

    # Independent streams, so that changing e.g. the dropout rate leaves the shuffling alone.
    init_seed, shuffle_seed = np.random.SeedSequence(config.seed).spawn(2)
    init_rng, shuffle_rng = np.random.default_rng(init_seed), np.random.default_rng(shuffle_seed)
    architecture = mlp_architecture(
        input_size=math.prod(meta["image_shape"]),
        hidden_sizes=config.hidden_sizes,
        num_classes=len(meta["classes"]),
        dropout=config.dropout,
    )
    model = build_from_architecture(architecture, init_rng)
    optimizer = make_optimizer(
        config.optimizer,
        model.parameters(),
        momentum=config.momentum,
        nesterov=config.nesterov,
        betas=config.betas,
        eps=config.eps,
        weight_decay=config.weight_decay,
    )
    steps = steps_per_epoch(x_train.shape[0], config.batch_size)
    schedule = partial(
        learning_rate,
        base_lr=config.lr,
        total_steps=config.epochs * steps,
        warmup_steps=round(config.warmup_epochs * steps),
        min_lr=config.min_lr,
        kind=config.schedule,
    )
    history = fit(
        model,
        optimizer,
        (x_train, y_train),
        (x_val, y_val),
        epochs=config.epochs,
        batch_size=config.batch_size,
        learning_rate=schedule,
        rng=shuffle_rng,
    )
    save_model(Path("models") / args.dataset, model, architecture)
    write_csv(Path("plots") / args.dataset / "training.csv", list(LOG_COLUMNS), history)
    # ru_maxrss is in KiB on Linux. Memory-mapped inputs count once touched: one copy at most.
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"train@{args.dataset}: peak memory {peak_mib:.0f} MiB", file=sys.stderr)


if __name__ == "__main__":
    run_stage(main)
