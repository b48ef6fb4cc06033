"""The training loop: mini-batches, the optimizer, the schedule and a per-epoch log."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Callable, Protocol

import numpy as np
from tqdm import tqdm

from numpynet.config import SELECTION_CRITERIA
from numpynet.errors import TrainingDiverged
from numpynet.evaluation import evaluate_model
from numpynet.log import Log, log_to_stderr
from numpynet.nn.loss import SoftmaxCrossEntropy
from numpynet.nn.optim import SGD, AdamW
from numpynet.training.augment import Augmentation

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


@dataclass(frozen=True)
class LoopSettings:
    """How the loop trains: how long, in what batches, at which rates, keeping which epoch.

    ``learning_rate(step)`` gives the rate of each optimizer step, counted from 0 across epochs.
    The loss is cross-entropy against labels smoothed by ``label_smoothing``. ``select_by``
    'val_accuracy' (highest) or 'val_loss' (lowest) keeps the weights of the best epoch on the
    validation split, the earliest on a tie; 'last' keeps the final weights.
    """

    epochs: int
    batch_size: int
    learning_rate: Callable[[int], float]
    augmentation: Augmentation = NO_AUGMENTATION
    label_smoothing: float = 0.0
    select_by: str = "last"
    eval_batch_size: int = 1000

    def __post_init__(self):
        if self.select_by not in SELECTION_CRITERIA:
            raise ValueError(
                f"select_by must be 'val_accuracy', 'val_loss' or 'last', got {self.select_by!r}"
            )


@dataclass(frozen=True)
class RandomStreams:
    """The generators the loop draws from: the batch order, and each batch's augmentation
    (the batch order's generator when not given)."""

    shuffle: np.random.Generator
    augment: np.random.Generator | None = None


@dataclass(frozen=True)
class Reports:
    """Where the loop reports: a summary line per epoch to ``log``; every step's and epoch's
    numbers to ``metrics_logger``; a per-batch progress bar when ``show_progress`` (``None``: only
    when stderr is a terminal)."""

    log: Log = log_to_stderr
    metrics_logger: MetricsLogger | None = None
    show_progress: bool | None = None


@dataclass
class RunState:
    """How far a run has got, beyond its model's and optimizer's arrays: what a checkpoint keeps
    (:mod:`numpynet.training.checkpoints`) so that an interrupted run continues where it stopped."""

    epochs_done: int = 0
    history: list[dict] = field(default_factory=list)  # one LOG_COLUMNS row per finished epoch
    step_lr: list[float] = field(default_factory=list)  # one value per optimizer step
    step_loss: list[float] = field(default_factory=list)
    # The best epoch so far by the selection rule (higher score is better), and its weights.
    best_score: float | None = None
    best_epoch: int | None = None
    best_state: dict[str, np.ndarray] | None = None

    @property
    def selected_epoch(self) -> int:
        """The epoch whose weights the model ends with once the loop is done."""
        return self.epochs_done if self.best_state is None else self.best_epoch


def fit(
    model,
    optimizer,
    train_set: tuple[np.ndarray, np.ndarray],
    val_set: tuple[np.ndarray, np.ndarray],
    settings: LoopSettings,
    streams: RandomStreams,
    *,
    reports: Reports = Reports(),
    state: RunState | None = None,
    on_epoch_end: Callable[[RunState], None] | None = None,
) -> RunState:
    """Train ``model`` in place as ``settings`` say; return the run's state: one log row per epoch
    (see ``LOG_COLUMNS``) and the epoch whose weights the model ends with (``selected_epoch``).

    Model selection uses the validation split only; the selected epoch's weights are put back
    into ``model`` at the end. A NaN or infinite loss stops training at once with
    :class:`TrainingDiverged`.

    To continue an interrupted run, pass its ``state`` with the model, optimizer and random
    generators restored to their state at that point: training goes on from the next epoch, and
    the steps and epochs already done are reported to ``reports.metrics_logger`` again first, so
    its log is whole. ``on_epoch_end(state)`` is called after every epoch (to checkpoint).
    """
    epochs, batch_size = settings.epochs, settings.batch_size
    augment_rng = streams.shuffle if streams.augment is None else streams.augment
    x_train, y_train = train_set
    num_samples = x_train.shape[0]
    batches_per_epoch = steps_per_epoch(num_samples, batch_size)
    loss_fn = SoftmaxCrossEntropy(settings.label_smoothing)
    state = RunState() if state is None else state
    metrics_logger = reports.metrics_logger
    if metrics_logger is not None:
        _replay(state, batches_per_epoch, metrics_logger)
    step = state.epochs_done * batches_per_epoch
    for epoch in range(state.epochs_done + 1, epochs + 1):
        order = streams.shuffle.permutation(num_samples)
        loss_sum = correct = 0.0
        batches = tqdm(
            range(batches_per_epoch),
            desc=f"epoch {epoch}/{epochs}",
            unit="batch",
            leave=False,
            # None lets tqdm hide the bar when stderr is not a terminal (logs, CI).
            disable=None if reports.show_progress is None else not reports.show_progress,
            file=sys.stderr,
        )
        # A diverging run overflows in a step; the loss check says what happened and what to do
        # (at that step, or at the next one for weights a step made non-finite), where NumPy's
        # warnings would only say "overflow encountered", and say it first. Set once an epoch,
        # not at every step.
        with np.errstate(over="ignore", invalid="ignore"):
            for batch in batches:
                last = batch == batches_per_epoch - 1
                index = order[batch * batch_size : None if last else (batch + 1) * batch_size]
                # Gathering one batch at a time keeps memory flat even for memory-mapped inputs.
                x = settings.augmentation.apply(np.asarray(x_train[index]), augment_rng)
                y = y_train[index]
                lr = settings.learning_rate(step)
                logits = model.forward(x, training=True)
                loss = loss_fn.forward(logits, y)
                if not np.isfinite(loss):
                    raise TrainingDiverged(
                        f"the training loss became {loss} at epoch {epoch}, step {batch + 1} "
                        f"(global step {step + 1}, learning rate {lr:.3g}); lower train.lr, "
                        f"raise train.warmup_epochs or check the input data for NaNs"
                    )
                model.backward(loss_fn.backward(), need_input_grad=False)
                optimizer.step(lr)
                step += 1
                state.step_lr.append(lr)
                state.step_loss.append(float(loss))
                if metrics_logger is not None:
                    metrics_logger.log_step(step, lr, float(loss))
                loss_sum += loss * y.shape[0]
                correct += np.count_nonzero(logits.argmax(axis=1) == y)

        val_loss, val_accuracy = evaluate_model(
            model, *val_set, batch_size=settings.eval_batch_size
        )
        row = {
            "epoch": epoch,
            "lr": lr,
            "train_loss": loss_sum / num_samples,
            "train_accuracy": correct / num_samples,
            "val_loss": val_loss,
            "val_accuracy": val_accuracy,
        }
        state.history.append(row)
        state.epochs_done = epoch
        # Model selection: a copy of the best epoch's weights (and normalization statistics) is
        # kept in memory, one more model's worth.
        if settings.select_by != "last":
            score = val_accuracy if settings.select_by == "val_accuracy" else -val_loss
            if state.best_score is None or score > state.best_score:
                state.best_score, state.best_epoch = score, epoch
                state.best_state = model.state_dict()
        if metrics_logger is not None:
            metrics_logger.log_epoch(step, row)
        if on_epoch_end is not None:
            on_epoch_end(state)
        reports.log(
            f"epoch {epoch:>3}/{epochs}  lr {lr:.2e}  train loss {row['train_loss']:.4f} "
            f"acc {row['train_accuracy']:.4f}  val loss {val_loss:.4f} acc {val_accuracy:.4f}"
        )

    if state.selected_epoch != epochs:
        model.load_state_dict(state.best_state)
        reports.log(
            f"kept the weights of epoch {state.selected_epoch}, the best by {settings.select_by}"
        )
    return state


def _replay(state: RunState, steps_per_epoch: int, metrics_logger: MetricsLogger) -> None:
    """Report the steps and epochs of ``state`` in the order training reported them."""
    for epoch, row in enumerate(state.history, start=1):
        first, last = (epoch - 1) * steps_per_epoch, epoch * steps_per_epoch
        for step in range(first, last):
            metrics_logger.log_step(step + 1, state.step_lr[step], state.step_loss[step])
        metrics_logger.log_epoch(last, row)
