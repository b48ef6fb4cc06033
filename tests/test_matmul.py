"""Exact matrix products: their error bound, their independence of rows and order, their edges."""

from __future__ import annotations

import numpy as np
import pytest

from numpynet.matmul import (
    exact_bits,
    exact_matmul,
    exact_products,
    matmul,
    products_are_exact,
)


def operands(m, k, n, seed=0, dtype=np.float32):
    rng = np.random.default_rng(seed)
    # Rows and columns of very different sizes, as activations and gradients have.
    a = rng.standard_normal((m, k)) * np.exp2(rng.integers(-8, 8, size=(m, 1)))
    b = rng.standard_normal((k, n)) * np.exp2(rng.integers(-8, 8, size=(1, n)))
    return a.astype(dtype), b.astype(dtype)


@pytest.mark.parametrize("inner, bits", [(1, 24), (2, 24), (128, 23), (784, 21), (1200, 21),
                                         (3072, 20), (8192, 20), (8193, 19)])
def test_the_bits_kept_leave_every_partial_sum_below_2_to_the_53(inner, bits):
    assert exact_bits(inner) == bits
    assert inner * (2**bits) ** 2 <= 2**53


@pytest.mark.parametrize("m, k, n", [(128, 784, 1200), (1200, 128, 1200), (7, 3072, 33)])
def test_the_error_is_within_the_rounding_of_the_inputs(m, k, n):
    a, b = operands(m, k, n)
    result = exact_matmul(a, b)
    assert result.dtype == np.float32 and result.shape == (m, n)
    reference = a.astype(np.float64) @ b.astype(np.float64)
    # Each input is rounded to `bits` bits of its line's largest magnitude: the error of a term
    # is below 2**-bits of (largest of the row) * |b| + |a| * (largest of the column).
    bits = exact_bits(k)
    row_peak = np.abs(a).max(axis=1, keepdims=True).astype(np.float64)
    column_peak = np.abs(b).max(axis=0, keepdims=True).astype(np.float64)
    bound = (row_peak * np.abs(b).astype(np.float64).sum(axis=0)
             + np.abs(a).astype(np.float64).sum(axis=1, keepdims=True) * column_peak)
    bound = bound * 2.0**-bits + np.abs(reference) * 2.0**-24  # and the final rounding
    assert np.all(np.abs(result - reference) <= bound)


def test_the_integer_products_are_exact_whatever_the_order_of_summation():
    a, b = operands(64, 1000, 48, seed=1)
    # Summing the K terms one after another, in reverse order, gives the BLAS's bits.
    forward = exact_matmul(a, b)
    backward = exact_matmul(a[:, ::-1].copy(), b[::-1].copy())
    assert np.array_equal(forward, backward)
    # A column-major copy takes another path through the BLAS: the same bits again.
    assert np.array_equal(exact_matmul(np.asfortranarray(a), b), forward)


def test_each_output_row_depends_on_its_own_input_row_only():
    a, b = operands(100, 300, 70, seed=2)
    whole = exact_matmul(a, b)
    assert np.array_equal(exact_matmul(a[17:18], b), whole[17:18])
    assert np.array_equal(exact_matmul(a[::3].copy(), b), whole[::3])
    changed = a.copy()
    changed[5] *= 1000
    assert np.array_equal(np.delete(exact_matmul(changed, b), 5, axis=0),
                          np.delete(whole, 5, axis=0))


def test_zero_rows_tiny_and_huge_values_and_nan():
    a, b = operands(6, 50, 5, seed=3)
    a[0] = 0.0
    a[1] *= np.float32(1e-38)  # subnormal and near-subnormal values
    a[2] *= np.float32(1e30)
    b[:, 4] = np.nan
    result = exact_matmul(a, b)
    assert np.all(result[0, :4] == 0)
    reference = a.astype(np.float64) @ b.astype(np.float64)
    np.testing.assert_allclose(result[2, :4], reference[2, :4], rtol=1e-5)
    np.testing.assert_allclose(result[1, :4], reference[1, :4], rtol=1e-3, atol=1e-44)
    assert np.isnan(result[:, 4]).all(), "a NaN still shows, so divergence is still caught"


def test_out_float64_inputs_and_the_shape_check():
    a, b = operands(5, 40, 3, seed=4, dtype=np.float64)
    out = np.empty((5, 3))
    assert exact_matmul(a, b, out=out) is out
    np.testing.assert_allclose(out, a @ b, rtol=1e-5)
    with pytest.raises(ValueError, match="do not chain"):
        exact_matmul(a, b.T)


def test_the_mode_switch_is_scoped():
    a, b = operands(4, 30, 6, seed=5)
    before = products_are_exact()
    with exact_products():
        assert products_are_exact()
        assert np.array_equal(matmul(a, b), exact_matmul(a, b))
    assert products_are_exact() == before
    with exact_products(False):
        np.testing.assert_array_equal(matmul(a, b), np.matmul(a, b))


def test_the_float32_fast_path_gives_the_float64_paths_bits():
    a, b = operands(40, 300, 700, seed=6)  # K < N: a's rows are scaled before the product
    fast = exact_matmul(a, b)
    slow = exact_matmul(a.astype(np.float64), b.astype(np.float64)).astype(np.float32)
    assert np.array_equal(fast, slow)


def test_values_at_the_ends_of_the_float_ranges():
    # A float32 row holding the largest float32, on both sides of the scaling rule (K < N, K > N):
    # the same result either way (rounded to 19 bits it reaches 2**128, beyond float32), and the
    # other row untouched.
    a = np.ones((2, 4097), dtype=np.float32)
    a[0, 0] = np.finfo(np.float32).max
    with np.errstate(over="ignore"):
        wide, narrow = (exact_matmul(a, np.ones((4097, n), np.float32)) for n in (5000, 3))
    assert np.array_equal(wide[:, :3], narrow) and (narrow[1] == 4097).all()
    # A float64 line of subnormals, and an empty inner dimension.
    tiny = exact_matmul(np.array([[1e-310, 2e-310]]), np.ones((2, 1)))
    assert np.isfinite(tiny).all() and 0 <= tiny[0, 0] <= 3e-310
    assert np.array_equal(exact_matmul(np.ones((2, 0), np.float32), np.ones((0, 3), np.float32)),
                          np.zeros((2, 3), np.float32))
