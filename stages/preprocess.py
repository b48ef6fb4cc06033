"""preprocess stage: parse the raw files, split off a validation set, standardize.

Reads ``data/raw/<name>/``, ``datasets.<name>.data`` and ``preprocess`` from params.yaml; writes
``data/processed/<name>/``: float32 images (N, H, W, C) and int64 labels as ``.npy`` for train,
val and test, plus ``meta.json`` with the classes, the split sizes and the training split's
statistics.
"""

from pathlib import Path

import numpy as np

from numpynet.cli import run_stage, stage_arguments
from numpynet.config import load_params
from numpynet.data.preprocess import prepare_splits
from numpynet.data.raw import load_raw_dataset
from numpynet.files import atomic_directory, save_npy, write_json


def main() -> None:
    args = stage_arguments(__doc__)
    params = load_params(args.params)
    raw = load_raw_dataset(params.dataset(args.dataset).source, Path("data/raw") / args.dataset)
    arrays, mean, std = prepare_splits(
        raw.x_train,
        raw.y_train,
        raw.x_test,
        raw.y_test,
        val_fraction=params.preprocess.val_fraction,
        rng=np.random.default_rng(params.preprocess.seed),
    )
    meta = {
        "classes": raw.classes,
        "image_shape": list(arrays["x_train"].shape[1:]),
        "layout": "NHWC",
        "sizes": {part: int(arrays[f"y_{part}"].shape[0]) for part in ("train", "val", "test")},
        "mean": mean.tolist(),
        "std": std.tolist(),
    }
    with atomic_directory(Path("data/processed") / args.dataset) as out:
        for name, array in arrays.items():
            save_npy(out / f"{name}.npy", array)
        write_json(out / "meta.json", meta)


if __name__ == "__main__":
    run_stage(main)
