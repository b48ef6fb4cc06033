"""The training loop: mini-batches, the optimizer, the schedule and a per-epoch log."""

from __future__ import annotations

import sys
from typing import Callable, Protocol

import numpy as np
from tqdm import tqdm

from numpynet.augment import Augmentation
from numpynet.errors import TrainingDiverged
from numpynet.evaluation import evaluate_model
from numpynet.log import Log, log_to_stderr
from numpynet.nn.loss import SoftmaxCrossEntropy
from numpynet.nn.optim import SGD, AdamW
from numpynet.resume import Progress

LOG_COLUMNS = ("epoch", "lr", "train_loss", "train_accuracy", "val_loss", "val_accuracy")
NO_AUGMENTATION = Augmentation()


class MetricsLogger(Protocol):
    """Where :func:`fit` reports its numbers as it goes (the train stage passes DVCLive's)."""

    def log_step(self, step: int, lr: float, loss: float) -> None:
        """After optimizer step ``step`` (from 1): its learning rate and batch loss."""

    def log_epoch(self, step: int, row: dict) -> None:
        """After an epoch, whose last optimizer step was ``step``: its ``LOG_COLUMNS`` row."""


def steps_per_epoch(num_samples: int, batch_size: int) -> int:
    """Optimizer steps in one pass over ``num_samples``: the last batch may be smaller.

    A last batch of a single sample joins the one before it: batch normalization needs two
    samples to measure a spread.
    """
    return max(1, num_samples // batch_size + (num_samples % batch_size > 1))


def make_optimizer(
    name: str,
    parameters,
    *,
    momentum: float,
    nesterov: bool,
    betas: tuple[float, float],
    eps: float,
    weight_decay: float,
):
    """The optimizer called ``name`` ('sgd' or 'adamw') over ``parameters``."""
    if name == "sgd":
        return SGD(parameters, momentum=momentum, nesterov=nesterov, weight_decay=weight_decay)
    if name == "adamw":
        return AdamW(parameters, betas=tuple(betas), eps=eps, weight_decay=weight_decay)
    raise ValueError(f"unknown optimizer {name!r}; expected 'sgd' or 'adamw'")


def fit(
    model,
    optimizer,
    train_set: tuple[np.ndarray, np.ndarray],
    val_set: tuple[np.ndarray, np.ndarray],
    *,
    epochs: int,
    batch_size: int,
    learning_rate: Callable[[int], float],
    rng: np.random.Generator,
    augmentation: Augmentation = NO_AUGMENTATION,
    augment_rng: np.random.Generator | None = None,
    label_smoothing: float = 0.0,
    select_by: str = "last",
    eval_batch_size: int = 1000,
    show_progress: bool | None = None,
    log: Log = log_to_stderr,
    metrics_logger: MetricsLogger | None = None,
    progress: Progress | None = None,
    on_epoch_end: Callable[[Progress], None] | None = None,
) -> tuple[list[dict], int]:
    """Train ``model`` in place; return one log row per epoch (see ``LOG_COLUMNS``) and the epoch
    whose weights the model ends with.

    ``learning_rate(step)`` gives the rate for each optimizer step, counted from 0 across epochs.
    ``rng`` draws the batch order, and ``augment_rng`` (``rng`` when not given) the
    ``augmentation`` of each batch. The loss is
    cross-entropy against labels smoothed by ``label_smoothing``.

    Model selection uses the validation split only: ``select_by`` 'val_accuracy' (highest) or
    'val_loss' (lowest) keeps the weights of the best epoch, the earliest on a tie, and puts them
    back into ``model`` at the end; 'last' keeps the final weights.

    Each epoch ends with one summary line sent to ``log``; ``show_progress`` switches the
    per-batch progress bar on or off (``None``: only when stderr is a terminal).
    A NaN or infinite loss stops training at once with :class:`TrainingDiverged`.

    ``metrics_logger`` receives every step's learning rate and loss and every epoch's row.
    To continue an interrupted run, pass its ``progress`` with the model, optimizer and random
    generators restored to their state at that point: training goes on from the next epoch,
    and the steps and epochs already done are reported to ``metrics_logger`` again first, so
    its log is whole. ``on_epoch_end(progress)`` is called after every epoch (to checkpoint).
    """
    augment_rng = rng if augment_rng is None else augment_rng
    if select_by not in ("val_accuracy", "val_loss", "last"):
        raise ValueError(
            f"select_by must be 'val_accuracy', 'val_loss' or 'last', got {select_by!r}"
        )
    x_train, y_train = train_set
    num_samples = x_train.shape[0]
    batches_per_epoch = steps_per_epoch(num_samples, batch_size)
    loss_fn = SoftmaxCrossEntropy(label_smoothing)
    progress = Progress() if progress is None else progress
    if metrics_logger is not None:
        _replay(progress, batches_per_epoch, metrics_logger)
    step = progress.epochs_done * batches_per_epoch
    for epoch in range(progress.epochs_done + 1, epochs + 1):
        order = rng.permutation(num_samples)
        loss_sum = correct = 0.0
        batches = tqdm(
            range(batches_per_epoch),
            desc=f"epoch {epoch}/{epochs}",
            unit="batch",
            leave=False,
            # None lets tqdm hide the bar when stderr is not a terminal (logs, CI).
            disable=None if show_progress is None else not show_progress,
            file=sys.stderr,
        )
        for batch in batches:
            last = batch == batches_per_epoch - 1
            index = order[batch * batch_size : None if last else (batch + 1) * batch_size]
            # Gathering one batch at a time keeps memory flat even for memory-mapped inputs.
            x, y = augmentation.apply(np.asarray(x_train[index]), augment_rng), y_train[index]
            logits = model.forward(x, training=True)
            loss = loss_fn.forward(logits, y)
            lr = learning_rate(step)
            if not np.isfinite(loss):
                raise TrainingDiverged(
                    f"the training loss became {loss} at epoch {epoch}, step {batch + 1} "
                    f"(global step {step + 1}, learning rate {lr:.3g}); lower train.lr, raise "
                    f"train.warmup_epochs or check the input data for NaNs"
                )
            model.backward(loss_fn.backward(), need_input_grad=False)
            optimizer.step(lr)
            step += 1
            progress.step_lr.append(lr)
            progress.step_loss.append(float(loss))
            if metrics_logger is not None:
                metrics_logger.log_step(step, lr, float(loss))
            loss_sum += loss * y.shape[0]
            correct += np.count_nonzero(logits.argmax(axis=1) == y)
        val_loss, val_accuracy = evaluate_model(model, *val_set, batch_size=eval_batch_size)
        row = {
            "epoch": epoch,
            "lr": lr,
            "train_loss": loss_sum / num_samples,
            "train_accuracy": correct / num_samples,
            "val_loss": val_loss,
            "val_accuracy": val_accuracy,
        }
        progress.history.append(row)
        progress.epochs_done = epoch
        if select_by != "last":
            score = val_accuracy if select_by == "val_accuracy" else -val_loss
            if progress.best_score is None or score > progress.best_score:
                # A copy kept in memory (weights and normalization statistics): one more model.
                progress.best_score, progress.best_epoch = score, epoch
                progress.best_state = model.state_dict()
        if metrics_logger is not None:
            metrics_logger.log_epoch(step, row)
        if on_epoch_end is not None:
            on_epoch_end(progress)
        log(
            f"epoch {epoch:>3}/{epochs}  lr {lr:.2e}  train loss {row['train_loss']:.4f} "
            f"acc {row['train_accuracy']:.4f}  val loss {val_loss:.4f} acc {val_accuracy:.4f}"
        )
    best_epoch = epochs if progress.best_state is None else progress.best_epoch
    if best_epoch != epochs:
        model.load_state_dict(progress.best_state)
        log(f"kept the weights of epoch {best_epoch}, the best by {select_by}")
    return progress.history, best_epoch


def _replay(progress: Progress, steps_per_epoch: int, metrics_logger: MetricsLogger) -> None:
    """Report the steps and epochs of ``progress`` in the order training reported them."""
    for epoch, row in enumerate(progress.history, start=1):
        first, last = (epoch - 1) * steps_per_epoch, epoch * steps_per_epoch
        for step in range(first, last):
            metrics_logger.log_step(step + 1, progress.step_lr[step], progress.step_loss[step])
        metrics_logger.log_epoch(last, row)
