"""Decoding images within bounds: decompression bombs refused from their header, and datasets
too large to decode refused before they are allocated.

Images whose header declares too many pixels (PNG, GIF canvas, TIFF) are refused before any pixel
is decoded, by ``preprocess.max_image_pixels`` and not by Pillow's warning; a dataset whose
decoded array would pass ``preprocess.max_dataset_bytes`` is refused before it is allocated. JPEG
files that repeat one header are tested with the image folders (test_image_folder.py).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from helpers.hostile_data import (
    gif_declaring,
    png,
    png_declaring,
    small_dataset,
    tar_gz_with,
    tiff_declaring,
    write_files,
)
from numpynet.data.formats.image_folder import read_image_folder
from numpynet.data.read_limits import ReadLimits
from numpynet.errors import DataFormatError


def read(location: Path, **options):
    limits = ReadLimits(**options.pop("limits", {}))
    return read_image_folder(location, log=lambda message: None, limits=limits, **options)


BOMBS = {
    # name -> (file name, bytes, what the message says). 12000 x 12000 = 144 M pixels lies between
    # Pillow's warning (89 M) and its error (179 M): Pillow alone would decode it (731 MB).
    "png 50000x50000": ("bomb.png", png_declaring(50000, 50000), "declares 2,500,000,000 pixels"),
    "png 12000x12000": ("bomb.png", png_declaring(12000, 12000), "declares 12000x12000"),
    "gif canvas 12000x12000": ("bomb.gif", gif_declaring(12000, 12000), "declares 12000x12000"),
    "gif canvas 65535x65535": ("bomb.gif", gif_declaring(65535, 65535), "declares 4,294,836,225"),
    "tiff 12000x12000": ("bomb.tif", tiff_declaring(12000, 12000), "declares 12000x12000"),
    "tiff 50000x50000": ("bomb.tif", tiff_declaring(50000, 50000), "declares 2,500,000,000"),
}


@pytest.mark.hostile
@pytest.mark.parametrize("case", BOMBS)
@pytest.mark.parametrize("packed", [False, True])
def test_an_image_declaring_too_many_pixels_is_refused_from_its_header(tmp_path, case, packed):
    name, data, what = BOMBS[case]
    files = {**small_dataset(), f"train/cat/{name}": data}
    if packed:
        location = tar_gz_with(tmp_path / "d.tar.gz", files)
    else:
        location = write_files(tmp_path, files)
    before = Image.MAX_IMAGE_PIXELS
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(DataFormatError) as error:
            read(location, size=(4, 5))  # a declared size: no size mismatch to stop it first
    message = str(error.value)
    assert f"'train/cat/{name}'" in message and what in message, message
    assert "preprocess.max_image_pixels = 40,000,000" in message
    assert "nothing was decoded" in message
    assert not [w for w in caught if issubclass(w.category, Image.DecompressionBombWarning)]
    assert Image.MAX_IMAGE_PIXELS == before  # Pillow's global is left alone


@pytest.mark.hostile
def test_the_pixel_limit_is_exact(tmp_path):
    folder = write_files(tmp_path, small_dataset())  # 4 x 5 images: 20 pixels
    read(folder, limits={"max_image_pixels": 20})
    with pytest.raises(DataFormatError, match=r"declares 4x5 \(height x width, 20\) pixels"):
        read(folder, limits={"max_image_pixels": 19})


@pytest.mark.hostile
def test_a_dataset_too_large_to_decode_is_refused_before_it_is_allocated(tmp_path):
    images = {f"{label}/{k}.png": png(np.full((100, 100, 3), k, np.uint8))
              for label in ("a", "b") for k in range(5)}
    folder = write_files(tmp_path, images)
    exact = 10 * 100 * 100 * 3
    assert read(folder, limits={"max_dataset_bytes": exact}).x_train.shape[1:] == (100, 100, 3)
    with pytest.raises(DataFormatError, match=r"its 10 images decode to 100x100x3 bytes each .*"
                                              r"300,000 bytes in all, more than "
                                              r"preprocess\.max_dataset_bytes = 299,999 bytes"):
        read(folder, limits={"max_dataset_bytes": exact - 1})


@pytest.mark.hostile
def test_a_dataset_that_turns_rgb_is_checked_again(tmp_path):
    # Gray images fit in one channel; the color image that makes the set RGB triples it.
    images = {f"{label}/{k}.png": png(np.full((10, 10), k, np.uint8))
              for label in ("a", "b") for k in range(5)}
    images["b/9.png"] = png(np.zeros((10, 10, 3), np.uint8))
    folder = write_files(tmp_path, images)
    with pytest.raises(DataFormatError, match=r"decode to 10x10x3 bytes each"):
        read(folder, limits={"max_dataset_bytes": 11 * 10 * 10 * 2})
