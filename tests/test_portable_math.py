"""numpynet.portable_math: accuracy against NumPy/libm, pinned bits, independence of NumPy's SIMD
dispatch level, the normal sampler's statistics and use of the generator, and no libm calls."""

import io
import json
import math
import os
import re
import subprocess
import sys
import textwrap
import tokenize
from pathlib import Path

import numpy as np
import pytest

from helpers.project import PROJECT
from numpynet import portable_math as pm

MODULE = Path(pm.__file__)
SRC = PROJECT / "src"


def ulp_error(result, reference) -> np.ndarray:
    """|result - reference| in units of the reference's last place, in the reference's dtype
    (np.spacing of a float32 is a float32 ulp). Exact: the difference of two nearby floats and a
    division by a power of two."""
    reference = np.asarray(reference)
    result = np.asarray(result, dtype=reference.dtype)
    both_inf = np.isinf(reference) & (result == reference)
    with np.errstate(invalid="ignore"):
        error = np.abs(result.astype(np.float64) - reference.astype(np.float64))
        error = error / np.spacing(np.abs(reference)).astype(np.float64)
    return np.where(both_inf, 0.0, error)


def libm_exp(values) -> np.ndarray:
    out = []
    for v in np.asarray(values, dtype=np.float64).ravel():
        try:
            out.append(math.exp(v))
        except OverflowError:
            out.append(math.inf)
    return np.array(out)


def libm_log(values) -> np.ndarray:
    return np.array([math.log(v) for v in np.asarray(values, dtype=np.float64).ravel()])


def check_float32(ours, reference64):
    """float32 results: the float32 rounding of the float64 reference, or one float32 ulp off."""
    assert ours.dtype == np.float32
    with np.errstate(over="ignore"):
        expected = np.asarray(reference64).astype(np.float32)
    error = ulp_error(ours, expected)
    assert error.max() <= 1.0, f"max {error.max()} float32 ulp"
    return float(np.mean(ours == expected))


# ---------------------------------------------------------------------------------------------
# exp
# ---------------------------------------------------------------------------------------------

EXP_EDGES = np.array([
    0.0, -0.0, 1.0, -1.0, 0.5, 1e-300, -1e-300, 5e-324, 1e-17, -1e-17,
    math.log(2), -math.log(2), 0.5 * math.log(2), -0.5 * math.log(2),
    10 * math.log(2), -10 * math.log(2), 1000 * math.log(2), -1000 * math.log(2),
    88.72, -87.33, -103.97,  # float32 overflow / smallest normal / smallest subnormal
    709.782712893384, 709.7827128933841,  # float64 max / first overflow
    -708.3964185322641, -708.4,  # float64 smallest normal, subnormal results
    -745.1332191019411, -745.1332191019412, -745.2, pm.EXP_MIN, pm.EXP_MAX, -800.0, 800.0,
])


def test_exp_float64_within_2_ulp_of_libm_and_numpy():
    rng = np.random.default_rng(0)
    x = np.concatenate([
        np.linspace(-746.0, 710.0, 200_001),
        rng.uniform(-746.0, 710.0, 50_000),
        rng.uniform(-2.0, 2.0, 50_000),
        rng.uniform(-30.0, 0.0, 50_000),  # where softmax lives
        np.arange(-1076, 1025) * math.log(2),  # ln2 multiples: r near 0, every k
        (np.arange(-1076, 1025) + 0.5) * math.log(2),  # r near +-ln2/2, where rint switches
        EXP_EDGES,
    ])
    ours = pm.exp(x)
    assert ours.dtype == np.float64 and ours.shape == x.shape
    assert ulp_error(ours, libm_exp(x)).max() <= 2.0
    with np.errstate(over="ignore"):
        assert ulp_error(ours, np.exp(x)).max() <= 2.0


def test_exp_exact_values_and_limits():
    # Exact results: e**0 = 1, and the clip limits' sides round to 0 and overflow to inf.
    assert pm.exp(np.array([0.0, -0.0])).tolist() == [1.0, 1.0]
    out = pm.exp(np.array([-745.2, -746.0, -800.0, -np.inf, 709.79, 710.0, 800.0, np.inf]))
    assert out.tolist() == [0.0, 0.0, 0.0, 0.0, math.inf, math.inf, math.inf, math.inf]
    assert pm.exp(np.array([-745.1332191019411]))[0] == 5e-324  # the smallest subnormal
    # The largest argument with a finite result (e**x just under the largest double), the next.
    assert pm.exp(np.array([709.782712893384]))[0] == math.exp(709.782712893384) < math.inf
    assert pm.exp(np.array([math.nextafter(709.782712893384, 800.0)]))[0] == math.inf
    assert np.isnan(pm.exp(np.array([np.nan, 1.0]))[0])
    assert pm.exp(np.float64(1.0)).shape == ()


def test_exp_float32_rounds_the_float64_result():
    rng = np.random.default_rng(1)
    x = np.concatenate([
        np.linspace(-110.0, 90.0, 100_001),
        rng.uniform(-20.0, 20.0, 50_000),
        EXP_EDGES,
    ]).astype(np.float32)
    exact_fraction = check_float32(pm.exp(x), libm_exp(x))  # checks the dtype too
    assert exact_fraction > 0.999999


def test_exp_keeps_shape_and_rejects_other_dtypes():
    x = np.arange(12, dtype=np.float32).reshape(3, 4) / 7
    assert pm.exp(x).shape == (3, 4)
    assert pm.exp(x.T).shape == (4, 3)
    with pytest.raises(TypeError):
        pm.exp(np.arange(3))
    with pytest.raises(TypeError):
        pm.log(np.ones(3, dtype=np.float16))


# ---------------------------------------------------------------------------------------------
# log
# ---------------------------------------------------------------------------------------------

SQRT2 = math.sqrt(2.0)
LOG_EDGES = np.array([
    1.0, np.nextafter(1.0, 2.0), np.nextafter(1.0, 0.0), 1.0 + 1e-10, 1.0 - 1e-10, 2.0, 0.5,
    SQRT2, np.nextafter(SQRT2, 2.0), np.nextafter(SQRT2, 0.0),
    SQRT2 / 2, np.nextafter(SQRT2 / 2, 0.0), np.nextafter(SQRT2 / 2, 1.0),
    math.e, 10.0, 2.0 ** -1022, 2.0 ** -1074, 1e-310, sys.float_info.max, 1e-300, 1e300,
    np.finfo(np.float32).tiny, np.finfo(np.float32).max, 2.0 ** -149,
])


def test_log_float64_within_2_ulp_of_libm_and_numpy():
    rng = np.random.default_rng(2)
    x = np.concatenate([
        np.exp(rng.uniform(-744.0, 709.0, 100_000)),
        rng.uniform(0.5, 2.0, 100_000),
        1.0 + rng.uniform(-1e-4, 1e-4, 50_000),  # near 1: the result is small, the error too
        np.linspace(SQRT2 / 2 - 1e-6, SQRT2 / 2 + 1e-6, 2001),  # the mantissa fold
        np.linspace(SQRT2 - 1e-6, SQRT2 + 1e-6, 2001),
        ((np.arange(1, 2047, dtype=np.int64) << 52)).view(np.float64),  # every power of 2
        np.arange(1, 2001, dtype=np.int64).view(np.float64),  # subnormals
        LOG_EDGES,
    ])
    ours = pm.log(x)
    assert ours.dtype == np.float64 and ours.shape == x.shape
    assert ulp_error(ours, libm_log(x)).max() <= 2.0
    assert ulp_error(ours, np.log(x)).max() <= 2.0


def test_log_exact_values():
    # log 2**k = k * ln2, from the exponent bits alone (subnormal k included); log 1 = 0 exactly.
    x = np.array([math.ldexp(1.0, k) for k in range(-1074, 1024)])
    expected = libm_log(x)
    assert ulp_error(pm.log(x), expected).max() <= 1.0
    assert pm.log(np.array([1.0]))[0] == 0.0


def test_log_outside_the_domain_gives_numpys_answers_and_signals():
    x = np.array([0.0, -0.0, -1.0, -np.inf, np.inf, np.nan, 1.0])
    with np.errstate(divide="ignore", invalid="ignore"):
        out = pm.log(x)
    assert out[0] == -np.inf and out[1] == -np.inf
    assert np.isnan(out[2]) and np.isnan(out[3]) and np.isnan(out[5])
    assert out[4] == np.inf and out[6] == 0.0
    with np.errstate(divide="raise"), pytest.raises(FloatingPointError):
        pm.log(np.array([1.0, 0.0]))
    with np.errstate(invalid="raise"), pytest.raises(FloatingPointError):
        pm.log(np.array([1.0, -2.0]))


def test_log_float32_rounds_the_float64_result():
    rng = np.random.default_rng(3)
    x = np.concatenate([
        np.exp(rng.uniform(-103.0, 88.0, 100_000)),
        rng.uniform(0.5, 2.0, 50_000),
        1.0 + rng.uniform(-1e-3, 1e-3, 20_000),
        LOG_EDGES[(LOG_EDGES > 1e-45) & (LOG_EDGES < 3e38)],
    ]).astype(np.float32)
    exact_fraction = check_float32(pm.log(x), libm_log(x))  # checks the dtype too
    assert exact_fraction > 0.999999


# ---------------------------------------------------------------------------------------------
# cos, power (Python floats)
# ---------------------------------------------------------------------------------------------

def trig_arguments():
    rng = np.random.default_rng(4)
    points = [k * math.pi / 4 for k in range(-8, 9)] + [k * math.pi / 2 for k in range(-200, 201)]
    near = [math.nextafter(p, math.inf) for p in points] + [math.nextafter(p, -math.inf)
                                                              for p in points]
    return (list(np.linspace(-2 * math.pi, 2 * math.pi, 20_001)) + list(rng.uniform(0, math.pi,
            5000)) + list(rng.uniform(-1000.0, 1000.0, 5000)) + list(rng.uniform(-pm.TRIG_MAX,
            pm.TRIG_MAX, 2000)) + points + near + [0.0, -0.0, 1e-300, -1e-20, 2.0 ** -27,
            math.pi, 2 * math.pi, pm.TRIG_MAX, -pm.TRIG_MAX])


def test_cos_within_2_ulp_of_libm():
    xs = trig_arguments()
    got = np.array([pm.cos(float(v)) for v in xs])
    assert all(isinstance(pm.cos(float(v)), float) for v in xs[:10])
    reference = np.array([math.cos(float(v)) for v in xs])
    assert ulp_error(got, reference).max() <= 2.0


def test_sin_cos_small_within_1_ulp_of_libm_up_to_45_degrees():
    angles = np.concatenate([np.linspace(-math.pi / 4, math.pi / 4, 20001), [0.0, -0.0, 1e-300]])
    sin, cos = pm.sin_cos_small(angles)
    for got, want in ((sin, [math.sin(a) for a in angles]), (cos, [math.cos(a) for a in angles])):
        want = np.array(want)
        assert np.all(np.abs(got - want) <= np.spacing(np.abs(want)))
    assert pm.sin_cos_small(np.array([0.0]))[0][0] == 0.0
    assert pm.sin_cos_small(np.array([0.0]))[1][0] == 1.0


@pytest.mark.parametrize("angle", [math.pi / 4 * (1 + 1e-15), -1.0, float("nan"), float("inf")])
def test_sin_cos_small_refuses_angles_beyond_45_degrees(angle):
    with pytest.raises(ValueError, match="at most pi/4"):
        pm.sin_cos_small(np.array([0.1, angle]))


def test_cos_special_values():
    assert pm.cos(0.0) == 1.0 and pm.cos(-0.0) == 1.0
    assert pm.cos(math.pi) == -1.0
    assert math.isnan(pm.cos(math.nan))
    for bad in (math.inf, -math.inf, 2 * pm.TRIG_MAX):
        with pytest.raises(ValueError):
            pm.cos(bad)


def test_power_within_1_ulp_of_math_pow():
    rng = np.random.default_rng(5)
    # Adam's bias corrections: beta**t for t up to 10**6 (and 0.5**t down into the subnormals).
    cases = [(b, t) for b in (0.9, 0.99, 0.999, 0.9999, 0.5, 1.0001) for t in
             list(range(0, 300)) + [1000, 1074, 4096, 65535, 10 ** 5, 999_999, 10 ** 6]]
    cases += [(1.5, t) for t in range(0, 1751)]  # up to just below overflow
    cases += [(float(b), int(t)) for b, t in
              zip(rng.uniform(0.9, 1.0, 3000), rng.integers(0, 2_000_000, 3000))]
    cases += [(float(b), int(t)) for b, t in
              zip(np.exp(rng.uniform(-10, 10, 3000)), rng.integers(0, 60, 3000))]
    cases += [(-1.1, 7), (-1.1, 8), (1e-310, 1), (3e-160, 2), (1e154, 2), (1.0000001, 7_000_000)]
    got = np.array([pm.power(b, t) for b, t in cases])
    reference = np.array([math.pow(b, t) for b, t in cases])
    assert ulp_error(got, reference).max() <= 1.0


def test_power_exact_cases():
    assert pm.power(3.0, 33) == float(3 ** 33)  # 5559060566555523 < 2**53: exact
    assert pm.power(10.0, 22) == 1e22
    assert pm.power(2.0, 1023) == 2.0 ** 1023
    assert pm.power(2.0, 1024) == math.inf
    assert pm.power(0.5, 1074) == 5e-324
    assert pm.power(0.5, 1076) == 0.0
    assert pm.power(-2.0, 3) == -8.0 and pm.power(-2.0, 4) == 16.0
    assert pm.power(0.9, 10 ** 7) == 0.0  # underflows, as math.pow does
    assert pm.power(math.nan, 0) == 1.0 and math.isnan(pm.power(math.nan, 3))
    assert pm.power(-0.0, 3) == 0.0 and math.copysign(1.0, pm.power(-0.0, 3)) == -1.0
    assert pm.power(-math.inf, 3) == -math.inf
    assert pm.power(0.999, np.int64(1000)) == pm.power(0.999, 1000)
    with pytest.raises(ValueError):
        pm.power(0.9, -1)
    with pytest.raises(TypeError):
        pm.power(0.9, 2.0)


# ---------------------------------------------------------------------------------------------
# standard_normal
# ---------------------------------------------------------------------------------------------

def test_standard_normal_statistics():
    n = 10 ** 6
    z = pm.standard_normal(np.random.default_rng(6), n)
    assert z.shape == (n,) and z.dtype == np.float64 and np.isfinite(z).all()
    # Standard errors: mean 1e-3, std 7.1e-4, the 3-sigma fraction 5.2e-5; tolerances ~5 of them.
    assert abs(z.mean()) < 5e-3
    assert abs(z.std() - 1.0) < 3.5e-3
    assert abs(np.mean(np.abs(z) > 3.0) - 0.0026998) < 2.6e-4
    # Kolmogorov-Smirnov distance to the normal CDF on a grid (critical value at 0.1%: 1.95e-3).
    grid = np.linspace(-4.0, 4.0, 161)
    empirical = np.searchsorted(np.sort(z), grid, side="right") / n
    normal = np.array([0.5 * (1.0 + math.erf(v / math.sqrt(2.0))) for v in grid])
    assert np.abs(empirical - normal).max() < 1.95e-3
    # The two halves of a pair (cos and sin of one angle) are uncorrelated.
    pairs = z.reshape(-1, 2)
    assert abs(np.corrcoef(pairs[:, 0], pairs[:, 1])[0, 1]) < 7e-3


def test_standard_normal_matches_box_muller_computed_with_numpy():
    u = np.random.default_rng(7).random((500, 2))
    r = np.sqrt(-2.0 * np.log(1.0 - u[:, 0]))
    expected = np.stack([r * np.cos(2 * np.pi * u[:, 1]), r * np.sin(2 * np.pi * u[:, 1])], 1)
    z = pm.standard_normal(np.random.default_rng(7), 1000)
    np.testing.assert_allclose(z, expected.ravel(), rtol=1e-13, atol=1e-14)


@pytest.mark.parametrize("size, count", [(0, 0), (1, 2), (5, 6), (6, 6), ((3, 4), 12),
                                         ((3, 3), 10), ((), 2), ((2, 0, 3), 0)])
def test_standard_normal_consumes_2_ceil_n_over_2_uniforms(size, count):
    rng = np.random.default_rng(8)
    z = pm.standard_normal(rng, size)
    assert z.shape == ((size,) if isinstance(size, int) else size)
    twin = np.random.default_rng(8)
    twin.random(count)
    assert rng.bit_generator.state == twin.bit_generator.state
    assert rng.random() == twin.random()


def test_standard_normal_is_deterministic_and_prefix_stable():
    a = pm.standard_normal(np.random.default_rng(9), (40, 25))
    b = pm.standard_normal(np.random.default_rng(9), (40, 25))
    assert a.tobytes() == b.tobytes()
    shorter = pm.standard_normal(np.random.default_rng(9), 37)
    assert shorter.tobytes() == a.ravel()[:37].tobytes()
    z32 = pm.standard_normal(np.random.default_rng(9), (40, 25), dtype=np.float32)
    assert z32.dtype == np.float32 and (z32 == a.astype(np.float32)).all()
    with pytest.raises(TypeError):
        pm.standard_normal(np.random.default_rng(9), 3, dtype=np.int32)


# ---------------------------------------------------------------------------------------------
# the same bits everywhere: pinned digests, and every NumPy dispatch level of this CPU
# ---------------------------------------------------------------------------------------------

DIGEST_CODE = textwrap.dedent('''
    import hashlib
    import json

    import numpy as np
    from numpy._core._multiarray_umath import __cpu_dispatch__, __cpu_features__

    from numpynet import portable_math as pm


    def sha(array):
        array = np.ascontiguousarray(array)
        return hashlib.sha256(array.astype(array.dtype.newbyteorder("<")).tobytes()).hexdigest()


    def digests():
        exp_grid = np.arange(-74_600, 71_001) / 100.0  # -746 .. 710, step 0.01
        log_grid = np.concatenate([
            np.arange(1, 200_001) / 1000.0,  # 0.001 .. 200
            (np.arange(1, 2047, dtype=np.int64) << 52).view(np.float64),  # the powers of 2
            np.arange(1, 1001, dtype=np.int64).view(np.float64),  # the smallest subnormals
        ])
        return {
            "exp64": sha(pm.exp(exp_grid)),
            "exp32": sha(pm.exp(exp_grid.astype(np.float32))),
            "log64": sha(pm.log(log_grid)),
            "log32": sha(pm.log(log_grid[:200_000].astype(np.float32))),
            "normal64": sha(pm.standard_normal(np.random.default_rng(1234), 1000)),
            "normal32": sha(pm.standard_normal(np.random.default_rng(1234), 1000, np.float32)),
        }


    def active_targets():
        return [t for t in __cpu_dispatch__ if __cpu_features__.get(t)]
''')

# Computed once (x86-64 with AVX-512, NumPy 2.4.6) and checked at every dispatch level there;
# any platform whose arithmetic gives other bits fails here.
PINNED = {
    "exp64": "f8f8911c5f56a345261b3c41036c086ff7fff1cd3150741186891548d9922b61",
    "exp32": "903e665fecc66bb123a688a44e27f0c4372d7f52f9c4622ce700246fa3012148",
    "log64": "ef715c279bf099c968507b2bcba49ea08155b6d3c447979d76f890adf0c74255",
    "log32": "0c4bb6af4f035b448f9444097be9c8f06ec2dfd0f3934291bd17c17bb25cd64d",
    "normal64": "da5353e5fe495e7508e0cad3432f131f77c4d03ff22843d2e30f7a931dcc82a6",
    "normal32": "4b0a79433cc598eb639dd152b4de207ca085062f2ed931bb9be1e368f913ec42",
}


def _digest_namespace():
    namespace = {}
    exec(DIGEST_CODE, namespace)
    return namespace


def test_known_answers():
    assert _digest_namespace()["digests"]() == PINNED


def _child_digests(disabled: str | None):
    """Digests and active dispatch targets from a fresh interpreter with
    NPY_DISABLE_CPU_FEATURES set to ``disabled`` (None: unset)."""
    env = {k: v for k, v in os.environ.items() if k != "NPY_DISABLE_CPU_FEATURES"}
    if disabled is not None:
        env["NPY_DISABLE_CPU_FEATURES"] = disabled
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(SRC), env.get("PYTHONPATH")]))
    code = DIGEST_CODE + "\nprint(json.dumps([digests(), active_targets()]))\n"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_same_bits_at_every_numpy_dispatch_level():
    # The conftest may have capped this process's level, so ask an unrestricted child which
    # dispatch targets this CPU runs (disabling one NumPy does not know or the CPU lacks, or a
    # baseline feature, can be an error at import).
    full, targets = _child_digests(None)
    assert full == PINNED
    if not targets:
        pytest.skip("NumPy runs only its baseline loops on this CPU: one level to compare")
    # Switch off the top target, then the top two, ... down to the baseline.
    for i in reversed(range(len(targets))):
        disabled = targets[i:]
        digests, active = _child_digests(",".join(disabled))
        assert not set(disabled) & set(active), f"{disabled} still active: {active}"
        assert digests == full, f"other bits with {disabled} disabled"


# ---------------------------------------------------------------------------------------------
# no libm and no NumPy transcendental in the module
# ---------------------------------------------------------------------------------------------

FORBIDDEN = ("exp", "exp2", "expm1", "log", "log2", "log10", "log1p", "sin", "cos", "tan",
             "arcsin", "arccos", "arctan", "arctan2", "sinh", "cosh", "tanh", "power",
             "float_power", "pow", "frexp", "ldexp", "hypot", "asin", "acos", "atan", "atan2",
             "erf", "gamma", "lgamma")


def code_text(source: str) -> str:
    """The module's tokens without comments and string literals (docstrings included)."""
    kept = []
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type in (tokenize.COMMENT, tokenize.STRING):
            continue
        kept.append(token.string)
    return " ".join(kept)


def forbidden_uses(source: str) -> list[str]:
    code = code_text(source)
    names = "|".join(FORBIDDEN)
    found = re.findall(rf"\b(?:np|numpy|math)\s*\.\s*(?:{names})\b", code)
    found += re.findall(rf"\bfrom\s+(?:numpy|math)\s+import\b[^\n]*?\b(?:{names})\b", source)
    found += re.findall(r"\*\s*\*", code)  # ** on floats goes to libm's pow
    found += re.findall(r"(?<![\w.])pow\s*\(", code)
    return found


def test_module_calls_no_libm_or_numpy_transcendental():
    assert forbidden_uses(MODULE.read_text(encoding="utf-8")) == []


@pytest.mark.parametrize("snippet", [
    "y = np.exp(x)", "y = numpy.log1p(x)", "y = math.cos(t)", "m, e = np.frexp(x)",
    "y = x ** 0.5", "y = pow(x, 3)", "from math import sin", "y = np . power(x, 2)",
])
def test_the_checker_finds_forbidden_calls(snippet):
    assert forbidden_uses(f'"""np.exp in a docstring is fine."""\n{snippet}\n') != []
    assert forbidden_uses('"""np.exp(x), math.cos, x ** 2"""\ny = x  # np.log here too\n') == []
