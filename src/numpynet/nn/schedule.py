"""Learning-rate schedules: linear warmup, then cosine decay or a constant rate."""

from __future__ import annotations

import math

from numpynet.portable_math import cos


def learning_rate(
    step: int,
    *,
    base_lr: float,
    total_steps: int,
    warmup_steps: int,
    min_lr: float,
    kind: str,
) -> float:
    """Return the learning rate for the 0-based optimizer ``step`` of ``total_steps``.

    Warmup (both kinds): ``base_lr * (step + 1) / warmup_steps`` for ``step < warmup_steps``,
    so step 0 already moves (``base_lr / warmup_steps``) and step ``warmup_steps - 1`` reaches
    ``base_lr``.

    ``"constant"``: ``base_lr`` after warmup.

    ``"cosine"``: a half cosine from ``base_lr`` to ``min_lr``. It starts at the warmup peak
    (step ``warmup_steps - 1``, or step 0 without warmup) so the peak is not repeated, and
    reaches exactly ``min_lr`` at the last step ``total_steps - 1``. When no step follows the
    peak (a single-step run, or warmup covering every step) there is nothing to decay and the
    rate stays at the warmup value.

    The cosine is :mod:`numpynet.portable_math`'s, not the platform's, so every machine computes
    the same rates. This runs on every optimizer step, so the arguments are trusted (``numpynet.config``
    validates them once); only an unknown ``kind`` raises ``ValueError``, after warmup.
    """
    if step < warmup_steps:
        return float(base_lr) * (step + 1) / warmup_steps
    if kind == "constant":
        return float(base_lr)
    if kind != "cosine":
        # Free for the known kinds, and a typo must not quietly fall back to a cosine.
        raise ValueError(f"unknown schedule kind {kind!r}; expected 'cosine' or 'constant'")
    peak = max(warmup_steps - 1, 0)
    decay_steps = total_steps - 1 - peak
    if decay_steps == 0:
        return float(base_lr)
    progress = (step - peak) / decay_steps
    return float(min_lr + 0.5 * (base_lr - min_lr) * (1.0 + cos(math.pi * progress)))
