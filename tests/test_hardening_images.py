"""Hostile and unusual images: bombs refused from their header, every Pillow mode read faithfully
or refused, and constant images standardized without NaN.

Category 1 (memory): images whose header declares too many pixels (PNG, GIF canvas, TIFF) are
refused before any pixel is decoded, by ``preprocess.max_image_pixels`` and not by Pillow's
warning; a dataset whose decoded array would pass ``preprocess.max_dataset_bytes`` is refused
before it is allocated. Category 2 (silent corruption): one known-answer test per Pillow mode
(see the table in :mod:`numpynet.data.formats.image_modes`), mixed modes in one dataset, and constant
images and channels through the real stage.
"""

from __future__ import annotations

import io
import json
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from helpers.stage_run import code_copy
from helpers.hostile_data import (
    assert_refused,
    gif_declaring,
    png,
    png_declaring,
    run_preprocess,
    small_dataset,
    tar_gz_with,
    tiff_declaring,
)
from numpynet.data.formats.image_folder import read_image_folder
from numpynet.data.formats.image_modes import COLOR_MODES, GRAYSCALE_MODES, UnrepresentableImage, convert
from numpynet.data.formats.limits import ReadLimits
from numpynet.errors import DataFormatError


def write(root: Path, files: dict[str, bytes]) -> Path:
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    return root


def read(location: Path, **options):
    limits = ReadLimits(**options.pop("limits", {}))
    return read_image_folder(location, log=lambda message: None, limits=limits, **options)


def encoded(image: Image.Image, fmt: str) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


# ---------------------------------------------------------------------------------------------
# Category 1: decompression bombs and huge declared sizes
# ---------------------------------------------------------------------------------------------

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


@pytest.mark.parametrize("case", BOMBS)
@pytest.mark.parametrize("packed", [False, True])
def test_an_image_declaring_too_many_pixels_is_refused_from_its_header(tmp_path, case, packed):
    name, data, what = BOMBS[case]
    files = {**small_dataset(), f"train/cat/{name}": data}
    location = tar_gz_with(tmp_path / "d.tar.gz", files) if packed else write(tmp_path, files)
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


def test_the_pixel_limit_is_exact(tmp_path):
    folder = write(tmp_path, small_dataset())  # 4 x 5 images: 20 pixels
    read(folder, limits={"max_image_pixels": 20})
    with pytest.raises(DataFormatError, match=r"declares 4x5 \(height x width, 20\) pixels"):
        read(folder, limits={"max_image_pixels": 19})


def test_the_stage_refuses_a_bomb_with_exit_code_2_and_little_memory(tmp_path):
    archive = tar_gz_with(tmp_path / "bomb.tar.gz",
                          {**small_dataset(), "train/cat/bomb.png": png_declaring(12000, 12000)})
    project = code_copy(tmp_path / "project")
    code, stderr, peak, out = run_preprocess(project, "bomb", archive, {"size": [32, 32]})
    assert_refused(code, stderr, ("'train/cat/bomb.png'", "preprocess.max_image_pixels"), out)
    assert "DecompressionBombWarning" not in stderr
    assert peak < 300 * 2**20  # before: 731 MB, the image decoded and converted


def test_a_dataset_too_large_to_decode_is_refused_before_it_is_allocated(tmp_path):
    images = {f"{label}/{k}.png": png(np.full((100, 100, 3), k, np.uint8))
              for label in ("a", "b") for k in range(5)}
    folder = write(tmp_path, images)
    exact = 10 * 100 * 100 * 3
    assert read(folder, limits={"max_dataset_bytes": exact}).x_train.shape[1:] == (100, 100, 3)
    with pytest.raises(DataFormatError, match=r"its 10 images decode to 100x100x3 bytes each .*"
                                              r"300,000 bytes in all, more than "
                                              r"preprocess\.max_dataset_bytes = 299,999 bytes"):
        read(folder, limits={"max_dataset_bytes": exact - 1})


def test_a_dataset_that_turns_rgb_is_checked_again(tmp_path):
    # Gray images fit in one channel; the color image that makes the set RGB triples it.
    images = {f"{label}/{k}.png": png(np.full((10, 10), k, np.uint8))
              for label in ("a", "b") for k in range(5)}
    images["b/9.png"] = png(np.zeros((10, 10, 3), np.uint8))
    folder = write(tmp_path, images)
    with pytest.raises(DataFormatError, match=r"decode to 10x10x3 bytes each"):
        read(folder, limits={"max_dataset_bytes": 11 * 10 * 10 * 2})


# ---------------------------------------------------------------------------------------------
# Category 2: every Pillow mode, with known answers
# ---------------------------------------------------------------------------------------------


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


def test_every_pillow_mode_has_a_known_answer():
    assert set(MODES) == GRAYSCALE_MODES | COLOR_MODES == set(Image.MODES)


@pytest.mark.parametrize("mode", MODES)
def test_mode_converts_to_the_known_answer(mode):
    source, gray, rgb = MODES[mode]
    assert source.mode == mode
    as_l = convert(source, "L")
    assert as_l.mode == "L" and np.asarray(as_l)[0].tolist() == gray
    as_rgb = convert(source, "RGB")
    expected = rgb if rgb is not None else [[value] * 3 for value in gray]
    assert as_rgb.mode == "RGB" and np.asarray(as_rgb)[0].tolist() == expected


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


def test_an_unknown_mode_is_refused():
    class Strange:
        mode = "BGR;15"

    with pytest.raises(UnrepresentableImage, match="mode 'BGR;15', which is not read"):
        convert(Strange(), "RGB")


def test_sixteen_bit_files_are_scaled_not_clipped(tmp_path):
    # Before: Pillow's convert("L") clipped every value above 255 to 255.
    sixteen = Image.frombytes("I;16", (5, 1), SIXTEEN.astype("<u2").tobytes())
    big_endian = Image.frombytes("I;16B", (5, 1), SIXTEEN.astype(">u2").tobytes())
    files = {"a/0.png": encoded(sixteen, "PNG"), "a/1.tif": encoded(sixteen, "TIFF"),
             "b/0.tif": encoded(big_endian, "TIFF"), "b/1.png": encoded(sixteen, "PNG")}
    dataset = read(write(tmp_path, files), test_fraction=0.5)
    every = np.concatenate([dataset.x_train, dataset.x_test])
    assert every.shape == (4, 1, 5, 1)
    assert (every[..., 0] == [0, 0, 1, 128, 255]).all()


def test_mixed_modes_in_one_dataset_broadcast_gray_into_rgb(tmp_path):
    sixteen = Image.frombytes("I;16", (2, 1), np.array([256, 65535], "<u2").tobytes())
    floats = Image.frombytes("F", (2, 1), np.array([0.0, 0.5], np.float32).tobytes())
    bilevel = Image.frombytes("1", (2, 1), bytes([0b01000000]))
    color = Image.frombytes("RGB", (2, 1), bytes([10, 20, 30, 40, 50, 60]))
    files = {"train/a/0.png": encoded(sixteen, "PNG"), "train/a/1.tif": encoded(floats, "TIFF"),
             "train/b/0.png": encoded(color, "PNG"), "train/b/1.png": encoded(bilevel, "PNG"),
             "test/a/0.png": encoded(sixteen, "PNG"), "test/b/0.png": encoded(color, "PNG")}
    dataset = read(write(tmp_path, files))
    assert dataset.x_train.shape == (4, 1, 2, 3) and dataset.x_test.shape == (2, 1, 2, 3)
    gray = [[1, 255], [0, 128], None, [0, 255]]
    for pixels, values in zip(dataset.x_train[:, 0], gray):
        if values is not None:
            assert pixels.tolist() == [[v] * 3 for v in values]
    assert dataset.x_train[2, 0].tolist() == [[10, 20, 30], [40, 50, 60]]
    assert dataset.x_test[0, 0].tolist() == [[1] * 3, [255] * 3]


@pytest.mark.parametrize(("values", "fragment"), [
    ([0.5, 2.0], "values from 0.5 to 2"), ([0.5, float("nan")], "NaN or infinite"),
])
def test_the_stage_refuses_a_float_image_out_of_range_naming_it(tmp_path, values, fragment):
    floats = Image.frombytes("F", (5, 4), np.resize(np.array(values, np.float32), 20).tobytes())
    files = {**small_dataset(), "train/dog/f.tif": encoded(floats, "TIFF")}
    folder = write(tmp_path / "images", files)
    project = code_copy(tmp_path / "project")
    code, stderr, _, out = run_preprocess(project, "floats", folder)
    assert_refused(code, stderr, ("'train/dog/f.tif'", fragment, "Pillow mode F",
                                  "Scale it to [0, 1]" if "2" in fragment else "Replace them"), out)


# ---------------------------------------------------------------------------------------------
# Category 2: constant images and channels
# ---------------------------------------------------------------------------------------------


def processed(out: Path) -> tuple[dict[str, np.ndarray], dict]:
    arrays = {split: np.load(out / f"x_{split}.npy") for split in ("train", "val", "test")}
    return arrays, json.loads((out / "meta.json").read_text())


def test_constant_images_are_standardized_to_zero_not_nan(tmp_path):
    # Every image one value (float TIFFs of 0.5: 128): before, a ValueError and a traceback.
    floats = encoded(Image.new("F", (5, 4), 0.5), "TIFF")
    files = {f"{split}/{label}/{k}.tif": floats
             for split in ("train", "test") for label in ("a", "b") for k in range(5)}
    folder = write(tmp_path / "images", files)
    project = code_copy(tmp_path / "project")
    code, stderr, _, out = run_preprocess(project, "flat", folder)
    assert code == 0, stderr
    assert "channel 0 of flat's training images is constant" in stderr
    arrays, meta = processed(out)
    assert meta["std"] == [1.0] and meta["mean"] == [128 / 255]
    for values in arrays.values():
        assert np.isfinite(values).all() and (values == 0).all()


def test_a_constant_channel_is_only_centered_and_the_others_are_unchanged(tmp_path):
    rng = np.random.default_rng(3)
    pixels = rng.integers(0, 256, size=(20, 4, 5, 3), dtype=np.uint8)
    pixels[..., 2] = 40  # no blue anywhere in training
    test_pixels = pixels[:4].copy()
    test_pixels[0, 0, 0, 2] = 255  # a test image with blue: finite, its distance to the mean
    files = {f"train/{'ab'[k % 2]}/{k}.png": png(pixels[k]) for k in range(20)}
    files.update({f"test/{'ab'[k % 2]}/{k}.png": png(test_pixels[k]) for k in range(4)})
    project = code_copy(tmp_path / "project")
    code, stderr, _, out = run_preprocess(project, "noblue", write(tmp_path / "images", files))
    assert code == 0, stderr
    arrays, meta = processed(out)
    assert meta["std"][2] == 1.0 and meta["std"][0] < 0.5 and meta["std"][1] < 0.5
    assert (arrays["train"][..., 2] == 0).all() and (arrays["val"][..., 2] == 0).all()
    assert all(np.isfinite(values).all() for values in arrays.values())
    blue = np.float32(255) * np.float32(1 / 255) - np.float32(40 / 255)
    assert arrays["test"][0, 0, 0, 2] == pytest.approx(blue)
    # The varied channels are standardized as always: zero mean, unit std over training.
    train = arrays["train"][..., :2].astype(np.float64)
    assert np.abs(train.mean(axis=(0, 1, 2))).max() < 1e-6
    assert np.abs(train.std(axis=(0, 1, 2)) - 1).max() < 1e-5
