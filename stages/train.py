"""train stage: fit the NumPy MLP on the training split, watching the validation split.

Reads ``--data`` (``data/processed/<name>``: the training and validation splits only) and from
params.yaml ``train`` with the overrides in ``datasets.<name>.train``; writes the model into
``--model`` (``models/<name>``: architecture, weights, the numeric backend that computed them,
which epoch's weights were kept, and the dataset's classes, image shape and standardization) and
the training log, live, with DVCLive into ``--live`` (``dvclive/<name>``). The recipe itself is
:func:`numpynet.recipe.train_mlp`.

After every epoch the run's state goes to ``--checkpoint`` (``checkpoints/<name>.npz``, which no
stage declares, so DVC leaves it alone): a run stopped by Ctrl-C, a kill or a crash continues
from its last finished epoch at the next ``dvc repro``, to the same bytes. A checkpoint is used
only by the same parameters, code, data and numeric backend, and deleted once the run is saved.
"""

import _bootstrap  # noqa: I001  (first: this tree's code, on a pinned numeric backend)

import dataclasses
import resource
from pathlib import Path

from _dvclive_log import LiveLogger
from numpynet.backend import backend_provenance
from numpynet.checkpoint import save_model
from numpynet.cli import run_stage, stage_arguments
from numpynet.config import load_params
from numpynet.data.processed import read_meta, read_split, split_files
from numpynet.log import log_to_stderr
from numpynet.recipe import train_mlp
from numpynet.resume import CheckpointStore, digest_files, digest_json


def main() -> None:
    args = stage_arguments(
        __doc__,
        _bootstrap.PROJECT_ROOT,
        inputs=["data"],
        outputs=["model", "live", "checkpoint"],
    )
    config = load_params(args.params).train_for(args.dataset)
    meta = read_meta(args.data)
    train_set, val_set = read_split(args.data, "train", meta), read_split(args.data, "val", meta)
    provenance = backend_provenance()
    code = [*(_bootstrap.PROJECT_ROOT / "src").rglob("*.py"), *Path(__file__).parent.glob("*.py")]
    checkpoints = CheckpointStore(
        args.checkpoint,
        {
            "parameters": digest_json(dataclasses.asdict(config)),
            "code": digest_files(code, _bootstrap.PROJECT_ROOT),
            "data": digest_files(split_files(args.data, ("train", "val"))),
            "numeric backend": digest_json(provenance),
        },
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
    except KeyboardInterrupt:
        if args.checkpoint.exists():
            log_to_stderr(
                f"the last finished epoch is saved in {args.checkpoint}: dvc repro resumes from it"
            )
        raise
    save_model(
        args.model,
        run.model,
        run.architecture,
        provenance=provenance,
        training=run.summary(config),
        dataset={
            "name": args.dataset,
            "classes": meta.classes,
            "image_shape": meta.image_shape,
            "layout": meta.layout,
            "mean": meta.mean,
            "std": meta.std,
        },
    )
    checkpoints.remove()
    # ru_maxrss is in KiB on Linux. Memory-mapped inputs count once touched: one copy at most.
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    log_to_stderr(f"train@{args.dataset}: peak memory {peak_mib:.0f} MiB")


if __name__ == "__main__":
    run_stage(main)
