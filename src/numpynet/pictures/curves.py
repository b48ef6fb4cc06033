"""Learning curves: loss, accuracy and learning rate over training, in one picture."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib.ticker import MaxNLocator, PercentFormatter

from numpynet.pictures.png import MAX_WIDTH_INCHES, new_figure, plain_style, save_figure

# One colour per split in every panel, so the legend of the first serves all of them.
TRAIN_COLOUR = "tab:blue"
VAL_COLOUR = "tab:orange"
KEPT_COLOUR = "tab:green"

# Beyond this many epochs, a marker per epoch would blur the lines into a thick band.
_MAX_EPOCHS_WITH_MARKERS = 40

# The panels' heights, top to bottom, in inches: loss and accuracy hold what there is to read;
# the learning rate is one smooth line.
_PANEL_HEIGHTS = (2.9, 2.9, 1.7)

_PER_EPOCH = ("train_loss", "val_loss", "train_accuracy", "val_accuracy")
_PER_STEP = ("step_epoch", "step_lr", "step_loss")


@dataclass(frozen=True)
class LearningCurves:
    """What training recorded, as arrays: E epochs and S optimizer steps.

    ``epoch``: (E,) epoch numbers 1..E. ``train_loss``, ``train_accuracy``: (E,) means over each
    epoch's batches, as training saw them (label-smoothed targets, augmentation, dropout).
    ``val_loss``, ``val_accuracy``: (E,) plain cross-entropy and accuracy on the validation split
    at the end of each epoch. ``step_epoch``: (S,) each optimizer step's position in epochs (step
    k of n in epoch e is at ``e - 1 + k / n``). ``step_lr``, ``step_loss``: (S,) the learning rate
    and batch loss of each step. ``selected_epoch``: the epoch whose weights were kept, if known.
    """

    epoch: np.ndarray
    train_loss: np.ndarray
    val_loss: np.ndarray
    train_accuracy: np.ndarray
    val_accuracy: np.ndarray
    step_epoch: np.ndarray
    step_lr: np.ndarray
    step_loss: np.ndarray
    selected_epoch: int | None = None

    def __post_init__(self):
        # Lists are accepted too; a frozen dataclass is written through object.__setattr__.
        object.__setattr__(self, "epoch", np.asarray(self.epoch, dtype=np.int64))
        for name in _PER_EPOCH + _PER_STEP:
            object.__setattr__(self, name, np.asarray(getattr(self, name), dtype=np.float64))
        for names, reference in ((_PER_EPOCH, "epoch"), (_PER_STEP[1:], "step_epoch")):
            shape = getattr(self, reference).shape
            if len(shape) != 1:
                raise ValueError(f"{reference} must be one-dimensional, not of shape {shape}")
            for name in names:
                if getattr(self, name).shape != shape:
                    raise ValueError(
                        f"{name} has shape {getattr(self, name).shape}, {reference} {shape}"
                    )

    @classmethod
    def from_log(
        cls,
        epochs: dict[str, np.ndarray],
        steps: dict[str, np.ndarray],
        steps_per_epoch: int,
        selected_epoch: int | None,
    ) -> LearningCurves:
        """The curves of a training log: ``epochs`` by the loop's column names (``train_loss``,
        ``val_loss``, ``train_accuracy``, ``val_accuracy``), ``steps`` (``lr`` and ``loss``, one
        value per optimizer step) and ``steps_per_epoch``, the same for every epoch."""
        return cls(
            epoch=np.arange(1, len(epochs["val_accuracy"]) + 1),
            train_loss=epochs["train_loss"],
            val_loss=epochs["val_loss"],
            train_accuracy=epochs["train_accuracy"],
            val_accuracy=epochs["val_accuracy"],
            step_epoch=np.arange(1, len(steps["lr"]) + 1) / steps_per_epoch,
            step_lr=steps["lr"],
            step_loss=steps["loss"],
            selected_epoch=selected_epoch,
        )


def _percent(fraction: float) -> str:
    return f"{100 * fraction:.1f}%"


def _epoch_axis(axes, last_epoch: int) -> None:
    """Epochs 0..E on x, integer ticks; a little room on the right for the last marker."""
    axes.set_xlim(0, last_epoch * 1.02 + 0.05)
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.grid(alpha=0.3)


def _draw_loss(axes, curves: LearningCurves, marker: str | None) -> None:
    axes.plot(
        curves.step_epoch,
        curves.step_loss,
        color=TRAIN_COLOUR,
        alpha=0.25,
        linewidth=0.5,
        label="train, each batch (smoothed targets)",
    )
    _plot_epochs(axes, curves, curves.train_loss, curves.val_loss, marker, " (smoothed targets)")
    # The first batches' losses (about ln(classes)) would squash the epochs into a flat band;
    # the frame holds the per-epoch values, and the earliest batches run off its top.
    epoch_values = np.concatenate([curves.train_loss, curves.val_loss])
    finite = epoch_values[np.isfinite(epoch_values)]
    if finite.size:
        axes.set_ylim(0, 1.15 * finite.max() or 1.0)
    else:
        axes.set_ylim(bottom=0)
    axes.set_ylabel("cross-entropy loss")
    axes.set_title("loss")
    legend = axes.legend(fontsize="small")
    # The faint per-batch line would be invisible in the legend at its own width.
    legend.get_lines()[0].set(linewidth=2, alpha=0.4)


def _plot_epochs(axes, curves, train, val, marker: str | None, train_note: str = "") -> None:
    """One value per epoch for each split: ``train`` (epoch means) and ``val``."""
    # An epoch mean covers the whole epoch, so it sits at the epoch's middle, over its batches;
    # validation is measured after the epoch's last step.
    axes.plot(curves.epoch - 0.5, train, color=TRAIN_COLOUR, marker=marker, markersize=3,
              label=f"train, epoch mean{train_note}")
    axes.plot(curves.epoch, val, color=VAL_COLOUR, marker=marker, markersize=3,
              label="validation, end of epoch")


def _draw_accuracy(axes, curves: LearningCurves, marker: str | None) -> None:
    _plot_epochs(axes, curves, curves.train_accuracy, curves.val_accuracy, marker)
    kept = curves.selected_epoch
    if kept is not None:
        position = np.flatnonzero(curves.epoch == kept)
        label = f"kept: epoch {kept}"
        if position.size:
            val_accuracy = float(curves.val_accuracy[position[0]])
            label += f" (validation {_percent(val_accuracy)})"
            axes.plot(kept, val_accuracy, "o", color=KEPT_COLOUR, markersize=6, zorder=3)
        axes.axvline(kept, color=KEPT_COLOUR, linestyle=":", linewidth=1.5, label=label)
    axes.set_ylim(*_accuracy_range(curves))
    axes.yaxis.set_major_formatter(PercentFormatter(xmax=1))
    axes.set_ylabel("accuracy")
    axes.set_title("accuracy")
    axes.legend(fontsize="small", loc="lower right")


def _accuracy_range(curves: LearningCurves) -> tuple[float, float]:
    """The accuracies worth reading: from the second epoch on when there are three or more.

    The first epoch's accuracy is often far below the rest, and a frame that held it would
    flatten the differences the later epochs make (98.9% against 99.4% on MNIST); it runs off
    the bottom instead.
    """
    values = np.concatenate([curves.train_accuracy, curves.val_accuracy])
    if curves.epoch.size >= 3:
        later = curves.epoch >= 2
        values = np.concatenate([curves.train_accuracy[later], curves.val_accuracy[later]])
    values = values[np.isfinite(values)]
    if not values.size:
        return 0.0, 1.0
    low, high = float(values.min()), float(values.max())
    margin = max(0.1 * (high - low), 0.002)
    return max(0.0, low - margin), min(1.0, high + margin)


def _draw_learning_rate(axes, curves: LearningCurves) -> None:
    if curves.step_epoch.size:
        axes.plot(curves.step_epoch, curves.step_lr, color="tab:purple", linewidth=1)
        axes.set_ylim(bottom=0)
    else:
        axes.text(0.5, 0.5, "no steps recorded", ha="center", va="center", transform=axes.transAxes)
    # Rates are small numbers; an offset "1e-3" above the axis is easy to miss, so write them out.
    axes.ticklabel_format(axis="y", style="plain", useOffset=False)
    axes.set_ylabel("learning rate")
    axes.set_title("learning rate, each optimizer step")


def draw_learning_curves(curves: LearningCurves, path: Path | str, title: str) -> None:
    """Draw loss, accuracy and learning rate against epochs, one above the other, as PNG.

    The three panels share the epoch axis, labelled under the lowest, and the picture is
    ``MAX_WIDTH_INCHES`` wide (see :mod:`numpynet.pictures.png`). The train loss is against
    label-smoothed targets and the validation loss plain cross-entropy, so the two are labelled
    as such rather than presented as one quantity.
    """
    epochs = np.asarray(curves.epoch)
    last_epoch = int(epochs.max()) if epochs.size else 1
    # Lines through one or a few points are invisible without markers.
    marker = "o" if epochs.size <= _MAX_EPOCHS_WITH_MARKERS else None
    with plain_style():
        # Stacked rather than side by side: three panels in a row would be too narrow to read
        # at the page's width. The upper two leave their epoch numbers to the lowest.
        figure = new_figure(MAX_WIDTH_INCHES, sum(_PANEL_HEIGHTS) + 0.5)
        loss_axes, accuracy_axes, lr_axes = figure.subplots(
            3, 1, sharex=True, height_ratios=_PANEL_HEIGHTS
        )
        _draw_loss(loss_axes, curves, marker)
        _draw_accuracy(accuracy_axes, curves, marker)
        _draw_learning_rate(lr_axes, curves)
        for axes in (loss_axes, accuracy_axes, lr_axes):
            _epoch_axis(axes, last_epoch)
        lr_axes.set_xlabel("epoch")
        figure.suptitle(title)
        save_figure(figure, path)

