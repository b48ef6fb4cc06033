"""Checkpoints that let an interrupted training run continue exactly where it stopped.

After every epoch the run's whole state goes into one file, replaced atomically: the model's
arrays, the optimizer's, every random generator's state and the loop's
:class:`~numpynet.training.loop.RunState` (epochs done, the log so far, the best epoch and its
weights). Continuing from it repeats none of the random
draws and skips none, so the finished model has the bytes an uninterrupted run gives.

A checkpoint carries the fingerprint of what produced it (parameters, code, data, numeric
backend, each a digest). It is used only by a run with the same fingerprint; any other run
deletes it and starts from epoch 1, saying which part changed.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from numpynet.arrays import load_npz
from numpynet.config.fields import is_int, is_number
from numpynet.errors import environment_problem
from numpynet.files import save_npz
from numpynet.log import Log, log_to_stderr
from numpynet.training.loop import RunState

# Raised whenever the file's layout changes, so an older checkpoint is discarded, not misread.
CHECKPOINT_FORMAT = 1
_RECORD = "record"  # the JSON part, stored as bytes beside the arrays
_GROUPS = ("model", "optimizer", "best", "progress")


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


class CheckpointStore:
    """The checkpoint file of one run, valid only for the run whose ``fingerprint`` it carries.

    ``fingerprint`` maps a part's name ('params', 'code', 'data', ...) to its digest.
    """

    def __init__(self, path: Path | str, fingerprint: dict[str, str], log: Log = log_to_stderr):
        self.path = Path(path)
        self.fingerprint = dict(fingerprint)
        self.log = log

    def load(self, model_shapes: dict[str, tuple[int, ...]] | None = None) -> Snapshot | None:
        """The saved state if it belongs to this run; otherwise delete the file and return None.

        Its arrays are checked (float32, the best epoch's and the optimizer's shaped as the
        model's, and, with ``model_shapes``, the model's as this run's model), so that restoring
        a damaged file discards it instead of failing half-way.
        """
        if not self.path.exists():
            return None
        try:
            record, groups = _read(self.path)
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
            return _snapshot(record, groups, model_shapes)
        except (KeyError, TypeError, ValueError) as error:
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
        # With this run's shapes, a checkpoint shaped for another model is discarded, not loaded.
        snapshot = self.load({name: a.shape for name, a in model.state_dict().items()})
        if snapshot is None:
            return None
        model.load_state_dict(snapshot.model)
        optimizer.load_state_dict(snapshot.optimizer)
        for name, rng in generators.items():
            rng.bit_generator.state = snapshot.generators[name]
        done = snapshot.state.epochs_done
        self.log(f"resuming after epoch {done}, from the checkpoint {self.path}")
        return snapshot.state

    def remove(self) -> None:
        """Delete the checkpoint: the run it belongs to has finished."""
        self.path.unlink(missing_ok=True)

    def _discard(self, reason: str) -> None:
        self.log(f"starting from epoch 1: discarded the checkpoint {self.path}, as {reason}")
        self.path.unlink(missing_ok=True)


def _read(path: Path) -> tuple[dict, dict[str, dict[str, np.ndarray]]]:
    """The JSON record and the arrays, by group, of a checkpoint file."""
    arrays = load_npz(path)
    record = json.loads(arrays.pop(_RECORD).tobytes().decode("utf-8"))
    if not isinstance(record, dict):
        raise ValueError("the record is not a JSON object")
    groups: dict[str, dict[str, np.ndarray]] = {group: {} for group in _GROUPS}
    for key, array in arrays.items():
        group, name = key.split(":", 1)
        groups[group][name] = array
    return record, groups


def _snapshot(
    record: dict, groups: dict[str, dict[str, np.ndarray]], model_shapes: dict | None
) -> Snapshot:
    """The :class:`Snapshot` in a checkpoint of this run's fingerprint, its types checked, so
    that restoring it cannot fail half-way: ``ValueError`` (or ``TypeError``/``KeyError``) else."""
    model, best, optimizer = groups["model"], groups["best"], dict(groups["optimizer"])
    step = optimizer.pop("step")
    for group, arrays in (("model", model), ("best", best), ("optimizer", optimizer)):
        odd = [name for name, array in arrays.items() if array.dtype != np.float32]
        if odd:
            raise ValueError(f"{group} array {odd[0]!r} is {arrays[odd[0]].dtype}, not float32")
    shapes = {name: array.shape for name, array in model.items()}
    if model_shapes is not None and shapes != {k: tuple(v) for k, v in model_shapes.items()}:
        raise ValueError("its model arrays are not shaped as this run's model")
    if best and {name: array.shape for name, array in best.items()} != shapes:
        raise ValueError("the best epoch's arrays do not match the model's")
    for key, array in optimizer.items():  # "<buffer>.<parameter name>"
        if shapes.get(key.split(".", 1)[-1]) != array.shape:
            raise ValueError(f"the optimizer array {key!r} fits no model array")
    if step.shape != () or step.dtype.kind not in "iu":
        raise ValueError(f"the optimizer step is a {step.dtype} array of shape {step.shape}")
    steps = [groups["progress"][name] for name in ("step_lr", "step_loss")]
    if any(a.dtype != np.float64 or a.ndim != 1 or a.shape != steps[0].shape for a in steps):
        raise ValueError("the per-step learning rates and losses are not two float64 lists")
    epochs_done, best_score, best_epoch = (record[k] for k in ("epochs_done", "best_score",
                                                                 "best_epoch"))
    if not (is_int(epochs_done) and epochs_done >= 0
            and isinstance(record["history"], list)
            and (best_score is None or is_number(best_score))
            and (best_epoch is None or is_int(best_epoch))):
        raise ValueError("its progress record has values of the wrong type")
    generators = record["generators"]
    if not (isinstance(generators, dict)
            and all(isinstance(state, dict) for state in generators.values())):
        raise ValueError("its generator states are not a mapping of states")
    for state in generators.values():
        # Loading the state into a generator of its kind checks it whole; only NumPy's kinds.
        kind = state["bit_generator"]
        if kind not in ("PCG64", "PCG64DXSM", "Philox", "SFC64", "MT19937"):
            raise ValueError(f"unknown random generator {kind!r}")
        getattr(np.random, kind)().state = state
    state = RunState(
        epochs_done=epochs_done,
        history=record["history"],
        step_lr=steps[0].tolist(),
        step_loss=steps[1].tolist(),
        best_score=best_score,
        best_epoch=best_epoch,
        best_state=best or None,
    )
    return Snapshot(model, {"step": step, **optimizer}, record["generators"], state)
