"""Known-answer tests for the optimizers: expected values are worked out by hand below."""

import numpy as np
import pytest

from numpynet.nn import SGD, AdamW


def triple(name, values, grad):
    """A ``(name, param, grad)`` triple in float64, so hand-computed values compare tightly."""
    return (name, np.array(values, dtype=np.float64), np.array(grad, dtype=np.float64))


# ---------------------------------------------------------------- SGD


def test_sgd_plain():
    # p - lr * g with lr = 0.1, g = (0.5, -1): (1, 2) -> (0.95, 2.1) -> (0.9, 2.2)
    name, p, g = triple("bias", [1.0, 2.0], [0.5, -1.0])
    opt = SGD([(name, p, g)])
    opt.step(0.1)
    np.testing.assert_allclose(p, [0.95, 2.1], rtol=1e-12)
    opt.step(0.1)
    np.testing.assert_allclose(p, [0.9, 2.2], rtol=1e-12)


def test_sgd_momentum():
    # momentum 0.9, g = 1, lr = 0.1, p0 = 1:
    #   step 1: buf = g = 1                  p = 1    - 0.1 * 1    = 0.9
    #   step 2: buf = 0.9 * 1    + 1 = 1.9   p = 0.9  - 0.1 * 1.9  = 0.71
    #   step 3: buf = 0.9 * 1.9  + 1 = 2.71  p = 0.71 - 0.1 * 2.71 = 0.439
    name, p, g = triple("bias", [1.0], [1.0])
    opt = SGD([(name, p, g)], momentum=0.9)
    expected = [0.9, 0.71, 0.439]
    for value in expected:
        opt.step(0.1)
        assert p[0] == pytest.approx(value, rel=1e-12)


def test_sgd_nesterov():
    # momentum 0.9, g = 1, lr = 0.1, p0 = 1, update = g + 0.9 * buf:
    #   step 1: buf = 1     update = 1 + 0.9 * 1    = 1.9    p = 1     - 0.19   = 0.81
    #   step 2: buf = 1.9   update = 1 + 0.9 * 1.9  = 2.71   p = 0.81  - 0.271  = 0.539
    #   step 3: buf = 2.71  update = 1 + 0.9 * 2.71 = 3.439  p = 0.539 - 0.3439 = 0.1951
    name, p, g = triple("bias", [1.0], [1.0])
    opt = SGD([(name, p, g)], momentum=0.9, nesterov=True)
    for value in [0.81, 0.539, 0.1951]:
        opt.step(0.1)
        assert p[0] == pytest.approx(value, rel=1e-12)


def test_sgd_weight_decay_applies_to_weights_not_biases():
    # wd = 0.1, lr = 0.5.
    # Weight (2-D), zero gradient, so only the decay term g = 0.1 * W acts:
    #   step 1: W = (1, -2)       - 0.5 * 0.1 * (1, -2)       = (0.95, -1.9)
    #   step 2: W = (0.95, -1.9)  - 0.5 * 0.1 * (0.95, -1.9)  = (0.9025, -1.805)
    # Bias (1-D), gradient 0.2, no decay: 1 -> 0.9 -> 0.8 (with decay it would be 0.85 first).
    weight = triple("layers.0.weight", [[1.0, -2.0]], [[0.0, 0.0]])
    bias = triple("layers.0.bias", [1.0], [0.2])
    opt = SGD([weight, bias], weight_decay=0.1)
    opt.step(0.5)
    np.testing.assert_allclose(weight[1], [[0.95, -1.9]], rtol=1e-12)
    np.testing.assert_allclose(bias[1], [0.9], rtol=1e-12)
    opt.step(0.5)
    np.testing.assert_allclose(weight[1], [[0.9025, -1.805]], rtol=1e-12)
    np.testing.assert_allclose(bias[1], [0.8], rtol=1e-12)


def test_sgd_momentum_with_weight_decay():
    # W0 = 2, g = 1, wd = 0.5, momentum = 0.5, lr = 0.1:
    #   step 1: d = 1 + 0.5 * 2   = 2     buf = 2                    W = 2   - 0.2  = 1.8
    #   step 2: d = 1 + 0.5 * 1.8 = 1.9   buf = 0.5 * 2 + 1.9 = 2.9  W = 1.8 - 0.29 = 1.51
    name, p, g = triple("w", [[2.0]], [[1.0]])
    opt = SGD([(name, p, g)], momentum=0.5, weight_decay=0.5)
    opt.step(0.1)
    assert p[0, 0] == pytest.approx(1.8, rel=1e-12)
    opt.step(0.1)
    assert p[0, 0] == pytest.approx(1.51, rel=1e-12)


def test_sgd_leaves_gradient_untouched_and_updates_in_place():
    name, p, g = triple("w", [[1.0, 2.0]], [[0.5, 0.5]])
    original_p = p
    opt = SGD([(name, p, g)], momentum=0.9, nesterov=True, weight_decay=0.1)
    opt.step(0.1)
    assert p is original_p
    np.testing.assert_array_equal(g, [[0.5, 0.5]])


def test_sgd_keeps_float32():
    p = np.ones((3, 2), dtype=np.float32)
    g = np.full((3, 2), 0.5, dtype=np.float32)
    opt = SGD([("w", p, g)], momentum=0.9, weight_decay=1e-4)
    opt.step(0.1)
    assert p.dtype == np.float32
    assert opt.buffers["momentum_buffer"][0].dtype == np.float32


@pytest.mark.parametrize("optimizer", [SGD, AdamW])
def test_parameter_lists_that_would_fail_silently_are_refused(optimizer):
    # A repeated name would make two parameters share one state_dict key, and a gradient of
    # shape (1,) would broadcast over its parameter instead of failing.
    params = [triple("w", [[1.0]], [[1.0]])]
    with pytest.raises(ValueError, match="twice"):
        optimizer(params + params)
    with pytest.raises(ValueError, match="shape"):
        optimizer([triple("b", [1.0, 2.0], [1.0])])


# ---------------------------------------------------------------- AdamW


def test_adamw_bias_correction_with_changing_gradient():
    # betas (0.9, 0.999), lr = 0.1, p0 = 0, no decay on a 1-D parameter.
    #   step 1, g = 1:  m = 0.1, v = 0.001;  m_hat = 0.1/0.1 = 1, v_hat = 0.001/0.001 = 1
    #                   p = 0 - 0.1 * 1 / (1 + eps) = -0.1 (to 1e-9)
    #   step 2, g = -1: m = 0.09 - 0.1 = -0.01,  v = 0.000999 + 0.001 = 0.001999
    #                   m_hat = -0.01 / (1 - 0.81) = -1/19
    #                   v_hat = 0.001999 / (1 - 0.998001) = 1
    #                   p = -0.1 - 0.1 * (-1/19) = -0.1 + 1/190
    # Without bias correction step 1 alone would move p by 0.1 * 0.1 / sqrt(0.001) = 0.316.
    name, p, g = triple("bias", [0.0], [1.0])
    opt = AdamW([(name, p, g)], weight_decay=0.5)  # decay must not touch a 1-D parameter
    opt.step(0.1)
    assert p[0] == pytest.approx(-0.1, abs=1e-9)
    g[0] = -1.0
    opt.step(0.1)
    assert p[0] == pytest.approx(-0.1 + 1 / 190, abs=1e-9)
    assert opt.step_count == 2


def test_adamw_decoupled_weight_decay():
    # A constant gradient makes m_hat = g and v_hat = g^2 exactly, so every step moves each
    # entry by lr * |g| / (|g| + eps) against the sign of g, after the decay factor
    # (1 - lr * wd) = 1 - 0.1 * 0.1 = 0.99 is applied to the 2-D weight:
    #   step 1: W = 0.99 * (1, -1)          - 0.1 * (+1, -1) = (0.89, -0.89)
    #   step 2: W = 0.99 * (0.89, -0.89)    - 0.1 * (+1, -1) = (0.7811, -0.7811)
    # The eps terms: |g| / (|g| + 1e-8) for g = 0.5 and g = -2.
    eps = 1e-8
    shrink_pos = 0.5 / (0.5 + eps)
    shrink_neg = 2.0 / (2.0 + eps)
    weight = triple("layers.0.weight", [[1.0, -1.0]], [[0.5, -2.0]])
    bias = triple("layers.0.bias", [1.0], [0.5])
    opt = AdamW([weight, bias], betas=(0.9, 0.999), eps=eps, weight_decay=0.1)
    opt.step(0.1)
    expected_w1 = np.array([[0.99 - 0.1 * shrink_pos, -0.99 + 0.1 * shrink_neg]])
    np.testing.assert_allclose(weight[1], expected_w1, rtol=1e-13)
    np.testing.assert_allclose(bias[1], [1.0 - 0.1 * shrink_pos], rtol=1e-13)  # no decay
    opt.step(0.1)
    expected_w2 = 0.99 * expected_w1 - 0.1 * np.array([[shrink_pos, -shrink_neg]])
    np.testing.assert_allclose(weight[1], expected_w2, rtol=1e-13)
    np.testing.assert_allclose(weight[1], [[0.7811, -0.7811]], rtol=1e-6)
    np.testing.assert_allclose(bias[1], [1.0 - 0.2 * shrink_pos], rtol=1e-13)


def test_adamw_eps_matters_for_tiny_gradients():
    # g = 1e-8 = eps: m_hat / (sqrt(v_hat) + eps) = 1e-8 / (1e-8 + 1e-8) = 0.5, so p moves 0.05.
    name, p, g = triple("bias", [0.0], [1e-8])
    AdamW([(name, p, g)], eps=1e-8).step(0.1)
    assert p[0] == pytest.approx(-0.05, rel=1e-6)


def test_adamw_keeps_float32_and_updates_in_place():
    p = np.ones((4, 3), dtype=np.float32)
    g = np.full((4, 3), 0.25, dtype=np.float32)
    original = p
    opt = AdamW([("w", p, g)])
    opt.step(1e-3)
    assert p is original
    assert p.dtype == np.float32
    assert all(buf[0].dtype == np.float32 for buf in opt.buffers.values())
    np.testing.assert_array_equal(g, 0.25)


# ---------------------------------------------------------------- state dicts


@pytest.mark.parametrize(
    "make_optimizer",
    [
        lambda params: SGD(params, momentum=0.9, nesterov=True, weight_decay=0.01),
        lambda params: AdamW(params, weight_decay=0.05),
    ],
    ids=["sgd", "adamw"],
)
def test_resuming_from_state_dict_matches_an_uninterrupted_run(make_optimizer):
    rng = np.random.default_rng(0)
    gradients = [rng.standard_normal((3, 2)) for _ in range(4)]

    def fresh_params():
        return [("w", np.ones((3, 2)), np.zeros((3, 2))), ("b", np.ones(2), np.zeros(2))]

    def run(params, opt, grads):
        for grad in grads:
            params[0][2][...] = grad
            params[1][2][...] = grad[0]
            opt.step(0.05)

    params = fresh_params()
    uninterrupted = make_optimizer(params)
    run(params, uninterrupted, gradients)

    first = fresh_params()
    opt = make_optimizer(first)
    run(first, opt, gradients[:2])
    # Round trip through np.savez-like plain arrays: "step" becomes a 0-d array.
    saved = {key: np.asarray(value) for key, value in opt.state_dict().items()}
    resumed_params = [(n, p.copy(), g.copy()) for n, p, g in first]
    resumed = make_optimizer(resumed_params)
    resumed.load_state_dict(saved)
    assert resumed.step_count == 2
    run(resumed_params, resumed, gradients[2:])

    for (_, expected, _), (_, actual, _) in zip(params, resumed_params):
        np.testing.assert_array_equal(actual, expected)


def test_state_dict_keys_and_copies():
    params = [triple("layers.0.weight", [[1.0]], [[1.0]]), triple("layers.0.bias", [1.0], [1.0])]
    adam = AdamW(params)
    adam.step(0.1)
    state = adam.state_dict()
    assert set(state) == {
        "step",
        "exp_avg.layers.0.weight", "exp_avg.layers.0.bias",
        "exp_avg_sq.layers.0.weight", "exp_avg_sq.layers.0.bias",
    }
    assert state["step"] == 1
    state["exp_avg.layers.0.bias"][0] = 123.0
    assert adam.buffers["exp_avg"][1][0] != 123.0  # the state dict holds copies

    assert set(SGD(params).state_dict()) == {"step"}
    assert set(SGD(params, momentum=0.5).state_dict()) == {
        "step", "momentum_buffer.layers.0.weight", "momentum_buffer.layers.0.bias",
    }


def test_load_state_dict_rejects_mismatches():
    params = [triple("w", [[1.0, 2.0]], [[1.0, 1.0]])]
    opt = AdamW(params)
    good = opt.state_dict()
    with pytest.raises(ValueError, match="exp_avg_sq.w"):
        opt.load_state_dict({k: v for k, v in good.items() if k != "exp_avg_sq.w"})
    with pytest.raises(ValueError, match="extra"):
        opt.load_state_dict({**good, "extra": np.zeros(1)})
    with pytest.raises(ValueError, match="shape"):
        opt.load_state_dict({**good, "exp_avg.w": np.zeros((2, 1))})
    with pytest.raises(ValueError, match="step"):
        opt.load_state_dict({**good, "step": -1})


# ---------------------------------------------------------------- threads and chunks


@pytest.mark.parametrize("name", ["sgd", "sgd-plain", "adamw", "adamw-no-decay"])
def test_the_bytes_do_not_depend_on_threads_or_chunks(monkeypatch, name):
    # Updates are element-wise, so cutting parameters into shards and chunks, and handing them
    # to any number of threads, must give the very same bits as one whole pass.
    import numpynet.nn.optim as optim

    def run(threads):
        rng = np.random.default_rng(5)
        params = [
            (f"p{i}", rng.standard_normal(shape).astype(np.float32), np.zeros(shape, np.float32))
            for i, shape in enumerate([(37, 29), (29,), (5, 3), (300,)])
        ]
        opt = {
            "sgd": lambda: SGD(params, momentum=0.9, nesterov=True, weight_decay=0.01,
                               threads=threads),
            "sgd-plain": lambda: SGD(params, threads=threads),
            "adamw": lambda: AdamW(params, weight_decay=0.05, threads=threads),
            "adamw-no-decay": lambda: AdamW(params, weight_decay=0.0, threads=threads),
        }[name]()
        for step in range(3):
            for _, _, grad in params:
                grad[...] = rng.standard_normal(grad.shape)
            opt.step(0.01 * (step + 1))
        return [param.tobytes() for _, param, _ in params]

    whole = run(threads=1)
    monkeypatch.setattr(optim, "MIN_SHARDED_SIZE", 16)
    monkeypatch.setattr(optim, "CHUNK_SIZE", 7)
    assert run(threads=1) == whole
    assert run(threads=2) == whole
    assert run(threads=3) == whole


def test_a_non_contiguous_parameter_is_refused():
    # A flat view of a strided array would be a copy, and the update would be lost.
    p = np.ones((4, 4))[:, ::2]
    with pytest.raises(ValueError, match="contiguous"):
        AdamW([("w", p, np.zeros_like(p))])


@pytest.mark.parametrize("threads", [0, -1, 1.5])
def test_a_thread_count_below_one_is_refused(threads):
    with pytest.raises(ValueError, match="threads"):
        AdamW([("w", np.ones(3), np.zeros(3))], threads=threads)


def test_a_failing_shard_fails_the_step_after_every_worker_has_stopped(monkeypatch):
    import numpynet.nn.optim as optim

    monkeypatch.setattr(optim, "MIN_SHARDED_SIZE", 4)
    p = np.ones(8, dtype=np.float32)
    opt = SGD([("w", p, np.ones(8, dtype=np.float32))], threads=2)
    calls = []

    def update(shard):
        calls.append(len(shard))
        raise RuntimeError("shard failed")

    with pytest.raises(RuntimeError, match="shard failed"):
        opt._update_all(update)
    assert len(calls) == 2  # the worker's shard ran too, and was waited for
