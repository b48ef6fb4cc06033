"""ZCA whitening: decorrelate the pixels before training, then fold it into the first layer.

Neighbouring pixels of natural images are strongly correlated, so a few smooth, low-frequency
directions carry most of the variance and dominate the first layer's gradients. ZCA whitening
rescales every principal direction of the training images to the same variance (edges and texture
count as much as overall brightness) and rotates back, so a whitened image still looks like an
image (of edges): shifting it is still shifting the picture, and augmentation keeps working.

Whitening is linear, ``(x - mean) @ matrix``, so once training is done it is folded into the first
Linear layer: the saved model takes the standardized images every other stage gives it, and
evaluation and prediction need nothing extra.
"""

from __future__ import annotations

import numpy as np

from numpynet.nn.layers import Linear

# Added to every eigenvalue of the covariance of standardized pixels (variance about 1 each):
# directions with less variance than this (noise, JPEG artefacts) are damped instead of being
# blown up to unit variance.
ZCA_EPSILON = 0.1
# The largest image (height * width * channels values) whitening takes: its matrix and the
# covariance behind it grow with the square (4096 values: 64x64 grey; 3 x 128 MiB in float64),
# and their eigendecomposition with the cube.
MAX_WHITENED_VALUES = 4096
# Rows per block when reading the (memory-mapped) training images.
_BLOCK_ROWS = 4096


def zca_whitening(
    images: np.ndarray, epsilon: float = ZCA_EPSILON, mirror_symmetric: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """The mean (D,) and whitening matrix (D, D) of ``images`` (N, H, W, C), D = H * W * C.

    The matrix is ``U diag(1 / sqrt(lambda + epsilon)) U^T`` for the eigenvalues ``lambda`` and
    eigenvectors ``U`` of the pixel covariance, scaled so that the whitened pixels have variance
    1 on average (the scale the first layer's initialization expects). Both float32.

    With ``mirror_symmetric``, the statistics are those of the images and their mirror images
    together, so whitening a mirrored image gives the mirrored whitened image, exactly: flipping
    (in training, and at test time) means the same before and after whitening.
    """
    count = images.shape[0]
    flat = images.reshape(count, -1)
    pixels = flat.shape[1]
    total = np.zeros(pixels)
    products = np.zeros((pixels, pixels))
    for start in range(0, count, _BLOCK_ROWS):
        block = np.asarray(flat[start : start + _BLOCK_ROWS], dtype=np.float32)
        # float32 products within a block, float64 across blocks: exact enough, twice as fast.
        products += block.T @ block
        total += block.sum(axis=0, dtype=np.float64)
    mean = total / count
    covariance = products / count - np.outer(mean, mean)
    if mirror_symmetric:
        height, width, channels = images.shape[1:]
        mirror = np.arange(pixels).reshape(height, width, channels)[:, ::-1].ravel()
        covariance = (covariance + covariance[np.ix_(mirror, mirror)]) / 2
        mean = (mean + mean[mirror]) / 2
    eigenvalues, eigenvectors = np.linalg.eigh(covariance)
    eigenvalues = np.clip(eigenvalues, 0.0, None)  # rounding can leave tiny negative ones
    gains = 1.0 / np.sqrt(eigenvalues + epsilon)
    # The whitened variance along each direction is lambda / (lambda + epsilon).
    gains /= np.sqrt(np.mean(eigenvalues / (eigenvalues + epsilon)))
    matrix = (eigenvectors * gains) @ eigenvectors.T
    return mean.astype(np.float32), matrix.astype(np.float32)


def whiten(images: np.ndarray, mean: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """``(images - mean) @ matrix`` per image, (N, ...) -> float32 of the same shape, in memory."""
    count = images.shape[0]
    out = np.empty(images.shape, dtype=np.float32)
    flat_out = out.reshape(count, -1)
    flat = images.reshape(count, -1)
    for start in range(0, count, _BLOCK_ROWS):
        block = np.asarray(flat[start : start + _BLOCK_ROWS], dtype=np.float32) - mean
        np.matmul(block, matrix, out=flat_out[start : start + _BLOCK_ROWS])
    return out


def fold_whitening(layer: Linear, mean: np.ndarray, matrix: np.ndarray) -> None:
    """Make ``layer`` take unwhitened inputs: ``layer(whiten(x)) == new_layer(x)``, in place.

    ``(x - mean) @ M @ W + b = x @ (M @ W) + (b - mean @ M @ W)``, computed in float64 and
    stored in the layer's dtype.
    """
    folded = matrix.astype(np.float64) @ layer.weight.astype(np.float64)
    bias = layer.bias.astype(np.float64) - mean.astype(np.float64) @ folded
    np.copyto(layer.weight, folded, casting="same_kind")
    np.copyto(layer.bias, bias, casting="same_kind")
