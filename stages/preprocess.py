"""preprocess stage: parse the raw files, split off a validation set, standardize.

Reads ``--raw`` (``data/raw/<name>``), ``datasets.<name>.data`` and ``preprocess`` from
params.yaml; writes the processed dataset into ``--out`` (``data/processed/<name>``, layout in
:mod:`numpynet.data.processed`). An image folder is read within the ``preprocess.max_*`` bounds.
"""

import _bootstrap  # noqa: I001  (first: this tree's code, on a pinned numeric backend)

import numpy as np

from numpynet.config import load_params
from numpynet.data.read_limits import ReadLimits
from numpynet.data.formats.load import load_raw_dataset
from numpynet.data.processed import write_processed
from numpynet.data.standardize import CONSTANT_CHANNEL_STD, plan_splits
from numpynet.log import log_to_stderr
from numpynet.stage_entry import run_stage, stage_arguments


def main() -> None:
    args = stage_arguments(__doc__, _bootstrap.PROJECT_ROOT, inputs=["raw"], outputs=["out"])
    params = load_params(args.params)
    settings = params.preprocess
    limits = ReadLimits(
        max_file_bytes=settings.max_file_bytes,
        max_archive_bytes=settings.max_archive_bytes,
        max_image_pixels=settings.max_image_pixels,
        max_dataset_bytes=settings.max_dataset_bytes,
    )
    raw = load_raw_dataset(params.dataset(args.dataset).source, args.raw, limits)
    # Standardized a block at a time while written: the float32 set is never in memory whole.
    splits, mean, std = plan_splits(
        raw.x_train,
        raw.y_train,
        raw.x_test,
        raw.y_test,
        val_fraction=settings.val_fraction,
        rng=np.random.default_rng(settings.seed),
    )
    constant = [str(c) for c in np.flatnonzero(std == CONSTANT_CHANNEL_STD)]
    if constant:
        log_to_stderr(
            f"note: channel {', '.join(constant)} of {args.dataset}'s training images is constant; "
            "it carries no information and is standardized to 0 (std taken as 1)"
        )
    write_processed(args.out, splits, raw.classes, mean, std)


if __name__ == "__main__":
    run_stage(main)
