"""Checkpoints: a run stopped after any epoch and continued gives the uninterrupted run's bytes;
a damaged checkpoint (pickled, of another dtype or shape, a header declaring a huge array, a bad
record or generator state) is discarded with a message, its memory bounded, and training starts
afresh."""

from __future__ import annotations

import json
import re
import tracemalloc
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pytest

from helpers.hostile_data import huge_header, rewrite_npz
from numpynet.files import save_npz
from numpynet.training.checkpoints import CheckpointStore, Snapshot, digest_files, run_fingerprint
from numpynet.training.loop import RunState
from numpynet.training.recipe import train_mlp
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
    assert store.load().state.epochs_done == stopped_after

    messages, store_messages, resumed_log = [], [], Recorder()
    store.log = store_messages.append
    resumed = train(store, resumed_log, log=messages.append)

    # The store that restored the run says so, in its own log.
    assert f"resuming after epoch {stopped_after}" in store_messages[0]
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
    store.write(Snapshot({"w": np.ones(3, np.float32)}, {"step": np.int64(3)}, {}, RunState()))
    path.write_bytes(path.read_bytes()[:100] if damage is None else damage)
    messages = []
    store.log = messages.append
    assert store.load() is None
    assert "cannot be read" in messages[0]
    assert not path.exists()


def test_save_and_load_round_trip_every_part(tmp_path):
    state = RunState(epochs_done=2, history=[{"epoch": 1, "lr": 0.1}, {"epoch": 2, "lr": 0.2}],
                     step_lr=[0.1, 0.2], step_loss=[2.5, 1.25], best_score=0.5, best_epoch=1,
                     best_state={"0.weight": np.arange(6, dtype=np.float32).reshape(2, 3)})
    rng = np.random.default_rng(7)
    rng.random(5)
    snapshot = Snapshot({"0.weight": np.ones((2, 3), np.float32)},
                        {"step": np.int64(4), "exp_avg.0.weight": np.zeros((2, 3), np.float32)},
                        {"shuffle": rng.bit_generator.state}, state)
    store = CheckpointStore(tmp_path / "run.npz", FINGERPRINT)
    store.write(snapshot)
    loaded = store.load()
    assert loaded.state.history == state.history
    assert loaded.state.step_lr == state.step_lr
    assert loaded.state.step_loss == state.step_loss
    assert (loaded.state.best_score, loaded.state.best_epoch) == (0.5, 1)
    np.testing.assert_array_equal(loaded.state.best_state["0.weight"],
                                  state.best_state["0.weight"])
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


@dataclass(frozen=True)
class Settings:
    lr: float = 0.1
    hidden_sizes: tuple[int, ...] = (16,)


def test_run_fingerprint_has_four_digests_each_following_its_own_input(tmp_path):
    code_root = tmp_path / "project"
    (code_root / "src").mkdir(parents=True)
    code = [code_root / "src" / "a.py", code_root / "src" / "b.py"]
    code[0].write_text("x = 1\n")
    code[1].write_text("y = 2\n")
    data = [tmp_path / "train.npy", tmp_path / "val.npy"]
    data[0].write_bytes(b"train")
    data[1].write_bytes(b"val")
    backend = {"numeric_mode": "exact", "numpy": "2.0.0"}

    def fingerprint(settings=Settings(), backend=backend):
        return run_fingerprint(settings, code, code_root, data, backend)

    first = fingerprint()
    assert list(first) == ["parameters", "code", "data", "numeric backend"]
    assert all(re.fullmatch(r"[0-9a-f]{64}", digest) for digest in first.values()), first
    assert len(set(first.values())) == 4
    assert fingerprint() == first  # the same run, the same fingerprint

    def changed(fingerprint):
        return sorted(part for part in first if fingerprint[part] != first[part])

    assert changed(fingerprint(replace(Settings(), lr=0.2))) == ["parameters"]
    assert changed(fingerprint(backend={**backend, "numpy": "2.1.0"})) == ["numeric backend"]
    code[1].write_text("y = 3\n")
    assert changed(fingerprint()) == ["code"]
    code[1].write_text("y = 2\n")
    assert fingerprint() == first
    data[1].write_bytes(b"VAL")
    assert changed(fingerprint()) == ["data"]

    # Code files are named relative to the code root: the same tree elsewhere is the same code.
    moved_root = tmp_path / "elsewhere"
    (moved_root / "src").mkdir(parents=True)
    moved = [moved_root / "src" / path.name for path in code]
    for source, target in zip(code, moved):
        target.write_bytes(source.read_bytes())
    elsewhere = run_fingerprint(Settings(), moved, moved_root, data, backend)
    assert elsewhere["code"] == fingerprint()["code"]


# ---------------------------------------------------------------------------------------------
# Damaged checkpoints: discarded with a message, memory bounded
# ---------------------------------------------------------------------------------------------


TINY_FINGERPRINT = {"code": "c", "data": "d"}


def saved_checkpoint(path: Path) -> Path:
    weights = {"layers.1.weight": np.ones((4, 2), np.float32)}
    optimizer = {"step": np.int64(3), "m.layers.1.weight": np.zeros((4, 2), np.float32)}
    generators = {"init": np.random.default_rng(0).bit_generator.state}
    state = RunState(1, [{"epoch": 1}], [0.1], [0.5], 0.5, 1, dict(weights))
    CheckpointStore(path, TINY_FINGERPRINT, log=lambda _: None).write(
        Snapshot(weights, optimizer, generators, state))
    return path


def _record(**changes):
    def damage(path: Path, arrays: dict) -> None:
        record = json.loads(arrays["record"].tobytes())
        record.update(changes)
        for key in [k for k, v in changes.items() if v is None and k != "best_score"]:
            del record[key]
        arrays["record"] = np.frombuffer(json.dumps(record).encode(), np.uint8)
        save_npz(path, arrays)
    return damage


def _checkpoint_array(key, value):
    def damage(path: Path, arrays: dict) -> None:
        rewrite_npz(path, {**arrays, key: value})
    return damage


def _checkpoint_huge(path, arrays):
    del arrays["model:layers.1.weight"]
    rewrite_npz(path, arrays, {"model:layers.1.weight": huge_header()})


CHECKPOINT_DAMAGE = {
    "huge_header": (_checkpoint_huge, "1099511627776"),
    "pickled": (_checkpoint_array("model:layers.1.weight", np.array([{}], dtype=object)),
                "pickled Python objects"),
    "complex": (_checkpoint_array("model:layers.1.weight", np.ones((4, 2), np.complex64)),
                "complex64"),
    "float64_weights": (_checkpoint_array("model:layers.1.weight", np.ones((4, 2))), "float64"),
    "int_optimizer_state": (_checkpoint_array("optimizer:m.layers.1.weight",
                                              np.zeros((4, 2), np.int32)), "int32"),
    "best_of_another_shape": (_checkpoint_array("best:layers.1.weight",
                                                np.ones((5, 2), np.float32)), "best epoch"),
    "float_step": (_checkpoint_array("optimizer:step", np.float64(3.0)), "optimizer step"),
    "optimizer_of_another_shape": (_checkpoint_array("optimizer:m.layers.1.weight",
                                                     np.zeros((5, 2), np.float32)),
                                   "fits no model array"),
    "missing_record_key": (_record(epochs_done=None), "epochs_done"),
    "wrong_record_type": (_record(epochs_done="one"), "wrong type"),
    "unknown_generator": (_record(generators={"init": {"bit_generator": "os.system"}}),
                          "unknown random generator"),
    "bad_generator_state": (_record(generators={"init": {"bit_generator": "PCG64",
                                                          "state": {}}}), "state"),
    "member_without_group": (_checkpoint_array("nogroup", np.zeros(2)), "cannot be read"),
}


@pytest.mark.hostile
@pytest.mark.parametrize("case", sorted(CHECKPOINT_DAMAGE))
def test_a_damaged_checkpoint_is_discarded_with_a_message(tmp_path, case):
    damage, named = CHECKPOINT_DAMAGE[case]
    path = saved_checkpoint(tmp_path / "checkpoints" / "run.npz")
    assert CheckpointStore(path, TINY_FINGERPRINT, log=lambda _: None).load() is not None
    damage(path, dict(np.load(path)))
    messages = []
    tracemalloc.start()
    try:
        assert CheckpointStore(path, TINY_FINGERPRINT, log=messages.append).load() is None
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert not path.exists()
    assert len(messages) == 1 and "discarded the checkpoint" in messages[0], messages
    assert named in messages[0] and "allow_pickle" not in messages[0], messages[0]
    assert peak < 16 * 2**20


@pytest.mark.hostile
def test_a_checkpoint_shaped_for_another_model_is_discarded(tmp_path):
    path = saved_checkpoint(tmp_path / "run.npz")
    messages = []
    store = CheckpointStore(path, TINY_FINGERPRINT, log=messages.append)
    assert store.load({"layers.1.weight": (5, 2)}) is None and not path.exists()
    assert "not shaped as this run's model" in messages[0]
