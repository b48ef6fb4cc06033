"""preprocess stage: parse the raw files, split off a validation set, standardize.

Reads ``--raw`` (``data/raw/<name>``), ``datasets.<name>.data`` and ``preprocess`` from
params.yaml; writes the processed dataset into ``--out`` (``data/processed/<name>``, layout in
:mod:`numpynet.data.processed`).
"""

import _bootstrap  # noqa: I001  (first: this tree's code, on a pinned numeric backend)

import numpy as np

from numpynet.cli import run_stage, stage_arguments
from numpynet.config import load_params
from numpynet.data.preprocess import plan_splits
from numpynet.data.processed import write_processed
from numpynet.data.raw import load_raw_dataset


def main() -> None:
    args = stage_arguments(__doc__, _bootstrap.PROJECT_ROOT, inputs=["raw"], outputs=["out"])
    params = load_params(args.params)
    raw = load_raw_dataset(params.dataset(args.dataset).source, args.raw)
    # Standardized a block at a time while written: the float32 set is never in memory whole.
    splits, mean, std = plan_splits(
        raw.x_train,
        raw.y_train,
        raw.x_test,
        raw.y_test,
        val_fraction=params.preprocess.val_fraction,
        rng=np.random.default_rng(params.preprocess.seed),
    )
    write_processed(args.out, splits, raw.classes, mean, std)

if __name__ == "__main__":
    run_stage(main)
