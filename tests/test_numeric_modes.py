"""The numeric modes keep their promises, proven by the bytes of a short run.

* Exact mode: one set of bytes under every OpenBLAS kernel this CPU executes, 1 to 4 BLAS threads,
  and NumPy's dispatch at its baseline or uncapped.
* A kernel class: one set of bytes whatever kernel, threads or dispatch the environment asks for.
* Known answers: the sha256 of the short run's weights and metrics in each mode, pinned here, so a
  machine (or a NumPy) that computes other bits fails loudly; README, "The same bytes on every
  machine", says how to report it.
* The numeric tests of the suite pass in every mode this CPU runs, not only in the one pytest
  runs in (tests/conftest.py): a test that holds in one class only cannot land.
"""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
import tokenize

import numpy as np
import pytest

from conftest import TEST_NUMERICS
from helpers.project import PROJECT
from numpynet.backend import EXACT, KERNEL_CLASSES, cpu_flags, runnable_modes
from numpynet.evaluation import predict_logits
from numpynet.matmul import exact_products
from numpynet.nn import MLPConfig, build_mlp

# OpenBLAS kernels of NumPy's x86-64 wheels, each with the CPU flags it executes with.
OPENBLAS_KERNELS = {
    "Prescott": {"pni"},  # SSE3, as /proc/cpuinfo calls it
    "Nehalem": {"sse4_2"},
    "Sandybridge": {"avx"},
    "Haswell": {"avx2", "fma"},
    "Zen": {"avx2", "fma"},
    "SkylakeX": {"avx512f", "avx512cd", "avx512bw", "avx512dq", "avx512vl"},
    "Cooperlake": {"avx512f", "avx512bw", "avx512vl", "avx512_bf16"},
}
# NumPy's dispatch targets above its x86-64 baseline: all off is the baseline.
NUMPY_BASELINE = "X86_V3,X86_V4,AVX512_ICL,AVX512_SPR"

# sha256 of tests/helpers/short_run.py's weights and metrics, per mode. A change of the library's
# numerics changes them: rerun the short run in each mode and pin the new digests here.
KNOWN_ANSWERS = {
    "avx2": {"weights": "9df9776e69f0dadfcb21f1a193c67de334b7bea276509a074f498e0a870dded7",
             "metrics": "d73aced95f05d09b2589bb6839640c847503f25d702c96780315aa6ca7c763ae"},
    "avx512": {"weights": "6349ea3ba90f45dd8b9008991eb29d3a602466ab2bce109409238d1e8a597e95",
               "metrics": "1daf16a2014927321404d0f437b3d8dfa8afb358ada2b09922a97413ef86c681"},
    EXACT: {"weights": "609e5a99def78ebb9eaf5dd9e93974e8cf2e7fc3a1f2ad07bab410893d47ca4c",
            "metrics": "3417d32c003179db8b9d1911869145c5771aa36936648ab54081a8280277ed04"},
}


def short_run(mode: str, **env: str) -> dict:
    """tests/helpers/short_run.py in ``mode``, in a fresh interpreter with ``env`` on top of a
    neutral environment (no kernel, thread or dispatch setting of this process's)."""
    base = {k: v for k, v in os.environ.items()
            if not k.startswith(("OPENBLAS_", "NPY_", "OMP_", "NUMPYNET_"))}
    result = subprocess.run(
        [sys.executable, str(PROJECT / "tests" / "helpers" / "short_run.py"), mode],
        capture_output=True, text=True, env={**base, **env}, timeout=300,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def environments() -> list[dict[str, str]]:
    """Every OpenBLAS kernel this CPU executes, with 1 to 4 threads and NumPy's dispatch at its
    baseline or uncapped, in turn; and each thread count at least once."""
    flags = cpu_flags()
    kernels = [name for name, needs in OPENBLAS_KERNELS.items() if needs <= flags] or [None]
    settings = []
    for index in range(max(len(kernels), 4)):
        env = {"OPENBLAS_NUM_THREADS": str(index % 4 + 1)}
        kernel = kernels[index % len(kernels)]
        if kernel is not None:
            env["OPENBLAS_CORETYPE"] = kernel
        if index % 2:
            env["NPY_DISABLE_CPU_FEATURES"] = NUMPY_BASELINE
        settings.append(env)
    return settings


def check_known_answer(mode: str, digests: dict) -> None:
    expected = KNOWN_ANSWERS[mode]
    got = {key: digests[key] for key in expected}
    assert got == expected, (
        f"this machine computes other bits in numeric mode {mode} than the reference machines: "
        f"{got} instead of {expected}; please report it with the output of `numpynet info` "
        f"and `python -c 'import numpy; numpy.show_config(); numpy.show_runtime()'`"
    )


def test_exact_mode_gives_one_set_of_bytes_under_every_kernel_thread_count_and_dispatch():
    runs = [short_run(EXACT, **env) for env in environments()]
    assert len({(run["weights"], run["metrics"]) for run in runs}) == 1, runs
    # Whitening makes its bands harder to see than they are: well above chance (0.25) is enough.
    assert runs[0]["accuracy"] > 0.7, "the short run learns its classes"
    check_known_answer(EXACT, runs[0])


@pytest.mark.parametrize("mode", list(KERNEL_CLASSES))
def test_a_kernel_class_gives_one_set_of_bytes_whatever_the_environment_asks(mode):
    if mode not in runnable_modes():
        pytest.skip(f"this CPU cannot run the {mode} class")
    runs = [short_run(mode, **env) for env in [{}, *environments()[:3]]]
    assert len({(run["weights"], run["metrics"]) for run in runs}) == 1, runs
    kernel = KERNEL_CLASSES[mode].openblas_coretype
    assert {(run["provenance"]["blas_kernel"], run["provenance"]["blas_threads"])
            for run in runs} == {(kernel, 2)}
    assert runs[0]["accuracy"] > 0.7
    check_known_answer(mode, runs[0])


def test_exact_products_give_the_same_bits_in_batches_of_any_size():
    rng = np.random.default_rng(0)
    model = build_mlp(MLPConfig(64, (96, 48), 10, 0.0, normalization="batch"), rng)
    images = rng.standard_normal((301, 8, 8, 1)).astype(np.float32)
    with exact_products():
        whole = predict_logits(model, images, batch_size=1000)
        assert np.array_equal(predict_logits(model, images, batch_size=7), whole)
        assert np.array_equal(predict_logits(model, images[150:], batch_size=64), whole[150:])


# The tests whose outcome depends on computed numbers, by path below tests/; the rest of the suite
# handles files, messages and DVC, the same in every mode.
NUMERIC_TEST_FILES = (
    "test_matmul.py", "test_portable_math.py", "nn/test_gradients.py", "nn/test_loss.py",
    "nn/test_model.py", "nn/test_optim.py", "nn/test_schedule.py", "training/test_loop.py",
    "training/test_whitening.py", "training/test_augment.py", "test_evaluation.py",
    "training/test_recipe.py", "test_predict.py", "training/test_checkpoints.py",
)


def test_the_numeric_test_files_exist():
    # A file moved or renamed must be renamed here too, or the rerun below would miss it.
    missing = [name for name in NUMERIC_TEST_FILES if not (PROJECT / "tests" / name).is_file()]
    assert not missing, f"NUMERIC_TEST_FILES names files that do not exist: {missing}"


@pytest.mark.slow
@pytest.mark.parametrize("mode", [m for m in runnable_modes() if m != TEST_NUMERICS])
def test_the_numeric_tests_pass_in_every_other_mode_this_cpu_runs(mode):
    files = [str(PROJECT / "tests" / name) for name in NUMERIC_TEST_FILES]
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", "-m", "not slow",
         *files],
        cwd=PROJECT, capture_output=True, text=True, timeout=900,
        env={**os.environ, "NUMPYNET_TEST_NUMERICS": mode},
    )
    assert result.returncode == 0, f"in numeric mode {mode}:\n{result.stdout[-6000:]}"


# What would compute other bits on another machine, outside the two modules made to avoid it:
# NumPy's SIMD transcendentals and the platform's libm, einsum's fused loops, LAPACK, the BLAS
# outside numpynet.matmul, and NumPy's normal draws (which call libm in their tails).
PLATFORM_DEPENDENT = (
    r"\b(?:np|numpy)\s*\.\s*(?:exp|exp2|expm1|log|log2|log10|log1p|sin|cos|tan|tanh|sinh|cosh|"
    r"arctan|arctan2|power|float_power|einsum|dot|vdot|inner|matmul|tensordot|linalg)\b",
    r"\bmath\s*\.\s*(?:exp|expm1|log|log1p|log2|log10|sin|cos|tan|tanh|pow|erf|gamma)\b",
    r"\.\s*(?:standard_normal|normal|lognormal|exponential|gamma|beta)\s*\(",
)
EXEMPT = {"portable_math.py", "matmul.py"}


def platform_dependent_uses(source: str) -> list[str]:
    """Calls in ``source``'s code (not its strings or comments) that may compute other bits on
    another machine, and every ``@`` used as matrix product."""
    tokens = [t for t in tokenize.generate_tokens(io.StringIO(source).readline)
              if t.type not in (tokenize.COMMENT, tokenize.STRING, tokenize.NL)]
    code = " ".join(t.string for t in tokens)
    found = [match for pattern in PLATFORM_DEPENDENT for match in re.findall(pattern, code)]
    # A decorator's @ starts a line; a product's follows an operand.
    found += [f"@ on line {t.start[0]}" for before, t in zip(tokens, tokens[1:])
              if t.string == "@" and (before.type in (tokenize.NAME, tokenize.NUMBER)
                                      or before.string in (")", "]"))]
    return found


def test_no_module_of_train_or_evaluate_computes_with_a_platform_dependent_function():
    files = [path for path in (PROJECT / "src" / "numpynet").rglob("*.py")
             if path.name not in EXEMPT]
    files += [PROJECT / "stages" / name for name in ("train.py", "evaluate.py", "_dvclive_log.py")]
    uses = {str(path.relative_to(PROJECT)): platform_dependent_uses(path.read_text("utf-8"))
            for path in files}
    assert {path: found for path, found in uses.items() if found} == {}


@pytest.mark.parametrize("snippet", ["p = np.exp(x)", "v = np.einsum('ij,ij->j', a, b)",
                                     "w = np.linalg.eigh(c)", "y = a @ b", "y = (a) @ b[0]",
                                     "z = rng.standard_normal(3)", "c = math.cos(t)",
                                     "y = np.dot(a, b)"])
def test_the_checker_finds_each_kind(snippet):
    assert platform_dependent_uses(f'"""np.exp(x) @ y in a docstring."""\n{snippet}\n')
    assert platform_dependent_uses("@dataclass\nclass A:\n    x = 1  # np.exp\n") == []
