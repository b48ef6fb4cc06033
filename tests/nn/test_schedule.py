"""Known-answer tests for the learning-rate schedule."""

import math

import pytest

from numpynet.nn import learning_rate

# Warmup steps 0..10 peak at step 10, where the cosine starts; it decays over steps 10..100
# (90 intervals), so its midpoint is step 55 and a third of the way is step 40.
BASE = 0.1
MIN = 0.001
TOTAL = 101
WARMUP = 11


def cosine(step):
    return learning_rate(
        step, base_lr=BASE, total_steps=TOTAL, warmup_steps=WARMUP, min_lr=MIN, kind="cosine"
    )


def test_cosine_warmup_is_linear_from_base_over_warmup():
    assert cosine(0) == pytest.approx(BASE / WARMUP, rel=1e-12)  # 0.1 / 11
    assert cosine(4) == pytest.approx(BASE * 5 / WARMUP, rel=1e-12)
    assert cosine(WARMUP - 1) == pytest.approx(BASE, rel=1e-12)  # end of warmup is the peak


def test_cosine_decay_known_values():
    assert cosine(55) == pytest.approx((BASE + MIN) / 2, rel=1e-12)  # midpoint of the decay
    assert cosine(TOTAL - 1) == MIN  # exactly min_lr at the last step
    # A third of the way: min + (base - min) * (1 + cos(pi/3)) / 2 = 0.001 + 0.099 * 0.75 = 0.07525
    assert cosine(40) == pytest.approx(0.07525, rel=1e-12)
    # The decay is monotone and stays within [min_lr, base_lr].
    values = [cosine(step) for step in range(WARMUP - 1, TOTAL)]
    assert all(a > b for a, b in zip(values, values[1:]))
    assert max(values) == pytest.approx(BASE) and min(values) == MIN


def test_cosine_without_warmup_starts_at_base():
    def lr(step):
        return learning_rate(
            step, base_lr=1.0, total_steps=5, warmup_steps=0, min_lr=0.0, kind="cosine"
        )

    # progress = step / 4: cos(0)=1, cos(pi/4), cos(pi/2)=0, cos(3pi/4), cos(pi)=-1
    assert lr(0) == 1.0
    assert lr(1) == pytest.approx((1 + math.sqrt(0.5)) / 2, rel=1e-12)
    assert lr(2) == pytest.approx(0.5, rel=1e-12)
    assert lr(4) == 0.0


def test_cosine_single_step_and_full_warmup_stay_at_peak():
    assert learning_rate(
        0, base_lr=0.3, total_steps=1, warmup_steps=0, min_lr=0.0, kind="cosine"
    ) == pytest.approx(0.3)
    assert learning_rate(
        3, base_lr=0.3, total_steps=4, warmup_steps=4, min_lr=0.0, kind="cosine"
    ) == pytest.approx(0.3)


def test_constant_schedule():
    def lr(step):
        return learning_rate(
            step, base_lr=0.2, total_steps=10, warmup_steps=4, min_lr=0.0, kind="constant"
        )

    assert [lr(s) for s in range(4)] == pytest.approx([0.05, 0.1, 0.15, 0.2])
    assert all(lr(s) == 0.2 for s in range(4, 10))
    assert learning_rate(
        0, base_lr=0.2, total_steps=10, warmup_steps=0, min_lr=0.0, kind="constant"
    ) == 0.2


def test_returns_a_plain_float():
    assert type(cosine(3)) is float
    assert type(cosine(50)) is float


def test_an_unknown_kind_raises_instead_of_falling_back_to_cosine():
    with pytest.raises(ValueError, match="linear"):
        learning_rate(5, base_lr=0.1, total_steps=10, warmup_steps=2, min_lr=0.0, kind="linear")
