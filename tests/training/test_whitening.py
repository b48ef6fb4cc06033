"""ZCA whitening: decorrelated pixels of unit variance, block-wise sums, the principal directions
of the whitened pixels, and an exact fold."""

from __future__ import annotations

import numpy as np
import pytest

import numpynet.training.whitening as whitening
from numpynet.nn.layers import Linear
from numpynet.matmul import exact_products
from numpynet.training.whitening import (
    fold_whitening,
    inverse_square_root,
    pixel_statistics,
    principal_directions,
    whiten,
    zca_matrix,
    zca_whitening,
)


def correlated_images(count=3000, seed=0):
    """(count, 4, 4, 1) images whose 16 pixels are strongly correlated, with a non-zero mean."""
    rng = np.random.default_rng(seed)
    mixing = rng.standard_normal((16, 16)) * 0.3 + np.eye(16)
    mixing[:, 0] += 2.0  # one dominant shared direction, like overall brightness
    flat = rng.standard_normal((count, 16)) @ mixing.T + 0.5
    return flat.reshape(count, 4, 4, 1).astype(np.float32)


def test_whitened_pixels_are_uncorrelated_with_unit_variance():
    images = correlated_images()
    # Epsilon far below the weakest direction's variance (1e-4): at 1e-6 that direction would
    # keep 99% of it, 2e-3 off the identity in pixel coordinates.
    mean, matrix = zca_whitening(images, epsilon=1e-9)
    # Applied in float64: the matrix blows the weakest direction up 100-fold, and float32
    # arithmetic (whiten's) would blow its rounding up with it.
    flat = images.reshape(len(images), -1).astype(np.float64)
    white = (flat - mean) @ matrix.astype(np.float64)
    assert white.shape == (3000, 16)
    np.testing.assert_allclose(white.mean(axis=0), 0, atol=1e-4)
    np.testing.assert_allclose(np.cov(white, rowvar=False, bias=True), np.eye(16), atol=2e-3)


def test_the_matrix_is_symmetric_and_epsilon_damps_weak_directions():
    images = correlated_images()
    _, matrix = zca_whitening(images, epsilon=1e-6)
    np.testing.assert_allclose(matrix, matrix.T, atol=1e-5)  # ZCA: rotate, scale, rotate back
    mean, damped = zca_whitening(images, epsilon=10.0)
    white = whiten(images, mean, damped).reshape(3000, -1).astype(np.float64)
    assert np.var(white, axis=0).mean() == pytest.approx(1.0, rel=1e-3)  # 1 on average
    spectrum = np.linalg.eigvalsh(np.cov(white, rowvar=False, bias=True))
    assert spectrum[-1] / spectrum[0] > 100  # but the weakest directions stay far weaker


def test_block_sums_equal_the_sums_over_the_whole_set(monkeypatch):
    images = correlated_images(count=1000)
    whole = zca_whitening(images)
    monkeypatch.setattr(whitening, "_BLOCK_ROWS", 64)  # 1000 = 15 * 64 + 40
    blocks = zca_whitening(images)
    for a, b in zip(whole, blocks):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(whiten(images, *whole), whiten(images, *blocks), atol=1e-4)


def test_whitening_reads_a_memory_mapped_file(tmp_path):
    images = correlated_images(count=500)
    np.save(tmp_path / "x.npy", images)
    mapped = np.load(tmp_path / "x.npy", mmap_mode="r")
    mean, matrix = zca_whitening(mapped)
    np.testing.assert_array_equal(whiten(mapped, mean, matrix), whiten(images, mean, matrix))


def test_folding_into_the_first_layer_gives_the_same_outputs_on_raw_inputs():
    images = correlated_images(count=200)
    mean, matrix = zca_whitening(images)
    layer = Linear(16, 5, np.random.default_rng(1), dtype=np.float64)
    layer.bias[:] = np.arange(5)
    flat = images.reshape(200, -1).astype(np.float64)
    expected = whiten(images, mean, matrix).reshape(200, -1).astype(np.float64) @ layer.weight
    expected += layer.bias
    fold_whitening(layer, mean, matrix)
    np.testing.assert_allclose(layer.forward(flat, training=False), expected, rtol=1e-5,
                               atol=1e-5)


def test_mirror_symmetric_whitening_commutes_with_the_flip():
    rng = np.random.default_rng(3)
    # Images with a left-right asymmetry (brighter on the left), as photographs often have.
    images = rng.standard_normal((2000, 4, 5, 3)).astype(np.float32)
    images[:, :, :2] += 1.5 * images[:, :, 2:4] + 1.0
    mirrored = images[:, :, ::-1]
    mean, matrix = zca_whitening(images, mirror_symmetric=True)
    np.testing.assert_allclose(whiten(mirrored, mean, matrix),
                               whiten(images, mean, matrix)[:, :, ::-1], atol=1e-4)
    mean, matrix = zca_whitening(images)  # the plain statistics do not commute with it
    assert not np.allclose(whiten(mirrored, mean, matrix),
                           whiten(images, mean, matrix)[:, :, ::-1], atol=1e-2)


def spd(size, smallest, largest, seed=0):
    """A symmetric positive definite matrix with eigenvalues from smallest to largest, and the
    inverse square root it should have."""
    rotation, _ = np.linalg.qr(np.random.default_rng(seed).standard_normal((size, size)))
    eigenvalues = np.geomspace(smallest, largest, size)
    return (rotation * eigenvalues) @ rotation.T, (rotation / np.sqrt(eigenvalues)) @ rotation.T


@pytest.mark.parametrize("exact, tolerance", [(False, 1e-9), (True, 1e-3)])
def test_the_inverse_square_root_against_an_eigendecomposition(exact, tolerance):
    # A condition number of 10**4: that of whitening's covariance (standardized pixels, plus
    # epsilon 0.1) is below 4096 / 0.1.
    matrix, expected = spd(120, 0.01, 100.0)
    with exact_products(exact):
        root = inverse_square_root(matrix)
    np.testing.assert_array_equal(root, root.T)
    assert np.abs(root - expected).max() <= tolerance * np.abs(expected).max()


@pytest.mark.parametrize("exact", [False, True])
def test_a_slow_direction_spread_over_every_pixel_still_converges(exact):
    # One small eigenvalue whose eigenvector touches every entry a little: a stopping rule that
    # looked at the largest entry of Z Y - I would stop before it converged.
    size = 256
    spread = np.full(size, 1 / np.sqrt(size))
    matrix = 10 * (np.eye(size) - np.outer(spread, spread)) + 0.1 * np.eye(size)
    with exact_products(exact):
        root = inverse_square_root(matrix)
    assert spread @ root @ spread == pytest.approx(1 / np.sqrt(0.1), rel=1e-3)


def test_a_matrix_that_is_not_positive_definite_is_an_error():
    matrix, _ = spd(50, 0.5, 2.0)
    matrix -= np.eye(50)  # eigenvalues from -0.5 to 1
    with pytest.raises(RuntimeError, match="not symmetric positive definite"):
        inverse_square_root(matrix)


def strong_and_weak_images(count=4000, strong=6, seed=0):
    """(count, 4, 4, 2) images: 32 pixels moved by ``strong`` directions of variance 10 and 26
    of variance 0.001, mixed by a random rotation. Whitened with epsilon 0.1, the strong ones
    keep variance 0.99 and the weak ones 0.01: ``strong`` directions hold nearly all of it."""
    rng = np.random.default_rng(seed)
    rotation, _ = np.linalg.qr(rng.standard_normal((32, 32)))
    scales = np.sqrt(np.r_[np.full(strong, 10.0), np.full(32 - strong, 0.001)])
    flat = (rng.standard_normal((count, 32)) * scales) @ rotation.T
    return flat.reshape(count, 4, 4, 2).astype(np.float32)


def whitened_spread(images):
    mean, covariance = pixel_statistics(images)
    matrix = zca_matrix(covariance)
    white = whiten(images, mean.astype(np.float32), matrix).reshape(len(images), -1)
    white = white.astype(np.float64)
    return covariance, matrix, white.T @ white / len(white)


@pytest.mark.parametrize("exact", [False, True])
def test_principal_directions_are_orthonormal_and_keep_the_strongest_variance(exact):
    images = strong_and_weak_images()
    covariance, matrix, spread = whitened_spread(images)
    with exact_products(exact):
        directions = principal_directions(covariance, matrix, 6)
    assert directions.shape == (32, 6) and directions.dtype == np.float32
    np.testing.assert_allclose(directions.T.astype(np.float64) @ directions, np.eye(6), atol=1e-5)
    kept = np.trace(directions.T @ spread @ directions)
    best = np.linalg.eigvalsh(spread)[-6:].sum()
    assert kept >= 0.999 * best
    assert best >= 0.95 * np.trace(spread)  # the images are as described: 6 directions hold it


def test_more_directions_than_the_strong_ones_keep_them_all_and_some_of_the_rest():
    images = strong_and_weak_images(strong=3)
    covariance, matrix, spread = whitened_spread(images)
    directions = principal_directions(covariance, matrix, 10).astype(np.float64)
    eigenvalues, eigenvectors = np.linalg.eigh(spread)
    strong = eigenvectors[:, -3:]
    # Each strong direction lies in the span of the ten, to within 0.1% of its length.
    np.testing.assert_allclose(np.linalg.norm(directions.T @ strong, axis=0), 1.0, atol=1e-3)
    # Seven of the ten are nearly weightless (whitened variance 0.01 against 0.99): orthonormal
    # to 1e-5 with float64 products, to 2e-4 in the exact mode, whose products keep ~20 bits.
    np.testing.assert_allclose(directions.T @ directions, np.eye(10), atol=1e-3)


def test_principal_directions_are_the_same_bits_when_computed_again():
    images = strong_and_weak_images(count=500)
    covariance, matrix, _ = whitened_spread(images)
    first = principal_directions(covariance, matrix, 5)
    np.testing.assert_array_equal(principal_directions(covariance, matrix, 5), first)
    assert not np.array_equal(principal_directions(covariance, matrix, 5, seed=1), first)


def test_folding_whitening_and_a_projection_grows_the_layer_to_take_raw_inputs():
    images = strong_and_weak_images(count=300)
    mean, covariance = pixel_statistics(images)
    mean, matrix = mean.astype(np.float32), zca_matrix(covariance)
    directions = principal_directions(covariance, matrix, 6)
    layer = Linear(6, 5, np.random.default_rng(1), dtype=np.float32)
    layer.bias[:] = np.arange(5)
    projected = whiten(images, mean, matrix).reshape(300, -1) @ directions
    expected = layer.forward(projected, training=False).astype(np.float64)
    fold_whitening(layer, mean, matrix.astype(np.float64) @ directions.astype(np.float64))
    assert layer.weight.shape == layer.grad_weight.shape == (32, 5)
    assert layer.in_features == 32 and layer.weight.dtype == np.float32
    np.testing.assert_allclose(layer.forward(images.reshape(300, -1), training=False), expected,
                               rtol=1e-4, atol=1e-4)
