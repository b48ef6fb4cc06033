"""Saving and loading models: exact round trips, stable bytes, and clear errors for bad files."""

import json

import numpy as np
import pytest

from numpynet.checkpoint import ARCHITECTURE_FILE, WEIGHTS_FILE, load_model, save_model
from numpynet.errors import DataFormatError
from numpynet.nn import build_from_architecture, mlp_architecture


def trained_looking_model(seed=0, dropout=0.25):
    architecture = mlp_architecture(
        input_size=12, hidden_sizes=[16, 8], num_classes=4, dropout=dropout
    )
    rng = np.random.default_rng(seed)
    model = build_from_architecture(architecture, rng)
    # Non-zero biases, so a loader that forgot them would be caught.
    for _, param, _ in model.parameters():
        param += rng.standard_normal(param.shape).astype(param.dtype) * 0.1
    return model, architecture


def images():
    return np.random.default_rng(7).standard_normal((9, 3, 4)).astype(np.float32)


def test_round_trip_gives_identical_logits(tmp_path):
    model, architecture = trained_looking_model()
    save_model(tmp_path / "model", model, architecture)
    loaded, loaded_architecture = load_model(tmp_path / "model")
    assert loaded_architecture == architecture
    np.testing.assert_array_equal(
        loaded.forward(images(), training=False), model.forward(images(), training=False)
    )
    original = model.state_dict()
    restored = loaded.state_dict()
    assert sorted(restored) == sorted(original)
    for name in original:
        assert restored[name].dtype == original[name].dtype == np.float32
        np.testing.assert_array_equal(restored[name], original[name])


def test_model_directory_holds_exactly_the_two_files(tmp_path):
    model, architecture = trained_looking_model()
    save_model(tmp_path / "model", model, architecture)
    assert sorted(p.name for p in (tmp_path / "model").iterdir()) == sorted(
        [ARCHITECTURE_FILE, WEIGHTS_FILE]
    )
    assert json.loads((tmp_path / "model" / ARCHITECTURE_FILE).read_text()) == architecture
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]  # no temporary directory left


def test_saving_twice_gives_identical_bytes(tmp_path):
    first_model, architecture = trained_looking_model(seed=5)
    second_model, _ = trained_looking_model(seed=5)  # equal weights, distinct arrays
    save_model(tmp_path / "a", first_model, architecture)
    save_model(tmp_path / "b", second_model, dict(reversed(list(architecture.items()))))
    for name in (ARCHITECTURE_FILE, WEIGHTS_FILE):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name


def test_saving_over_an_existing_model_replaces_it(tmp_path):
    old_model, architecture = trained_looking_model(seed=1)
    new_model, _ = trained_looking_model(seed=2)
    save_model(tmp_path / "model", old_model, architecture)
    (tmp_path / "model" / "leftover.txt").write_text("from an older layout")
    save_model(tmp_path / "model", new_model, architecture)
    assert not (tmp_path / "model" / "leftover.txt").exists()
    loaded, _ = load_model(tmp_path / "model")
    np.testing.assert_array_equal(
        loaded.forward(images(), training=False), new_model.forward(images(), training=False)
    )


@pytest.fixture
def saved_model(tmp_path):
    model, architecture = trained_looking_model()
    directory = tmp_path / "model"
    save_model(directory, model, architecture)
    return directory


def assert_rerun_train_error(directory):
    with pytest.raises(DataFormatError) as caught:
        load_model(directory)
    message = str(caught.value)
    assert "rerun the train stage" in message
    assert str(directory) in message
    return message


@pytest.mark.parametrize("keep_fraction", [0.0, 0.001, 0.5, 0.99])
def test_truncated_weights_raise_data_format_error(saved_model, keep_fraction):
    weights = saved_model / WEIGHTS_FILE
    content = weights.read_bytes()
    weights.write_bytes(content[: int(len(content) * keep_fraction)])
    assert_rerun_train_error(saved_model)


def test_corrupted_weights_raise_data_format_error(saved_model):
    weights = saved_model / WEIGHTS_FILE
    content = bytearray(weights.read_bytes())
    # Flip bytes in the middle of the first member's data: the zip's CRC check must catch it.
    middle = len(content) // 4
    content[middle : middle + 16] = bytes(b ^ 0xFF for b in content[middle : middle + 16])
    weights.write_bytes(bytes(content))
    assert_rerun_train_error(saved_model)


def test_missing_weights_raise_data_format_error(saved_model):
    (saved_model / WEIGHTS_FILE).unlink()
    message = assert_rerun_train_error(saved_model)
    assert WEIGHTS_FILE in message


def test_missing_architecture_raises_data_format_error(saved_model):
    (saved_model / ARCHITECTURE_FILE).unlink()
    message = assert_rerun_train_error(saved_model)
    assert ARCHITECTURE_FILE in message


def test_missing_model_directory_raises_data_format_error(tmp_path):
    assert_rerun_train_error(tmp_path / "never-trained")


@pytest.mark.parametrize(
    "text",
    [
        "{not json",
        "[1, 2, 3]",
        '{"type": "cnn"}',
        # Valid, but not the architecture the weights were saved with.
        json.dumps(mlp_architecture(input_size=12, hidden_sizes=[32], num_classes=4, dropout=0.0)),
    ],
)
def test_bad_architecture_raises_data_format_error(saved_model, text):
    (saved_model / ARCHITECTURE_FILE).write_text(text)
    assert_rerun_train_error(saved_model)


def test_weights_with_a_pickled_array_raise_data_format_error(saved_model):
    state = dict(np.load(saved_model / WEIGHTS_FILE))
    state["layers.1.bias"] = np.array([{"evil": 1}], dtype=object)
    np.savez(saved_model / WEIGHTS_FILE, **state)
    assert_rerun_train_error(saved_model)
