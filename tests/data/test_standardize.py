"""Channel statistics, standardization and the prepared splits: exact, and bit-identical
whatever the CPU (statistics in integers, standardization elementwise); constant images and
channels standardized without NaN."""

from __future__ import annotations

import json
import math
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from helpers.hostile_data import encoded, png, write_files
from helpers.project import make_stage_project
from helpers.stages import preprocess_image_folder
from numpynet.data import standardize as preprocess
from numpynet.data.processed import write_processed
from numpynet.data.standardize import channel_statistics, plan_splits, prepare_splits, standardize


def test_channel_statistics_match_float_computation():
    images = np.random.default_rng(0).integers(0, 256, size=(50, 4, 5, 3), dtype=np.uint8)
    mean, std = channel_statistics(images)
    scaled = images.astype(np.float64) / 255
    np.testing.assert_allclose(mean, scaled.mean(axis=(0, 1, 2)), rtol=1e-12)
    np.testing.assert_allclose(std, scaled.std(axis=(0, 1, 2)), rtol=1e-12)


def exact_reference(channel: np.ndarray) -> tuple[float, float]:
    """Mean and std of ``channel / 255`` by the definition, two passes in exact fractions."""
    values, counts = np.unique(channel, return_counts=True)
    total = int(counts.sum())
    scaled = [Fraction(int(v), 255) for v in values]
    mean = sum(int(c) * x for x, c in zip(scaled, counts)) / total
    variance = sum(int(c) * (x - mean) ** 2 for x, c in zip(scaled, counts)) / total
    return float(mean), math.sqrt(float(variance))


def test_channel_statistics_known_answer():
    # Channel 0 holds 0, 51, 255, 255: on the 0..1 scale 0, 0.2, 1, 1, so mean 2.2 / 4 = 0.55 and
    # variance (0.55^2 + 0.35^2 + 2 * 0.45^2) / 4 = 0.83 / 4 = 0.2075. Channel 1 holds 0, 0, 0,
    # 255: mean 0.25, variance (3 * 0.25^2 + 0.75^2) / 4 = 0.1875.
    images = np.array([[[[0, 0], [51, 0]], [[255, 0], [255, 255]]]], dtype=np.uint8)
    mean, std = channel_statistics(images)
    assert mean.dtype == std.dtype == np.float64
    assert mean.tolist() == [0.55, 0.25]
    assert std.tolist() == [math.sqrt(0.2075), math.sqrt(0.1875)]


def test_channel_statistics_are_the_exact_values_rounded_once():
    # Many pixels with a skewed distribution: a float sum or dot product, whose rounding depends
    # on the summation order of the CPU's kernel, misses the correctly rounded value in the last
    # bits; the exact computation must hit it, bit for bit.
    rng = np.random.default_rng(3)
    images = np.minimum(rng.geometric(0.02, size=(700, 28, 28, 3)), 255).astype(np.uint8)
    images[..., 2] = 255 - images[..., 2]
    mean, std = channel_statistics(images)
    for c in range(3):
        expected_mean, expected_std = exact_reference(images[..., c])
        assert mean[c].tobytes() == np.float64(expected_mean).tobytes()
        assert std[c].tobytes() == np.float64(expected_std).tobytes()


def test_channel_statistics_ignore_the_order_of_the_pixels():
    images = np.random.default_rng(4).integers(0, 256, size=(300, 9, 9, 2), dtype=np.uint8)
    shuffled = np.random.default_rng(5).permutation(images.reshape(-1, 2)).reshape(images.shape)
    for ours, theirs in zip(channel_statistics(images), channel_statistics(shuffled)):
        assert ours.tobytes() == theirs.tobytes()


def test_constant_channel_is_only_centered():
    # No spread to divide by: std is taken as 1 (the stage: further down).
    mean, std = channel_statistics(np.full((4, 2, 2, 1), 7, dtype=np.uint8))
    assert mean.tolist() == [7 / 255] and std.tolist() == [1.0]
    varied_then_constant = np.stack([np.arange(16, dtype=np.uint8).reshape(4, 2, 2),
                                     np.full((4, 2, 2), 9, dtype=np.uint8)], axis=-1)
    mean, std = channel_statistics(varied_then_constant)
    assert std[0] != 1.0 and std[1] == 1.0 and mean[1] == 9 / 255


def test_no_images_is_an_error():
    with pytest.raises(ValueError, match="no training images"):
        channel_statistics(np.zeros((0, 2, 2, 1), dtype=np.uint8))


def test_standardize_is_elementwise_and_batch_independent():
    images = np.random.default_rng(6).integers(0, 256, size=(64, 5, 5, 3), dtype=np.uint8)
    mean, std = channel_statistics(images)
    out = standardize(images, mean, std)
    # One float32 multiply and one subtract per pixel, nothing else: the exact same bits.
    scale = (1.0 / (255.0 * std)).astype(np.float32)
    shift = (mean / std).astype(np.float32)
    assert out.tobytes() == (images.astype(np.float32) * scale - shift).tobytes()
    # No reduction over the batch: an image alone standardizes to the same bits as in the set.
    for k in (0, 17, 63):
        assert standardize(images[k : k + 1], mean, std)[0].tobytes() == out[k].tobytes()


def test_standardize_gives_zero_mean_unit_std_on_the_training_split():
    images = np.random.default_rng(0).integers(0, 256, size=(200, 6, 6, 2), dtype=np.uint8)
    mean, std = channel_statistics(images)
    out = standardize(images, mean, std)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out.mean(axis=(0, 1, 2)), 0, atol=1e-5)
    np.testing.assert_allclose(out.std(axis=(0, 1, 2)), 1, atol=1e-5)


def test_prepare_splits_uses_training_statistics_only():
    rng = np.random.default_rng(0)
    x_train = rng.integers(0, 128, size=(100, 3, 3), dtype=np.uint8)
    y_train = np.repeat(np.arange(4), 25)
    x_test = np.full((10, 3, 3), 255, dtype=np.uint8)  # a test set far off the training range
    splits, mean, std = prepare_splits(
        x_train, y_train, x_test, np.zeros(10, dtype=np.uint8), val_fraction=0.2, rng=rng
    )
    (x_train, y_train), (x_val, _), (x_test, _) = (splits[s] for s in ("train", "val", "test"))
    assert x_train.shape == (80, 3, 3, 1) and x_val.shape == (20, 3, 3, 1)
    assert y_train.dtype == np.int64
    assert abs(x_train.mean()) < 1e-5 and abs(x_train.std() - 1) < 1e-4
    # The test set far above the training range stays far above zero: no statistics of its own.
    assert np.all(x_test > 3)


@pytest.mark.parametrize("block_bytes", [1, 4 * 3 * 3 * 2 * 7, 1 << 20])  # 1 row, 7 rows, all
def test_streamed_splits_write_the_bytes_of_the_whole_arrays(tmp_path, monkeypatch, block_bytes):
    # Blocks of every size, the last one partial, and an empty split: the same files as saving
    # the float32 arrays whole.
    monkeypatch.setattr(preprocess, "_BLOCK_BYTES", block_bytes)
    rng = np.random.default_rng(7)
    x_train = rng.integers(0, 256, size=(50, 3, 3, 2), dtype=np.uint8)
    y_train = np.repeat(np.arange(5), 10)
    x_test, y_test = np.zeros((0, 3, 3, 2), dtype=np.uint8), np.zeros(0, dtype=np.int64)
    arrays, mean, std = prepare_splits(
        x_train, y_train, x_test, y_test, val_fraction=0.2, rng=np.random.default_rng(1)
    )
    streamed, streamed_mean, streamed_std = plan_splits(
        x_train, y_train, x_test, y_test, val_fraction=0.2, rng=np.random.default_rng(1)
    )
    assert streamed_mean.tobytes() == mean.tobytes() and streamed_std.tobytes() == std.tobytes()
    write_processed(tmp_path / "whole", arrays, ["a", "b", "c", "d", "e"], mean, std)
    write_processed(tmp_path / "streamed", streamed, ["a", "b", "c", "d", "e"], mean, std)
    names = sorted(p.name for p in (tmp_path / "whole").iterdir())
    assert names == sorted(p.name for p in (tmp_path / "streamed").iterdir())
    for name in names:
        streamed_bytes = (tmp_path / "streamed" / name).read_bytes()
        assert streamed_bytes == (tmp_path / "whole" / name).read_bytes(), name
    # And the whole arrays are those of standardizing each split at once, by the definition.
    scale = (1.0 / (255.0 * std)).astype(np.float32)
    shift = (mean / std).astype(np.float32)
    train_rows = streamed["train"][0].rows
    expected = x_train[train_rows].astype(np.float32) * scale - shift
    assert arrays["train"][0].tobytes() == expected.tobytes()


# ---------------------------------------------------------------------------------------------
# Constant images and channels, through the preprocess stage
# ---------------------------------------------------------------------------------------------


def processed(out: Path) -> tuple[dict[str, np.ndarray], dict]:
    arrays = {split: np.load(out / f"x_{split}.npy") for split in ("train", "val", "test")}
    return arrays, json.loads((out / "meta.json").read_text())


@pytest.mark.hostile
def test_constant_images_are_standardized_to_zero_not_nan(tmp_path):
    # Every image one value (float TIFFs of 0.5: 128): before, a ValueError and a traceback.
    floats = encoded(Image.new("F", (5, 4), 0.5), "TIFF")
    files = {f"{split}/{label}/{k}.tif": floats
             for split in ("train", "test") for label in ("a", "b") for k in range(5)}
    folder = write_files(tmp_path / "images", files)
    project = make_stage_project(tmp_path / "project")
    code, stderr, _, out = preprocess_image_folder(project, "flat", folder)
    assert code == 0, stderr
    assert "channel 0 of flat's training images is constant" in stderr
    arrays, meta = processed(out)
    assert meta["std"] == [1.0] and meta["mean"] == [128 / 255]
    for values in arrays.values():
        assert np.isfinite(values).all() and (values == 0).all()


@pytest.mark.hostile
def test_a_constant_channel_is_only_centered_and_the_others_are_unchanged(tmp_path):
    rng = np.random.default_rng(3)
    pixels = rng.integers(0, 256, size=(20, 4, 5, 3), dtype=np.uint8)
    pixels[..., 2] = 40  # no blue anywhere in training
    test_pixels = pixels[:4].copy()
    test_pixels[0, 0, 0, 2] = 255  # a test image with blue: finite, its distance to the mean
    files = {f"train/{'ab'[k % 2]}/{k}.png": png(pixels[k]) for k in range(20)}
    files.update({f"test/{'ab'[k % 2]}/{k}.png": png(test_pixels[k]) for k in range(4)})
    project = make_stage_project(tmp_path / "project")
    folder = write_files(tmp_path / "images", files)
    code, stderr, _, out = preprocess_image_folder(project, "noblue", folder)
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
