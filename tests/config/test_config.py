"""params.yaml validation: every bad value is rejected with its full key path, and params edited
at random (hypothesis, through the validate stage) pass or are refused naming the file and key."""

from __future__ import annotations

import copy

import pytest
from hypothesis import given
from hypothesis import strategies as st

from helpers.project import PROJECT, shipped_params, temporary_stage_project, write_params
from helpers.properties import EXAMPLES, check_validate
from numpynet.config import (
    DATASET_NAME_PATTERN,
    MAX_BATCH_SIZE,
    MAX_EPOCHS,
    MAX_LAYER_SIZE,
    MAX_TIMEOUT_S,
    check_dataset_name,
    load_params,
    parse_params,
)
from numpynet.config.fields import show
from numpynet.config.file import read_params_file
from numpynet.errors import ConfigError


@pytest.fixture
def shipped(tmp_path):
    return shipped_params(tmp_path / "params.yaml")


@pytest.fixture
def raw(shipped):
    return read_params_file(shipped)


def test_project_params_are_valid(shipped):
    params = load_params(shipped)
    assert params.train.lr > 0
    mnist = params.dataset("mnist").source
    assert mnist.format == "idx"
    assert set(mnist.files) == {"train_images", "train_labels", "test_images", "test_labels"}
    assert mnist.urls, "the built-in MNIST must come with official sources"
    assert set(params.datasets) == {"mnist", "fashion-mnist", "cifar10"}


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
        # Sizes past what any machine this runs on could hold, and a timeout the socket layer
        # cannot take.
        ("train", "hidden_sizes", [MAX_LAYER_SIZE + 1], f"integers from 1 to {MAX_LAYER_SIZE}"),
        ("train", "batch_size", MAX_BATCH_SIZE + 1, f"from 1 to {MAX_BATCH_SIZE}"),
        ("train", "epochs", MAX_EPOCHS + 1, f"from 1 to {MAX_EPOCHS}"),
        ("evaluate", "batch_size", MAX_BATCH_SIZE + 1, f"from 1 to {MAX_BATCH_SIZE}"),
        ("download", "timeout_s", 1e300, "<= 86400"),
        ("download", "timeout_s", MAX_TIMEOUT_S + 1, "<= 86400"),
        ("train", "lr", 10**400, "not finite"),
        # Positive, but 0 or infinity once training computes in float32.
        ("train", "eps", 1e-50, "float32"),
        ("train", "eps", 1e-39, "from 1.18e-38"),
        ("train", "lr", 1e39, "to 3.4e+38"),
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


def _dataset(data, train=None):
    return {"data": data, "train": train if train is not None else {}}


def test_unknown_dataset_lists_the_builtin_ones(raw):
    raw["datasets"] = {"mnsit": _dataset({"format": "idx"})}
    _rejects(raw, "datasets.mnsit", "not a built-in dataset", "mnist")


def test_unknown_format_is_rejected(raw):
    raw["datasets"] = {"mnist": _dataset({"format": "csv"})}
    _rejects(raw, "datasets.mnist.data.format", "image-folder")


def test_dataset_needs_data_and_train(raw):
    raw["datasets"] = {"mnist": {"data": {"format": "idx"}}, "cifar10": {"train": {}}}
    _rejects(raw, "datasets.mnist.train: expected a mapping", "datasets.cifar10.data: expected a mapping")


def test_custom_idx_dataset_needs_a_checksum_per_file(raw):
    raw["datasets"] = {"tiny": _dataset({"format": "idx", "sha256": {"train_images": "0" * 64}})}
    _rejects(raw, "datasets.tiny.data.sha256")


def test_custom_idx_dataset(raw):
    digests = {role: f"{i}" * 64 for i, role in enumerate(["train_images", "train_labels", "test_images", "test_labels"])}
    raw["datasets"] = {"tiny": _dataset({"format": "idx", "sha256": digests, "urls": ["http://127.0.0.1:1/"]})}
    tiny = parse_params(raw).dataset("tiny").source
    assert tiny.files["test_labels"].name == "t10k-labels-idx1-ubyte.gz"
    assert tiny.files["test_labels"].sha256 == "3" * 64
    assert tiny.urls == ("http://127.0.0.1:1/",)


def test_unconfigured_dataset_is_a_clear_error(raw):
    with pytest.raises(ConfigError, match="'svhn' is not configured"):
        parse_params(raw).dataset("svhn")


def test_validation_does_not_mutate_input(raw):
    before = copy.deepcopy(raw)
    parse_params(raw)
    assert raw == before


def test_train_overrides_apply_to_their_dataset_only(raw):
    raw["datasets"]["cifar10"]["train"] = {"lr": 0.005, "hidden_sizes": [64]}
    params = parse_params(raw)
    assert params.train_for("cifar10").lr == 0.005
    assert params.train_for("cifar10").hidden_sizes == [64]
    assert params.train_for("cifar10").epochs == params.train.epochs
    assert params.train_for("mnist") == params.train


def test_bad_override_is_reported_with_its_path(raw):
    raw["datasets"]["cifar10"]["train"] = {"lr": -1, "lrr": 0.1}
    _rejects(raw, "datasets.cifar10.train.lr: got -1", "datasets.cifar10.train.lrr: unknown key")


def test_override_breaking_a_cross_field_rule(raw):
    raw["datasets"]["cifar10"]["train"] = {"min_lr": 1.0}
    _rejects(raw, "datasets.cifar10.train.min_lr")


def test_image_folder_dataset(raw):
    raw["datasets"] = {
        "pets": _dataset({"format": "image-folder", "source": "images/pets.tar.gz", "mode": "RGB", "size": [32, 32]})
    }
    pets = parse_params(raw).dataset("pets").source
    assert pets.format == "image-folder" and pets.location == "images/pets.tar.gz"
    assert pets.mode == "RGB" and pets.size == (32, 32) and pets.sha256 is None
    assert pets.test_fraction == 0.2 and pets.split_seed == 0
    assert pets.local_name == "pets.tar.gz"


@pytest.mark.parametrize(
    "data, expected",
    [
        ({"format": "image-folder"}, "datasets.pets.data.source"),
        ({"format": "image-folder", "source": "x", "mode": "CMYK"}, "datasets.pets.data.mode"),
        ({"format": "image-folder", "source": "x", "size": [32]}, "datasets.pets.data.size"),
        ({"format": "image-folder", "source": "x", "size": [4097, 32]}, "each from 1 to 4096"),
        ({"format": "image-folder", "source": "x", "size": [32, 10**6]}, "each from 1 to 4096"),
        ({"format": "image-folder", "source": "x", "test_fraction": 1.5}, "datasets.pets.data.test_fraction"),
        ({"format": "image-folder", "source": "x", "sha256": "abc"}, "datasets.pets.data.sha256"),
        ({"format": "image-folder", "source": "https://example.org/pets.zip"}, "required for a URL"),
        ({"format": "image-folder", "source": "x", "urls": []}, "datasets.pets.data.urls: unknown key"),
    ],
)
def test_bad_image_folder_settings(raw, data, expected):
    raw["datasets"] = {"pets": _dataset(data)}
    _rejects(raw, expected)


def test_largest_accepted_sizes(raw):
    raw["train"].update(hidden_sizes=[MAX_LAYER_SIZE], batch_size=MAX_BATCH_SIZE, epochs=MAX_EPOCHS)
    raw["evaluate"]["batch_size"], raw["download"]["timeout_s"] = MAX_BATCH_SIZE, MAX_TIMEOUT_S
    parse_params(raw)


def test_layers_that_cannot_fit_in_memory_are_rejected_with_an_estimate(raw):
    raw["train"]["hidden_sizes"] = [MAX_LAYER_SIZE, MAX_LAYER_SIZE]
    # (65536 * 65536 + 65536 + 65536 * 2 + 2) parameters * 4 bytes * 5 copies = 80.0 GiB
    _rejects(raw, "train.hidden_sizes:", "about 80.0 GiB", "fit in 16 GiB")


def test_oversized_override_is_reported_under_its_dataset(raw):
    raw["datasets"]["cifar10"]["train"] = {"hidden_sizes": [40000, 40000]}
    message = _rejects(raw, "datasets.cifar10.train.hidden_sizes:", "GiB")
    assert "1 problem(s)" in message


def test_warmup_longer_than_the_run_is_rejected(raw):
    raw["train"].update(warmup_epochs=20, epochs=20)
    assert parse_params(raw).train.warmup_epochs == 20  # all warmup: odd, but it runs
    raw["train"]["warmup_epochs"] = 21
    _rejects(raw, "train.warmup_epochs: warmup_epochs (21) is more than epochs (20)")


def test_override_shorter_than_the_shared_warmup_is_reported_at_its_key(raw):
    raw["train"]["warmup_epochs"] = 5
    raw["datasets"]["cifar10"]["train"] = {"epochs": 2}
    message = _rejects(
        raw, "datasets.cifar10.train.epochs: warmup_epochs (5) is more than epochs (2)"
    )
    assert "1 problem(s)" in message  # the shared train section itself is fine


BAD_NAMES = ["x;touch FILE;", "../../../somewhere", "a b", "1abc", "", "a" * 65, "-x", "mnist\n",
             "caf\u00e9", 7]
GOOD_NAMES = ["mnist", "fashion-mnist", "cifar10", "my_pets-2", "A", "a" * 64]


@pytest.mark.parametrize("name", BAD_NAMES)
def test_bad_dataset_names_are_rejected(raw, name):
    with pytest.raises(ConfigError, match="is not valid: expected a letter followed by"):
        check_dataset_name(name)  # what a stage does with its command-line argument
    raw["datasets"][name] = _dataset({"format": "image-folder", "source": "images"})
    # Quoted, and shortened when long, so a hostile name cannot shape the message.
    message = _rejects(raw, f"datasets.{show(name)}: not a valid dataset name",
                       DATASET_NAME_PATTERN)
    assert "1 problem(s)" in message


@pytest.mark.parametrize("name", GOOD_NAMES)
def test_good_dataset_names_are_accepted(raw, name):
    check_dataset_name(name)
    if name not in raw["datasets"]:
        raw["datasets"][name] = _dataset({"format": "image-folder", "source": "images"})
    assert parse_params(raw).dataset(name).name == name


def test_looking_up_an_unconfigured_dataset_lists_the_configured_ones(raw):
    with pytest.raises(ConfigError, match=r"'\.\./x' is not configured .*cifar10, fashion-mnist, mnist"):
        parse_params(raw).dataset("../x")


def test_largest_image_folder_size(raw):
    data = {"format": "image-folder", "source": "x", "size": [4096, 4096]}
    raw["datasets"] = {"pets": _dataset(data)}
    # Only with room for it: a narrow first layer, and 100 decoded images (test_rules.py).
    raw["train"]["hidden_sizes"] = [8]
    raw["preprocess"]["max_dataset_bytes"] = 100 * 4096 * 4096 * 3
    assert parse_params(raw).dataset("pets").source.size == (4096, 4096)


def test_unhashable_format_is_a_config_error(raw):
    raw["datasets"]["mnist"]["data"] = {"format": ["idx"]}
    _rejects(raw, "datasets.mnist.data.format: got ['idx']")


def test_messages_quote_huge_values_and_keys_briefly(raw):
    huge = "x" * 100_000
    raw["train"]["lr"] = huge
    raw["train"][huge] = 1
    raw["datasets"]["mnist"]["data"] = {"format": list(range(100_000))}
    raw["datasets"][huge] = {}
    message = _rejects(raw, "train.lr: wrong type str 'xxx", "train.'xxx", "...")
    assert len(message) < 2000


def test_a_long_list_of_problems_is_cut_short(raw):
    for index in range(100):
        raw[f"section{index}"] = {}
    message = _rejects(raw, "100 problem(s)", "... and 70 more")
    assert message.count("\n  - ") == 30


@pytest.mark.parametrize("key, value, expected", [
    ("normalization", "layer", "'none' or 'batch'"),
    ("whitening", "pca", "'none' or 'zca'"),
    ("label_smoothing", 1.0, "a number in [0, 1)"),
    ("augment_shift", -1, "an integer from 0 to 16"),
    ("augment_shift", 17, "an integer from 0 to 16"),
    ("augment_flip", "yes", "true or false"),
    ("augment_elastic", 101, "a number from 0 to 100"),
    ("augment_rotate", 46, "a number of degrees from 0 to 45"),
    ("augment_rotate", -1, "a number of degrees from 0 to 45"),
    ("augment_zoom", 0.6, "a number from 0 to 0.5"),
    ("whitening_components", -1, "an integer >= 0 (0: keep every whitened direction)"),
    ("select_by", "test_accuracy", "'val_accuracy' or 'val_loss' or 'last'"),
])
def test_accuracy_settings_are_checked(raw, key, value, expected):
    raw["train"][key] = value
    _rejects(raw, f"train.{key}", expected)


def test_rotations_and_zooms_default_to_off_for_a_params_file_written_before_them(raw):
    raw["train"].pop("augment_rotate", None)
    raw["train"].pop("augment_zoom", None)
    train = parse_params(raw).train
    assert (train.augment_rotate, train.augment_zoom) == (0.0, 0.0)


def test_whitening_components_default_to_all_for_a_params_file_written_before_them(raw):
    raw["train"].pop("whitening_components", None)
    assert parse_params(raw).train.whitening_components == 0


@pytest.mark.parametrize("value", [1.5, True, "1024"])
def test_whitening_components_are_a_whole_number(raw, value):
    raw["train"]["whitening_components"] = value
    _rejects(raw, "train.whitening_components: wrong type")


def test_whitening_components_need_whitening(raw):
    raw["train"].update(whitening="none", whitening_components=256)
    _rejects(raw, "train.whitening_components", "set whitening: zca or whitening_components: 0")
    raw["train"]["whitening_components"] = 0
    raw["datasets"]["cifar10"]["train"] = {"whitening": "zca", "whitening_components": 256}
    assert parse_params(raw).train_for("cifar10").whitening_components == 256
    raw["datasets"]["cifar10"]["train"] = {"whitening_components": 256}
    _rejects(raw, "datasets.cifar10.train.whitening_components",
             "(keys not overridden come from 'train')")


@pytest.mark.hostile
def test_the_numeric_mode_is_one_of_three(raw):
    assert parse_params(raw).numerics.mode == "avx2"  # the shipped default
    for mode in ("avx512", "exact"):
        raw["numerics"]["mode"] = mode
        assert parse_params(raw).numerics.mode == mode
    raw["numerics"]["mode"] = "sse9"
    _rejects(raw, "numerics.mode", "'avx2' or 'avx512' or 'exact'")
    del raw["numerics"]
    _rejects(raw, "numerics: section is missing")


def test_digits_are_never_flipped(raw):
    raw["datasets"]["mnist"]["train"] = {"augment_flip": True}
    _rejects(raw, "datasets.mnist.train.augment_flip", "MNIST must not be flipped")
    raw["datasets"]["mnist"]["train"] = {}
    raw["train"]["augment_flip"] = True  # shared: mnist inherits it
    message = _rejects(raw, "train.augment_flip", "set datasets.mnist.train.augment_flip: false")
    assert "cifar10" not in message
    raw["datasets"]["mnist"]["train"] = {"augment_flip": False}
    assert parse_params(raw).train_for("cifar10").augment_flip


def test_batch_normalization_needs_two_samples_per_batch(raw):
    raw["train"].update(normalization="batch", batch_size=1)
    _rejects(raw, "train.batch_size", "batch_size >= 2")
    raw["train"]["normalization"] = "none"
    assert parse_params(raw).train.batch_size == 1


# ---------------------------------------------------------------------------------------------
# Params edited at random, as the validate stage meets them (hypothesis)
# ---------------------------------------------------------------------------------------------


SHIPPED = read_params_file(PROJECT / "params.yaml")


wild_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.lists(st.one_of(st.integers(-5, 5), st.text(max_size=3)), max_size=3),
    st.dictionaries(st.text(min_size=1, max_size=5), st.integers(-3, 3), max_size=2),
)


def _key_paths(node, prefix=()):
    """Every path to a value in the nested dicts and lists of ``node``."""
    items = node.items() if isinstance(node, dict) else enumerate(node)
    for key, value in items:
        yield prefix + (key,)
        if isinstance(value, (dict, list)) and value:
            yield from _key_paths(value, prefix + (key,))


PARAM_PATHS = list(_key_paths(SHIPPED))


def _parent(tree, path):
    node = tree
    for key in path[:-1]:
        node = node[key]
    return node


@st.composite
def broken_params(draw):
    """The shipped params with one to three edits: a value replaced, a key deleted or added."""
    tree = copy.deepcopy(SHIPPED)
    surely_invalid = False
    for _ in range(draw(st.integers(1, 3))):
        paths = list(_key_paths(tree)) or [()]
        path = draw(st.sampled_from(paths))
        edit = draw(st.sampled_from(["replace", "delete", "add"]))
        if not path:
            edit = "add"
        if edit == "replace":
            _parent(tree, path)[path[-1]] = draw(wild_values)
        elif edit == "delete":
            parent = _parent(tree, path)
            del parent[path[-1]]
        else:
            container = _parent(tree, path) if path else tree
            if isinstance(container, dict):
                container[f"unknown_{draw(st.integers(0, 99))}"] = draw(wild_values)
                surely_invalid = True
    return tree, surely_invalid


@pytest.mark.hostile
@EXAMPLES
@given(broken_params())
def test_edited_params_pass_or_are_refused_with_the_file_and_key(edit):
    tree, surely_invalid = edit
    with temporary_stage_project() as project:
        params_file = project / "params.yaml"
        write_params(project, tree)
        check_validate(project, params_file, must_fail=surely_invalid)


@pytest.mark.hostile
@pytest.mark.parametrize("key, value", [("eps", 1e-50), ("eps", 5e-324), ("lr", 1e-45),
                                        ("lr", 1e300)])
def test_a_setting_float32_turns_into_zero_or_infinity_is_refused_naming_float32(raw, key, value):
    """Checked as a float32 number, since training computes in float32: `train.eps: 1e-50` used
    to pass and train on an eps of 0, then be reported as "lower train.lr"."""
    raw["train"][key] = value
    _rejects(raw, f"train.{key}", "float32")
