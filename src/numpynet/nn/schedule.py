"""Learning-rate schedules: linear warmup, then cosine decay or a constant rate."""

from __future__ import annotations

import math
import numbers

KINDS = ("cosine", "constant")


def _validate(step, base_lr, total_steps, warmup_steps, min_lr, kind) -> None:
    def is_int(value):
        return isinstance(value, numbers.Integral) and not isinstance(value, bool)

    if kind not in KINDS:
        raise ValueError(f"unknown schedule kind {kind!r}; choose one of {list(KINDS)}")
    if not is_int(total_steps) or total_steps < 1:
        raise ValueError(f"total_steps must be an integer >= 1, got {total_steps!r}")
    if not is_int(warmup_steps) or not 0 <= warmup_steps <= total_steps:
        raise ValueError(
            f"warmup_steps must be an integer in [0, total_steps={total_steps}], "
            f"got {warmup_steps!r}"
        )
    if not is_int(step) or not 0 <= step < total_steps:
        raise ValueError(f"step must be an integer in [0, {total_steps}), got {step!r}")
    if not isinstance(base_lr, numbers.Real) or not math.isfinite(base_lr) or base_lr <= 0:
        raise ValueError(f"base_lr must be a finite number > 0, got {base_lr!r}")
    if not isinstance(min_lr, numbers.Real) or not 0 <= min_lr <= base_lr:
        raise ValueError(f"min_lr must be a number in [0, base_lr={base_lr}], got {min_lr!r}")


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

    Raises ``ValueError`` for an unknown kind or out-of-range arguments.
    """
    _validate(step, base_lr, total_steps, warmup_steps, min_lr, kind)
    if step < warmup_steps:
        return float(base_lr) * (step + 1) / warmup_steps
    if kind == "constant":
        return float(base_lr)
    peak = max(warmup_steps - 1, 0)
    decay_steps = total_steps - 1 - peak
    if decay_steps == 0:
        return float(base_lr)
    progress = (step - peak) / decay_steps
    return float(min_lr + 0.5 * (base_lr - min_lr) * (1.0 + math.cos(math.pi * progress)))
