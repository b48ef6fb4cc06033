"""Validation split and standardization."""

import numpy as np
import pytest

from numpynet.data.preprocess import channel_statistics, prepare_splits, standardize


def test_channel_statistics_match_float_computation():
    images = np.random.default_rng(0).integers(0, 256, size=(50, 4, 5, 3), dtype=np.uint8)
    mean, std = channel_statistics(images)
    scaled = images.astype(np.float64) / 255
    np.testing.assert_allclose(mean, scaled.mean(axis=(0, 1, 2)), rtol=1e-12)
    np.testing.assert_allclose(std, scaled.std(axis=(0, 1, 2)), rtol=1e-12)


def test_constant_channel_is_an_error():
    with pytest.raises(ValueError, match="constant"):
        channel_statistics(np.full((4, 2, 2, 1), 7, dtype=np.uint8))


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
    arrays, mean, std = prepare_splits(
        x_train, y_train, x_test, np.zeros(10, dtype=np.uint8), val_fraction=0.2, rng=rng
    )
    assert arrays["x_train"].shape == (80, 3, 3, 1) and arrays["x_val"].shape == (20, 3, 3, 1)
    assert arrays["y_train"].dtype == np.int64
    assert abs(arrays["x_train"].mean()) < 1e-5 and abs(arrays["x_train"].std() - 1) < 1e-4
    assert np.all(arrays["x_test"] > 3), "test images must not be standardized with their own statistics"
