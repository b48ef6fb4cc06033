"""Checkpoints: a run stopped after any epoch and continued gives the uninterrupted run's bytes."""

from __future__ import annotations

import numpy as np
import pytest

from numpynet.resume import CheckpointStore, Progress, Snapshot, digest_files
from numpynet.recipe import train_mlp
from test_recipe import colour_blobs, meta, recipe

FINGERPRINT = {"parameters": "p1", "code": "c1", "data": "d1"}


class Recorder:
    """A MetricsLogger keeping every call, in order."""

    def __init__(self):
        self.calls = []

    def log_step(self, step, lr, loss):
        self.calls.append(("step", step, lr, loss))

    def log_epoch(self, step, row):
        self.calls.append(("epoch", step, dict(row)))


class Stop(Exception):
    pass


def stop_after(epoch):
    """A log that raises once the summary line of ``epoch`` is written (after its checkpoint)."""

    def log(line):
        if line.startswith(f"epoch {epoch:>3}/"):
            raise Stop

    return log


# Every ingredient that draws random numbers or keeps state across epochs.
CONFIG = dict(epochs=4, lr=0.01, hidden_sizes=[16], augment_flip=True, augment_shift=1,
              normalization="batch", dropout=0.3, label_smoothing=0.1, warmup_epochs=1,
              select_by="val_accuracy")


def train(store=None, logger=None, log=lambda line: None, **changes):
    config = recipe(**{**CONFIG, **changes})
    return train_mlp(config, meta(), colour_blobs(300, 0), colour_blobs(90, 1), log=log,
                     metrics_logger=logger, checkpoints=store)


def state_bytes(run):
    return {name: array.tobytes() for name, array in run.model.state_dict().items()}


@pytest.mark.parametrize("stopped_after", [1, 2, 4])
def test_a_run_continued_from_its_checkpoint_ends_with_the_uninterrupted_bytes(
    tmp_path, stopped_after
):
    whole_log = Recorder()
    whole = train(logger=whole_log)

    store = CheckpointStore(tmp_path / "run.npz", FINGERPRINT, log=lambda line: None)
    with pytest.raises(Stop):
        train(store, Recorder(), log=stop_after(stopped_after))
    assert store.load().progress.epochs_done == stopped_after

    messages, resumed_log = [], Recorder()
    store.log = messages.append
    resumed = train(store, resumed_log, log=messages.append)

    assert f"resuming after epoch {stopped_after}" in messages[0]
    assert state_bytes(resumed) == state_bytes(whole)
    assert resumed.history == whole.history
    assert resumed.selected_epoch == whole.selected_epoch
    # The steps and epochs done before the stop are reported again: the log is whole.
    assert resumed_log.calls == whole_log.calls


def test_a_checkpoint_of_other_parameters_is_discarded_naming_what_changed(tmp_path):
    store = CheckpointStore(tmp_path / "run.npz", FINGERPRINT, log=lambda line: None)
    with pytest.raises(Stop):
        train(store, log=stop_after(2))
    messages = []
    other = CheckpointStore(tmp_path / "run.npz", {**FINGERPRINT, "parameters": "p2"},
                            log=messages.append)
    assert other.load() is None
    assert "discarded" in messages[0] and "parameters differ" in messages[0]
    assert not (tmp_path / "run.npz").exists()


@pytest.mark.parametrize("damage", [b"", b"not a zip file", None])
def test_a_damaged_checkpoint_is_discarded_not_a_crash(tmp_path, damage):
    path = tmp_path / "run.npz"
    store = CheckpointStore(path, FINGERPRINT, log=lambda line: None)
    store.save(Snapshot({"w": np.ones(3, np.float32)}, {"step": np.int64(3)}, {}, Progress()))
    path.write_bytes(path.read_bytes()[:100] if damage is None else damage)
    messages = []
    store.log = messages.append
    assert store.load() is None
    assert "cannot be read" in messages[0]
    assert not path.exists()


def test_save_and_load_round_trip_every_part(tmp_path):
    progress = Progress(epochs_done=2, history=[{"epoch": 1, "lr": 0.1}, {"epoch": 2, "lr": 0.2}],
                        step_lr=[0.1, 0.2], step_loss=[2.5, 1.25], best_score=0.5, best_epoch=1,
                        best_state={"0.weight": np.arange(6, dtype=np.float32).reshape(2, 3)})
    rng = np.random.default_rng(7)
    rng.random(5)
    snapshot = Snapshot({"0.weight": np.ones((2, 3), np.float32)},
                        {"step": np.int64(4), "exp_avg.0.weight": np.zeros((2, 3), np.float32)},
                        {"shuffle": rng.bit_generator.state}, progress)
    store = CheckpointStore(tmp_path / "run.npz", FINGERPRINT)
    store.save(snapshot)
    loaded = store.load()
    assert loaded.progress.history == progress.history
    assert loaded.progress.step_lr == progress.step_lr
    assert loaded.progress.step_loss == progress.step_loss
    assert (loaded.progress.best_score, loaded.progress.best_epoch) == (0.5, 1)
    np.testing.assert_array_equal(loaded.progress.best_state["0.weight"],
                                  progress.best_state["0.weight"])
    assert int(loaded.optimizer["step"]) == 4
    restored = np.random.default_rng(0)
    restored.bit_generator.state = loaded.generators["shuffle"]
    assert restored.random() == rng.random()
    store.remove()
    assert not store.path.exists()


def test_file_digests_see_names_and_contents(tmp_path):
    (tmp_path / "a").write_bytes(b"1")
    (tmp_path / "b").write_bytes(b"2")
    first = digest_files([tmp_path / "a", tmp_path / "b"], tmp_path)
    assert digest_files([tmp_path / "b", tmp_path / "a"], tmp_path) == first  # order-free
    (tmp_path / "b").write_bytes(b"3")
    assert digest_files([tmp_path / "a", tmp_path / "b"], tmp_path) != first
