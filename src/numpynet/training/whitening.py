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

from numpynet.matmul import matmul
from numpynet.nn.layers import Linear

# Added to every eigenvalue of the covariance of standardized pixels (variance about 1 each):
# directions with less variance than this (noise, JPEG artefacts) are damped instead of being
# blown up to unit variance.
ZCA_EPSILON = 0.1
# The largest image (height * width * channels values) whitening takes: its matrix and the
# covariance behind it grow with the square (4096 values: 64x64 grey; 3 x 128 MiB in float64),
# and the products that take the inverse square root with the cube.
MAX_WHITENED_VALUES = 4096
# Rows per block when reading the (memory-mapped) training images.
_BLOCK_ROWS = 4096
# Newton-Schulz stops once Z Y is this close to the identity (the Frobenius norm of the
# difference, which bounds the error of every eigenvalue, however spread its eigenvector), or
# once an iteration no longer brings it closer: the products' rounding is reached (exact
# products keep about 20 bits). Until then every iteration does, slow eigenvalues included.
_CONVERGED = 1e-9
_MAX_ITERATIONS = 100
# Stopped farther than this, it did not converge. (Whitening's covariance of standardized
# pixels plus epsilon has a condition number below 4096 / ZCA_EPSILON: converged in every mode.)
_FAILED_ABOVE = 0.5
# Products of principal_directions: 3 keep 97.2% of CIFAR-10's whitened variance in 1024
# directions, where its 1024 strongest eigenvectors keep 97.4% (and 1 product 95.1%).
_SUBSPACE_ITERATIONS = 3


def zca_whitening(
    images: np.ndarray, epsilon: float = ZCA_EPSILON, mirror_symmetric: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """The mean (D,) and whitening matrix (D, D) of ``images`` (N, H, W, C), D = H * W * C.

    The matrix is ``(C + epsilon I)^(-1/2)`` for the pixel covariance ``C`` (in ``C``'s
    eigenvectors U and eigenvalues lambda: ``U diag(1 / sqrt(lambda + epsilon)) U^T``), scaled so
    that the whitened pixels have variance 1 on average (the scale the first layer's
    initialization expects). Both float32.

    With ``mirror_symmetric``, the statistics are those of the images and their mirror images
    together, so whitening a mirrored image gives the mirrored whitened image, exactly: flipping
    (in training, and at test time) means the same before and after whitening.
    """
    mean, covariance = pixel_statistics(images, mirror_symmetric)
    return mean.astype(np.float32), zca_matrix(covariance, epsilon)


def pixel_statistics(
    images: np.ndarray, mirror_symmetric: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """The mean (D,) and covariance (D, D) of the pixels of ``images`` (N, H, W, C), both float64;
    with ``mirror_symmetric``, of the images and their mirror images together."""
    count = images.shape[0]
    flat = images.reshape(count, -1)
    pixels = flat.shape[1]
    total = np.zeros(pixels)
    for start in range(0, count, _BLOCK_ROWS):
        total += np.asarray(flat[start : start + _BLOCK_ROWS], dtype=np.float32).sum(
            axis=0, dtype=np.float64
        )
    mean = total / count
    if mirror_symmetric:
        height, width, channels = images.shape[1:]
        mirror = np.arange(pixels).reshape(height, width, channels)[:, ::-1].ravel()
        mean = (mean + mean[mirror]) / 2
    # Centred before the products (a second pass over the images), so that no large mean is
    # subtracted from large sums afterwards, and summed in float64: the weakest directions,
    # which whitening scales up most, are differences of sums far larger than they are.
    covariance = np.zeros((pixels, pixels))
    for start in range(0, count, _BLOCK_ROWS):
        block = np.asarray(flat[start : start + _BLOCK_ROWS], dtype=np.float64) - mean
        covariance += matmul(block.T, block)
    covariance /= count
    if mirror_symmetric:
        covariance = (covariance + covariance[np.ix_(mirror, mirror)]) / 2
    return mean, covariance


def zca_matrix(covariance: np.ndarray, epsilon: float = ZCA_EPSILON) -> np.ndarray:
    """The ZCA whitening matrix (D, D) float32 of pixels with ``covariance`` (D, D) float64: see
    :func:`zca_whitening`."""
    pixels = covariance.shape[0]
    inverse_root = inverse_square_root(covariance + epsilon * np.eye(pixels))
    # The whitened variance along each direction is lambda / (lambda + epsilon); their mean is
    # 1 - epsilon * trace((C + epsilon I)^-1) / D, and that trace is the sum of the squares of
    # the symmetric inverse root's entries.
    variance = 1.0 - epsilon * np.square(inverse_root).sum() / pixels
    return (inverse_root / np.sqrt(variance)).astype(np.float32)


def principal_directions(
    covariance: np.ndarray, matrix: np.ndarray, count: int, seed: int = 0
) -> np.ndarray:
    """``count`` orthonormal directions (D, count) float32 along which images whitened by
    ``matrix`` (D, D) vary most, for pixels of ``covariance`` (D, D) float64.

    Projected onto them, a whitened image keeps nearly all its variance in ``count`` values
    (97% in 1024 of CIFAR-10's 3072, where JPEG has left little above that), and the first layer
    learns on those: PCA whitening, as Lin et al. (2015) feed their nets. The whitened images'
    covariance ``S = M C M`` is multiplied into ``count`` columns, uniform draws of ``seed`` at
    first, which are made orthonormal again after each product (``Y (Y^T Y)^(-1/2)``):
    subspace iteration, with matrix products only, like :func:`inverse_square_root`, so the
    directions are the same bits on every machine. ``_SUBSPACE_ITERATIONS`` products leave the
    directions within a few tenths of a percent of the variance the true eigenvectors keep.
    """
    whitening = matrix.astype(np.float64)
    spread = matmul(matmul(whitening, covariance), whitening)
    # Uniform draws are integers scaled: the same values everywhere, unlike normal ones, whose
    # tails call the platform's log.
    directions = np.random.default_rng(seed).random((covariance.shape[0], count)) - 0.5
    for _ in range(_SUBSPACE_ITERATIONS):
        directions = _orthonormal(matmul(spread, directions))
    return directions.astype(np.float32)


def _orthonormal(columns: np.ndarray) -> np.ndarray:
    """``columns`` (D, K) float64 made orthonormal, spanning the same space:
    ``Y (Y^T Y)^(-1/2)``, the orthonormal set nearest to them."""
    return matmul(columns, inverse_square_root(matmul(columns.T, columns)))


def inverse_square_root(matrix: np.ndarray) -> np.ndarray:
    """``matrix^(-1/2)`` of a symmetric positive definite float64 ``matrix`` (D, D), by the
    coupled Newton-Schulz iteration.

    Matrix products only (:func:`numpynet.matmul.matmul`, exact in exact mode), no eigensolver:
    LAPACK's sums run in an order of its own choosing on every machine. After scaling by the
    Frobenius norm every eigenvalue lies in (0, 1]; then ``T = (3 I - Z Y) / 2``,
    ``Y <- Y T``, ``Z <- T Z`` take ``Y`` to the square root and ``Z`` to the inverse square root.
    Small eigenvalues grow by about 2.25 an iteration until they near 1, then the error squares:
    about 16 iterations for the covariance of CIFAR-10's pixels with epsilon 0.1. Raises
    RuntimeError if it does not converge (a matrix that is not positive definite).
    """
    size = matrix.shape[0]
    identity = np.eye(size)
    norm = np.sqrt(np.square(matrix).sum())
    y = matrix / norm
    z = identity.copy()
    previous = np.inf
    for _ in range(_MAX_ITERATIONS):
        product = matmul(z, y)
        distance = np.sqrt(np.square(product - identity).sum())
        if distance < _CONVERGED or distance >= previous:
            break

        previous = distance
        step = (3.0 * identity - product) / 2.0
        y, z = matmul(y, step), matmul(step, z)
    if distance > _FAILED_ABOVE:
        # Unreachable for a covariance plus epsilon: it converges in about 30 iterations even
        # at a condition number of 10**12.
        raise RuntimeError(
            f"inverse_square_root stopped {distance:.3g} away from convergence: the matrix is "
            f"not symmetric positive definite, or (exact products keep about 20 bits) its "
            f"condition number is far above 10**6"
        )
    return (z + z.T) / (2.0 * np.sqrt(norm))


def whiten(images: np.ndarray, mean: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """``(images - mean) @ matrix`` per image, (N, ...) -> float32 of the same shape, in memory."""
    count = images.shape[0]
    out = np.empty(images.shape, dtype=np.float32)
    flat_out = out.reshape(count, -1)
    flat = images.reshape(count, -1)
    for start in range(0, count, _BLOCK_ROWS):
        block = np.asarray(flat[start : start + _BLOCK_ROWS], dtype=np.float32) - mean
        matmul(block, matrix, out=flat_out[start : start + _BLOCK_ROWS])
    return out


def fold_whitening(layer: Linear, mean: np.ndarray, matrix: np.ndarray) -> None:
    """Make ``layer`` take unwhitened inputs: ``layer(whiten(x)) == new_layer(x)``, in place.

    ``(x - mean) @ M @ W + b = x @ (M @ W) + (b - mean @ M @ W)``, computed in float64 and
    stored in the layer's dtype. ``matrix`` (D, K) may whiten and then project onto K principal
    directions (K < D, the layer trained on K values): the layer then grows to take D inputs.
    """
    folded = matmul(matrix.astype(np.float64), layer.weight.astype(np.float64))
    bias = layer.bias.astype(np.float64) - matmul(mean.astype(np.float64)[None], folded)[0]
    if folded.shape != layer.weight.shape:
        # Training is over: no optimizer holds these arrays any more.
        layer.weight = np.empty(folded.shape, dtype=layer.weight.dtype)
        layer.grad_weight = np.zeros_like(layer.weight)
        layer.in_features = folded.shape[0]
    np.copyto(layer.weight, folded, casting="same_kind")
    np.copyto(layer.bias, bias, casting="same_kind")
