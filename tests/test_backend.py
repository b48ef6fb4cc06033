"""The numeric backend pin: kernel class detection, the settings it makes, and its errors."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from helpers.project import PROJECT, dvc_environment
from numpynet.backend import detect_kernel_class

ZEN4 = "processor\t: 0\nflags\t\t: fpu sse2 avx2 fma avx512f avx512cd avx512bw avx512dq avx512vl\n"
HASWELL = "processor\t: 0\nflags\t\t: fpu sse2 avx avx2 fma bmi2\n"
OLD = "processor\t: 0\nflags\t\t: fpu sse2 sse4_2 avx\n"


@pytest.mark.parametrize(
    "cpuinfo, expected",
    [(ZEN4, "avx512"), (HASWELL, "avx2"), (OLD, "auto"), ("", "auto"),
     # AVX-512 foundation alone (Xeon Phi) lacks the BW/DQ/VL the SkylakeX kernel uses.
     ("flags : avx2 fma avx512f avx512cd\n", "avx2")],
)
def test_kernel_class_from_cpu_flags(cpuinfo, expected):
    assert detect_kernel_class(cpuinfo) == expected


def run_pinned(code: str, **env: str) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter after the stages' bootstrap."""
    script = f"import sys; sys.path.insert(0, {str(PROJECT / 'stages')!r}); import _bootstrap\n{code}"
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                           env=dvc_environment(**env))


@pytest.mark.skipif(detect_kernel_class() == "auto", reason="no x86-64 kernel class here")
def test_bootstrap_pins_the_kernel_numpy_dispatch_and_threads():
    code = ("import json; from numpynet.backend import backend_provenance; "
            "print(json.dumps(backend_provenance()))")
    # avx2 runs on any CPU with a class; the user's thread setting does not survive the pin.
    result = run_pinned(code, NUMPYNET_KERNEL_CLASS="avx2", OPENBLAS_NUM_THREADS="1")
    assert result.returncode == 0, result.stderr
    provenance = json.loads(result.stdout)
    assert provenance["kernel_class"] == "avx2"
    assert provenance["blas_kernel"] == "Haswell"
    assert provenance["numpy_simd"] == "X86_V3"
    assert provenance["blas_threads"] == 2


def test_openblas_threads_stop_spinning_whatever_the_user_set():
    # The optimizer's threads need the cores between matrix products; a user's own setting
    # (OpenBLAS's default spins for 2**28 cycles) must not survive the pin.
    code = "import os; print(os.environ['OPENBLAS_THREAD_TIMEOUT'])"
    result = run_pinned(code, OPENBLAS_THREAD_TIMEOUT="28")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "4"


def test_an_unknown_kernel_class_is_a_message_not_a_traceback():
    result = run_pinned("print('ran')", NUMPYNET_KERNEL_CLASS="sse9")
    assert result.returncode == 2
    assert "NUMPYNET_KERNEL_CLASS='sse9'" in result.stderr and "avx512" in result.stderr
    assert "Traceback" not in result.stderr and "ran" not in result.stdout


def test_pinning_after_numpy_is_loaded_is_a_programming_error():
    code = "import numpy; from numpynet.backend import pin_backend; pin_backend()"
    result = run_pinned(code)
    assert result.returncode == 1 and "before numpy is imported" in result.stderr
