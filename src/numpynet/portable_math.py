"""Elementary functions that give the same bits on every computer.

``np.exp`` and ``np.log`` pick a SIMD loop by CPU feature (baseline, AVX2, AVX-512, NEON...), and
those loops round differently; ``math.exp``/``math.cos``/``float ** float`` come from the
platform's libm, which differs between glibc, macOS and Windows; ``Generator.standard_normal``
calls libm in its ziggurat tails. Any of them would make a trained model depend on the machine.

Here every function is built only from operations IEEE 754 rounds the same way everywhere:
``+ - * /``, ``sqrt``, comparisons, ``np.rint``/``floor``, integer and bit operations (powers of two
are written into a float64's exponent bits). Each array step is its own ufunc call and each scalar
step its own Python float operation, so no compiler can contract ``a * b + c`` into an FMA.
Array functions compute in float64 and round once to the input's dtype at the end.
"""

from __future__ import annotations

import math
import struct

import numpy as np

__all__ = ["cos", "exp", "log", "power", "standard_normal"]

# Cody-Waite split of ln 2 (fdlibm's): _LN2_HI has 21 trailing zero bits, so k * _LN2_HI is
# exact for |k| < 2**21 and x - k * _LN2_HI is exact (Sterbenz) once k = rint(x / ln 2).
_LN2_HI = float.fromhex("0x1.62e42fee00000p-1")
_LN2_LO = float.fromhex("0x1.a39ef35793c76p-33")
_INV_LN2 = float.fromhex("0x1.71547652b82fep+0")

# Below this, float64 e**x is under half the smallest subnormal and rounds to 0; above it the
# result overflows to inf. Clipping to these keeps k (and so the exponent bits) in range without
# changing any result.
EXP_MIN = -746.0
EXP_MAX = 710.0

# exp(r) = 1 + r + r*r * Q(r): Q's Taylor coefficients 1/2!, 1/3!, ..., 1/13! (nearest doubles).
# On |r| <= ln2/2 the first omitted term, r**14/14!, is below 0.03 ulp of the result.
_EXP_Q = (
    0.5,
    0.16666666666666666,
    0.041666666666666664,
    0.008333333333333333,
    0.001388888888888889,
    0.0001984126984126984,
    2.48015873015873e-05,
    2.7557319223985893e-06,
    2.755731922398589e-07,
    2.505210838544172e-08,
    2.08767569878681e-09,
    1.6059043836821613e-10,
)

# log(1 + f) = f - (f*f/2 - s*(f*f/2 + R)), s = f / (2 + f), R = z * (2/3 + 2/5 z + ...), z = s*s:
# the series of 2 atanh(s). With |s| <= 0.1716 (z <= 0.0295) the terms up to 2/21 leave under
# 0.01 ulp out.
_LOG_R = (
    0.6666666666666666,
    0.4,
    0.2857142857142857,
    0.2222222222222222,
    0.18181818181818182,
    0.15384615384615385,
    0.13333333333333333,
    0.11764705882352941,
    0.10526315789473684,
    0.09523809523809523,
)

_FLOAT64_MIN_NORMAL = float.fromhex("0x1p-1022")
_TWO_POW_54 = float.fromhex("0x1p+54")
_MANTISSA_MASK = (1 << 52) - 1
# Mantissa bits of sqrt(2): a mantissa above it is halved so that m lies in [sqrt(1/2), sqrt(2)),
# where |s| is smallest and the series shortest.
_SQRT2_MANTISSA = 0x6A09E667F3BCD

# pi/2 in four parts (fdlibm's). The first three have 33 significant bits, so n * part is exact
# for |n| < 2**20 and the reduced argument keeps ~150 bits of pi/2 even next to a multiple of
# pi/2, where the result is tiny and any error in pi/2 would be a large relative error.
_PIO2_1 = float.fromhex("0x1.921fb54400000p+0")
_PIO2_2 = float.fromhex("0x1.0b4611a600000p-34")
_PIO2_3 = float.fromhex("0x1.3198a2e000000p-69")
_PIO2_3T = float.fromhex("0x1.b839a252049c1p-104")
_TWO_OVER_PI = float.fromhex("0x1.45f306dc9c883p-1")
_PIO4 = float.fromhex("0x1.921fb54442d18p-1")
_TWO_PI = float.fromhex("0x1.921fb54442d18p+2")
# Largest |x| the reduction is exact for: n = rint(x * 2/pi) stays below 2**20.
TRIG_MAX = 1048576.0
# Below this cos x rounds to 1 (and sin x, for the quadrant kernels, to x).
_TRIG_TINY = float.fromhex("0x1p-27")

# Taylor coefficients on |x| <= pi/4 (the first omitted term is below 0.01 ulp):
# sin x = x + x**3 * S(x*x), S = -1/3!, 1/5!, ..., 1/17!.
_SIN_S = (
    -0.16666666666666666,
    0.008333333333333333,
    -0.0001984126984126984,
    2.7557319223985893e-06,
    -2.505210838544172e-08,
    1.6059043836821613e-10,
    -7.647163731819816e-13,
    2.8114572543455206e-15,
)
# cos x = 1 - x**2/2 + x**4 * C(x*x), C = 1/4!, -1/6!, ..., 1/16!.
_COS_C = (
    0.041666666666666664,
    -0.001388888888888889,
    2.48015873015873e-05,
    -2.755731922398589e-07,
    2.08767569878681e-09,
    -1.1470745597729725e-11,
    4.779477332387385e-14,
)

# Veltkamp's splitter 2**27 + 1: splits a double into two 26-bit halves whose products are
# exact, which gives exact products without an FMA.
_SPLITTER = 134217729.0


def _check_float_dtype(x, name: str) -> np.ndarray:
    array = np.asarray(x)
    if array.dtype not in (np.float32, np.float64):
        raise TypeError(f"{name} takes float32 or float64 arrays, not {array.dtype}")
    return array


def _horner(z, coefficients):
    """c0 + z*(c1 + z*(c2 + ...)), one operation at a time (arrays or Python floats)."""
    acc = coefficients[-1]
    for c in reversed(coefficients[:-1]):
        acc = acc * z
        acc = acc + c
    return acc


def _pow2_array(k: np.ndarray) -> np.ndarray:
    # 2**k for int64 k in the normal range [-1022, 1023], written straight into the exponent bits.
    return ((k + 1023) << 52).view(np.float64)


def _pow2_float(k: int) -> float:
    # The scalar twin of _pow2_array; struct reads the bits as little-endian everywhere.
    return struct.unpack("<d", struct.pack("<q", (k + 1023) << 52))[0]


def exp(x: np.ndarray) -> np.ndarray:
    """e**x elementwise for a float32 or float64 array, in the input's dtype.

    Computed in float64 and rounded once to the dtype. Float64 results are within 1 ulp of the
    correctly rounded e**x (tests allow 2). Arguments are clipped to [EXP_MIN, EXP_MAX]
    = [-746, 710], which changes no result: below -745.14 the float64 result rounds to 0, above
    709.79 it overflows to inf (silently, no overflow warning; float32 likewise gives 0 or inf
    where its own range ends). Between -745.14 and -708.4 the results are float64 subnormals,
    within 1 subnormal ulp. NaN gives NaN; -inf gives 0 and +inf gives inf.
    """
    array = _check_float_dtype(x, "exp")
    x64 = array.astype(np.float64)
    nan = np.isnan(x64)
    # NaN would become a garbage exponent in the int64 cast; compute 0 there and put NaN back.
    x64 = np.where(nan, 0.0, x64)
    x64 = np.clip(x64, EXP_MIN, EXP_MAX)
    k = np.rint(x64 * _INV_LN2)
    r = x64 - k * _LN2_HI
    r = r - k * _LN2_LO
    # 1 + (r + r*r*Q): adding the small part to 1 last keeps its rounding to one half ulp.
    q = _horner(r, _EXP_Q)
    p = r * r
    p = p * q
    p = r + p
    p = 1.0 + p
    # Two exact scalings by 2**(k/2) each: 2**k alone would leave the exponent range at both
    # ends (k runs from -1076 to 1024), and the second product rounds once into a subnormal.
    ki = k.astype(np.int64)
    k1 = ki >> 1
    k2 = ki - k1
    with np.errstate(over="ignore", under="ignore"):
        result = p * _pow2_array(k1)
        result = result * _pow2_array(k2)
        result = np.where(nan, np.nan, result)
        return result.astype(array.dtype)


def log(x: np.ndarray) -> np.ndarray:
    """Natural logarithm elementwise for a float32 or float64 array, in the input's dtype.

    Computed in float64 and rounded once to the dtype; float64 results are within 1 ulp of the
    correctly rounded value (tests allow 2). Domain: positive numbers; subnormals are scaled
    into the normal range first, so they are handled too. Outside it the results are those of
    ``np.log``, with NumPy's floating-point signals so they cannot pass unnoticed:
    0 gives -inf (divide-by-zero), negatives give NaN (invalid), +inf gives inf, NaN gives NaN.
    ``np.errstate`` controls those signals as it does for NumPy's own functions.
    """
    array = _check_float_dtype(x, "log")
    x64 = array.astype(np.float64)
    valid = (x64 > 0.0) & (x64 < np.inf)
    # Substitute 1 for out-of-domain arguments so the bit arithmetic below sees only positive
    # finite numbers; their results are replaced at the end.
    x64 = np.where(valid, x64, 1.0)
    tiny = x64 < _FLOAT64_MIN_NORMAL
    # Multiplying every element (by 2**54 or 1, both exact) rather than choosing with np.where
    # keeps large arguments from overflowing in the discarded branch.
    x64 = x64 * np.where(tiny, _TWO_POW_54, 1.0)
    bits = x64.view(np.int64)
    k = (bits >> 52) - 1023
    k = k - np.where(tiny, 54, 0)
    mantissa = bits & _MANTISSA_MASK
    above = mantissa > _SQRT2_MANTISSA
    k = k + above
    m = (mantissa | np.where(above, 1022 << 52, 1023 << 52)).view(np.float64)
    f = m - 1.0  # exact: m is within a factor 2 of 1 (Sterbenz)
    s = 2.0 + f
    s = f / s
    z = s * s
    big_r = _horner(z, _LOG_R)
    big_r = z * big_r
    hfsq = f * f
    hfsq = 0.5 * hfsq
    # k*ln2_hi + (f - (hfsq - (s*(hfsq + R) + k*ln2_lo))): f is exact and carries the most
    # weight, so it is added last but one, and k*ln2_hi (exact) last.
    dk = k.astype(np.float64)
    t = hfsq + big_r
    t = s * t
    t = t + dk * _LN2_LO
    t = hfsq - t
    t = t - f
    result = dk * _LN2_HI
    result = result - t
    if not valid.all():
        original = array.astype(np.float64)
        zero = original == 0.0
        negative = original < 0.0
        # The arithmetic that gives np.log's answers also raises its floating-point signals.
        result = np.where(zero, np.divide(-1.0, np.where(zero, 0.0, 1.0)), result)
        result = np.where(negative, np.sqrt(np.where(negative, -1.0, 1.0)), result)
        result = np.where(original == np.inf, np.inf, result)
        result = np.where(np.isnan(original), original, result)
    return result.astype(array.dtype)


def _two_sum(a: float, b: float) -> tuple[float, float]:
    # Knuth's TwoSum: s + e == a + b exactly, whatever the magnitudes.
    s = a + b
    bb = s - a
    e = (a - (s - bb)) + (b - bb)
    return s, e


def _reduce_pio2(x: float) -> tuple[int, float, float]:
    # x = n*pi/2 + (hi + lo), |hi + lo| <= pi/4 (a hair more where rint rounds across).
    n = math.floor(x * _TWO_OVER_PI + 0.5)
    fn = float(n)
    r1 = x - fn * _PIO2_1  # exact: both products exact, and Sterbenz for the difference
    a, e1 = _two_sum(r1, -(fn * _PIO2_2))
    b, e2 = _two_sum(a, -(fn * _PIO2_3))
    lo = e1 + e2
    lo = lo - fn * _PIO2_3T
    hi = b + lo
    lo = lo - (hi - b)
    return n, hi, lo


def _sin_kernel(x, y):
    # sin(x + y), |x| <= pi/4, y a tail far below ulp(x): sin x + y cos x to first order in y.
    z = x * x
    v = z * x
    p = _horner(z, _SIN_S)
    p = v * p
    w = 0.5 * z
    w = 1.0 - w
    w = y * w
    p = p + w
    return x + p


def _cos_kernel(x, y):
    # cos(x + y), |x| <= pi/4: 1 - x*x/2 is the big term; its rounding error ((1 - w) - hz) is
    # recovered exactly and added back with the small terms (fdlibm's __kernel_cos).
    z = x * x
    hz = 0.5 * z
    w = 1.0 - hz
    c = _horner(z, _COS_C)
    zz = z * z
    c = zz * c
    xy = x * y
    c = c - xy
    back = 1.0 - w
    back = back - hz
    c = back + c
    return w + c


def sin_cos_small(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(sin x, cos x) elementwise for a float64 array of angles with |x| <= pi/4 (45 degrees),
    each within 1 ulp of the correctly rounded value; larger angles raise ValueError.

    The small range needs no argument reduction: fdlibm's kernels apply as they are. (Random
    rotations of training images draw their angles in it.)
    """
    x = np.asarray(x, dtype=np.float64)
    if not np.all(np.abs(x) <= math.pi / 4):
        raise ValueError("sin_cos_small takes angles of at most pi/4 in magnitude")
    return _sin_kernel(x, 0.0), _cos_kernel(x, 0.0)


def _check_trig_argument(x: float, name: str) -> float:
    x = float(x)
    if math.isinf(x) or abs(x) > TRIG_MAX:
        raise ValueError(
            f"{name}({x!r}): only |x| <= {TRIG_MAX:g} is supported (exact argument reduction)"
        )
    return x


def cos(x: float) -> float:
    """cos x for a Python float, within 1 ulp of the correctly rounded value (tests allow 2).

    Meant for |x| <= 2*pi (a cosine learning-rate schedule uses [0, pi]); accurate for any
    |x| <= TRIG_MAX = 2**20, where the reduction by multiples of pi/2 is exact. Larger |x| and
    infinities raise ValueError; NaN gives NaN.
    """
    x = _check_trig_argument(x, "cos")
    if x != x:
        return x
    if abs(x) < _TRIG_TINY:
        return 1.0
    if abs(x) <= _PIO4:
        return _cos_kernel(x, 0.0)
    n, hi, lo = _reduce_pio2(x)
    quadrant = n & 3
    if quadrant == 0:
        return _cos_kernel(hi, lo)
    if quadrant == 1:
        return -_sin_kernel(hi, lo)
    if quadrant == 2:
        return -_cos_kernel(hi, lo)
    return _sin_kernel(hi, lo)


def _split(a: float) -> tuple[float, float]:
    c = _SPLITTER * a
    hi = c - (c - a)
    return hi, a - hi


def _dd_mul(a_hi: float, a_lo: float, b_hi: float, b_lo: float) -> tuple[float, float]:
    # Double-double product (Dekker): the leading product exactly, via 26-bit halves, plus the
    # cross terms; about 2**-104 relative error.
    p = a_hi * b_hi
    ah, al = _split(a_hi)
    bh, bl = _split(b_hi)
    e = ((ah * bh - p) + ah * bl + al * bh) + al * bl
    e = e + (a_hi * b_lo + a_lo * b_hi)
    hi = p + e
    return hi, e - (hi - p)


def _normalize(hi: float, lo: float, e: int) -> tuple[float, float, int]:
    # Keep hi in [1, 2) by exact halving/doubling, so nothing under- or overflows mid-way and
    # the splitter never overflows; the power of two goes into the integer e.
    if hi >= 2.0:
        return hi * 0.5, lo * 0.5, e + 1
    if hi < 1.0:
        return hi * 2.0, lo * 2.0, e - 1
    return hi, lo, e


def power(base: float, exponent: int) -> float:
    """base**exponent for a float base and an integer exponent >= 0.

    Right-to-left binary exponentiation (repeated squaring, always the same sequence of
    operations) in double-double arithmetic with the binary exponent kept apart in a Python
    int, so the error stays far below 1 ulp even for exponents of 10**6 and more (plain
    squaring in doubles would lose about log2(exponent) bits) and nothing overflows mid-way.
    The result is rounded once (twice for a subnormal result): within 1 ulp of math.pow.
    power(x, 0) is 1.0 for every x; zeros and infinities keep their sign for odd exponents;
    NaN gives NaN. Raises ValueError for a negative exponent, TypeError for a non-integer.
    """
    if isinstance(exponent, bool) or not isinstance(exponent, (int, np.integer)):
        raise TypeError(f"power needs an integer exponent, not {type(exponent).__name__}")
    n = int(exponent)
    if n < 0:
        raise ValueError(f"power needs an exponent >= 0, not {n}")
    base = float(base)
    if n == 0:
        return 1.0
    if base != base:
        return base
    negative = math.copysign(1.0, base) < 0.0 and n & 1 == 1
    a = abs(base)
    if a == 0.0 or a == math.inf:
        return -a if negative else a
    offset = 0
    if a < _FLOAT64_MIN_NORMAL:
        a = a * _TWO_POW_54
        offset = -54
    bits = struct.unpack("<q", struct.pack("<d", a))[0]
    sq_e = (bits >> 52) - 1023 + offset
    sq_hi = struct.unpack("<d", struct.pack("<q", (bits & _MANTISSA_MASK) | (1023 << 52)))[0]
    sq_lo = 0.0
    res_hi, res_lo, res_e = 1.0, 0.0, 0
    while True:
        if n & 1:
            res_hi, res_lo = _dd_mul(res_hi, res_lo, sq_hi, sq_lo)
            res_hi, res_lo, res_e = _normalize(res_hi, res_lo, res_e + sq_e)
        n >>= 1
        if not n:
            break
        sq_hi, sq_lo = _dd_mul(sq_hi, sq_lo, sq_hi, sq_lo)
        sq_hi, sq_lo, sq_e = _normalize(sq_hi, sq_lo, 2 * sq_e)
    # res_hi is already the double nearest res_hi + res_lo; only the scaling by 2**res_e is left.
    if res_e > 1023:
        result = math.inf
    elif res_e < -1100:
        result = 0.0
    else:
        half = res_e >> 1
        result = res_hi * _pow2_float(half)
        result = result * _pow2_float(res_e - half)
    return -result if negative else result


def standard_normal(rng: np.random.Generator, size, dtype=np.float64) -> np.ndarray:
    """Standard normal draws of shape ``size`` (an int or a tuple) in float32 or float64.

    Box-Muller from ``rng.random`` float64 uniforms only (exact multiples of 2**-53, the same on
    every platform). The n = prod(size) values are made in pairs, each from two uniforms u1, u2:
    r = sqrt(-2 log(1 - u1)) (1 - u1 is in (0, 1], so r is finite, at most about 8.57) and the
    angle 2*pi*u2; the pair is (r cos, r sin), in that order, and pairs follow each other, so a
    shorter call with the same state gives a prefix of a longer one's values. One call consumes
    exactly 2 * ceil(n / 2) uniforms (n, or n + 1 when n is odd; the last sine is dropped then)
    in a single ``rng.random`` call, so the generator state afterwards depends only on n.
    Computed in float64 and rounded once to ``dtype``.
    """
    dtype = np.dtype(dtype)
    if dtype not in (np.float32, np.float64):
        raise TypeError(f"standard_normal makes float32 or float64, not {dtype}")
    shape = (int(size),) if np.ndim(size) == 0 else tuple(int(d) for d in size)
    count = math.prod(shape)
    pairs = (count + 1) // 2
    uniforms = rng.random((pairs, 2))
    u1 = 1.0 - uniforms[:, 0]  # exact: u1 is a multiple of 2**-53 in (0, 1]
    radius = log(u1)
    radius = -2.0 * radius
    radius = np.sqrt(radius)
    u2 = uniforms[:, 1]
    # The angle 2*pi*u2 by quadrants: u2 = q/4 + f with |f| <= 1/8, exactly (both are multiples
    # of 2**-53), so only f is multiplied by 2*pi (|angle| <= pi/4) and no pi/2 reduction error
    # appears.
    q = np.rint(u2 * 4.0)
    f = q * 0.25
    f = u2 - f
    t = f * _TWO_PI
    s = _sin_kernel(t, 0.0)
    c = _cos_kernel(t, 0.0)
    quadrant = q.astype(np.int64) & 3
    swap = (quadrant & 1) == 1
    # cos(q*pi/2 + t) and sin(q*pi/2 + t) for q = 0, 1, 2, 3: (c, s), (-s, c), (-c, -s), (s, -c).
    cos_abs = np.where(swap, s, c)
    sin_abs = np.where(swap, c, s)
    cos_theta = np.where((quadrant == 1) | (quadrant == 2), -cos_abs, cos_abs)
    sin_theta = np.where(quadrant >= 2, -sin_abs, sin_abs)
    out = np.empty((pairs, 2), dtype=np.float64)
    np.multiply(radius, cos_theta, out=out[:, 0])
    np.multiply(radius, sin_theta, out=out[:, 1])
    return out.reshape(-1)[:count].reshape(shape).astype(dtype)
