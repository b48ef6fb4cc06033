"""Finite-difference checks of every hand-written backward pass, in float64."""

import math

import numpy as np
import pytest

from numpynet.matmul import exact_products
from numpynet.nn import (
    BatchNorm,
    Dropout,
    Flatten,
    Linear,
    MLPConfig,
    Projection,
    ReLU,
    Sequential,
    SoftmaxCrossEntropy,
    build_mlp,
    log_softmax,
)

STEP = 1e-6
TOLERANCE = 1e-6


@pytest.fixture(autouse=True)
def blas_products():
    """Finite differences check the backward formulas in float64; exact mode's products round
    their inputs to about 20 bits (tests/test_matmul.py bounds that), far coarser than a step of
    1e-6, so these checks use the BLAS's products in every mode. The last test compares the
    two."""
    with exact_products(False):
        yield


def numerical_gradient(f, x: np.ndarray) -> np.ndarray:
    """Central differences of the scalar function ``f()`` w.r.t. ``x``, perturbed in place."""
    grad = np.zeros_like(x)
    flat_x, flat_grad = x.reshape(-1), grad.reshape(-1)
    for i in range(flat_x.size):
        original = flat_x[i]
        flat_x[i] = original + STEP
        plus = f()
        flat_x[i] = original - STEP
        minus = f()
        flat_x[i] = original
        flat_grad[i] = (plus - minus) / (2 * STEP)
    return grad


def relative_error(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(a) + np.linalg.norm(b), 1e-12))


def check_layer_input_gradient(layer, x: np.ndarray, rng, training=True):
    """Check ``layer.backward`` against finite differences of ``sum(forward(x) * weights)``."""
    out = layer.forward(x, training)
    weights = rng.standard_normal(out.shape)  # a random projection makes the output scalar
    analytic = layer.backward(weights)

    def f():
        return float(np.sum(layer.forward(x, training) * weights))

    numeric = numerical_gradient(f, x)
    assert analytic.shape == x.shape
    assert relative_error(analytic, numeric) < TOLERANCE


def test_numerical_gradient_helper_detects_a_wrong_gradient():
    # Guard against a gradient check that passes vacuously.
    x = np.array([1.0, 2.0, 3.0])
    numeric = numerical_gradient(lambda: float(np.sum(x**2)), x)
    np.testing.assert_allclose(numeric, 2 * x, rtol=1e-8)
    assert relative_error(2.1 * x, numeric) > TOLERANCE


def test_linear_gradients():
    rng = np.random.default_rng(0)
    layer = Linear(5, 3, rng, dtype=np.float64)
    layer.bias[:] = rng.standard_normal(3)  # a nonzero bias so a missing bias term shows
    x = rng.standard_normal((4, 5))
    weights = rng.standard_normal((4, 3))

    layer.forward(x, True)
    grad_in = layer.backward(weights)

    def f():
        return float(np.sum(layer.forward(x, True) * weights))

    assert relative_error(grad_in, numerical_gradient(f, x)) < TOLERANCE
    assert relative_error(layer.grad_weight, numerical_gradient(f, layer.weight)) < TOLERANCE
    assert relative_error(layer.grad_bias, numerical_gradient(f, layer.bias)) < TOLERANCE


def test_linear_backward_overwrites_instead_of_accumulating():
    rng = np.random.default_rng(1)
    layer = Linear(3, 2, rng, dtype=np.float64)
    x = rng.standard_normal((4, 3))
    grad_out = rng.standard_normal((4, 2))
    grad_weight_buffer, grad_bias_buffer = layer.grad_weight, layer.grad_bias
    layer.forward(x, True)
    layer.backward(grad_out)
    layer.backward(grad_out)
    np.testing.assert_allclose(layer.grad_weight, x.T @ grad_out)
    np.testing.assert_allclose(layer.grad_bias, grad_out.sum(axis=0))
    # The buffers are reused, not replaced, so an optimizer holding them sees new values.
    assert layer.grad_weight is grad_weight_buffer
    assert layer.grad_bias is grad_bias_buffer


def test_relu_gradient():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((6, 7))
    # Keep inputs away from the kink at 0, where finite differences straddle two slopes.
    x[np.abs(x) < 0.1] = 0.5
    check_layer_input_gradient(ReLU(), x, rng)


def test_relu_known_values_including_near_zero():
    # The gradient check avoids the kink; here small inputs of both signs pin it down exactly.
    layer = ReLU()
    x = np.array([[-2.0, -0.01, 0.0, 0.01, 3.0]])
    np.testing.assert_array_equal(layer.forward(x, True), [[0.0, 0.0, 0.0, 0.01, 3.0]])
    grad = layer.backward(np.full_like(x, 5.0))
    np.testing.assert_array_equal(grad, [[0.0, 0.0, 0.0, 5.0, 5.0]])


def test_dropout_backward_uses_the_forward_mask():
    p = 0.4
    layer = Dropout(p, np.random.default_rng(3))
    ones = np.ones((50, 40))
    mask = layer.forward(ones, training=True)  # with an all-ones input the output is the mask
    assert set(np.unique(mask)) == {0.0, 1.0 / (1.0 - p)}
    grad_out = np.random.default_rng(4).standard_normal(ones.shape)
    np.testing.assert_array_equal(layer.backward(grad_out), grad_out * mask)


def test_dropout_gradient_with_fixed_mask():
    # A fresh generator with the same seed per call fixes the mask across perturbed inputs.
    p = 0.3
    rng = np.random.default_rng(5)
    x = rng.standard_normal((5, 6))
    weights = rng.standard_normal((5, 6))

    def f():
        return float(np.sum(Dropout(p, np.random.default_rng(7)).forward(x, True) * weights))

    layer = Dropout(p, np.random.default_rng(7))
    layer.forward(x, True)
    analytic = layer.backward(weights)
    assert relative_error(analytic, numerical_gradient(f, x)) < TOLERANCE


def test_dropout_eval_mode_is_identity_forward_and_backward():
    layer = Dropout(0.5, np.random.default_rng(6))
    x = np.random.default_rng(7).standard_normal((4, 5))
    np.testing.assert_array_equal(layer.forward(x, training=False), x)
    grad = np.random.default_rng(8).standard_normal((4, 5))
    np.testing.assert_array_equal(layer.backward(grad), grad)


def test_flatten_gradient_and_shapes():
    rng = np.random.default_rng(9)
    x = rng.standard_normal((3, 4, 5))
    layer = Flatten()
    assert layer.forward(x, True).shape == (3, 20)
    check_layer_input_gradient(layer, x, rng)


def test_projection_known_values_and_gradient():
    matrix = np.array([[1.0, 0.0], [0.0, 2.0], [1.0, -1.0]])
    layer = Projection(matrix)
    np.testing.assert_array_equal(layer.forward(np.array([[1.0, 2.0, 3.0]]), training=True),
                                  [[4.0, 1.0]])
    np.testing.assert_array_equal(layer.backward(np.array([[1.0, 1.0]])), [[1.0, 2.0, 0.0]])
    assert layer.parameters() == []  # fixed: no optimizer moves it
    rng = np.random.default_rng(4)
    check_layer_input_gradient(Projection(rng.standard_normal((6, 3))),
                               rng.standard_normal((5, 6)), rng)


def test_training_backward_stops_at_the_linear_layer_behind_a_projection():
    rng = np.random.default_rng(5)
    projection, linear = Projection(rng.standard_normal((6, 3))), Linear(3, 2, rng, np.float64)
    model = Sequential([Flatten(), projection, linear])
    x = rng.standard_normal((4, 2, 3))
    model.forward(x, training=True)
    grad = rng.standard_normal((4, 2))
    projection.backward = None  # called, it would fail: the Projection has nothing to learn
    assert model.backward(grad, need_input_grad=False) is None
    np.testing.assert_allclose(linear.grad_weight, (x.reshape(4, 6) @ projection.matrix).T @ grad)


def test_softmax_cross_entropy_gradient():
    rng = np.random.default_rng(10)
    logits = rng.standard_normal((6, 4)) * 3
    labels = np.array([0, 3, 1, 1, 2, 0])
    loss = SoftmaxCrossEntropy()
    loss.forward(logits, labels)
    analytic = loss.backward()
    numeric = numerical_gradient(lambda: loss.forward(logits, labels), logits)
    assert analytic.dtype == np.float64
    assert relative_error(analytic, numeric) < TOLERANCE


def test_softmax_cross_entropy_known_value():
    # logits (0, ln 3) give softmax (1/4, 3/4): the loss of label 1 is -ln(3/4).
    loss = SoftmaxCrossEntropy().forward(np.array([[0.0, math.log(3.0)]]), np.array([1]))
    assert loss == pytest.approx(-math.log(0.75), rel=1e-12)


def test_softmax_cross_entropy_gradient_keeps_float32():
    loss = SoftmaxCrossEntropy()
    loss.forward(np.zeros((2, 3), dtype=np.float32), np.array([0, 2]))
    grad = loss.backward()
    assert grad.dtype == np.float32
    expected = (np.full((2, 3), 1 / 3) - np.eye(3)[[0, 2]]) / 2
    np.testing.assert_allclose(grad, expected, rtol=1e-6)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_loss_is_stable_for_huge_logits(dtype):
    logits = np.array([[1e4, 0.0, -1e4], [1e4, 0.0, -1e4]], dtype=dtype)
    loss = SoftmaxCrossEntropy()
    with np.errstate(over="raise", divide="raise", invalid="raise"):  # underflow to 0 is fine
        # Row 0: the true class dominates, loss ~ 0. Row 1: loss = 1e4 - 0.
        value = loss.forward(logits, np.array([0, 1]))
        grad = loss.backward()
    assert math.isfinite(value)
    assert value == pytest.approx((0.0 + 1e4) / 2, rel=1e-6)
    assert np.all(np.isfinite(grad))
    np.testing.assert_allclose(grad, [[0.0, 0.0, 0.0], [0.5, -0.5, 0.0]], atol=1e-6)


def test_loss_of_uniform_logits_is_log_num_classes():
    for num_classes in (2, 10, 37):
        logits = np.full((5, num_classes), 3.5)
        labels = np.arange(5) % num_classes
        assert SoftmaxCrossEntropy().forward(logits, labels) == pytest.approx(
            math.log(num_classes), rel=1e-12
        )


def test_log_softmax_matches_direct_formula_and_survives_huge_logits():
    logits = np.array([[1.0, 2.0, 3.0]])
    direct = np.log(np.exp(logits) / np.exp(logits).sum())
    np.testing.assert_allclose(log_softmax(logits), direct, rtol=1e-12)
    huge = log_softmax(np.array([[1e4, 0.0]], dtype=np.float32))
    assert np.all(np.isfinite(huge))
    np.testing.assert_allclose(huge, [[0.0, -1e4]], rtol=1e-6)


@pytest.mark.parametrize("labels", [np.array([1]), np.array([[0], [1]]), np.array([0, 1, 2])])
def test_loss_refuses_labels_that_do_not_match_the_batch(labels):
    # (1,) and (2, 1) would broadcast against the rows and return a wrong but finite loss.
    with pytest.raises(ValueError, match="labels"):
        SoftmaxCrossEntropy().forward(np.zeros((2, 3)), labels)


def test_whole_mlp_gradients_end_to_end():
    rng = np.random.default_rng(11)
    model = build_mlp(MLPConfig(12, (8, 6), 4, dropout=0.0), rng, dtype=np.float64)
    for _, param, _ in model.parameters():
        if param.ndim == 1:
            param[:] = rng.standard_normal(param.shape) * 0.1  # exercise the bias paths
    x = rng.standard_normal((5, 3, 4))  # Flatten turns it into (5, 12)
    labels = np.array([0, 1, 2, 3, 1])
    loss = SoftmaxCrossEntropy()

    def f():
        return loss.forward(model.forward(x, training=True), labels)

    f()
    # Finite differences across a ReLU kink would be meaningless; make sure there is none.
    hidden = x.reshape(5, -1)
    for layer in model.layers:
        if isinstance(layer, Linear) and layer is not model.layers[-1]:
            hidden = hidden @ layer.weight + layer.bias
            assert np.min(np.abs(hidden)) > 1e-4
            hidden = np.maximum(hidden, 0)

    grad_input = model.backward(loss.backward())
    params = model.parameters()
    assert [name for name, _, _ in params] == [
        "layers.1.weight", "layers.1.bias",
        "layers.3.weight", "layers.3.bias",
        "layers.5.weight", "layers.5.bias",
    ]
    analytic = {name: grad.copy() for name, _, grad in params}
    for name, param, _ in params:
        numeric = numerical_gradient(f, param)
        assert relative_error(analytic[name], numeric) < TOLERANCE, name
    assert grad_input.shape == x.shape
    assert relative_error(grad_input, numerical_gradient(f, x)) < TOLERANCE


def test_training_backward_skips_the_input_gradient_but_not_the_parameter_gradients():
    # need_input_grad=False stops at the first Linear layer; every parameter gradient must
    # still be the one the full backward pass computes, bit for bit.
    rng = np.random.default_rng(11)
    model = build_mlp(MLPConfig(12, (8, 6), 4, dropout=0.0), rng)
    x = rng.standard_normal((5, 3, 4)).astype(np.float32)
    labels = np.array([0, 1, 2, 3, 1])
    loss = SoftmaxCrossEntropy()
    loss.forward(model.forward(x, training=True), labels)
    full_input_grad = model.backward(loss.backward())
    full = {name: grad.copy() for name, _, grad in model.parameters()}
    for _, _, grad in model.parameters():
        grad[...] = np.nan
    assert model.backward(loss.backward(), need_input_grad=False) is None
    for name, _, grad in model.parameters():
        np.testing.assert_array_equal(grad, full[name], err_msg=name)
    assert full_input_grad.shape == x.shape
    assert model.layers[1].backward(np.ones((5, 8), np.float32), need_input_grad=False) is None


def test_training_backward_of_a_model_without_parameters_does_nothing():
    model = Sequential([Flatten(), ReLU()])
    model.forward(np.ones((2, 3, 1)), training=True)
    assert model.backward(np.ones((2, 3)), need_input_grad=False) is None


def random_batchnorm(rng, num_features=4):
    """A float64 BatchNorm with random gamma, beta and running statistics (none at the default)."""
    layer = BatchNorm(num_features, dtype=np.float64)
    layer.gamma[:] = rng.uniform(0.5, 2.0, num_features) * rng.choice([-1, 1], num_features)
    layer.beta[:] = rng.standard_normal(num_features)
    layer.running_mean[:] = rng.standard_normal(num_features)
    layer.running_var[:] = rng.uniform(0.5, 2.0, num_features)
    return layer


@pytest.mark.parametrize("training", [True, False])
def test_batchnorm_gradients(training):
    # Training: the gradient flows through the batch mean and variance as well. Evaluation: the
    # running statistics are constants. Features of different scales and offsets, so that a
    # gradient ignoring the centring or the scaling is wrong by a visible amount.
    rng = np.random.default_rng(12)
    layer = random_batchnorm(rng)
    x = rng.standard_normal((6, 4)) * [1.0, 3.0, 0.2, 5.0] + [0.0, -2.0, 1.0, 4.0]
    weights = rng.standard_normal((6, 4))

    def f():
        return float(np.sum(layer.forward(x, training) * weights))

    f()
    grad_in = layer.backward(weights)
    analytic = {"gamma": layer.grad_gamma.copy(), "beta": layer.grad_beta.copy()}
    assert relative_error(grad_in, numerical_gradient(f, x)) < TOLERANCE
    assert relative_error(analytic["gamma"], numerical_gradient(f, layer.gamma)) < TOLERANCE
    assert relative_error(analytic["beta"], numerical_gradient(f, layer.beta)) < TOLERANCE


@pytest.mark.parametrize("training", [True, False])
def test_batchnorm_parameter_gradients_without_the_input_gradient(training):
    # need_input_grad=False (a network's first parameterized layer) must fill the same buffers.
    rng = np.random.default_rng(13)
    layer = random_batchnorm(rng, 5)
    x, grad_out = rng.standard_normal((7, 5)), rng.standard_normal((7, 5))
    layer.forward(x, training)
    assert layer.backward(grad_out).shape == x.shape
    full = layer.grad_gamma.copy(), layer.grad_beta.copy()
    layer.grad_gamma[:] = layer.grad_beta[:] = np.nan
    assert layer.backward(grad_out, need_input_grad=False) is None
    np.testing.assert_array_equal(layer.grad_gamma, full[0])
    np.testing.assert_array_equal(layer.grad_beta, full[1])


def test_batchnorm_backward_before_forward_is_an_error():
    with pytest.raises(RuntimeError, match="BatchNorm.backward"):
        BatchNorm(3).backward(np.ones((2, 3), np.float32))


@pytest.mark.parametrize("smoothing", [0.1, 0.5, 1.0])
def test_smoothed_softmax_cross_entropy_gradient(smoothing):
    rng = np.random.default_rng(14)
    logits = rng.standard_normal((6, 4)) * 3
    labels = np.array([0, 3, 1, 1, 2, 0])
    loss = SoftmaxCrossEntropy(label_smoothing=smoothing)
    loss.forward(logits, labels)
    analytic = loss.backward()
    numeric = numerical_gradient(lambda: loss.forward(logits, labels), logits)
    assert analytic.dtype == np.float64
    assert relative_error(analytic, numeric) < TOLERANCE
    # Smoothing changes the gradient: a check that ignored it would not pass by accident.
    plain = SoftmaxCrossEntropy()
    plain.forward(logits, labels)
    assert relative_error(analytic, plain.backward()) > 1e-2


def test_whole_mlp_gradients_with_batch_normalization():
    rng = np.random.default_rng(15)
    config = MLPConfig(12, (8, 6), 4, dropout=0.0, normalization="batch")
    model = build_mlp(config, rng, dtype=np.float64)
    for layer in model.layers:
        if isinstance(layer, BatchNorm):
            layer.gamma[:] = rng.uniform(0.5, 1.5, layer.gamma.shape)
            layer.beta[:] = rng.standard_normal(layer.beta.shape) * 0.5
    for _, param, _ in model.parameters():
        if param.ndim == 1 and not np.any(param):
            param[:] = rng.standard_normal(param.shape) * 0.1  # the Linear biases
    x = rng.standard_normal((7, 3, 4))
    labels = np.array([0, 1, 2, 3, 1, 0, 2])
    loss = SoftmaxCrossEntropy(label_smoothing=0.1)

    def f():
        return loss.forward(model.forward(x, training=True), labels)

    f()
    # Finite differences across a ReLU kink would be meaningless; make sure there is none.
    hidden = x
    for layer in model.layers:
        if isinstance(layer, ReLU):
            assert np.min(np.abs(hidden)) > 1e-4
        hidden = layer.forward(hidden, training=True)

    grad_input = model.backward(loss.backward())
    params = model.parameters()
    assert [name for name, _, _ in params] == [
        "layers.1.weight", "layers.1.bias", "layers.2.gamma", "layers.2.beta",
        "layers.4.weight", "layers.4.bias", "layers.5.gamma", "layers.5.beta",
        "layers.7.weight", "layers.7.bias",
    ]
    analytic = {name: grad.copy() for name, _, grad in params}
    for name, param, _ in params:
        numeric = numerical_gradient(f, param)
        if name in ("layers.1.bias", "layers.4.bias"):
            # Batch normalization subtracts the batch mean, so a bias in front of it has no
            # effect in training: both gradients are zero up to rounding (a relative error of
            # two roundings means nothing).
            assert np.max(np.abs(analytic[name])) < 1e-12, name
            assert np.max(np.abs(numeric)) < 1e-8, name
        else:
            assert relative_error(analytic[name], numeric) < TOLERANCE, name
    assert grad_input.shape == x.shape
    assert relative_error(grad_input, numerical_gradient(f, x)) < TOLERANCE


def test_exact_products_give_the_blas_gradients_to_float32_accuracy():
    rng = np.random.default_rng(3)
    model = build_mlp(MLPConfig(12, (8, 6), 4, dropout=0.0, normalization="batch"), rng)
    x = rng.standard_normal((16, 12)).astype(np.float32)
    labels = rng.integers(0, 4, size=16)

    def gradients(exact):
        loss = SoftmaxCrossEntropy(label_smoothing=0.1)
        with exact_products(exact):
            loss.forward(model.forward(x, training=True), labels)
            model.backward(loss.backward())
        return {name: grad.astype(np.float64) for name, _, grad in model.parameters()}

    blas, exact = gradients(False), gradients(True)
    # Relative to the largest gradient: a bias before batch normalization has a gradient of 0
    # but for rounding, which no relative error could compare.
    scale = max(np.abs(grad).max() for grad in blas.values())
    for name in blas:
        assert np.abs(exact[name] - blas[name]).max() < 1e-4 * scale, name
