"""train stage: fit the NumPy MLP on the training split, watching the validation split.

Reads ``--data`` (``data/processed/<name>``) and from params.yaml ``train`` with the overrides in
``datasets.<name>.train``; writes the model into ``--model`` (``models/<name>``: architecture,
weights, the numeric backend that computed them and which epoch's weights were kept) and the per-epoch log into ``--log``
(``logs/<name>/training.csv``; evaluate publishes it as a plot).
"""

import _bootstrap  # noqa: I001  (first: this tree's code, on a pinned numeric backend)

import math
import resource
from functools import partial

import numpy as np

from numpynet.augment import Augmentation
from numpynet.backend import backend_provenance
from numpynet.checkpoint import save_model
from numpynet.cli import run_stage, stage_arguments
from numpynet.config import load_params
from numpynet.data.processed import read_meta, read_split
from numpynet.files import write_csv
from numpynet.log import log_to_stderr
from numpynet.nn.model import MLPConfig, build_mlp
from numpynet.nn.schedule import learning_rate
from numpynet.training import LOG_COLUMNS, fit, make_optimizer, steps_per_epoch
from numpynet.whitening import fold_whitening, whiten, zca_whitening


def main() -> None:
    args = stage_arguments(
        __doc__, _bootstrap.PROJECT_ROOT, inputs=["data"], outputs=["model", "log"]
    )
    config = load_params(args.params).train_for(args.dataset)
    meta = read_meta(args.data)
    train_set, val_set = read_split(args.data, "train"), read_split(args.data, "val")
    provenance = backend_provenance()
    # Black, a pixel of 0 before standardization, fills what augmentation uncovers.
    black = np.broadcast_to(
        -np.asarray(meta.mean) / np.asarray(meta.std), (1, *meta.image_shape)
    ).astype(np.float32)
    if config.whitening == "zca":
        # Both splits whitened once, in memory; the model learns on them and, at the end, the
        # whitening is folded into its first layer, so it takes the stored images as they are.
        mean, matrix = zca_whitening(train_set[0])
        train_set = (whiten(train_set[0], mean, matrix), train_set[1])
        val_set = (whiten(val_set[0], mean, matrix), val_set[1])
        black = whiten(black, mean, matrix)  # nearly flat per channel, as smooth images are
    augmentation = Augmentation(
        config.augment_shift,
        config.augment_flip,
        config.augment_elastic,
        fill=tuple(black.mean(axis=(0, 1, 2)).tolist()),
    )

    # Independent streams, so that changing e.g. the dropout rate leaves the shuffling alone.
    init_seed, shuffle_seed = np.random.SeedSequence(config.seed).spawn(2)
    architecture = MLPConfig(
        input_size=math.prod(meta.image_shape),
        hidden_sizes=config.hidden_sizes,
        num_classes=len(meta.classes),
        dropout=config.dropout,
        normalization=config.normalization,
    )
    model = build_mlp(architecture, np.random.default_rng(init_seed))
    optimizer = make_optimizer(
        config.optimizer,
        model.parameters(),
        momentum=config.momentum,
        nesterov=config.nesterov,
        betas=config.betas,
        eps=config.eps,
        weight_decay=config.weight_decay,
    )
    steps = steps_per_epoch(train_set[0].shape[0], config.batch_size)
    schedule = partial(
        learning_rate,
        base_lr=config.lr,
        total_steps=config.epochs * steps,
        warmup_steps=round(config.warmup_epochs * steps),
        min_lr=config.min_lr,
        kind=config.schedule,
    )
    history, selected_epoch = fit(
        model,
        optimizer,
        train_set,
        val_set,
        epochs=config.epochs,
        batch_size=config.batch_size,
        learning_rate=schedule,
        rng=np.random.default_rng(shuffle_seed),
        augmentation=augmentation,
        label_smoothing=config.label_smoothing,
        select_by=config.select_by,
    )
    if config.whitening == "zca":
        fold_whitening(model.layers[1], mean, matrix)  # layers[0] is the Flatten
    selected = history[selected_epoch - 1]
    training = {
        "epochs": config.epochs,
        "select_by": config.select_by,
        "selected_epoch": selected_epoch,
        "val_accuracy": selected["val_accuracy"],
        "val_loss": selected["val_loss"],
    }
    save_model(args.model, model, architecture, provenance=provenance, training=training)
    write_csv(args.log, list(LOG_COLUMNS), history)
    # ru_maxrss is in KiB on Linux. Memory-mapped inputs count once touched: one copy at most.
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    log_to_stderr(f"train@{args.dataset}: peak memory {peak_mib:.0f} MiB")


if __name__ == "__main__":
    run_stage(main)
