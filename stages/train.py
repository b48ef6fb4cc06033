"""train stage: fit the NumPy MLP on the training split, watching the validation split.

Reads ``--data`` (``data/processed/<name>``: the training and validation splits only) and from
params.yaml ``train`` with the overrides in ``datasets.<name>.train``; writes the model into
``--model`` (``models/<name>``: architecture, weights, the numeric backend that computed them,
which epoch's weights were kept, and the dataset's classes, image shape and standardization) and
the training log, live, with DVCLive into ``--live`` (``dvclive/<name>``). The recipe itself is
:func:`numpynet.training.recipe.train_mlp`.

After every epoch the run's state goes to ``--checkpoint`` (``checkpoints/<name>.npz``, which no
stage declares, so DVC leaves it alone): a run stopped by Ctrl-C, a kill or a crash continues
from its last finished epoch at the next ``dvc repro``, to the same bytes. A checkpoint is used
only by the same parameters, code, data and numeric backend, and deleted once the run is saved.
SIGTERM, or DVC ending while the stage runs, stops it as Ctrl-C does (numpynet.stopping); a
second run of the same checkpoint is refused while the first is alive (training/run_lock.py).
"""

import _bootstrap  # noqa: I001  (first: this tree's code, on a pinned numeric backend)

import resource
from pathlib import Path

from _dvclive_log import LiveLogger
from numpynet.backend import backend_provenance
from numpynet.config import load_params
from numpynet.data.processed import read_meta, read_split, split_files
from numpynet.errors import TrainingDiverged
from numpynet.log import log_to_stderr
from numpynet.model_folder import save_model
from numpynet.records import DatasetRecord, ProvenanceRecord
from numpynet.stage_entry import run_stage, stage_arguments
from numpynet.stopping import written
from numpynet.training.checkpoints import CheckpointStore, RunPlan, run_fingerprint
from numpynet.training.recipe import train_mlp
from numpynet.training.run_lock import run_lock


def main() -> None:
    args = stage_arguments(
        __doc__,
        _bootstrap.PROJECT_ROOT,
        inputs=["data"],
        outputs=["model", "live", "checkpoint"],
    )
    # Before the checkpoint is read (or discarded as another run's) and DVCLive clears the log.
    with run_lock(args.checkpoint):
        train(args)


def train(args) -> None:
    """Train, save the model, and remove the checkpoint: the stage, once it holds the lock."""
    config = load_params(args.params).train_for(args.dataset)
    meta = read_meta(args.data)
    train_set, val_set = read_split(args.data, "train", meta), read_split(args.data, "val", meta)
    backend = backend_provenance()
    provenance = ProvenanceRecord(**backend)  # before training: a key it lacks fails at once
    code = [*(_bootstrap.PROJECT_ROOT / "src").rglob("*.py"), *Path(__file__).parent.glob("*.py")]
    data = split_files(args.data, ("train", "val"))
    checkpoints = CheckpointStore(
        args.checkpoint, run_fingerprint(config, code, _bootstrap.PROJECT_ROOT, data, backend),
        RunPlan.of(config, len(train_set[1])),
    )
    try:
        run = train_mlp(
            config,
            meta,
            train_set,
            val_set,
            metrics_logger=LiveLogger(args.live, args.dataset),
            checkpoints=checkpoints,
        )
        save_model(
            args.model,
            run.model,
            run.architecture,
            dataset=DatasetRecord.of(args.dataset, meta),
            training=run.record(config),
            provenance=provenance,
        )
    except KeyboardInterrupt as stop:  # Ctrl-C, SIGTERM, or DVC gone (numpynet.stopping)
        stop.report = what_a_stop_leaves(args)
        raise
    except TrainingDiverged:
        # Resuming is exact: from this checkpoint every rerun would diverge again, whatever the
        # message advises; the next run starts afresh with the settings the user changes.
        checkpoints.remove()
        raise
    checkpoints.remove()
    # ru_maxrss is in KiB on Linux. Memory-mapped inputs count once touched: one copy at most.
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    log_to_stderr(f"train@{args.dataset}: peak memory {peak_mib:.0f} MiB")


def what_a_stop_leaves(args) -> str:
    """The last line of a stopped run: where the next run resumes, and that no model was saved."""
    if str(args.model) in written():
        return f"training had finished and the model was written in full to {args.model}"
    if args.checkpoint.exists():
        return (f"the last finished epoch is saved in {args.checkpoint}: dvc repro resumes from "
                f"it; no model was written")
    return "no epoch had finished, so there is nothing to resume from; no model was written"


if __name__ == "__main__":
    run_stage(main)
