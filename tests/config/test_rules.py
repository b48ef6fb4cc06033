"""Sizes that cannot fit in memory are refused when params are checked.

Where params.yaml fixes a dataset's input (a built-in dataset, or an image folder's declared
``size``, 3 channels unless ``mode: L``), the first layer's weights join the training memory
estimate, and one decoded image must leave room for 100 of them in
``preprocess.max_dataset_bytes``; the number of images is unknown until the data is read.
(`numpynet check` and the validate stage refuse the same: tests/test_cli.py,
tests/stages/test_validate_stage.py.)
"""

from __future__ import annotations

import pytest

from helpers.project import base_params, pets_params
from numpynet.config import parse_params
from numpynet.config.rules import FEWEST_IMAGES
from numpynet.errors import ConfigError


def problems(params: dict) -> str:
    with pytest.raises(ConfigError) as error:
        parse_params(params)
    return str(error.value)


@pytest.mark.hostile
@pytest.mark.parametrize(("mode", "refused"), [("L", False), ("RGB", True), (None, True)])
def test_channels_count_three_unless_the_mode_is_l(mode, refused):
    # 512 x 512 x 1 x 1200 weights train in 5.9 GiB; with 3 channels, 17.6 GiB.
    params = pets_params([512, 512], mode)
    if refused:
        assert "inputs of 512x512x3" in problems(params)
    else:
        parse_params(params)


@pytest.mark.hostile
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


@pytest.mark.hostile
def test_a_size_too_large_for_max_dataset_bytes_is_refused():
    params = pets_params([2048, 2048], hidden_sizes=[1])  # a first layer that fits: 12,582,912 x 1
    message = problems(params)
    assert ("datasets.pets.data.size: one 2048x2048x3 image (height x width x channels) decodes "
            "to 12,582,912 bytes") in message
    assert f"holds only 42 of them, fewer than the {FEWEST_IMAGES}" in message
    params["preprocess"]["max_dataset_bytes"] = FEWEST_IMAGES * 2048 * 2048 * 3
    parse_params(params)


@pytest.mark.hostile
def test_image_folders_without_a_size_are_not_estimated():
    parse_params(pets_params(None))
