"""Matrix products: the BLAS's in a kernel class, exact products on integers in exact mode.

Every matrix product of the library goes through :func:`matmul`. In a kernel class (see
:mod:`numpynet.backend`) it is NumPy's own, on the pinned OpenBLAS kernel. In exact mode it is
:func:`exact_matmul`, whose bits depend on no BLAS, kernel, thread count or summation order:

1. Each row of ``a`` and each column of ``b`` is scaled by a power of two so that its largest
   magnitude lies just below ``2**bits``, and rounded to integers (held in float64). Scaling by a
   power of two and rounding to an integer are exact IEEE operations, the same on every CPU.
2. The integer matrices are multiplied in float64 by whatever BLAS is there. With
   ``bits = (53 - ceil(log2 K)) // 2`` every product and every partial sum of the K terms is an
   integer below ``2**53``, so float64 holds each of them exactly: any order of summation, any
   blocking, any fused multiply-add gives the same integers.
3. The integer result is scaled back by the two powers of two (exact) and rounded once to the
   output's dtype.

The error is that of rounding the inputs to ``bits`` bits relative to their row's or column's
largest magnitude (20 bits for K up to 8192, 23 for the weight gradients of a batch of 128): each
term's error is below ``2**-bits * (max|a_i.| * |b_kj| + |a_ik| * max|b_.j|)``, and the sum is
rounded once. That is the accuracy of a float32 product for lines of similar magnitudes; a term
far below its line's largest keeps fewer bits. float64 inputs are rounded the same way, so an
exact product keeps about 20 of their 53 bits. Each output row depends on its own input row only, so a
product computed in batches of any size gives the same bits. The price is a float64 product
(half the float32 speed on most CPUs) and the conversions around it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import numpy as np

from numpynet.backend import EXACT, pinned_mode

FLOAT64_MANTISSA_BITS = 53
# Rounding float32 values to more bits than their own 24 gains nothing.
MAX_BITS = 24

# Exact in a process pinned to exact mode (numpynet.backend, before NumPy and this module load).
_exact = pinned_mode() == EXACT


def use_exact_products(exact: bool) -> None:
    """Make :func:`matmul` exact (``True``, exact mode) or the BLAS's (``False``), process-wide."""
    global _exact
    _exact = bool(exact)


@contextlib.contextmanager
def exact_products(exact: bool = True) -> Iterator[None]:
    """Within the block, :func:`matmul` is exact (or not); the previous choice comes back after."""
    before = _exact
    use_exact_products(exact)
    try:
        yield
    finally:
        use_exact_products(before)


def products_are_exact() -> bool:
    """Whether :func:`matmul` computes exact products in this process now."""
    return _exact


def matmul(a: np.ndarray, b: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """``a @ b`` for 2-D ``a`` (M, K) and ``b`` (K, N), in this process's numeric mode.

    Returns (M, N) in the inputs' dtype, written into ``out`` when given.
    """
    if _exact:
        return exact_matmul(a, b, out=out)
    return np.matmul(a, b, out=out)


def exact_bits(inner: int) -> int:
    """How many bits each input value keeps in an exact product summing ``inner`` terms."""
    return min(MAX_BITS, (FLOAT64_MANTISSA_BITS - (inner - 1).bit_length()) // 2)


def exact_matmul(a: np.ndarray, b: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """``a @ b`` (M, K) x (K, N) -> (M, N), the same bits on every machine (see the module)."""
    inner = a.shape[1]
    if b.shape[0] != inner:
        raise ValueError(f"matmul: shapes {a.shape} and {b.shape} do not chain")
    if inner == 0:
        return np.matmul(a, b, out=out)  # zeros: no sum to round
    bits = exact_bits(inner)
    # Each row of a and column of b is integers times a power of two, which multiplies every
    # term and partial sum of its output lines alike: applied before the product (where the
    # input is smaller than the output) or after it, the sums stay exact.
    scale_a_first = inner < b.shape[1]
    a_values, a_scale = _to_integers(a, axis=1, bits=bits, rescale=scale_a_first)
    b_values, b_scale = _to_integers(b, axis=0, bits=bits, rescale=False)
    product = np.matmul(a_values, b_values)
    if not scale_a_first:
        product *= a_scale[:, None]
    dtype = np.result_type(a.dtype, b.dtype)
    if out is None:
        out = np.empty(product.shape, dtype=dtype)
    # Computed in float64, rounded once into out's dtype.
    np.multiply(product, b_scale, out=out, casting="same_kind")
    return out


def _to_integers(
    x: np.ndarray, axis: int, bits: int, rescale: bool
) -> tuple[np.ndarray, np.ndarray]:
    """``x`` rounded to integers of at most ``bits`` bits per line, and each line's scale.

    A line is a row (``axis=1``) or a column (``axis=0``); ``x ~ integers * scale`` along it,
    where ``scale`` is a power of two (float64) and the line's largest magnitude maps just below
    ``2**bits``. The integers are float64, exactly; with ``rescale`` they come back multiplied
    by their scale already (still exact: a power of two).
    """
    peak = np.maximum(np.max(x, axis=axis), -np.min(x, axis=axis)).astype(np.float64)
    # peak < 2**exponent; frexp and ldexp are exact wherever they run. A line below 2**-990
    # (near float64's subnormals) is scaled as if it reached 2**-990, so that 2**(bits -
    # exponent) stays finite: its values round coarser (to 0 far below), the same way everywhere.
    exponent = np.maximum(np.frexp(peak)[1], -990)
    up, down = np.ldexp(1.0, bits - exponent), np.ldexp(1.0, exponent - bits)
    if axis == 1:
        up, down = up[:, None], down[:, None]
    # float32 holds the integers (at most 2**24) and, unless a line is far below float32's
    # normal range, both powers of two: then the passes over x move half the bytes.
    if x.dtype == np.float32 and bits - 126 <= exponent.min(initial=0) <= exponent.max(
        initial=0
    ) <= 127:
        scaled = np.multiply(x, up.astype(np.float32))
        np.rint(scaled, out=scaled)
        if rescale:
            scaled *= down.astype(np.float32)
        return scaled.astype(np.float64), down.reshape(-1)
    integers = x.astype(np.float64)
    integers *= up
    np.rint(integers, out=integers)
    if rescale:
        integers *= down
    return integers, down.reshape(-1)
