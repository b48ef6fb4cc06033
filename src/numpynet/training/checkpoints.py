"""Checkpoints that let an interrupted training run continue exactly where it stopped.

After every epoch the run's whole state goes into one file, replaced atomically: the model's
arrays, the optimizer's, every random generator's state and the loop's
:class:`~numpynet.training.loop.RunState` (epochs done, the log so far, the best epoch and its
weights). Continuing from it repeats none of the random
draws and skips none, so the finished model has the bytes an uninterrupted run gives.

A checkpoint carries the fingerprint of what produced it (parameters, code, data, numeric
backend, each a digest). It is used only by a run with the same fingerprint; any other run
deletes it and starts from epoch 1, saying which part changed.

A fingerprint says nothing of the rest of the file, which may have been damaged or altered while
the fingerprint was kept. So before anything is restored, every field is checked for its type,
its range and its agreement with the run (:class:`RunPlan`, :class:`RunLayout`): epochs done
within the run's length, one log row per epoch and one logged step per optimizer step, the best
epoch the one the selection rule picks from the log, the optimizer's step count, every array
named, shaped and typed as the run's own objects and finite, every generator of the run's kind.
A file that fails any check (or is no regular file: a FIFO, a device) is deleted with one line
saying why, and the run starts afresh: no checkpoint is resumed half-way or into a state the loop
cannot continue, and none is left to fail every rerun the same way.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from numpynet.arrays import load_npz
from numpynet.config.fields import is_int, is_number, show
from numpynet.errors import environment_problem
from numpynet.files import RefusedFileError, parse_json, regular_file_path, save_npz
from numpynet.log import Log, log_to_stderr
from numpynet.records import MAX_RECORD_BYTES, EpochRow, record_problem
from numpynet.training.loop import RunState, steps_per_epoch

# Raised whenever the file's layout changes, so an older checkpoint is discarded, not misread.
CHECKPOINT_FORMAT = 1
_RECORD = "record"  # the JSON part, stored as bytes beside the arrays
_GROUPS = ("model", "optimizer", "best", "progress")
_RECORD_KEYS = ("format", "fingerprint", "epochs_done", "history", "best_score", "best_epoch",
                "generators")
# NumPy's bit generators: a state names its kind, and only these are ever loaded.
_GENERATOR_KINDS = ("PCG64", "PCG64DXSM", "Philox", "SFC64", "MT19937")
# Arrays that are never negative: a variance (AdamW's second moment, batch normalization's
# running variance) below zero would make its square root NaN on the first step.
_NON_NEGATIVE_PREFIXES = ("exp_avg_sq.",)
_NON_NEGATIVE_SUFFIXES = (".running_var",)
Layout = dict[str, tuple[tuple[int, ...], np.dtype]]  # array name -> (shape, dtype)


@dataclass
class Snapshot:
    """Everything needed to continue a run: the arrays of its objects and its progress."""

    model: dict[str, np.ndarray]
    optimizer: dict
    generators: dict[str, dict]  # name -> numpy bit generator state
    state: RunState


def digest_files(paths: list[Path], root: Path | None = None) -> str:
    """SHA-256 over the names (relative to ``root`` when given) and contents of ``paths``."""
    digest = hashlib.sha256()
    for path in sorted(paths):
        name = path.relative_to(root) if root is not None else Path(path.name)
        digest.update(f"{name.as_posix()}\0{path.stat().st_size}\0".encode())
        with open(path, "rb") as f:
            while chunk := f.read(1 << 22):
                digest.update(chunk)
    return digest.hexdigest()


def digest_json(value) -> str:
    """SHA-256 of ``value`` written as canonical JSON."""
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()


def run_fingerprint(
    settings, code: list[Path], code_root: Path, data: list[Path], backend: dict
) -> dict[str, str]:
    """The fingerprint of a run: digests of its ``settings`` (a dataclass such as
    :class:`~numpynet.config.TrainConfig`), its ``code`` files (named relative to ``code_root``),
    its ``data`` files and the numeric ``backend`` (:func:`numpynet.backend.backend_provenance`)."""
    return {
        "parameters": digest_json(asdict(settings)),
        "code": digest_files(code, code_root),
        "data": digest_files(data),
        "numeric backend": digest_json(backend),
    }


@dataclass(frozen=True)
class RunPlan:
    """What a run is to do, which a checkpoint must agree with to be resumed: ``epochs`` in all,
    of ``steps_per_epoch`` optimizer steps each, keeping the epoch that ``select_by`` picks."""

    epochs: int
    steps_per_epoch: int
    select_by: str

    @classmethod
    def of(cls, settings, train_size: int) -> RunPlan:
        """The plan of a run of ``settings`` (a :class:`~numpynet.config.TrainConfig`) over
        ``train_size`` training images."""
        return cls(settings.epochs, steps_per_epoch(train_size, settings.batch_size),
                   settings.select_by)


@dataclass(frozen=True)
class RunLayout:
    """The objects a checkpoint is restored into: the name, shape and dtype of each of the
    model's arrays and of the optimizer's (its step aside), and each generator's kind."""

    model: Layout
    optimizer: Layout
    generators: dict[str, str]

    @classmethod
    def of(cls, model, optimizer, generators: dict) -> RunLayout:
        """The layout of a run's ``model``, ``optimizer`` and ``generators``, read without
        copying an array."""
        arrays = [(name, param) for name, param, _ in model.parameters()] + model.buffers()
        moments = [(f"{buffer}.{name}", array) for buffer, each in optimizer.buffers.items()
                   for name, array in zip(optimizer.names, each)]
        return cls(_layout(dict(arrays)), _layout(dict(moments)),
                   {name: rng.bit_generator.state["bit_generator"]
                    for name, rng in generators.items()})


class CheckpointStore:
    """The checkpoint file of one run, valid only for the run whose ``fingerprint`` it carries
    and only when its content agrees with the run's ``plan``.

    ``fingerprint`` maps a part's name ('params', 'code', 'data', ...) to its digest.
    """

    def __init__(self, path: Path | str, fingerprint: dict[str, str], plan: RunPlan,
                 log: Log = log_to_stderr):
        self.path = Path(path)
        self.fingerprint = dict(fingerprint)
        self.plan = plan
        self.log = log

    def load(self, layout: RunLayout | None = None) -> Snapshot | None:
        """The saved state if it belongs to this run; otherwise delete the file and return None.

        Every field is checked against the plan (see the module docstring) and, with
        ``layout``, every array and generator against the objects it will be restored into, so
        that restoring an altered or damaged file discards it instead of failing half-way or
        resuming into nonsense.
        """
        if not self.path.exists():
            return None
        try:
            record, groups = _read(self.path)
        except RefusedFileError as error:  # a FIFO, a device: its message names the file
            self._discard(f"it cannot be read: {error}")
            return None
        # Whatever a damaged or foreign file makes the reader trip on, it is not this run's state.
        # (Its headers are checked before any array is read: a huge declared size costs nothing.)
        except (OSError, ValueError, KeyError, TypeError, EOFError) as error:
            if environment_problem(error):  # unreadable, not damaged: deleting would not help
                raise
            self._discard(f"it cannot be read ({type(error).__name__}: {error})")
            return None
        if record.get("format") != CHECKPOINT_FORMAT:
            self._discard("it was written by another version of numpynet")
            return None
        saved = record.get("fingerprint", {})
        if not isinstance(saved, dict):
            saved = {}
        changed = sorted(
            part
            for part in self.fingerprint.keys() | saved.keys()
            if self.fingerprint.get(part) != saved.get(part)
        )
        if changed:
            self._discard(f"its {', '.join(changed)} differ from this run's")
            return None
        try:
            return _snapshot(record, groups, self.plan, layout)
        # ValueError for what the checks find; the others for anything they could have missed.
        except (KeyError, TypeError, ValueError, IndexError) as error:
            detail = f"no {error}" if isinstance(error, KeyError) else str(error)
            self._discard(f"its content is not as numpynet writes it ({detail})")
            return None

    def write(self, snapshot: Snapshot) -> None:
        """Replace the checkpoint with ``snapshot`` in one rename: never a half-written file."""
        state = snapshot.state
        record = {
            "format": CHECKPOINT_FORMAT,
            "fingerprint": self.fingerprint,
            "epochs_done": state.epochs_done,
            "history": state.history,
            "best_score": state.best_score,
            "best_epoch": state.best_epoch,
            "generators": snapshot.generators,
        }
        arrays = {_RECORD: np.frombuffer(json.dumps(record).encode("utf-8"), dtype=np.uint8)}
        steps = {
            "step_lr": np.asarray(state.step_lr, dtype=np.float64),
            "step_loss": np.asarray(state.step_loss, dtype=np.float64),
        }
        for group, members in (
            ("model", snapshot.model),
            ("optimizer", snapshot.optimizer),
            ("best", state.best_state or {}),
            ("progress", steps),
        ):
            arrays.update({f"{group}:{name}": np.asarray(value) for name, value in members.items()})
        save_npz(self.path, arrays)

    def save(self, model, optimizer, generators: dict, state: RunState) -> None:
        """Checkpoint a run: its model's, optimizer's and ``generators``' state now, and ``state``
        (called by the loop after every epoch)."""
        generator_states = {name: rng.bit_generator.state for name, rng in generators.items()}
        self.write(Snapshot(model.state_dict(), optimizer.state_dict(), generator_states, state))

    def restore(self, model, optimizer, generators: dict) -> RunState | None:
        """Put this run's saved state back into its objects and return the loop's state, or None
        to start afresh (no checkpoint, or one of another run, which is deleted)."""
        # With this run's layout, a checkpoint shaped for another model is discarded, not loaded.
        snapshot = self.load(RunLayout.of(model, optimizer, generators))
        if snapshot is None:
            return None
        try:
            model.load_state_dict(snapshot.model)
            optimizer.load_state_dict(snapshot.optimizer)
            for name, rng in generators.items():
                rng.bit_generator.state = snapshot.generators[name]
        except Exception:
            # Unreachable after load's checks, which is why it would be a bug: it shows its
            # traceback, but the file goes, so that the next run starts afresh instead of
            # failing here again. (Not on Ctrl-C: that keeps the checkpoint to resume.)
            self.remove()
            raise
        done = snapshot.state.epochs_done
        self.log(f"resuming after epoch {done}, from the checkpoint {self.path}")
        return snapshot.state

    def remove(self) -> None:
        """Delete the checkpoint: the run it belongs to has finished."""
        self.path.unlink(missing_ok=True)

    def _discard(self, reason: str) -> None:
        # One line, whatever a reader's message (NumPy's, zipfile's) holds.
        reason = " ".join(reason.split())
        self.log(f"starting from epoch 1: discarded the checkpoint {self.path}, as {reason}")
        self.path.unlink(missing_ok=True)


def _read(path: Path) -> tuple[dict, dict[str, dict[str, np.ndarray]]]:
    """The JSON record and the arrays, by group, of a checkpoint file (a regular file: a FIFO or
    a device is refused before a byte is read, by :class:`RefusedFileError`)."""
    with regular_file_path(path) as checked:
        arrays = load_npz(checked)
    text = arrays.pop(_RECORD)
    if text.dtype != np.uint8 or text.ndim != 1:
        raise ValueError(f"the record is a {text.dtype} array of shape {text.shape}, not bytes")
    if text.size > MAX_RECORD_BYTES:  # parsed, JSON takes about ten times its size
        raise ValueError(f"the record holds {text.size:,} bytes, more than MAX_RECORD_BYTES "
                         f"({MAX_RECORD_BYTES:,}, in src/numpynet/records.py)")
    record = parse_json(text.tobytes().decode("utf-8"))
    if not isinstance(record, dict):
        raise ValueError("the record is not a JSON object")
    groups: dict[str, dict[str, np.ndarray]] = {group: {} for group in _GROUPS}
    for key, array in arrays.items():
        group, name = key.split(":", 1)
        groups[group][name] = array
    return record, groups


def _snapshot(
    record: dict, groups: dict[str, dict[str, np.ndarray]], plan: RunPlan,
    layout: RunLayout | None,
) -> Snapshot:
    """The :class:`Snapshot` in a checkpoint of this run's fingerprint, every field checked
    against ``plan`` and (when given) ``layout``, so that restoring it cannot fail half-way and
    the loop continues a state it could have reached: ``ValueError`` naming the first field that
    fails."""
    missing = [key for key in _RECORD_KEYS if key not in record]
    if missing:
        raise ValueError(f"no {missing[0]} in its record")
    epochs_done = _epochs_done(record["epochs_done"], plan)
    history = _history(record["history"], epochs_done)
    step_lr, step_loss = _step_logs(groups["progress"], epochs_done, plan)
    for row in history:  # each epoch logs the rate of its last step
        if row["lr"] != step_lr[row["epoch"] * plan.steps_per_epoch - 1]:
            raise ValueError(f"history row {row['epoch']}: its lr {row['lr']!r} is not the rate "
                             f"of the epoch's last step in the per-step log")
    best_score, best_epoch = _best_epoch(record["best_score"], record["best_epoch"], history,
                                         plan.select_by)
    model, best, optimizer = groups["model"], groups["best"], dict(groups["optimizer"])
    if "step" not in optimizer:
        raise ValueError("no optimizer step")
    step = optimizer.pop("step")
    _check_arrays(model, best, optimizer, layout)
    if (best_epoch is None) != (not best):
        raise ValueError(f"the best epoch is {best_epoch} but its arrays are "
                         f"{'there' if best else 'missing'}")
    if step.shape != () or step.dtype.kind not in "iu":
        raise ValueError(f"the optimizer step is a {step.dtype} array of shape {step.shape}")
    if int(step) != epochs_done * plan.steps_per_epoch:
        raise ValueError(f"the optimizer step is {int(step)}, but {epochs_done} epoch(s) of "
                         f"{plan.steps_per_epoch} steps make {epochs_done * plan.steps_per_epoch}")
    generators = _generators(record["generators"], layout)
    state = RunState(
        epochs_done=epochs_done,
        history=history,
        step_lr=step_lr,
        step_loss=step_loss,
        best_score=best_score,
        best_epoch=best_epoch,
        best_state=best or None,
    )
    return Snapshot(model, {"step": step, **optimizer}, generators, state)


def _epochs_done(value, plan: RunPlan) -> int:
    if not is_int(value):
        raise ValueError(f"epochs_done has values of the wrong type ({show(value)})")
    # At least one: a checkpoint is written after an epoch. At most the run's length: one past
    # it would "resume" into a run that is over before it starts, with nothing to keep.
    if not 1 <= value <= plan.epochs:
        raise ValueError(f"epochs_done is {show(value)}, but this run has {plan.epochs} epochs")
    return value


def _history(rows, epochs_done: int) -> list[dict]:
    """The log rows, one per epoch done, each checked as an :class:`EpochRow`."""
    if not isinstance(rows, list) or len(rows) != epochs_done:
        count = f"{len(rows)} rows" if isinstance(rows, list) else f"a {type(rows).__name__}"
        raise ValueError(f"its history has values of the wrong type or length ({count} for "
                         f"{epochs_done} epoch(s) done)")
    history = []
    for epoch, row in enumerate(rows, start=1):
        checked, problem = record_problem(EpochRow, row)
        if problem is None and checked.epoch != epoch:
            problem = f"epoch: {checked.epoch} in row {epoch}"
        if problem:
            raise ValueError(f"history row {epoch}: {problem}")
        history.append(dataclasses.asdict(checked))  # the loop's columns, in its order
    return history


def _step_logs(progress: dict[str, np.ndarray], epochs_done: int,
               plan: RunPlan) -> tuple[list[float], list[float]]:
    """The per-step learning rates and losses: one of each per optimizer step done, finite, none
    negative."""
    if sorted(progress) != ["step_loss", "step_lr"]:
        raise ValueError(f"the per-step log holds {sorted(progress)}, not step_lr and step_loss")
    steps = epochs_done * plan.steps_per_epoch
    logs = []
    for name in ("step_lr", "step_loss"):
        array = progress[name]
        if array.dtype != np.float64 or array.ndim != 1:
            raise ValueError(f"the per-step learning rates and losses are not two float64 lists "
                             f"({name} is a {array.dtype} array of shape {array.shape})")
        if array.shape[0] != steps:
            raise ValueError(f"the per-step log {name} holds {array.shape[0]} steps, but "
                             f"{epochs_done} epoch(s) of {plan.steps_per_epoch} steps make {steps}")
        if not (np.isfinite(array).all() and (array >= 0).all()):
            raise ValueError(f"the per-step log {name} holds NaN, infinite or negative values")
        logs.append(array.tolist())
    return logs[0], logs[1]


def _best_epoch(best_score, best_epoch, history: list[dict],
                select_by: str) -> tuple[float | None, int | None]:
    """The best epoch and its score, as the loop keeps them: none when the rule is 'last', else
    the earliest epoch of the highest score (validation accuracy, or minus the loss)."""
    if select_by == "last":
        if best_score is not None or best_epoch is not None:
            raise ValueError("it keeps a best epoch, but this run keeps the last one")
        return None, None
    if not (is_int(best_epoch) and is_number(best_score)):
        raise ValueError(f"its progress record has values of the wrong type (best_epoch "
                         f"{show(best_epoch)}, best_score {show(best_score)})")
    if not 1 <= best_epoch <= len(history):
        raise ValueError(f"the best epoch is {best_epoch}, not one of the {len(history)} done")
    scores = [row["val_accuracy"] if select_by == "val_accuracy" else -row["val_loss"]
              for row in history]
    chosen = scores.index(max(scores)) + 1
    if best_epoch != chosen or best_score != scores[chosen - 1]:
        raise ValueError(f"its best epoch {best_epoch} (score {best_score!r}) is not the one "
                         f"its history gives by {select_by}: epoch {chosen}")
    return float(best_score), best_epoch


def _check_arrays(model: dict, best: dict, optimizer: dict, layout: RunLayout | None) -> None:
    """The model's, best epoch's and optimizer's arrays: float32, finite, shaped alike, and
    with ``layout``, exactly the arrays of the objects they will be restored into."""
    for group, arrays in (("model", model), ("best", best), ("optimizer", optimizer)):
        odd = [name for name, array in arrays.items() if array.dtype != np.float32]
        if odd:
            raise ValueError(f"{group} array {odd[0]!r} is {arrays[odd[0]].dtype}, not float32")
    if not model:
        raise ValueError("it holds no model arrays")
    shapes = {name: array.shape for name, array in model.items()}
    if layout is not None and _layout(model) != layout.model:
        raise ValueError("its model arrays are not shaped as this run's model")
    if best and {name: array.shape for name, array in best.items()} != shapes:
        raise ValueError("the best epoch's arrays do not match the model's")
    for key, array in optimizer.items():  # "<buffer>.<parameter name>"
        if shapes.get(key.split(".", 1)[-1]) != array.shape:
            raise ValueError(f"the optimizer array {key!r} fits no model array")
    if layout is not None and _layout(optimizer) != layout.optimizer:
        raise ValueError("its optimizer arrays are not those of this run's optimizer")
    for group, arrays in (("model", model), ("best", best), ("optimizer", optimizer)):
        for name, array in arrays.items():
            if not np.isfinite(array).all():
                raise ValueError(f"{group} array {name!r} holds NaN or infinite values")
            if (name.startswith(_NON_NEGATIVE_PREFIXES) or name.endswith(_NON_NEGATIVE_SUFFIXES)
                    ) and (array < 0).any():
                raise ValueError(f"{group} array {name!r}, a variance, holds negative values")


def _layout(arrays: dict[str, np.ndarray]) -> Layout:
    return {name: (array.shape, array.dtype) for name, array in arrays.items()}


def _generators(generators, layout: RunLayout | None) -> dict[str, dict]:
    """The generators' states, each loadable into a generator of its kind (NumPy's kinds only)
    and, with ``layout``, of this run's generators and kinds."""
    if not (isinstance(generators, dict)
            and all(isinstance(state, dict) for state in generators.values())):
        raise ValueError("its generator states are not a mapping of states")
    if layout is not None and sorted(generators) != sorted(layout.generators):
        raise ValueError(f"its generators {sorted(generators)} are not this run's "
                         f"{sorted(layout.generators)}")
    for name, state in generators.items():
        kind = state.get("bit_generator")
        if kind not in _GENERATOR_KINDS:
            raise ValueError(f"unknown random generator {show(kind)}")
        if layout is not None and kind != layout.generators[name]:
            raise ValueError(f"its generator {name!r} is a {kind}, this run's a "
                             f"{layout.generators[name]}")
        # Loading the state into a generator of its kind checks it whole; NumPy raises an
        # assortment of errors (TypeError, KeyError, OverflowError ...) for an assortment of
        # damage, and every one of them means the same here.
        try:
            getattr(np.random, kind)().state = state
        except Exception as error:
            raise ValueError(f"its generator {name!r} has a state {kind} does not take "
                             f"({type(error).__name__}: {error})") from None
    return generators
