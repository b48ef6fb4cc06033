"""Label smoothing in SoftmaxCrossEntropy: known answers, and plain cross-entropy unchanged."""

import math

import numpy as np
import pytest

from numpynet.nn import SoftmaxCrossEntropy, log_softmax
from numpynet.portable_math import exp


def smoothed_target(labels, num_classes, smoothing):
    """The target written out in full: ``(1 - smoothing) * onehot + smoothing / num_classes``."""
    return (1 - smoothing) * np.eye(num_classes)[labels] + smoothing / num_classes


def test_zero_smoothing_is_bit_identical_to_plain_cross_entropy():
    # The formulas of the code before label smoothing, written out: ε = 0 must not move a bit.
    rng = np.random.default_rng(0)
    logits = (rng.standard_normal((64, 10)) * 4).astype(np.float32)
    labels = rng.integers(0, 10, 64)
    log_probs = log_softmax(logits)
    expected_loss = float(-np.mean(log_probs[np.arange(64), labels], dtype=np.float64))
    expected_grad = exp(log_probs)
    expected_grad[np.arange(64), labels] -= 1
    expected_grad /= 64
    for loss in (SoftmaxCrossEntropy(), SoftmaxCrossEntropy(label_smoothing=0.0)):
        assert loss.forward(logits, labels) == expected_loss
        grad = loss.backward()
        assert grad.dtype == np.float32
        np.testing.assert_array_equal(grad, expected_grad)


@pytest.mark.parametrize("smoothing", [0.0, 0.1, 0.5, 1.0])
def test_uniform_logits_give_log_num_classes_for_any_smoothing(smoothing):
    # Every log-probability is -log C and every target sums to 1, whatever ε spreads.
    for num_classes in (2, 10, 37):
        logits = np.full((5, num_classes), -1.25)
        labels = np.arange(5) % num_classes
        value = SoftmaxCrossEntropy(label_smoothing=smoothing).forward(logits, labels)
        assert value == pytest.approx(math.log(num_classes), rel=1e-12)


def test_smoothed_loss_known_value():
    # logits (0, ln 3) give softmax (1/4, 3/4); with ε = 0.2 and C = 2 the target of label 1
    # is (0.1, 0.9), so the loss is -(0.1 ln(1/4) + 0.9 ln(3/4)).
    loss = SoftmaxCrossEntropy(label_smoothing=0.2)
    value = loss.forward(np.array([[0.0, math.log(3.0)]]), np.array([1]))
    assert value == pytest.approx(-(0.1 * math.log(0.25) + 0.9 * math.log(0.75)), rel=1e-12)
    np.testing.assert_allclose(loss.backward(), [[0.25 - 0.1, 0.75 - 0.9]], rtol=1e-12)


def test_smoothed_loss_and_gradient_match_the_full_target_formula():
    rng = np.random.default_rng(1)
    logits = rng.standard_normal((9, 5)) * 3
    labels = rng.integers(0, 5, 9)
    target = smoothed_target(labels, 5, 0.15)
    loss = SoftmaxCrossEntropy(label_smoothing=0.15)
    value = loss.forward(logits, labels)
    assert value == pytest.approx(-np.mean(np.sum(target * log_softmax(logits), axis=1)), rel=1e-12)
    softmax = np.exp(log_softmax(logits))
    np.testing.assert_allclose(loss.backward(), (softmax - target) / 9, rtol=1e-10, atol=1e-15)


def test_smoothed_loss_is_smallest_at_the_target_where_it_equals_its_entropy():
    # With logits = log(target) the softmax is the target: the gradient vanishes and the loss
    # is the target's entropy, no longer 0.
    smoothing, num_classes = 0.3, 4
    labels = np.array([0, 3, 2])
    target = smoothed_target(labels, num_classes, smoothing)
    loss = SoftmaxCrossEntropy(label_smoothing=smoothing)
    value = loss.forward(np.log(target), labels)
    entropy = -np.sum(target[0] * np.log(target[0]))
    assert value == pytest.approx(entropy, rel=1e-12)
    np.testing.assert_allclose(loss.backward(), 0.0, atol=1e-15)
    nearby = loss.forward(np.log(target) + [[0.1, 0.0, -0.1, 0.0]] * 3, labels)
    assert nearby > value


def test_smoothed_gradient_keeps_float32_and_huge_logits_stay_finite():
    logits = np.array([[1e4, 0.0, -1e4], [1e4, 0.0, -1e4]], dtype=np.float32)
    loss = SoftmaxCrossEntropy(label_smoothing=0.3)
    with np.errstate(over="raise", divide="raise", invalid="raise"):  # underflow to 0 is fine
        value = loss.forward(logits, np.array([0, 1]))
        grad = loss.backward()
    assert math.isfinite(value) and grad.dtype == np.float32
    # Log-probabilities (0, -1e4, -2e4) and (0, -1e4, -2e4); targets (0.8, 0.1, 0.1) and
    # (0.1, 0.8, 0.1): losses 0.1e4 + 0.2e4 = 3e3 and 0.8e4 + 0.2e4 = 1e4.
    assert value == pytest.approx((3e3 + 1e4) / 2, rel=1e-6)
    np.testing.assert_allclose(grad, [[0.1, -0.05, -0.05], [0.45, -0.4, -0.05]], atol=1e-6)


@pytest.mark.parametrize("smoothing", [-0.1, 1.5, float("nan"), True, "0.1", None])
def test_label_smoothing_outside_zero_to_one_is_refused(smoothing):
    with pytest.raises(ValueError, match="label_smoothing"):
        SoftmaxCrossEntropy(label_smoothing=smoothing)
