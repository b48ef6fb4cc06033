"""The training loop: it learns, is reproducible, stops on divergence and uses every sample."""

import re
import warnings
from functools import partial

import numpy as np
import pytest

from numpynet.errors import TrainingDiverged
from numpynet.evaluation import loss_and_accuracy, predict_logits
from numpynet.nn import MLPConfig, build_mlp, learning_rate
from numpynet.training.loop import (
    LOG_COLUMNS,
    LoopSettings,
    RandomStreams,
    Reports,
    RunState,
    fit,
    make_optimizer,
)
from numpynet.matmul import exact_products

NUM_CLASSES = 10
DIM = 20


def class_means():
    return np.random.default_rng(1234).standard_normal((NUM_CLASSES, DIM))


def gaussian_blobs(count, seed):
    """``count`` float32 points in 20-d around 10 class means, unit noise; int64 labels.

    The means are close enough that the classes overlap a little: the best possible (nearest
    mean) accuracy is about 99%, so a model must really learn to pass 90%.
    """
    rng = np.random.default_rng(seed)
    means = class_means()
    labels = rng.permutation(np.arange(count) % NUM_CLASSES).astype(np.int64)
    points = means[labels] + rng.standard_normal((count, DIM))
    return points.astype(np.float32), labels


def split(count=2000, seed=0):
    x, y = gaussian_blobs(count, seed)
    cut = int(0.8 * count)
    return (x[:cut], y[:cut]), (x[cut:], y[cut:])


OPTIMIZERS = {
    "adamw": dict(lr=1e-2, kwargs=dict(momentum=0.0, nesterov=False, betas=(0.9, 0.999), eps=1e-8,
                                       weight_decay=0.01)),
    "sgd": dict(lr=5e-2, kwargs=dict(momentum=0.9, nesterov=True, betas=(0.9, 0.999), eps=1e-8,
                                     weight_decay=1e-4)),
}


def mlp(hidden_sizes, dropout, seed, input_size=DIM, num_classes=NUM_CLASSES):
    config = MLPConfig(input_size, tuple(hidden_sizes), num_classes, dropout)
    return build_mlp(config, np.random.default_rng(seed))


def train(optimizer_name="adamw", *, epochs=4, batch_size=64, init_seed=0, shuffle_seed=1,
          dropout=0.1, data=None, lr=None, schedule="cosine", log=None):
    """Train a small MLP on the blobs; return the model, the optimizer, the history, the data.

    The per-epoch lines go to ``log``, or nowhere when it is None.
    """
    train_set, val_set = data or split()
    model = mlp([64], dropout=dropout, seed=init_seed)
    config = OPTIMIZERS[optimizer_name]
    optimizer = make_optimizer(optimizer_name, model.parameters(), **config["kwargs"])
    steps_per_epoch = -(-train_set[0].shape[0] // batch_size)
    schedule_fn = partial(
        learning_rate,
        base_lr=config["lr"] if lr is None else lr,
        total_steps=epochs * steps_per_epoch,
        warmup_steps=0,
        min_lr=0.0,
        kind=schedule,
    )
    state = fit(
        model,
        optimizer,
        train_set,
        val_set,
        LoopSettings(epochs=epochs, batch_size=batch_size, learning_rate=schedule_fn,
                     eval_batch_size=128),
        RandomStreams(shuffle=np.random.default_rng(shuffle_seed)),
        reports=Reports(log=log or (lambda line: None), show_progress=False),
    )
    assert isinstance(state, RunState)
    return model, optimizer, state.history, (train_set, val_set)


@pytest.mark.parametrize("optimizer_name", ["adamw", "sgd"])
def test_fit_learns_a_separable_problem(optimizer_name):
    model, _, history, (_, (x_val, y_val)) = train(optimizer_name)
    assert history[-1]["val_accuracy"] > 0.9
    distances = ((x_val[:, None, :] - class_means()) ** 2).sum(axis=2)
    best_possible = np.mean(distances.argmin(axis=1) == y_val)
    assert history[-1]["val_accuracy"] >= best_possible - 0.05
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    # The logged validation accuracy is the model's real accuracy on the validation set.
    _, accuracy = loss_and_accuracy(predict_logits(model, x_val, 128), y_val)
    assert history[-1]["val_accuracy"] == accuracy


@pytest.mark.parametrize("optimizer_name", ["adamw", "sgd"])
def test_same_seeds_give_bit_identical_weights_and_history(optimizer_name):
    first_model, first_optimizer, first_history, _ = train(optimizer_name, epochs=2)
    second_model, second_optimizer, second_history, _ = train(optimizer_name, epochs=2)
    assert first_history == second_history
    first, second = first_model.state_dict(), second_model.state_dict()
    assert sorted(first) == sorted(second)
    for name in first:
        assert first[name].tobytes() == second[name].tobytes(), name
    first_state, second_state = first_optimizer.state_dict(), second_optimizer.state_dict()
    assert first_state["step"] == second_state["step"] == 2 * 25
    for key in first_state:
        np.testing.assert_array_equal(first_state[key], second_state[key])


def test_a_different_shuffle_seed_gives_different_weights():
    # Guards the reproducibility test: the seeds must actually matter.
    first, _, _, _ = train(epochs=1, shuffle_seed=1)
    second, _, _, _ = train(epochs=1, shuffle_seed=2)
    assert not np.array_equal(first.state_dict()["layers.1.weight"],
                              second.state_dict()["layers.1.weight"])


def test_history_rows():
    epochs, batch_size = 3, 64
    _, _, history, ((x_train, _), _) = train(epochs=epochs, batch_size=batch_size)
    assert len(history) == epochs
    for number, row in enumerate(history, start=1):
        assert set(row) == set(LOG_COLUMNS)
        assert len(row) == len(LOG_COLUMNS)
        assert row["epoch"] == number
        for column in LOG_COLUMNS[1:]:
            assert isinstance(row[column], float) and np.isfinite(row[column]), column
        assert 0.0 <= row["train_accuracy"] <= 1.0 and 0.0 <= row["val_accuracy"] <= 1.0
    # "lr" is the rate of the epoch's last step: the cosine reaches min_lr = 0 at the very end.
    steps_per_epoch = -(-x_train.shape[0] // batch_size)
    schedule = partial(learning_rate, base_lr=1e-2, total_steps=epochs * steps_per_epoch,
                       warmup_steps=0, min_lr=0.0, kind="cosine")
    assert [row["lr"] for row in history] == [
        schedule(epoch * steps_per_epoch - 1) for epoch in range(1, epochs + 1)
    ]
    assert history[-1]["lr"] == 0.0


def test_one_log_line_per_epoch_goes_to_the_given_log():
    lines = []
    _, _, history, _ = train(epochs=2, log=lines.append)
    assert len(lines) == 2
    for line, row in zip(lines, history):
        assert "\n" not in line
        assert line.startswith(f"epoch {row['epoch']:>3}/2  lr {row['lr']:.2e}  ")
        assert f"train loss {row['train_loss']:.4f} acc {row['train_accuracy']:.4f}" in line
        assert line.endswith(f"val loss {row['val_loss']:.4f} acc {row['val_accuracy']:.4f}")


def test_the_log_defaults_to_stderr_and_stdout_stays_empty(capsys):
    (x_train, y_train), val_set = split(count=100)
    model = mlp([4], dropout=0.0, seed=0)
    optimizer = make_optimizer("sgd", model.parameters(), momentum=0.0, nesterov=False,
                               betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)
    fit(model, optimizer, (x_train, y_train), val_set,
        LoopSettings(epochs=1, batch_size=40, learning_rate=lambda step: 1e-3),
        RandomStreams(shuffle=np.random.default_rng(0)),
        reports=Reports(show_progress=False))
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("epoch   1/1  lr 1.00e-03  train loss ")
    assert captured.err.count("\n") == 1


# --- divergence ----------------------------------------------------------------------------------


def test_nan_input_raises_training_diverged_naming_epoch_and_step():
    (x_train, y_train), val_set = split(count=200)
    batch_size, bad_sample = 32, 57
    x_train = x_train.copy()
    x_train[bad_sample, 3] = np.nan
    # fit draws one permutation per epoch from its rng: find the batch the bad sample lands in.
    order = np.random.default_rng(1).permutation(x_train.shape[0])
    step = int(np.flatnonzero(order == bad_sample)[0]) // batch_size + 1
    with pytest.raises(TrainingDiverged) as caught:
        train(epochs=2, batch_size=batch_size, data=((x_train, y_train), val_set))
    message = str(caught.value)
    assert re.search(rf"\bepoch 1, step {step}\b", message), message
    assert "lower train.lr" in message
    assert "nan" in message.lower()


@pytest.mark.hostile
def test_huge_learning_rate_raises_training_diverged_with_no_numpy_warning_first():
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # "overflow encountered" before the message
        with pytest.raises(TrainingDiverged) as caught:
            train("sgd", epochs=3, lr=1e6, dropout=0.0, schedule="constant")
    message = str(caught.value)
    assert re.search(r"\bepoch \d+, step \d+\b", message), message
    assert "lower train.lr" in message


# --- every sample, including the last partial batch ----------------------------------------------


class RecordingModel:
    """Wraps a model and records which training samples each training-mode forward pass sees."""

    def __init__(self, model):
        self.model = model
        self.seen = []

    def forward(self, x, training=False):
        if training:
            self.seen.append(x[:, 0].astype(np.int64))  # feature 0 holds the sample's index
        return self.model.forward(x, training)

    def backward(self, grad, need_input_grad=True):
        return self.model.backward(grad, need_input_grad)


def test_every_sample_is_used_each_epoch_including_the_partial_last_batch():
    count, batch_size, epochs = 10, 4, 3  # 4 + 4 + 2: the last batch is partial
    x = np.zeros((count, 2), dtype=np.float32)
    x[:, 0] = np.arange(count)
    y = np.arange(count, dtype=np.int64) % 2
    inner = mlp([4], dropout=0.0, seed=0, input_size=2, num_classes=2)
    model = RecordingModel(inner)
    optimizer = make_optimizer("sgd", inner.parameters(), momentum=0.0, nesterov=False,
                               betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)
    fit(model, optimizer, (x, y), (x, y),
        LoopSettings(epochs=epochs, batch_size=batch_size, learning_rate=lambda step: 1e-3),
        RandomStreams(shuffle=np.random.default_rng(0)),
        reports=Reports(log=lambda line: None, show_progress=False))
    assert [len(batch) for batch in model.seen] == [4, 4, 2] * epochs
    assert optimizer.step_count == 3 * epochs
    for epoch in range(epochs):
        visited = np.concatenate(model.seen[3 * epoch : 3 * epoch + 3])
        np.testing.assert_array_equal(np.sort(visited), np.arange(count))


def test_train_metrics_average_over_every_sample():
    # With a zero learning rate the model never changes, so the epoch's training loss and
    # accuracy must equal those of the whole training set, partial last batch included.
    (x_train, y_train), val_set = split(count=103)  # 82 training samples
    x_train, y_train = x_train[:77], y_train[:77]  # 77 = 4 * 16 + 13
    model = mlp([8], dropout=0.0, seed=4)
    before = model.state_dict()
    optimizer = make_optimizer("adamw", model.parameters(), momentum=0.0, nesterov=False,
                               betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01)
    # Batches of 16 against one of 77: the same bits only where the mode promises it (exact).
    with exact_products():
        history = fit(model, optimizer, (x_train, y_train), val_set,
                      LoopSettings(epochs=1, batch_size=16, learning_rate=lambda step: 0.0),
                      RandomStreams(shuffle=np.random.default_rng(0)),
                      reports=Reports(log=lambda line: None, show_progress=False)).history
        loss, accuracy = loss_and_accuracy(model.forward(x_train, training=False), y_train)
    for name, value in model.state_dict().items():
        np.testing.assert_array_equal(value, before[name])
    assert history[0]["train_accuracy"] == pytest.approx(accuracy, abs=1e-12)
    assert history[0]["train_loss"] == pytest.approx(loss, rel=1e-5)
    assert 0.0 < accuracy < 1.0  # an untrained model: a dropped batch would change the numbers


def _train_then_wreck(select_by, epochs=4):
    """Train well for all epochs but the last, which climbs the loss instead (a negative rate)."""
    train_set, val_set = split()
    model = mlp([32], dropout=0.0, seed=0)
    optimizer = make_optimizer("sgd", model.parameters(), momentum=0.0, nesterov=False,
                               betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)
    steps = -(-train_set[0].shape[0] // 64)
    lines = []
    state = fit(
        model, optimizer, train_set, val_set,
        LoopSettings(epochs=epochs, batch_size=64,
                     learning_rate=lambda step: 0.05 if step < (epochs - 1) * steps else -0.2,
                     select_by=select_by),
        RandomStreams(shuffle=np.random.default_rng(0)),
        reports=Reports(log=lines.append, show_progress=False),
    )
    return model, state.history, state.selected_epoch, val_set, lines


@pytest.mark.parametrize("select_by, column, best", [("val_accuracy", "val_accuracy", max),
                                                     ("val_loss", "val_loss", min)])
def test_model_selection_keeps_the_best_epoch_by_the_validation_split(select_by, column, best):
    model, history, selected, (x_val, y_val), lines = _train_then_wreck(select_by)
    scores = [row[column] for row in history]
    assert selected == scores.index(best(scores)) + 1  # the earliest best epoch, counted from 1
    assert selected < len(history), "the wrecked last epoch must not be the best"
    # In batches of fit's eval_batch_size: a kernel class's products may round differently in
    # batches of another number of rows.
    loss, accuracy = loss_and_accuracy(predict_logits(model, x_val, 1000), y_val)
    # The model holds the selected epoch's weights: it scores what that epoch logged.
    assert accuracy == history[selected - 1]["val_accuracy"]
    assert loss == pytest.approx(history[selected - 1]["val_loss"], rel=1e-12)
    assert f"kept the weights of epoch {selected}" in lines[-1]


def test_selecting_the_last_epoch_keeps_the_final_weights():
    model, history, selected, (x_val, y_val), _ = _train_then_wreck("last")
    assert selected == len(history)
    _, accuracy = loss_and_accuracy(predict_logits(model, x_val, 1000), y_val)
    assert accuracy == history[-1]["val_accuracy"]


def test_an_unknown_selection_rule_is_refused_when_the_settings_are_built():
    # Before any work: the loop's settings cannot hold a rule the loop does not know.
    with pytest.raises(ValueError, match=r"select_by must be 'val_accuracy', 'val_loss' or 'last'"):
        LoopSettings(epochs=1, batch_size=1, learning_rate=lambda step: 0.0, select_by="best")


def test_selection_restores_normalization_statistics_too():
    train_set, val_set = split()
    config = MLPConfig(DIM, (32,), NUM_CLASSES, 0.0, normalization="batch")
    model = build_mlp(config, np.random.default_rng(0))
    optimizer = make_optimizer("sgd", model.parameters(), momentum=0.0, nesterov=False,
                               betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)
    steps = -(-train_set[0].shape[0] // 64)
    state = fit(
        model, optimizer, train_set, val_set,
        LoopSettings(epochs=3, batch_size=64,
                     learning_rate=lambda step: 0.05 if step < 2 * steps else -0.2,
                     select_by="val_loss"),
        RandomStreams(shuffle=np.random.default_rng(0)),
        reports=Reports(log=lambda line: None, show_progress=False),
    )
    history, selected = state.history, state.selected_epoch
    assert selected < 3
    loss, _ = loss_and_accuracy(predict_logits(model, val_set[0], 1000), val_set[1])
    assert loss == pytest.approx(history[selected - 1]["val_loss"], rel=1e-12)


def test_augmentation_and_label_smoothing_reach_the_loop():
    from numpynet.training.augment import Augmentation

    # Images (N, H, W, C): the flip moves values between columns, so a recording model sees it.
    rng = np.random.default_rng(0)
    x = rng.standard_normal((40, 2, 3, 1)).astype(np.float32)
    y = np.arange(40, dtype=np.int64) % 2
    runs = []
    for augmentation, smoothing in [(Augmentation(), 0.0), (Augmentation(0, True), 0.0),
                                    (Augmentation(), 0.2)]:
        model = RecordingModel(mlp([4], dropout=0.0, seed=0, input_size=6, num_classes=2))
        optimizer = make_optimizer("sgd", model.model.parameters(), momentum=0.0,
                                   nesterov=False, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)
        history = fit(model, optimizer, (x, y), (x.reshape(40, -1)[:, :6].reshape(x.shape), y),
                      LoopSettings(epochs=1, batch_size=40, learning_rate=lambda step: 0.0,
                                   augmentation=augmentation, label_smoothing=smoothing),
                      RandomStreams(shuffle=np.random.default_rng(1)),
                      reports=Reports(log=lambda line: None, show_progress=False)).history
        runs.append((np.concatenate(model.seen), history[0]["train_loss"]))
    (plain, plain_loss), (flipped, flipped_loss), (_, smoothed_loss) = runs
    assert not np.array_equal(plain, flipped)  # the flip changed what the model saw
    assert smoothed_loss != plain_loss  # same model and batch, smoothed targets


def test_a_last_batch_of_one_sample_joins_the_batch_before():
    # Batch normalization cannot measure the spread of one sample.
    count, batch_size = 9, 4  # 4 + 5, not 4 + 4 + 1
    x = np.zeros((count, 2), dtype=np.float32)
    x[:, 0] = np.arange(count)
    y = np.arange(count, dtype=np.int64) % 2
    inner = build_mlp(MLPConfig(2, (4,), 2, 0.0, normalization="batch"),
                      np.random.default_rng(0))
    model = RecordingModel(inner)
    optimizer = make_optimizer("sgd", inner.parameters(), momentum=0.0, nesterov=False,
                               betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)
    fit(model, optimizer, (x, y), (x, y),
        LoopSettings(epochs=2, batch_size=batch_size, learning_rate=lambda step: 1e-3),
        RandomStreams(shuffle=np.random.default_rng(0)),
        reports=Reports(log=lambda line: None, show_progress=False))
    assert [len(batch) for batch in model.seen] == [4, 5] * 2
    assert optimizer.step_count == 4
