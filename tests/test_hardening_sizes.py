"""Sizes that cannot fit in memory are refused by `numpynet check` and the validate stage, and the
``preprocess.max_*`` bounds are validated, shipped and handed to the library.

Where params.yaml fixes a dataset's input (a built-in dataset, or an image folder's declared
``size``, 3 channels unless ``mode: L``), the first layer's weights join the training memory
estimate, and one decoded image must leave room for 100 of them in
``preprocess.max_dataset_bytes``; the number of images is unknown until the data is read.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from helpers.hostile_data import assert_refused, run_preprocess, small_dataset, zip_with
from helpers.stage_run import code_copy
from helpers.project import base_params, shipped_params, write_params
from numpynet.config import load_params, parse_params
from numpynet.config.preprocess_section import PILLOW_PIXEL_CEILING, PreprocessConfig
from numpynet.config.rules import FEWEST_IMAGES
from numpynet.cli import main as numpynet_main
from numpynet.data.formats.image_decode import PILLOW_PIXEL_CEILING as DECODE_CEILING
from numpynet.data.formats.limits import ReadLimits
from numpynet.errors import ConfigError

BOUNDS = ("max_file_bytes", "max_archive_bytes", "max_image_pixels", "max_dataset_bytes")


def pets(size: list[int] | None = None, mode: str | None = None, **train) -> dict:
    data = {"format": "image-folder", "source": "pets", "size": size, "mode": mode}
    return base_params({"pets": {"data": data, "train": train}}, hidden_sizes=[1200, 1200])


def problems(params: dict) -> str:
    with pytest.raises(ConfigError) as error:
        parse_params(params)
    return str(error.value)


def check(tmp_path: Path, params: dict, capsys) -> tuple[int, str]:
    write_params(tmp_path, params)
    with pytest.raises(SystemExit) as exit_:
        numpynet_main(["check", "--params", str(tmp_path / "params.yaml")])
    return exit_.value.code, capsys.readouterr().err


def test_numpynet_check_refuses_a_size_whose_first_layer_cannot_fit(tmp_path, capsys):
    code, stderr = check(tmp_path, pets([1024, 1024]), capsys)
    assert code == 2 and stderr.startswith("error: ") and "Traceback" not in stderr
    assert ("datasets.pets.data.size: inputs of 1024x1024x3 (height x width x channels, 3,145,728 "
            "values) with hidden_sizes [1200, 1200] need about 70.3 GiB to train") in stderr
    assert "the first layer alone 3,145,728 x 1,200 weights" in stderr
    assert "declare a smaller size (or mode L) or a narrower first hidden layer" in stderr


def test_the_validate_stage_refuses_it_too(tmp_path):
    project = code_copy(tmp_path / "project")
    write_params(project, pets([1024, 1024]))
    result = subprocess.run([sys.executable, "stages/validate.py", "--out", "data/params-valid"],
                            cwd=project, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "datasets.pets.data.size" in result.stderr and "need about 70.3 GiB" in result.stderr
    assert not (project / "data" / "params-valid").exists()


@pytest.mark.parametrize(("mode", "refused"), [("L", False), ("RGB", True), (None, True)])
def test_channels_count_three_unless_the_mode_is_l(mode, refused):
    # 512 x 512 x 1 x 1200 weights train in 5.9 GiB; with 3 channels, 17.6 GiB.
    params = pets([512, 512], mode)
    if refused:
        assert "inputs of 512x512x3" in problems(params)
    else:
        parse_params(params)


def test_a_built_in_dataset_counts_its_known_inputs():
    # 65536 x 12500 hidden weights alone fit in 16 GiB; with MNIST's 784 inputs they do not.
    params = base_params({"mnist": {"data": {"format": "idx"}, "train": {}},
                         "cifar10": {"data": {"format": "cifar10-binary"},
                                     "train": {"hidden_sizes": [65536, 12000]}}},
                         hidden_sizes=[65536, 12500])
    message = problems(params)
    assert "train.hidden_sizes: inputs of 28x28x1" in message
    assert "datasets.cifar10.train.hidden_sizes: inputs of 32x32x3" in message
    assert "2 problem(s)" in message  # the hidden-only rule says nothing more


def test_a_size_too_large_for_max_dataset_bytes_is_refused():
    params = pets([2048, 2048], hidden_sizes=[1])  # a first layer that fits: 12,582,912 x 1
    message = problems(params)
    assert ("datasets.pets.data.size: one 2048x2048x3 image (height x width x channels) decodes "
            "to 12,582,912 bytes") in message
    assert f"holds only 42 of them, fewer than the {FEWEST_IMAGES}" in message
    params["preprocess"]["max_dataset_bytes"] = FEWEST_IMAGES * 2048 * 2048 * 3
    parse_params(params)


def test_image_folders_without_a_size_are_not_estimated():
    parse_params(pets(None))


@pytest.mark.parametrize("key", BOUNDS)
@pytest.mark.parametrize(("value", "expected"), [
    (0, "got 0; expected an integer number of"), (-5, "got -5"), (1.5e9, "wrong type float"),
    ("64MiB", "wrong type str"), (True, "wrong type bool"),
])
def test_each_bound_is_validated(key, value, expected):
    params = pets()
    params["preprocess"][key] = value
    assert f"preprocess.{key}: {expected}" in problems(params)


def test_max_image_pixels_stops_where_pillow_does():
    params = pets()
    params["preprocess"]["max_image_pixels"] = PILLOW_PIXEL_CEILING + 1
    assert "Pillow refuses larger images itself" in problems(params)
    params["preprocess"]["max_image_pixels"] = PILLOW_PIXEL_CEILING
    parse_params(params)
    assert PILLOW_PIXEL_CEILING == DECODE_CEILING


def test_bounds_left_out_take_the_library_defaults(tmp_path):
    # An older params.yaml without them still works, with the defaults the library uses.
    parsed = parse_params(pets()).preprocess
    assert {key: getattr(parsed, key) for key in BOUNDS} == vars(ReadLimits())
    shipped = load_params(shipped_params(tmp_path / "params.yaml")).preprocess
    assert shipped == PreprocessConfig(val_fraction=0.1, seed=0, **vars(ReadLimits()))


def test_the_stage_hands_the_configured_bounds_to_the_library(tmp_path):
    archive = zip_with(tmp_path / "d.zip", small_dataset())
    project = code_copy(tmp_path / "project")
    code, stderr, _, out = run_preprocess(project, "tight", archive, max_file_bytes=100)
    assert_refused(code, stderr, ("d.zip", "preprocess.max_file_bytes = 100 bytes"), out)
