"""params.yaml validation: every bad value is rejected with its full key path."""

import copy
from pathlib import Path

import pytest
import yaml

from numpynet.config import load_params, parse_params
from numpynet.errors import ConfigError

PROJECT_PARAMS = Path(__file__).resolve().parents[1] / "params.yaml"


@pytest.fixture
def raw():
    return yaml.safe_load(PROJECT_PARAMS.read_text())


def test_project_params_are_valid():
    params = load_params(PROJECT_PARAMS)
    assert params.train.lr > 0
    mnist = params.dataset("mnist")
    assert mnist.format == "idx"
    assert set(mnist.files) == {"train_images", "train_labels", "test_images", "test_labels"}
    assert mnist.urls, "the built-in MNIST must come with official sources"


def _rejects(raw, *fragments):
    with pytest.raises(ConfigError) as caught:
        parse_params(raw)
    message = str(caught.value)
    for fragment in fragments:
        assert fragment in message, message
    return message


@pytest.mark.parametrize(
    "section, key, value, expected",
    [
        ("train", "lr", 0, "train.lr"),
        ("train", "lr", -0.1, "train.lr"),
        ("train", "lr", "fast", "train.lr: wrong type str"),
        ("train", "lr", float("nan"), "not finite"),
        ("train", "dropout", 1.0, "[0, 1)"),
        ("train", "dropout", -0.1, "[0, 1)"),
        ("train", "hidden_sizes", [], "at least one hidden layer"),
        ("train", "hidden_sizes", [128, 0], "train.hidden_sizes"),
        ("train", "hidden_sizes", [128.5], "train.hidden_sizes: item 0"),
        ("train", "epochs", 2.5, "train.epochs: wrong type float"),
        ("train", "epochs", True, "train.epochs: wrong type bool"),
        ("train", "batch_size", 0, "train.batch_size"),
        ("train", "optimizer", "adam", "'sgd' or 'adamw'"),
        ("train", "nesterov", "yes", "train.nesterov: wrong type str"),
        ("train", "betas", [0.9], "two numbers in [0, 1)"),
        ("train", "schedule", "step", "'cosine' or 'constant'"),
        ("preprocess", "val_fraction", 0, "(0, 1)"),
        ("preprocess", "val_fraction", 1, "(0, 1)"),
        ("preprocess", "seed", -1, "preprocess.seed"),
        ("download", "timeout_s", 0, "download.timeout_s"),
        ("evaluate", "batch_size", -5, "evaluate.batch_size"),
    ],
)
def test_bad_values_are_rejected_with_their_path(raw, section, key, value, expected):
    raw[section][key] = value
    _rejects(raw, f"{section}.{key}", expected)


def test_unknown_keys_and_sections_are_rejected(raw):
    raw["train"]["learning_rate"] = 0.1
    raw["trian"] = {}
    message = _rejects(raw, "train.learning_rate: unknown key", "trian: unknown section")
    assert "accepted:" in message


def test_missing_key_is_reported(raw):
    del raw["train"]["epochs"]
    _rejects(raw, "train.epochs: missing")


def test_all_problems_are_reported_at_once(raw):
    raw["train"]["lr"] = -1
    raw["preprocess"]["val_fraction"] = 2
    message = _rejects(raw, "2 problem(s)", "train.lr", "preprocess.val_fraction")
    assert message.count("\n  - ") == 2


def test_min_lr_above_lr_is_rejected(raw):
    raw["train"]["min_lr"] = raw["train"]["lr"] * 2
    _rejects(raw, "train.min_lr")


def test_nesterov_needs_momentum(raw):
    raw["train"].update(optimizer="sgd", nesterov=True, momentum=0.0)
    _rejects(raw, "train.nesterov")


def test_unknown_dataset_lists_the_builtin_ones(raw):
    raw["datasets"] = {"mnsit": {"format": "idx"}}
    _rejects(raw, "datasets.mnsit", "not a built-in dataset", "mnist")


def test_custom_idx_dataset_needs_a_checksum_per_file(raw):
    raw["datasets"] = {"tiny": {"format": "idx", "sha256": {"train_images": "0" * 64}}}
    _rejects(raw, "datasets.tiny.sha256")


def test_custom_idx_dataset(raw):
    digests = {role: f"{i}" * 64 for i, role in enumerate(["train_images", "train_labels", "test_images", "test_labels"])}
    raw["datasets"] = {"tiny": {"format": "idx", "sha256": digests, "urls": ["http://127.0.0.1:1/"]}}
    tiny = parse_params(raw).dataset("tiny")
    assert tiny.files["test_labels"].name == "t10k-labels-idx1-ubyte.gz"
    assert tiny.files["test_labels"].sha256 == "3" * 64
    assert tiny.urls == ("http://127.0.0.1:1/",)


def test_unconfigured_dataset_is_a_clear_error(raw):
    with pytest.raises(ConfigError, match="'cifar10' is not configured"):
        parse_params(raw).dataset("cifar10")


def test_malformed_yaml_file(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("train: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_params(path)


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_params(tmp_path / "params.yaml")


def test_validation_does_not_mutate_input(raw):
    before = copy.deepcopy(raw)
    parse_params(raw)
    assert raw == before
