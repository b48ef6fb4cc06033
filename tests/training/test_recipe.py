"""The recipe end to end on tiny colour images, and the bounds it checks before any work."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from helpers.project import base_params
from numpynet.config import parse_params
from numpynet.errors import ConfigError
from numpynet.evaluation import loss_and_accuracy, predict_logits
from numpynet.records import ProcessedMeta, TrainingRecord
from numpynet.training.recipe import train_mlp
from numpynet.training.whitening import MAX_WHITENED_VALUES


def recipe(**changes):
    params = parse_params(base_params({"cifar10": {"data": {"format": "cifar10-binary"},
                                                    "train": {}}}, **changes))
    return params.train_for("cifar10")


def colour_blobs(count, seed, shape=(4, 4, 3)):
    """Noisy images whose class is their colour: flips and shifts keep it."""
    rng = np.random.default_rng(seed)
    colours = np.random.default_rng(99).standard_normal((3, 1, 1, shape[2]))
    means = np.broadcast_to(colours, (3, *shape)).astype(np.float32)
    labels = np.arange(count, dtype=np.int64) % 3
    return means[labels] + rng.standard_normal((count, *shape)).astype(np.float32), labels


def meta(shape=(4, 4, 3)):
    return ProcessedMeta(classes=["a", "b", "c"], image_shape=list(shape),
                         sizes={"train": 300, "val": 90}, mean=[0.5] * shape[2],
                         std=[0.25] * shape[2])


def test_whitened_flipped_colour_run_saves_a_model_that_takes_the_stored_images():
    config = recipe(epochs=8, lr=0.01, hidden_sizes=[16], whitening="zca", augment_flip=True,
                    augment_shift=1, normalization="batch", label_smoothing=0.1,
                    select_by="val_accuracy")
    val_set = colour_blobs(90, 1)
    run = train_mlp(config, meta(), colour_blobs(300, 0), val_set, log=lambda line: None)
    logged = run.history[run.selected_epoch - 1]["val_accuracy"]
    _, accuracy = loss_and_accuracy(predict_logits(run.model, val_set[0], 50), val_set[1])
    assert abs(accuracy - logged) <= 1 / 90  # folded whitening: the same model on raw images
    assert accuracy > 0.6
    record = run.record(config)
    assert isinstance(record, TrainingRecord)
    assert record.selected_epoch == run.selected_epoch


def test_augmentation_draws_from_its_own_stream_and_leaves_the_batch_order_alone():
    # Images symmetric left-right: a flip leaves them as they were, so with the flip on, the
    # same weights come out only if the batch order (and everything else) is unchanged.
    images, labels = colour_blobs(120, 2)
    images = (images + images[:, :, ::-1]) / 2
    runs = [train_mlp(recipe(epochs=2, hidden_sizes=[8], augment_flip=flip), meta(),
                      (images, labels), (images, labels), log=lambda line: None)
            for flip in (False, True)]
    for (name, a), b in zip(runs[0].model.state_dict().items(),
                            runs[1].model.state_dict().values()):
        np.testing.assert_array_equal(a, b, err_msg=name)


def test_whitening_images_too_large_is_refused_before_any_work():
    side = int(np.sqrt(MAX_WHITENED_VALUES)) + 1
    config = recipe(whitening="zca")
    never_read = np.empty((0,))
    with pytest.raises(ConfigError, match=r"whitening: zca.*set whitening: none"):
        train_mlp(config, meta((side, side, 1)), (never_read, never_read),
                  (never_read, never_read))
    # The same images without whitening are fine as far as this check goes.
    assert dataclasses.replace(config, whitening="none").whitening == "none"
