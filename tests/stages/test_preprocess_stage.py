"""The preprocess stage, run as a process, on hostile image folders: an image bomb and a float
image out of range refused with exit code 2 and little memory, and the configured
``preprocess.max_*`` bounds handed to the library. (Archive bombs through the same stage:
tests/data/formats/test_archive.py; constant images: tests/data/test_standardize.py.)"""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from helpers.hostile_data import (
    encoded,
    png_declaring,
    small_dataset,
    tar_gz_with,
    write_files,
    zip_with,
)
from helpers.project import make_stage_project
from helpers.stages import assert_refused, preprocess_image_folder


@pytest.mark.hostile
def test_the_stage_refuses_a_bomb_with_exit_code_2_and_little_memory(tmp_path):
    archive = tar_gz_with(tmp_path / "bomb.tar.gz",
                          {**small_dataset(), "train/cat/bomb.png": png_declaring(12000, 12000)})
    project = make_stage_project(tmp_path / "project")
    code, stderr, peak, out = preprocess_image_folder(project, "bomb", archive, {"size": [32, 32]})
    assert_refused(code, stderr, "'train/cat/bomb.png'", "preprocess.max_image_pixels",
                   output=out, one_line=True)
    assert "DecompressionBombWarning" not in stderr
    assert peak < 300 * 2**20  # before: 731 MB, the image decoded and converted


@pytest.mark.hostile
@pytest.mark.parametrize(("values", "fragment"), [
    ([0.5, 2.0], "values from 0.5 to 2"), ([0.5, float("nan")], "NaN or infinite"),
])
def test_the_stage_refuses_a_float_image_out_of_range_naming_it(tmp_path, values, fragment):
    floats = Image.frombytes("F", (5, 4), np.resize(np.array(values, np.float32), 20).tobytes())
    files = {**small_dataset(), "train/dog/f.tif": encoded(floats, "TIFF")}
    folder = write_files(tmp_path / "images", files)
    project = make_stage_project(tmp_path / "project")
    code, stderr, _, out = preprocess_image_folder(project, "floats", folder)
    assert_refused(code, stderr, "'train/dog/f.tif'", fragment, "Pillow mode F",
                   "Scale it to [0, 1]" if "2" in fragment else "Replace them", output=out,
                   one_line=True)


@pytest.mark.hostile
def test_the_stage_hands_the_configured_bounds_to_the_library(tmp_path):
    archive = zip_with(tmp_path / "d.zip", small_dataset())
    project = make_stage_project(tmp_path / "project")
    code, stderr, _, out = preprocess_image_folder(project, "tight", archive, max_file_bytes=100)
    assert_refused(code, stderr, "d.zip", "preprocess.max_file_bytes = 100 bytes", output=out,
                   one_line=True)
