"""One training run from the validated ``train`` settings: the recipe, from data to kept weights.

The train stage and the ablation benchmark both call :func:`train_mlp`, so what the benchmark
measures is what the pipeline runs.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING

import numpy as np

from numpynet.errors import ConfigError
from numpynet.log import Log, log_to_stderr
from numpynet.matmul import matmul
from numpynet.nn.layers import Linear, Projection
from numpynet.nn.model import MLPConfig, Sequential, build_mlp
from numpynet.nn.schedule import learning_rate
from numpynet.records import ProcessedMeta, TrainingRecord
from numpynet.training.augment import Augmentation
from numpynet.training.checkpoints import CheckpointStore
from numpynet.training.loop import (
    LoopSettings,
    MetricsLogger,
    RandomStreams,
    Reports,
    fit,
    make_optimizer,
    steps_per_epoch,
)
from numpynet.training.whitening import (
    MAX_WHITENED_VALUES,
    fold_whitening,
    pixel_statistics,
    principal_directions,
    whiten,
    zca_matrix,
)

if TYPE_CHECKING:
    from numpynet.config import TrainConfig


@dataclass
class TrainedModel:
    """What a run produced: the model with the kept epoch's weights, and how it got there."""

    model: Sequential
    architecture: MLPConfig
    history: list[dict]
    selected_epoch: int

    def record(self, config: TrainConfig) -> TrainingRecord:
        """Which epoch was kept, by what rule, its validation scores and whether training mirrored
        images (``training.json``; predict mirrors a model's inputs when it did)."""
        selected = self.history[self.selected_epoch - 1]
        return TrainingRecord(
            epochs=config.epochs,
            select_by=config.select_by,
            selected_epoch=self.selected_epoch,
            val_accuracy=selected["val_accuracy"],
            val_loss=selected["val_loss"],
            augment_flip=config.augment_flip,
        )


def train_mlp(
    config: TrainConfig,
    meta: ProcessedMeta,
    train_set: tuple[np.ndarray, np.ndarray],
    val_set: tuple[np.ndarray, np.ndarray],
    log: Log = log_to_stderr,
    metrics_logger: MetricsLogger | None = None,
    checkpoints: CheckpointStore | None = None,
) -> TrainedModel:
    """Build the MLP ``config`` describes for data shaped as ``meta`` says, train it, keep the best.

    ``train_set`` and ``val_set`` are standardized images (N, H, W, C), possibly memory-mapped,
    and their labels. Only these two splits are read: the test split is the evaluate stage's.
    ``metrics_logger`` receives the numbers of every step and epoch (see :func:`fit`).

    With ``checkpoints``, the run's state is saved there after every epoch, and a run that finds
    a checkpoint of its own (same fingerprint) continues from it, to the same bytes an
    uninterrupted run gives. Removing the checkpoint once the results are saved is the caller's
    part.
    """
    values = math.prod(meta.image_shape)
    if config.whitening == "zca" and values > MAX_WHITENED_VALUES:
        raise ConfigError(
            f"whitening: zca takes images of at most {MAX_WHITENED_VALUES} values (height x width "
            f"x channels), but these have {' x '.join(map(str, meta.image_shape))} = {values}: "
            f"its matrix would need {values**2 * 8 * 3 / 2**30:.1f} GiB; set whitening: none "
            f"or resize the images smaller (data.size)"
        )
    components = config.whitening_components
    if components > values:
        raise ConfigError(
            f"whitening_components: {components} is more than the {values} values of these "
            f"images ({' x '.join(map(str, meta.image_shape))}); set at most {values}, or 0 to "
            f"keep every whitened direction"
        )
    # Black, a pixel of 0 before standardization, fills what augmentation uncovers.
    black = np.broadcast_to(
        -np.asarray(meta.mean) / np.asarray(meta.std), (1, *meta.image_shape)
    ).astype(np.float32)
    if config.whitening == "zca":
        # Both splits whitened once, in memory; the model learns on them and, at the end, the
        # whitening is folded into its first layer, so it takes the stored images as they are.
        mean, covariance = pixel_statistics(train_set[0], mirror_symmetric=config.augment_flip)
        mean, matrix = mean.astype(np.float32), zca_matrix(covariance)
        if components:
            # The first layer learns on the whitened images' strongest directions only; each
            # batch is augmented as images first, then projected (the model's Projection layer).
            directions = principal_directions(covariance, matrix, components)
        del covariance
        train_set = (whiten(train_set[0], mean, matrix), train_set[1])
        val_set = (whiten(val_set[0], mean, matrix), val_set[1])
        black = whiten(black, mean, matrix)  # nearly flat per channel, as smooth images are
    augmentation = Augmentation(
        config.augment_shift,
        config.augment_flip,
        config.augment_elastic,
        rotation=config.augment_rotate,
        zoom=config.augment_zoom,
        fill=tuple(black.mean(axis=(0, 1, 2)).tolist()),
    )

    # Independent streams, so that changing e.g. the dropout rate or the augmentation leaves the
    # batch order alone.
    init_seed, shuffle_seed, augment_seed = np.random.SeedSequence(config.seed).spawn(3)
    architecture = MLPConfig(
        input_size=values,
        hidden_sizes=config.hidden_sizes,
        num_classes=len(meta.classes),
        dropout=config.dropout,
        normalization=config.normalization,
    )
    # The init generator goes on to draw the dropout masks.
    generators = {
        "init": np.random.default_rng(init_seed),
        "shuffle": np.random.default_rng(shuffle_seed),
        "augment": np.random.default_rng(augment_seed),
    }
    model = build_mlp(
        dataclasses.replace(architecture, input_size=components or values), generators["init"]
    )
    first = next(layer for layer in model.layers if isinstance(layer, Linear))
    if components:
        projection = Projection(directions)
        model.layers.insert(model.layers.index(first), projection)
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
    settings = LoopSettings(
        epochs=config.epochs,
        batch_size=config.batch_size,
        learning_rate=schedule,
        augmentation=augmentation,
        label_smoothing=config.label_smoothing,
        select_by=config.select_by,
    )
    state, on_epoch_end = None, None
    if checkpoints is not None:
        state = checkpoints.restore(model, optimizer, generators)
        on_epoch_end = partial(checkpoints.save, model, optimizer, generators)
    state = fit(
        model,
        optimizer,
        train_set,
        val_set,
        settings,
        RandomStreams(shuffle=generators["shuffle"], augment=generators["augment"]),
        reports=Reports(log=log, metrics_logger=metrics_logger),
        state=state,
        on_epoch_end=on_epoch_end,
    )
    if components:
        model.layers.remove(projection)
        # Whitening, then the projection: one (D, K) matrix, folded in as whitening alone is.
        matrix = matmul(matrix.astype(np.float64), directions.astype(np.float64))
    if config.whitening == "zca":
        fold_whitening(first, mean, matrix)
    return TrainedModel(model, architecture, state.history, state.selected_epoch)
