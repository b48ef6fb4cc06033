"""train stage: fit the NumPy MLP on the training split, watching the validation split.

Reads ``--data`` (``data/processed/<name>``: the training and validation splits only) and from
params.yaml ``train`` with the overrides in ``datasets.<name>.train``; writes the model into
``--model`` (``models/<name>``: architecture, weights, the numeric backend that computed them,
which epoch's weights were kept, and the dataset's classes, image shape and standardization) and
the per-epoch log into ``--log`` (``logs/<name>/training.csv``; evaluate publishes it as a plot).
The recipe itself is :func:`numpynet.recipe.train_mlp`.
"""

import _bootstrap  # noqa: I001  (first: this tree's code, on a pinned numeric backend)

import resource

from numpynet.backend import backend_provenance
from numpynet.checkpoint import save_model
from numpynet.cli import run_stage, stage_arguments
from numpynet.config import load_params
from numpynet.data.processed import read_meta, read_split
from numpynet.files import write_csv
from numpynet.log import log_to_stderr
from numpynet.recipe import train_mlp
from numpynet.training import LOG_COLUMNS


def main() -> None:
    args = stage_arguments(
        __doc__, _bootstrap.PROJECT_ROOT, inputs=["data"], outputs=["model", "log"]
    )
    config = load_params(args.params).train_for(args.dataset)
    meta = read_meta(args.data)
    train_set, val_set = read_split(args.data, "train"), read_split(args.data, "val")
    provenance = backend_provenance()
    run = train_mlp(config, meta, train_set, val_set)
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
    write_csv(args.log, list(LOG_COLUMNS), run.history)
    # ru_maxrss is in KiB on Linux. Memory-mapped inputs count once touched: one copy at most.
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    log_to_stderr(f"train@{args.dataset}: peak memory {peak_mib:.0f} MiB")


if __name__ == "__main__":
    run_stage(main)
