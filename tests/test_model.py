"""Model construction, initialization, state dicts and architecture descriptions."""

import json

import numpy as np
import pytest

from numpynet.nn import (
    Dropout,
    Flatten,
    Linear,
    ReLU,
    Sequential,
    build_from_architecture,
    build_mlp,
    mlp_architecture,
)


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
        model = build_mlp(20, [16, 8], 3, dropout=0.1, rng=np.random.default_rng(seed))
        return [param for _, param, _ in model.parameters()]

    for a, b in zip(weights(42), weights(42)):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(weights(42)[0], weights(43)[0])


def test_build_mlp_structure_and_forward_backward_shapes():
    model = build_mlp(12, [8, 6], 4, dropout=0.5, rng=np.random.default_rng(0))
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
    model = build_mlp(4, [3], 2, dropout=0.0, rng=np.random.default_rng(0))
    assert [type(layer) for layer in model.layers] == [Flatten, Linear, ReLU, Linear]
    assert build_mlp(4, [], 2, 0.0, np.random.default_rng(0)).layers[1].weight.shape == (4, 2)


def test_forward_defaults_to_evaluation_mode():
    model = build_mlp(10, [32], 3, dropout=0.5, rng=np.random.default_rng(0))
    x = np.random.default_rng(1).standard_normal((4, 10)).astype(np.float32)
    np.testing.assert_array_equal(model.forward(x), model.forward(x))


def test_parameter_names():
    model = build_mlp(4, [3], 2, dropout=0.2, rng=np.random.default_rng(0))
    assert [name for name, _, _ in model.parameters()] == [
        "layers.1.weight", "layers.1.bias", "layers.4.weight", "layers.4.bias",
    ]


def test_state_dict_round_trip():
    source = build_mlp(6, [5], 3, dropout=0.0, rng=np.random.default_rng(0))
    target = build_mlp(6, [5], 3, dropout=0.0, rng=np.random.default_rng(1))
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
    model = build_mlp(6, [5], 3, dropout=0.0, rng=np.random.default_rng(0))
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


def test_architecture_round_trip_through_json():
    arch = mlp_architecture(784, [128, 64], 10, 0.2)
    assert arch == {
        "type": "mlp", "input_size": 784, "hidden_sizes": [128, 64],
        "num_classes": 10, "dropout": 0.2,
    }
    restored = json.loads(json.dumps(arch))
    from_arch = build_from_architecture(restored, np.random.default_rng(5))
    direct = build_mlp(784, [128, 64], 10, 0.2, np.random.default_rng(5))
    assert [type(layer) for layer in from_arch.layers] == [type(layer) for layer in direct.layers]
    for (name_a, a, _), (name_b, b, _) in zip(from_arch.parameters(), direct.parameters()):
        assert name_a == name_b
        np.testing.assert_array_equal(a, b)
    # A state dict saved from one model loads into a model rebuilt from its architecture.
    from_arch.load_state_dict(direct.state_dict())


@pytest.mark.parametrize(
    "arch, message",
    [
        ([1, 2], "dict"),
        ({"input_size": 4, "hidden_sizes": [3], "num_classes": 2, "dropout": 0.0}, "type"),
        ({"type": "cnn", "input_size": 4, "hidden_sizes": [3], "num_classes": 2, "dropout": 0.0},
         "cnn"),
        ({"type": "mlp", "hidden_sizes": [3], "num_classes": 2, "dropout": 0.0}, "input_size"),
        ({"type": "mlp", "input_size": 4, "num_classes": 2, "dropout": 0.0}, "hidden_sizes"),
        ({"type": "mlp", "input_size": 4, "hidden_sizes": [3], "dropout": 0.0}, "num_classes"),
        ({"type": "mlp", "input_size": 4, "hidden_sizes": [3], "num_classes": 2}, "dropout"),
        ({"type": "mlp", "input_size": 4, "hidden_sizes": [3], "num_classes": 2, "dropout": 0.0,
          "activation": "tanh"}, "activation"),
        ({"type": "mlp", "input_size": 0, "hidden_sizes": [3], "num_classes": 2, "dropout": 0.0},
         "input_size"),
        ({"type": "mlp", "input_size": 4, "hidden_sizes": [3, -1], "num_classes": 2,
          "dropout": 0.0}, "hidden_sizes"),
        ({"type": "mlp", "input_size": 4, "hidden_sizes": "3", "num_classes": 2, "dropout": 0.0},
         "hidden_sizes"),
        ({"type": "mlp", "input_size": 4, "hidden_sizes": [3], "num_classes": 1, "dropout": 0.0},
         "num_classes"),
        ({"type": "mlp", "input_size": 4.0, "hidden_sizes": [3], "num_classes": 2,
          "dropout": 0.0}, "input_size"),
        ({"type": "mlp", "input_size": 4, "hidden_sizes": [3], "num_classes": 2, "dropout": 1.0},
         "dropout"),
    ],
)
def test_build_from_architecture_rejects_bad_dicts(arch, message):
    with pytest.raises(ValueError, match=message):
        build_from_architecture(arch, np.random.default_rng(0))


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
