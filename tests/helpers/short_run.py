"""A short training and evaluation run, in a numeric mode, whose output digests prove the modes.

Run as a script (``python tests/helpers/short_run.py MODE``) in a fresh interpreter, so that the
mode is pinned before NumPy loads, under whatever OpenBLAS kernel, thread count and NumPy dispatch
level the environment asks for. It prints one JSON line: the sha256 of the trained weights and of
the test metrics. Every numeric ingredient of the recipe takes part: ZCA whitening, flips, shifts,
elastic distortions, batch normalization, dropout, label smoothing, AdamW on a cosine schedule
with warmup, model selection, and evaluation with the test-time flip in odd-sized batches.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))

from numpynet.backend import backend_provenance, finish_pinning, pin_backend  # noqa: E402

SHAPE = (8, 8, 1)
CLASSES = 4


def images(rng, count):
    """``count`` images of CLASSES classes: a bright band of two rows per class (a flip keeps
    it), plus integer noise, standardized: the bytes come from integer draws and IEEE arithmetic
    alone."""
    import numpy as np

    labels = rng.integers(0, CLASSES, size=count)
    pixels = rng.integers(0, 96, size=(count, *SHAPE)).astype(np.float32)
    for label in range(CLASSES):
        pixels[labels == label, 2 * label : 2 * label + 2] += 128.0
    pixels /= 255.0
    pixels -= 0.3
    pixels /= 0.25
    return pixels, labels


def main(mode: str) -> None:
    pin_backend(mode)
    import numpy as np

    finish_pinning()
    from numpynet.config import TrainConfig
    from numpynet.records import ProcessedMeta
    from numpynet.evaluation import loss_and_accuracy, predict_logits
    from numpynet.training.recipe import train_mlp

    rng = np.random.default_rng(2026)
    train_set, val_set, test_set = images(rng, 600), images(rng, 200), images(rng, 203)
    meta = ProcessedMeta([f"c{i}" for i in range(CLASSES)], list(SHAPE),
                       {"train": 600, "val": 200, "test": 203}, [0.3], [0.25])
    config = TrainConfig(
        seed=7, hidden_sizes=[48, 32], dropout=0.2, epochs=4, batch_size=50, optimizer="adamw",
        lr=0.02, momentum=0.9, nesterov=False, betas=[0.9, 0.999], eps=1e-8, weight_decay=0.05,
        schedule="cosine", warmup_epochs=1, min_lr=0.0, normalization="batch", whitening="zca",
        label_smoothing=0.1, augment_shift=1, augment_flip=True, augment_elastic=1.0,
        select_by="val_accuracy",
    )
    run = train_mlp(config, meta, train_set, val_set, log=lambda line: None)
    weights = hashlib.sha256()
    for name, array in sorted(run.model.state_dict().items()):
        weights.update(name.encode() + np.ascontiguousarray(array).tobytes())
    logits = predict_logits(run.model, test_set[0], batch_size=37, test_time_flip=True)
    loss, accuracy = loss_and_accuracy(logits, test_set[1])
    metrics = json.dumps({"loss": loss, "accuracy": accuracy, "epoch": run.selected_epoch,
                          "history": run.history})
    print(json.dumps({
        "weights": weights.hexdigest(),
        "metrics": hashlib.sha256(metrics.encode()).hexdigest(),
        "accuracy": accuracy,
        "provenance": backend_provenance(),
    }))


if __name__ == "__main__":
    main(sys.argv[1])
