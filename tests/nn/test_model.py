"""Model construction, initialization, state dicts and the architecture config."""

import hashlib

import numpy as np
import pytest

from numpynet.nn import (
    AdamW,
    BatchNorm,
    Dropout,
    Flatten,
    Linear,
    MLPConfig,
    ReLU,
    Sequential,
    build_mlp,
)


def mlp(input_size, hidden_sizes, num_classes, dropout, seed, normalization="none"):
    """``build_mlp`` for a config given inline, with a fresh generator seeded ``seed``."""
    config = MLPConfig(input_size, tuple(hidden_sizes), num_classes, dropout, normalization)
    return build_mlp(config, np.random.default_rng(seed))


def test_he_initialization_statistics():
    fan_in, fan_out = 1000, 1000
    layer = Linear(fan_in, fan_out, np.random.default_rng(0))
    expected_std = np.sqrt(2.0 / fan_in)
    # With 1e6 samples the sample std is within ~0.1% of the true one; 2% is a wide margin
    # that still catches the common mistakes (fan_out, gain 1, uniform of the wrong width).
    assert layer.weight.std() == pytest.approx(expected_std, rel=0.02)
    assert abs(layer.weight.mean()) < 0.01 * expected_std  # ~10 standard errors
    assert np.all(layer.bias == 0)
    for array in (layer.weight, layer.bias, layer.grad_weight, layer.grad_bias):
        assert array.dtype == np.float32
    assert layer.weight.shape == (fan_in, fan_out)
    assert layer.bias.shape == (fan_out,)
    assert layer.grad_weight.shape == layer.weight.shape
    assert layer.grad_bias.shape == layer.bias.shape


def test_he_std_scales_with_fan_in_not_fan_out():
    narrow = Linear(50, 2000, np.random.default_rng(1))
    assert narrow.weight.std() == pytest.approx(np.sqrt(2.0 / 50), rel=0.02)


def test_same_seed_gives_identical_weights_and_different_seed_does_not():
    def weights(seed):
        model = mlp(20, [16, 8], 3, dropout=0.1, seed=seed)
        return [param for _, param, _ in model.parameters()]

    for a, b in zip(weights(42), weights(42)):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(weights(42)[0], weights(43)[0])


def test_build_mlp_structure_and_forward_backward_shapes():
    model = mlp(12, [8, 6], 4, dropout=0.5, seed=0)
    kinds = [type(layer) for layer in model.layers]
    assert kinds == [Flatten, Linear, ReLU, Dropout, Linear, ReLU, Dropout, Linear]
    assert [layer.weight.shape for layer in model.layers if isinstance(layer, Linear)] == [
        (12, 8), (8, 6), (6, 4),
    ]
    x = np.random.default_rng(1).standard_normal((5, 3, 4)).astype(np.float32)
    out = model.forward(x, training=True)
    assert out.shape == (5, 4) and out.dtype == np.float32
    grad_in = model.backward(np.ones_like(out))
    assert grad_in.shape == x.shape


def test_build_mlp_omits_dropout_when_zero():
    model = mlp(4, [3], 2, dropout=0.0, seed=0)
    assert [type(layer) for layer in model.layers] == [Flatten, Linear, ReLU, Linear]
    assert mlp(4, [], 2, 0.0, seed=0).layers[1].weight.shape == (4, 2)


def test_forward_defaults_to_evaluation_mode():
    model = mlp(10, [32], 3, dropout=0.5, seed=0)
    x = np.random.default_rng(1).standard_normal((4, 10)).astype(np.float32)
    np.testing.assert_array_equal(model.forward(x), model.forward(x))


def test_parameter_names():
    model = mlp(4, [3], 2, dropout=0.2, seed=0)
    assert [name for name, _, _ in model.parameters()] == [
        "layers.1.weight", "layers.1.bias", "layers.4.weight", "layers.4.bias",
    ]


def test_state_dict_round_trip():
    source = mlp(6, [5], 3, dropout=0.0, seed=0)
    target = mlp(6, [5], 3, dropout=0.0, seed=1)
    target_arrays = [param for _, param, _ in target.parameters()]
    state = source.state_dict()
    # The state dict holds copies: changing the model afterwards must not change it.
    source.layers[1].weight += 1.0
    target.load_state_dict(state)
    for (name, param, _), kept in zip(target.parameters(), target_arrays):
        np.testing.assert_array_equal(param, state[name])
        assert param is kept  # loaded in place, so optimizers holding the arrays stay valid
    x = np.random.default_rng(2).standard_normal((3, 6)).astype(np.float32)
    source.load_state_dict(state)
    np.testing.assert_array_equal(source.forward(x), target.forward(x))


def test_load_state_dict_rejects_wrong_shape_missing_and_extra_keys():
    model = mlp(6, [5], 3, dropout=0.0, seed=0)
    before = model.state_dict()
    bad_shape = dict(before, **{"layers.1.weight": np.zeros((5, 6), np.float32)})
    with pytest.raises(ValueError, match=r"layers\.1\.weight.*shape"):
        model.load_state_dict(bad_shape)
    missing = {k: v for k, v in before.items() if k != "layers.3.bias"}
    with pytest.raises(ValueError, match=r"missing.*layers\.3\.bias"):
        model.load_state_dict(missing)
    with pytest.raises(ValueError, match=r"unexpected.*layers\.9\.weight"):
        model.load_state_dict(dict(before, **{"layers.9.weight": np.zeros(1)}))
    # A rejected load changes nothing, even for the keys that did match.
    bad_shape["layers.1.bias"] = np.full(5, 7.0, np.float32)
    with pytest.raises(ValueError):
        model.load_state_dict(bad_shape)
    for name, value in model.state_dict().items():
        np.testing.assert_array_equal(value, before[name])


def test_same_seed_gives_these_exact_weights_and_dropout_masks():
    # Pins the order in which building and training consume the generator: every Linear's
    # weights in layer order, then the dropout masks. A change of that order (or of the
    # initialization) changes every trained model, so it must show up here. The values were
    # taken when the weights came to be drawn by numpynet.portable_math.standard_normal (two
    # uniforms per pair of values); no matrix product, libm call or SIMD loop is involved, so
    # they are the same on every machine.
    model = mlp(12, [16, 8], 4, dropout=0.25, seed=1234)
    digest = hashlib.sha256()
    for name, param, _ in model.parameters():
        digest.update(name.encode())
        digest.update(param.tobytes())
    assert digest.hexdigest() == (
        "f08cedb6011de0011606f6d06d836fba20b0cfa0d056e1eae23ba85e76c46e0b"
    )
    assert model.layers[1].weight[0, :3].tolist() == [
        -0.8169625997543335, 0.765290379524231, -0.06789830327033997,
    ]
    first, second = (layer for layer in model.layers if isinstance(layer, Dropout))
    masks = first.forward(np.ones((3, 16), np.float32), training=True).tobytes()
    masks += second.forward(np.ones((3, 8), np.float32), training=True).tobytes()
    assert hashlib.sha256(masks).hexdigest() == (
        "ad69178eb04c1988c59ac90f2529c633cf7fbf8400a97985657e42a7c25f1743"
    )


def test_config_takes_hidden_sizes_as_a_list_and_stays_hashable():
    # params.yaml gives lists; the config must still equal the one read back from disk.
    from_list = MLPConfig(4, [3, 2], 2, 0.0)
    assert from_list == MLPConfig(4, (3, 2), 2, 0.0)
    assert hash(from_list) == hash(MLPConfig(4, (3, 2), 2, 0.0))
    with pytest.raises(AttributeError):
        from_list.dropout = 0.5  # frozen: the config saved is the config built


def test_dropout_eval_mode_is_identity():
    layer = Dropout(0.5, np.random.default_rng(0))
    x = np.random.default_rng(1).standard_normal((10, 10)).astype(np.float32)
    np.testing.assert_array_equal(layer.forward(x, training=False), x)
    np.testing.assert_array_equal(Dropout(0.0, np.random.default_rng(0)).forward(x, True), x)


@pytest.mark.parametrize("p", [0.1, 0.5, 0.8])
def test_dropout_training_keeps_about_one_minus_p(p):
    layer = Dropout(p, np.random.default_rng(0))
    x = np.ones((200, 500), dtype=np.float32)
    out = layer.forward(x, training=True)
    assert out.dtype == np.float32
    kept = np.count_nonzero(out) / out.size
    # 1e5 Bernoulli draws: the standard error of the fraction is <= 0.0016.
    assert kept == pytest.approx(1 - p, abs=0.01)
    np.testing.assert_allclose(out[out != 0], 1 / (1 - p), rtol=1e-6)
    assert out.mean() == pytest.approx(1.0, abs=0.03)  # inverted scaling preserves the mean
    # A second call draws a new mask.
    assert not np.array_equal(out, layer.forward(x, training=True))


def test_sequential_with_explicit_layers():
    rng = np.random.default_rng(0)
    model = Sequential([Linear(3, 2, rng), ReLU()])
    assert [name for name, _, _ in model.parameters()] == ["layers.0.weight", "layers.0.bias"]
    assert set(model.state_dict()) == {"layers.0.weight", "layers.0.bias"}


def test_batchnorm_training_output_is_standardized_per_feature_then_affine():
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((256, 3)) * [0.5, 4.0, 30.0] + [10.0, -3.0, 0.0]).astype(np.float32)
    layer = BatchNorm(3)
    for array in (layer.gamma, layer.beta, layer.running_mean, layer.running_var):
        assert array.dtype == np.float32 and array.shape == (3,)
    out = layer.forward(x, training=True)
    assert out.dtype == np.float32 and out.shape == x.shape
    np.testing.assert_allclose(out.mean(axis=0), 0.0, atol=1e-5)
    # The biased variance, less the part eps takes away: 1 - eps / var, at most 4e-5 here.
    np.testing.assert_allclose(out.var(axis=0), 1.0, rtol=1e-4)
    layer.gamma[:] = [2.0, -1.0, 0.5]
    layer.beta[:] = [1.0, 0.0, -3.0]
    affine = layer.forward(x, training=True)
    np.testing.assert_allclose(affine, out * layer.gamma + layer.beta, rtol=1e-5, atol=1e-5)


def test_batchnorm_running_statistics_follow_the_momentum_formula():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((5, 4)) * 3 + 2
    layer = BatchNorm(4, momentum=0.2, dtype=np.float64)
    layer.forward(x, training=True)
    # Starting from zeros and ones; the variance is the unbiased one (ddof=1).
    np.testing.assert_allclose(layer.running_mean, 0.2 * x.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(layer.running_var, 0.8 + 0.2 * x.var(axis=0, ddof=1), rtol=1e-12)
    second = rng.standard_normal((5, 4))
    mean, var = layer.running_mean.copy(), layer.running_var.copy()
    layer.forward(second, training=True)
    np.testing.assert_allclose(layer.running_mean, 0.8 * mean + 0.2 * second.mean(axis=0))
    np.testing.assert_allclose(layer.running_var, 0.8 * var + 0.2 * second.var(axis=0, ddof=1))


def test_batchnorm_evaluation_uses_the_running_statistics_and_leaves_them():
    rng = np.random.default_rng(2)
    layer = BatchNorm(3)
    layer.running_mean[:] = [1.0, -2.0, 0.5]
    layer.running_var[:] = [4.0, 0.25, 1.0]
    layer.gamma[:] = [1.0, 2.0, -1.0]
    layer.beta[:] = [0.0, 1.0, 3.0]
    x = rng.standard_normal((6, 3)).astype(np.float32)
    out = layer.forward(x, training=False)
    expected = (x - layer.running_mean) / np.sqrt(layer.running_var + 1e-5) * layer.gamma
    np.testing.assert_allclose(out, expected + layer.beta, rtol=1e-5, atol=1e-6)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(layer.running_mean, [1.0, -2.0, 0.5])
    np.testing.assert_array_equal(layer.running_var, [4.0, 0.25, 1.0])
    # Each sample is normalized on its own: one sample alone gives its row of the batch.
    np.testing.assert_allclose(layer.forward(x[2:3], training=False), out[2:3], rtol=1e-6)


def test_batchnorm_training_refuses_a_batch_of_one_sample():
    layer = BatchNorm(3)
    with pytest.raises(ValueError, match="at least 2 samples"):
        layer.forward(np.ones((1, 3), np.float32), training=True)
    np.testing.assert_array_equal(layer.running_var, 1.0)  # nothing was updated


def test_build_mlp_with_batch_normalization_structure_names_and_same_weights():
    model = mlp(12, [8, 6], 4, dropout=0.5, seed=0, normalization="batch")
    assert [type(layer) for layer in model.layers] == [
        Flatten, Linear, BatchNorm, ReLU, Dropout, Linear, BatchNorm, ReLU, Dropout, Linear,
    ]
    assert [layer.num_features for layer in model.layers if isinstance(layer, BatchNorm)] == [8, 6]
    assert [name for name, _ in model.buffers()] == [
        "layers.2.running_mean", "layers.2.running_var",
        "layers.6.running_mean", "layers.6.running_var",
    ]
    # Running statistics are buffers, never parameters: no optimizer gets them.
    names = [name for name, _, _ in model.parameters()]
    assert names == [
        "layers.1.weight", "layers.1.bias", "layers.2.gamma", "layers.2.beta",
        "layers.5.weight", "layers.5.bias", "layers.6.gamma", "layers.6.beta",
        "layers.9.weight", "layers.9.bias",
    ]
    assert set(model.state_dict()) == set(names) | {name for name, _ in model.buffers()}
    # BatchNorm draws nothing, so the seed gives the Linear weights of the model without it.
    plain = mlp(12, [8, 6], 4, dropout=0.5, seed=0)
    linear = [layer.weight for layer in model.layers if isinstance(layer, Linear)]
    for a, b in zip(linear, (layer.weight for layer in plain.layers if isinstance(layer, Linear))):
        np.testing.assert_array_equal(a, b)
    x = np.random.default_rng(1).standard_normal((5, 3, 4)).astype(np.float32)
    out = model.forward(x, training=True)
    assert out.shape == (5, 4) and out.dtype == np.float32
    assert model.backward(np.ones_like(out)).shape == x.shape
    assert model.backward(np.ones_like(out), need_input_grad=False) is None


def test_optimizer_step_leaves_running_statistics_and_does_not_decay_gamma():
    model = mlp(6, [5], 3, dropout=0.0, seed=0, normalization="batch")
    x = np.random.default_rng(1).standard_normal((8, 6)).astype(np.float32)
    model.forward(x, training=True)
    buffers = {name: array.copy() for name, array in model.buffers()}
    model.backward(np.zeros((8, 3), np.float32))  # zero gradients: only decay could move
    AdamW(model.parameters(), weight_decay=0.5).step(0.1)
    for name, array in model.buffers():
        np.testing.assert_array_equal(array, buffers[name], err_msg=name)
    np.testing.assert_array_equal(model.layers[2].gamma, 1.0)
    assert not np.array_equal(model.layers[1].weight, mlp(6, [5], 3, 0.0, 0).layers[1].weight)


def test_state_dict_round_trip_includes_running_statistics():
    source = mlp(6, [5], 3, dropout=0.0, seed=0, normalization="batch")
    x = np.random.default_rng(2).standard_normal((8, 6)).astype(np.float32)
    for _ in range(3):
        source.forward(x * 2 + 1, training=True)  # move the running statistics off 0 and 1
    state = source.state_dict()
    assert not np.any(state["layers.2.running_mean"] == 0)
    target = mlp(6, [5], 3, dropout=0.0, seed=1, normalization="batch")
    kept = target.layers[2].running_var
    target.load_state_dict(state)
    assert target.layers[2].running_var is kept  # loaded in place
    for name, array in target.state_dict().items():
        np.testing.assert_array_equal(array, state[name], err_msg=name)
    np.testing.assert_array_equal(target.forward(x), source.forward(x))


def test_load_state_dict_checks_buffers_like_parameters():
    model = mlp(6, [5], 3, dropout=0.0, seed=0, normalization="batch")
    model.layers[2].running_mean[:] = 0.5
    before = model.state_dict()
    missing = {k: v for k, v in before.items() if k != "layers.2.running_var"}
    with pytest.raises(ValueError, match=r"missing buffer 'layers\.2\.running_var'"):
        model.load_state_dict(missing)
    bad_shape = dict(before, **{"layers.2.running_mean": np.zeros(4, np.float32)})
    bad_shape["layers.1.weight"] = np.full((6, 5), 7.0, np.float32)
    with pytest.raises(ValueError, match=r"layers\.2\.running_mean.*shape"):
        model.load_state_dict(bad_shape)
    # A rejected load changes nothing, parameters and buffers alike.
    for name, value in model.state_dict().items():
        np.testing.assert_array_equal(value, before[name], err_msg=name)
    # A model without normalization refuses them as unexpected.
    plain = mlp(6, [5], 3, dropout=0.0, seed=0)
    extra = dict(plain.state_dict(), **{"layers.2.running_mean": np.zeros(5, np.float32)})
    with pytest.raises(ValueError, match=r"unexpected key 'layers\.2\.running_mean'"):
        plain.load_state_dict(extra)
