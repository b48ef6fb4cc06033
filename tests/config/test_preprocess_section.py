"""The preprocess section's ``max_*`` bounds: validated, shipped, and the library's defaults when
left out (the stage hands them on: tests/stages/test_preprocess_stage.py)."""

from __future__ import annotations

import pytest

from helpers.project import pets_params, shipped_params
from numpynet.config import load_params, parse_params
from numpynet.config.preprocess_section import PILLOW_PIXEL_CEILING, PreprocessConfig
from numpynet.data.formats.image_decode import PILLOW_PIXEL_CEILING as DECODE_CEILING
from numpynet.data.read_limits import ReadLimits
from numpynet.errors import ConfigError


BOUNDS = ("max_file_bytes", "max_archive_bytes", "max_image_pixels", "max_dataset_bytes")


def problems(params: dict) -> str:
    with pytest.raises(ConfigError) as error:
        parse_params(params)
    return str(error.value)


@pytest.mark.hostile
@pytest.mark.parametrize("key", BOUNDS)
@pytest.mark.parametrize(("value", "expected"), [
    (0, "got 0; expected an integer number of"), (-5, "got -5"), (1.5e9, "wrong type float"),
    ("64MiB", "wrong type str"), (True, "wrong type bool"),
])
def test_each_bound_is_validated(key, value, expected):
    params = pets_params()
    params["preprocess"][key] = value
    assert f"preprocess.{key}: {expected}" in problems(params)


@pytest.mark.hostile
def test_max_image_pixels_stops_where_pillow_does():
    params = pets_params()
    params["preprocess"]["max_image_pixels"] = PILLOW_PIXEL_CEILING + 1
    assert "Pillow refuses larger images itself" in problems(params)
    params["preprocess"]["max_image_pixels"] = PILLOW_PIXEL_CEILING
    parse_params(params)
    assert PILLOW_PIXEL_CEILING == DECODE_CEILING


@pytest.mark.hostile
def test_bounds_left_out_take_the_library_defaults(tmp_path):
    # An older params.yaml without them still works, with the defaults the library uses.
    parsed = parse_params(pets_params()).preprocess
    assert {key: getattr(parsed, key) for key in BOUNDS} == vars(ReadLimits())
    shipped = load_params(shipped_params(tmp_path / "params.yaml")).preprocess
    assert shipped == PreprocessConfig(val_fraction=0.1, seed=0, **vars(ReadLimits()))
