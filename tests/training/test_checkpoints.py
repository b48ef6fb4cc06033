"""Checkpoints: a run stopped after any epoch and continued gives the uninterrupted run's bytes;
a damaged checkpoint (pickled, of another dtype or shape, a header declaring a huge array, a bad
record or generator state) is discarded with a message, its memory bounded, and training starts
afresh. So is one that is no regular file (a FIFO, /dev/zero), at once, and one altered while
its fingerprint was kept (epochs beyond the run, a best epoch the log does not give, step logs
cut short, a NaN weight ...): every altered checkpoint is resumed to a consistent run or
discarded with one line (hypothesis), and never left to fail the next run."""

from __future__ import annotations

import json
import os
import re
import tempfile
import tracemalloc
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pytest
from hypothesis import event, given
from hypothesis import strategies as st

from helpers.hostile_data import huge_header, rewrite_npz
from helpers.properties import EXAMPLES
from helpers.special_files import SPECIAL_KINDS, make_special, within
from numpynet.files import save_npz
from numpynet.training.checkpoints import (
    CheckpointStore,
    RunLayout,
    RunPlan,
    Snapshot,
    digest_files,
    run_fingerprint,
)
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


# The plan of train()'s run, which its checkpoints must agree with.
PLAN = RunPlan.of(recipe(**CONFIG), 300)


def store_of(path, fingerprint=FINGERPRINT, plan=PLAN, log=lambda line: None):
    return CheckpointStore(path, fingerprint, plan, log=log)


def state_bytes(run):
    return {name: array.tobytes() for name, array in run.model.state_dict().items()}


@pytest.mark.parametrize("stopped_after", [1, 2, 4])
def test_a_run_continued_from_its_checkpoint_ends_with_the_uninterrupted_bytes(
    tmp_path, stopped_after
):
    whole_log = Recorder()
    whole = train(logger=whole_log)

    store = store_of(tmp_path / "run.npz")
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


def test_a_run_on_fewer_whitened_directions_continues_to_the_uninterrupted_bytes(tmp_path):
    # The directions are not in the checkpoint: the continued run computes them again, and its
    # checkpointed layers sit behind the same Projection.
    fewer = dict(whitening="zca", whitening_components=20)
    whole = train(**fewer)
    store = store_of(tmp_path / "run.npz", plan=RunPlan.of(recipe(**{**CONFIG, **fewer}), 300))
    with pytest.raises(Stop):
        train(store, log=stop_after(2), **fewer)
    resumed = train(store, **fewer)
    assert state_bytes(resumed) == state_bytes(whole)
    assert resumed.history == whole.history


def test_a_checkpoint_of_other_parameters_is_discarded_naming_what_changed(tmp_path):
    store = store_of(tmp_path / "run.npz")
    with pytest.raises(Stop):
        train(store, log=stop_after(2))
    messages = []
    other = store_of(tmp_path / "run.npz", {**FINGERPRINT, "parameters": "p2"},
                     log=messages.append)
    assert other.load() is None
    assert "discarded" in messages[0] and "parameters differ" in messages[0]
    assert not (tmp_path / "run.npz").exists()


@pytest.mark.parametrize("damage", [b"", b"not a zip file", None])
def test_a_damaged_checkpoint_is_discarded_not_a_crash(tmp_path, damage):
    path = tmp_path / "run.npz"
    store = store_of(path)
    store.write(Snapshot({"w": np.ones(3, np.float32)}, {"step": np.int64(3)}, {}, RunState()))
    path.write_bytes(path.read_bytes()[:100] if damage is None else damage)
    messages = []
    store.log = messages.append
    assert store.load() is None
    assert "cannot be read" in messages[0]
    assert not path.exists()


def row(epoch, lr=0.1, val_accuracy=0.5, val_loss=1.0):
    """A log row as the loop writes one."""
    return {"epoch": epoch, "lr": lr, "train_loss": 1.5, "train_accuracy": 0.25,
            "val_loss": val_loss, "val_accuracy": val_accuracy}


def test_save_and_load_round_trip_every_part(tmp_path):
    state = RunState(epochs_done=2, history=[row(1, 0.1, 0.5), row(2, 0.2, 0.25)],
                     step_lr=[0.05, 0.1, 0.15, 0.2], step_loss=[2.5, 1.25, 1.0, 0.5],
                     best_score=0.5, best_epoch=1,
                     best_state={"0.weight": np.arange(6, dtype=np.float32).reshape(2, 3)})
    rng = np.random.default_rng(7)
    rng.random(5)
    snapshot = Snapshot({"0.weight": np.ones((2, 3), np.float32)},
                        {"step": np.int64(4), "exp_avg.0.weight": np.zeros((2, 3), np.float32)},
                        {"shuffle": rng.bit_generator.state}, state)
    store = store_of(tmp_path / "run.npz", plan=RunPlan(3, 2, "val_accuracy"))
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
# A run of 2 epochs of 3 steps, keeping the best epoch by validation accuracy.
TINY_PLAN = RunPlan(epochs=2, steps_per_epoch=3, select_by="val_accuracy")


def tiny_store(path, log=lambda _: None):
    return CheckpointStore(path, TINY_FINGERPRINT, TINY_PLAN, log=log)


def saved_checkpoint(path: Path) -> Path:
    """The checkpoint of TINY_PLAN's run after its first epoch."""
    weights = {"layers.1.weight": np.ones((4, 2), np.float32)}
    optimizer = {"step": np.int64(3), "m.layers.1.weight": np.zeros((4, 2), np.float32)}
    generators = {"init": np.random.default_rng(0).bit_generator.state}
    state = RunState(1, [row(1, lr=0.1, val_accuracy=0.5)], [0.3, 0.2, 0.1], [0.5, 0.4, 0.3],
                     0.5, 1, dict(weights))
    tiny_store(path).write(Snapshot(weights, optimizer, generators, state))
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
    assert tiny_store(path).load() is not None
    damage(path, dict(np.load(path)))
    messages = []
    tracemalloc.start()
    try:
        assert tiny_store(path, log=messages.append).load() is None
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
    store = tiny_store(path, log=messages.append)
    float32 = np.dtype(np.float32)
    other_model = RunLayout({"layers.1.weight": ((5, 2), float32)},
                            {"m.layers.1.weight": ((5, 2), float32)}, {"init": "PCG64"})
    assert store.load(other_model) is None and not path.exists()
    assert "not shaped as this run's model" in messages[0]


# ---------------------------------------------------------------------------------------------
# No regular file: discarded at once
# ---------------------------------------------------------------------------------------------


@pytest.mark.hostile
@pytest.mark.parametrize("kind", SPECIAL_KINDS)
def test_a_checkpoint_that_is_no_regular_file_is_discarded_at_once(tmp_path, kind):
    path = make_special(tmp_path / "run.npz", kind)
    messages = []
    assert within(lambda: tiny_store(path, log=messages.append).load()) is None
    assert len(messages) == 1 and "discarded the checkpoint" in messages[0], messages
    assert "not a regular file" in messages[0], messages
    assert not os.path.lexists(path)  # the link or FIFO is gone; what a link named is not
    assert os.path.exists("/dev/zero")


# ---------------------------------------------------------------------------------------------
# Altered while the fingerprint was kept: resumed consistently, or discarded with one line
# ---------------------------------------------------------------------------------------------


class StoppedRun(tuple):
    """(the uninterrupted run's model bytes, its history, its checkpoint's bytes after epoch 2
    of 4), shown briefly when hypothesis reports an example."""

    def __repr__(self) -> str:
        return "StoppedRun(...)"


@pytest.fixture(scope="module")
def stopped_run(tmp_path_factory):
    """The uninterrupted run's model bytes and history, and the bytes of its checkpoint after
    epoch 2 of 4."""
    whole = train()
    path = tmp_path_factory.mktemp("stopped") / "run.npz"
    with pytest.raises(Stop):
        train(store_of(path), log=stop_after(2))
    return StoppedRun((state_bytes(whole), whole.history, path.read_bytes()))


def alter(path: Path, record_changes=None, arrays=None) -> None:
    """Rewrite the checkpoint at ``path`` with ``record_changes`` made to its JSON record (a
    value of DELETE removes the key) and ``arrays`` (a member's new array, or DELETE)."""
    members = dict(np.load(path))
    record = json.loads(members["record"].tobytes())
    for key, value in (record_changes or {}).items():
        if value is DELETE:
            record.pop(key, None)
        else:
            record[key] = value
    members["record"] = np.frombuffer(json.dumps(record).encode(), np.uint8)
    for key, value in (arrays or {}).items():
        if value is DELETE:
            members.pop(key, None)
        else:
            members[key] = value
    save_npz(path, members)


DELETE = object()


def resumed(tmp_path, checkpoint: bytes, change) -> tuple[list[str], object, Recorder, Path]:
    """Write ``checkpoint``, alter it by ``change(path)``, and train on from it: the store's
    messages, the run, its metrics log and the checkpoint's path."""
    path = tmp_path / "run.npz"
    path.write_bytes(checkpoint)
    change(path)
    messages, log = [], Recorder()
    run = train(store_of(path, log=messages.append), log)
    return messages, run, log, path


def assert_resumed_consistently_or_discarded(messages, run, log, path, stopped_run):
    """One line from the store; a discarded checkpoint gives the uninterrupted run, a resumed
    one a whole, consistent run; and the checkpoint left behind resumes again, untroubled."""
    whole_bytes, whole_history, _ = stopped_run
    assert len(messages) == 1, messages
    if "discarded the checkpoint" in messages[0]:
        assert messages[0].startswith("starting from epoch 1: discarded the checkpoint")
        assert "\n" not in messages[0]
        assert state_bytes(run) == whole_bytes and run.history == whole_history
    else:
        assert re.fullmatch(r"resuming after epoch [1-4], from the checkpoint .*", messages[0])
    epochs, steps = PLAN.epochs, PLAN.epochs * PLAN.steps_per_epoch
    assert [row["epoch"] for row in run.history] == list(range(1, epochs + 1))
    assert 1 <= run.selected_epoch <= epochs
    assert all(np.isfinite(array).all() for array in run.model.state_dict().values())
    logged = [call[1] for call in log.calls if call[0] == "step"]
    assert logged == list(range(1, steps + 1))  # the metrics log is whole, each step once
    assert [call[2]["epoch"] for call in log.calls if call[0] == "epoch"] == list(
        range(1, epochs + 1))
    # The file left behind (the last epoch's) is this run's: the next run resumes it untroubled.
    again = []
    rerun = train(store_of(path, log=again.append))
    assert again == [f"resuming after epoch {epochs}, from the checkpoint {path}"], again
    assert state_bytes(rerun) == state_bytes(run)


ALTERATIONS = {
    # name: (record changes, array changes, what the message names)
    "epochs_beyond_the_run": ({"epochs_done": 10000}, {}, "epochs_done is 10000, but this run "
                                                          "has 4 epochs"),
    "no_epochs_done": ({"epochs_done": 0}, {}, "epochs_done is 0"),
    "negative_best_epoch": ({"best_epoch": -1}, {}, "the best epoch is -1"),
    "best_epoch_not_the_best": ({"best_epoch": 1}, {}, "not the one its history gives"),
    "best_score_changed": ({"best_score": 0.99}, {}, "not the one its history gives"),
    "best_epoch_a_string": ({"best_epoch": "1"}, {}, "wrong type"),
    "history_row_of_strings": ({"history": [
        {"epoch": "1", "lr": "0.01", "train_loss": "1", "train_accuracy": "0.5",
         "val_loss": "1", "val_accuracy": "0.5"}] * 2}, {}, "history row 1: epoch: wrong type"),
    "history_a_mapping": ({"history": {"1": {}}}, {}, "history has values of the wrong type"),
    "history_short": (None, {}, "history has values of the wrong type or length (1 rows"),
    "step_logs_cut_short": ({}, {"progress:step_lr": "cut", "progress:step_loss": "cut"},
                            "holds 15 steps, but 2 epoch(s) of 10 steps make 20"),
    "step_loss_nan": ({}, {"progress:step_loss": "nan"}, "NaN, infinite or negative"),
    "negative_optimizer_step": ({}, {"optimizer:step": np.int64(-3)},
                                "the optimizer step is -3, but 2 epoch(s)"),
    "optimizer_step_of_another_run": ({}, {"optimizer:step": np.int64(7)}, "optimizer step is 7"),
    "nan_weight": ({}, {"model:layers.1.weight": "nan"}, "'layers.1.weight' holds NaN"),
    "infinite_best_weight": ({}, {"best:layers.5.bias": "inf"}, "'layers.5.bias' holds NaN"),
    "negative_second_moment": ({}, {"optimizer:exp_avg_sq.layers.1.bias": "negative"},
                               "a variance, holds negative values"),
    "negative_running_variance": ({}, {"model:layers.2.running_var": "negative"},
                                  "a variance, holds negative values"),
    "missing_best_arrays": ({}, {f"best:{name}": DELETE for name in (
        "layers.1.bias", "layers.1.weight", "layers.2.beta", "layers.2.gamma",
        "layers.2.running_mean", "layers.2.running_var", "layers.5.bias", "layers.5.weight")},
        "its arrays are missing"),
    "missing_optimizer_moment": ({}, {"optimizer:exp_avg.layers.5.bias": DELETE},
                                 "not those of this run's optimizer"),
    "generator_of_another_kind": ({"generators": "mt19937"}, {}, "is a MT19937, this run's a"),
    "generator_missing": ({"generators": "drop shuffle"}, {}, "are not this run's"),
    "nan_in_record": ({"best_score": float("nan")}, {}, "NaN is no JSON number"),
}


def _apply(path: Path, record_changes, array_changes) -> None:
    members = dict(np.load(path))
    record = json.loads(members["record"].tobytes())
    changes = dict(record_changes) if record_changes is not None else {
        "history": record["history"][:1]}
    if changes.get("generators") == "mt19937":
        changes["generators"] = {**record["generators"],
                                 "init": np.random.MT19937(0).state}
        changes["generators"]["init"]["state"]["key"] = changes["generators"]["init"]["state"][
            "key"].tolist()
    elif changes.get("generators") == "drop shuffle":
        changes["generators"] = {k: v for k, v in record["generators"].items() if k != "shuffle"}
    arrays = {}
    for key, how in array_changes.items():
        array = members.get(key)
        if isinstance(how, str):
            array = array.copy()
            if how == "cut":
                array = array[:15]
            elif how == "negative":
                array.flat[0] = -1
            else:
                array.flat[0] = float(how)
            how = array
        arrays[key] = how
    alter(path, changes, arrays)


@pytest.mark.hostile
@pytest.mark.parametrize("case", sorted(ALTERATIONS))
def test_an_altered_checkpoint_is_discarded_with_one_line_and_the_run_starts_afresh(
    tmp_path, stopped_run, case
):
    record_changes, array_changes, named = ALTERATIONS[case]
    messages, run, log, path = resumed(
        tmp_path, stopped_run[2], lambda path: _apply(path, record_changes, array_changes))
    assert "discarded the checkpoint" in messages[0] and named in messages[0], messages
    assert_resumed_consistently_or_discarded(messages, run, log, path, stopped_run)


JSON_VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(-2**70, 2**70), st.integers(-3, 12),
    st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=4),
    st.lists(st.integers(-2, 5), max_size=3),
)
RECORD_KEYS = ["format", "epochs_done", "history", "best_score", "best_epoch", "generators"]
ROW_KEYS = ["epoch", "lr", "train_loss", "train_accuracy", "val_loss", "val_accuracy"]


@st.composite
def alterations(draw):
    """One to three changes to a checkpoint of a run stopped after epoch 2, fingerprint kept."""
    kinds = ["record", "row", "rows", "steps", "step", "array", "generator", "consistent"]
    chosen = draw(st.one_of(st.lists(st.sampled_from(kinds), min_size=1, max_size=3),
                            st.lists(st.just("consistent"), min_size=1, max_size=2)))
    return [(kind, draw(_details(kind))) for kind in chosen]


def _details(kind: str):
    if kind == "record":
        return st.tuples(st.sampled_from(RECORD_KEYS), st.one_of(st.just(DELETE), JSON_VALUES))
    if kind == "row":
        return st.tuples(st.integers(0, 1), st.sampled_from(ROW_KEYS),
                         st.one_of(st.just(DELETE), JSON_VALUES))
    if kind == "rows":
        return st.sampled_from(["drop last", "repeat", "reverse", "empty"])
    if kind == "steps":
        return st.tuples(st.sampled_from(["progress:step_lr", "progress:step_loss"]),
                         st.sampled_from(["cut", "extend", "nan", "inf", "negative", "scale",
                                          "float32", "2d"]))
    if kind == "step":
        return st.one_of(st.integers(-2**63, 2**63 - 1), st.integers(-1, 41),
                         st.sampled_from(["float", "vector"]))
    if kind == "array":
        return st.tuples(st.sampled_from(["model:layers.1.weight", "model:layers.2.running_var",
                                          "best:layers.5.bias",
                                          "optimizer:exp_avg_sq.layers.5.bias",
                                          "optimizer:exp_avg.layers.1.bias"]),
                         st.one_of(st.sampled_from(["nan", "inf", "negative", "float64", "float16",
                                                    "int32", "transpose", "drop", "flat"]),
                                   st.floats(-3, 3)))
    if kind == "generator":
        return st.tuples(st.sampled_from(["init", "shuffle", "augment", "extra"]),
                         st.sampled_from(["drop", "kind", "state", "not a mapping"]))
    # Changes that leave a state the loop could have reached: resumed, to another model.
    return st.tuples(st.sampled_from(["weights", "generator", "train_loss", "step_loss"]),
                     st.floats(0.25, 4))


def _altered_by(changes):
    def change(path: Path) -> None:
        members = dict(np.load(path))
        record = json.loads(members["record"].tobytes())
        for kind, detail in changes:
            if kind == "record":
                key, value = detail
                record.pop(key, None) if value is DELETE else record.__setitem__(key, value)
            elif kind == "row" and isinstance(record.get("history"), list):
                index, key, value = detail
                rows = record["history"]
                if index < len(rows) and isinstance(rows[index], dict):
                    rows[index].pop(key, None) if value is DELETE else rows[index].__setitem__(
                        key, value)
            elif kind == "rows" and isinstance(record.get("history"), list):
                rows = record["history"]
                record["history"] = {"drop last": rows[:-1], "repeat": rows + rows[-1:],
                                     "reverse": rows[::-1], "empty": []}[detail]
            elif kind == "steps":
                key, how = detail
                members[key] = _changed_steps(members[key], how)
            elif kind == "step":
                members["optimizer:step"] = (np.float64(3.0) if detail == "float" else
                                             np.arange(2) if detail == "vector" else
                                             np.int64(detail))
            elif kind == "array":
                key, how = detail
                if how == "drop":
                    members.pop(key, None)
                elif key in members:
                    members[key] = _changed_array(members[key], how)
            elif kind == "consistent":
                _consistent_change(members, record, *detail)
            elif kind == "generator" and isinstance(record.get("generators"), dict):
                name, how = detail
                generators = record["generators"]
                if how == "drop":
                    generators.pop(name, None)
                elif how == "kind":  # a valid state of another kind of generator
                    generators[name] = np.random.PCG64DXSM(0).state
                elif how == "state" and name in generators:
                    generators[name]["state"] = {"state": -1, "inc": "x"}
                else:
                    generators[name] = [1, 2]
        members["record"] = np.frombuffer(json.dumps(record).encode(), np.uint8)
        save_npz(path, members)
    return change


def _consistent_change(members: dict, record: dict, what: str, factor: float) -> None:
    """Scale the weights, a logged loss or the per-step losses, or reseed a generator."""
    if what == "weights" and "model:layers.1.weight" in members:
        members["model:layers.1.weight"] = members["model:layers.1.weight"] * np.float32(factor)
    elif what == "generator" and isinstance(record.get("generators"), dict):
        record["generators"]["shuffle"] = np.random.PCG64(round(factor * 1000)).state
    elif what == "train_loss" and isinstance(record.get("history"), list):
        for row in record["history"]:
            if isinstance(row, dict) and isinstance(row.get("train_loss"), float):
                row["train_loss"] *= factor
    elif what == "step_loss" and "progress:step_loss" in members:
        members["progress:step_loss"] = members["progress:step_loss"] * factor


def _changed_steps(array: np.ndarray, how: str) -> np.ndarray:
    array = array.copy()
    if how == "cut":
        return array[:-3]
    if how == "extend":
        return np.concatenate([array, array[:4]])
    if how in ("nan", "inf"):
        array[5] = float(how)
    elif how == "negative":
        array[0] = -array[0] - 1
    elif how == "scale":
        array *= 2
    elif how == "float32":
        return array.astype(np.float32)
    else:
        return array.reshape(2, -1)
    return array


def _changed_array(array: np.ndarray, how) -> np.ndarray:
    array = array.copy()
    if isinstance(how, float):
        return array * np.float32(how)  # finite, of the same shape: a consistent state
    if how in ("nan", "inf"):
        array.flat[0] = float(how)
    elif how == "negative":
        array.flat[0] = -1
    elif how in ("float64", "float16", "int32"):
        return array.astype(how)
    elif how == "transpose":
        return array.T.copy() if array.ndim == 2 else array[None]
    else:
        return array.reshape(-1)[:-1]
    return array


@pytest.mark.hostile
@EXAMPLES
@given(changes=alterations())
def test_every_altered_checkpoint_is_resumed_consistently_or_discarded_with_one_line(
    stopped_run, changes
):
    with tempfile.TemporaryDirectory() as folder:
        messages, run, log, path = resumed(Path(folder), stopped_run[2], _altered_by(changes))
        assert_resumed_consistently_or_discarded(messages, run, log, path, stopped_run)
    # Both outcomes happen (pytest --hypothesis-show-statistics counts them).
    event("discarded" if "discarded the checkpoint" in messages[0] else "resumed")
