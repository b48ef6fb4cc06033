"""Every Pillow mode read faithfully or refused: one known-answer test per mode (see the table in
:mod:`numpynet.data.formats.image_modes`), 16-bit files scaled rather than clipped, and mixed modes
in one dataset."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from helpers.hostile_data import encoded, write_files
from numpynet.data.formats.image_folder import read_image_folder
from numpynet.data.formats.image_modes import (
    COLOR_MODES,
    GRAYSCALE_MODES,
    UnrepresentableImage,
    convert,
)
from numpynet.data.read_limits import ReadLimits


def read(location: Path, **options):
    limits = ReadLimits(**options.pop("limits", {}))
    return read_image_folder(location, log=lambda message: None, limits=limits, **options)


def image(mode: str, data: bytes | np.ndarray, width: int, palette: list[int] | None = None):
    raw = data.tobytes() if isinstance(data, np.ndarray) else data
    result = Image.frombytes(mode, (width, 1), raw)
    if palette is not None:
        result.putpalette(palette + [0] * (768 - len(palette)))
    return result


SIXTEEN = np.array([0, 255, 256, 32768, 65535])
PALETTE = [200, 0, 0, 0, 0, 200]  # index 0: dark red, 1: dark blue


# mode -> (image, expected L values, expected RGB values): known answers, one row per pixel.
MODES = {
    "1": (image("1", bytes([0b01000000]), 2), [0, 255], [[0] * 3, [255] * 3]),
    "L": (image("L", bytes([0, 7, 255]), 3), [0, 7, 255], [[0] * 3, [7] * 3, [255] * 3]),
    # 16 bits: the high byte, v >> 8.
    "I;16": (image("I;16", SIXTEEN.astype("<u2"), 5), [0, 0, 1, 128, 255], None),
    "I;16L": (image("I;16L", SIXTEEN.astype("<u2"), 5), [0, 0, 1, 128, 255], None),
    "I;16B": (image("I;16B", SIXTEEN.astype(">u2"), 5), [0, 0, 1, 128, 255], None),
    "I;16N": (image("I;16N", SIXTEEN.astype("=u2"), 5), [0, 0, 1, 128, 255], None),
    "I": (image("I", np.array([0, 7, 255], np.int32), 3), [0, 7, 255], None),
    # [0, 1] scaled by 255 and rounded, halves to even: 63.75 -> 64, 127.5 -> 128.
    "F": (image("F", np.array([0, 0.25, 0.5, 1], np.float32), 4), [0, 64, 128, 255], None),
    "LA": (image("LA", bytes([100, 0, 200, 255]), 2), [100, 200], None),  # alpha dropped
    "La": (image("La", bytes([50, 128]), 1), [99], None),  # 50 * 255 / 128, then dropped
    "P": (image("P", bytes([0, 1]), 2, PALETTE), [60, 23], [[200, 0, 0], [0, 0, 200]]),
    "PA": (image("PA", bytes([0, 10, 1, 255]), 2, PALETTE), [60, 23], [[200, 0, 0], [0, 0, 200]]),
    "RGB": (image("RGB", bytes([255, 0, 0, 1, 2, 3]), 2), [76, 2], [[255, 0, 0], [1, 2, 3]]),
    "RGBA": (image("RGBA", bytes([200, 0, 0, 17]), 1), [60], [[200, 0, 0]]),
    "RGBa": (image("RGBa", bytes([50, 100, 25, 128]), 1), [152], [[99, 199, 49]]),
    "RGBX": (image("RGBX", bytes([1, 2, 3, 99]), 1), [2], [[1, 2, 3]]),
    "CMYK": (image("CMYK", bytes([0, 255, 255, 0, 0, 0, 0, 255]), 2), [76, 0],
             [[255, 0, 0], [0, 0, 0]]),
    "YCbCr": (image("YCbCr", bytes([255, 128, 128, 0, 128, 128]), 2), [255, 0],
              [[255, 255, 255], [0, 0, 0]]),
    "LAB": (image("LAB", bytes([255, 0, 0, 128, 0, 0]), 2), [255, 119],
            [[254, 255, 254], [119, 119, 119]]),
    "HSV": (image("HSV", bytes([0, 255, 255]), 1), [76], [[255, 0, 0]]),
}


@pytest.mark.hostile
def test_every_pillow_mode_has_a_known_answer():
    assert set(MODES) == GRAYSCALE_MODES | COLOR_MODES == set(Image.MODES)


@pytest.mark.hostile
@pytest.mark.parametrize("mode", MODES)
def test_mode_converts_to_the_known_answer(mode):
    source, gray, rgb = MODES[mode]
    assert source.mode == mode
    as_l = convert(source, "L")
    assert as_l.mode == "L" and np.asarray(as_l)[0].tolist() == gray
    as_rgb = convert(source, "RGB")
    expected = rgb if rgb is not None else [[value] * 3 for value in gray]
    assert as_rgb.mode == "RGB" and np.asarray(as_rgb)[0].tolist() == expected


@pytest.mark.hostile
@pytest.mark.parametrize(("mode", "values", "expected"), [
    ("I", [-1, 5], "values from -1 to 5"),
    ("I", [0, 256], "values from 0 to 256"),
    ("F", [0.5, float("nan")], "NaN or infinite"),
    ("F", [0.5, float("inf")], "NaN or infinite"),
    ("F", [0.0, 1.5], "values from 0 to 1.5"),
    ("F", [-0.25, 1.0], "values from -0.25 to 1"),
])
def test_values_that_cannot_be_represented_are_refused(mode, values, expected):
    dtype = np.int32 if mode == "I" else np.float32
    with pytest.raises(UnrepresentableImage, match=expected):
        convert(image(mode, np.array(values, dtype), len(values)), "L")


@pytest.mark.hostile
def test_an_unknown_mode_is_refused():
    class Strange:
        mode = "BGR;15"

    with pytest.raises(UnrepresentableImage, match="mode 'BGR;15', which is not read"):
        convert(Strange(), "RGB")


@pytest.mark.hostile
def test_sixteen_bit_files_are_scaled_not_clipped(tmp_path):
    # Before: Pillow's convert("L") clipped every value above 255 to 255.
    sixteen = Image.frombytes("I;16", (5, 1), SIXTEEN.astype("<u2").tobytes())
    big_endian = Image.frombytes("I;16B", (5, 1), SIXTEEN.astype(">u2").tobytes())
    files = {"a/0.png": encoded(sixteen, "PNG"), "a/1.tif": encoded(sixteen, "TIFF"),
             "b/0.tif": encoded(big_endian, "TIFF"), "b/1.png": encoded(sixteen, "PNG")}
    dataset = read(write_files(tmp_path, files), test_fraction=0.5)
    every = np.concatenate([dataset.x_train, dataset.x_test])
    assert every.shape == (4, 1, 5, 1)
    assert (every[..., 0] == [0, 0, 1, 128, 255]).all()


@pytest.mark.hostile
def test_mixed_modes_in_one_dataset_broadcast_gray_into_rgb(tmp_path):
    sixteen = Image.frombytes("I;16", (2, 1), np.array([256, 65535], "<u2").tobytes())
    floats = Image.frombytes("F", (2, 1), np.array([0.0, 0.5], np.float32).tobytes())
    bilevel = Image.frombytes("1", (2, 1), bytes([0b01000000]))
    color = Image.frombytes("RGB", (2, 1), bytes([10, 20, 30, 40, 50, 60]))
    files = {"train/a/0.png": encoded(sixteen, "PNG"), "train/a/1.tif": encoded(floats, "TIFF"),
             "train/b/0.png": encoded(color, "PNG"), "train/b/1.png": encoded(bilevel, "PNG"),
             "test/a/0.png": encoded(sixteen, "PNG"), "test/b/0.png": encoded(color, "PNG")}
    dataset = read(write_files(tmp_path, files))
    assert dataset.x_train.shape == (4, 1, 2, 3) and dataset.x_test.shape == (2, 1, 2, 3)
    gray = [[1, 255], [0, 128], None, [0, 255]]
    for pixels, values in zip(dataset.x_train[:, 0], gray):
        if values is not None:
            assert pixels.tolist() == [[v] * 3 for v in values]
    assert dataset.x_train[2, 0].tolist() == [[10, 20, 30], [40, 50, 60]]
    assert dataset.x_test[0, 0].tolist() == [[1] * 3, [255] * 3]
