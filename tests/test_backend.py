"""The numeric backend pin: kernel class detection, the settings it makes, and its errors."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from helpers.project import PROJECT, dvc_environment
from conftest import TEST_NUMERICS
from numpynet.backend import EXACT, cpu_flags, finish_pinning, pin_backend, runnable_modes
from numpynet.errors import ConfigError

ZEN4 = "processor\t: 0\nflags\t\t: fpu sse2 avx2 fma avx512f avx512cd avx512bw avx512dq avx512vl\n"
HASWELL = "processor\t: 0\nflags\t\t: fpu sse2 avx avx2 fma bmi2\n"
OLD = "processor\t: 0\nflags\t\t: fpu sse2 sse4_2 avx\n"


@pytest.mark.parametrize(
    "cpuinfo, expected",
    [(ZEN4, ["avx2", "avx512", EXACT]), (HASWELL, ["avx2", EXACT]), (OLD, [EXACT]), ("", [EXACT]),
     # AVX-512 foundation alone (Xeon Phi) lacks the BW/DQ/VL the SkylakeX kernel uses.
     ("flags : avx2 fma avx512f avx512cd\n", ["avx2", EXACT])],
)
def test_the_modes_a_cpu_runs_from_its_flags(cpuinfo, expected):
    assert runnable_modes(cpuinfo) == expected
    assert "avx2" in cpu_flags(HASWELL)


def run_pinned(mode: str, code: str, **env: str) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter pinned to ``mode`` as the train stage pins it."""
    script = (f"import sys; sys.path.insert(0, {str(PROJECT / 'src')!r})\n"
              f"from numpynet.backend import pin_backend, finish_pinning\n"
              f"from numpynet.stage_entry import run_stage\n"
              f"run_stage(lambda: pin_backend({mode!r}))\n"
              f"import numpy\nrun_stage(finish_pinning)\n{code}")
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          env=dvc_environment(**env))


PROVENANCE = ("import json; from numpynet.backend import backend_provenance; "
              "print(json.dumps(backend_provenance()))")


@pytest.mark.skipif("avx2" not in runnable_modes(), reason="no AVX2 on this CPU")
def test_the_default_class_pins_the_kernel_numpy_dispatch_and_threads():
    # The user's settings do not survive the pin.
    result = run_pinned("avx2", PROVENANCE, OPENBLAS_NUM_THREADS="1", OPENBLAS_CORETYPE="Prescott",
                        NPY_DISABLE_CPU_FEATURES="")
    assert result.returncode == 0, result.stderr
    provenance = json.loads(result.stdout)
    assert provenance["numeric_mode"] == "avx2"
    assert provenance["blas_kernel"] == "Haswell"
    assert provenance["numpy_simd"] == "X86_V3"
    assert provenance["blas_threads"] == 2


def test_exact_mode_switches_to_exact_products_and_records_no_machine_detail():
    code = ("from numpynet.matmul import products_are_exact; print(products_are_exact()); "
            + PROVENANCE)
    result = run_pinned(EXACT, code, OPENBLAS_NUM_THREADS="3")
    assert result.returncode == 0, result.stderr
    exact, provenance = result.stdout.splitlines()
    assert exact == "True"
    # The BLAS, its kernel, threads and dispatch level change no bit in exact mode, so they are
    # not recorded: the record is the same bytes on every machine.
    assert set(json.loads(provenance)) == {"numeric_mode", "numpy"}


def test_openblas_threads_stop_spinning_whatever_the_user_set():
    # The optimizer's threads need the cores between matrix products; a user's own setting
    # (OpenBLAS's default spins for 2**28 cycles) must not survive the pin.
    result = run_pinned(EXACT, "import os; print(os.environ['OPENBLAS_THREAD_TIMEOUT'])",
                        OPENBLAS_THREAD_TIMEOUT="28")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "4"


@pytest.mark.hostile
def test_a_class_this_cpu_lacks_is_a_message_naming_a_mode_it_runs(monkeypatch):
    import numpynet.backend as backend

    monkeypatch.setattr(backend, "cpu_flags", lambda cpuinfo=None: frozenset({"sse2", "avx"}))
    # The check comes before the guard against a loaded NumPy, which this process has.
    with pytest.raises(ConfigError, match="numerics.mode: avx2 needs x86-64 with AVX2") as error:
        pin_backend("avx2")
    assert "numerics.mode: exact" in str(error.value)
    assert "dvc exp run -S numerics.mode=exact" in str(error.value)


def test_an_unknown_mode_is_a_programming_error():
    with pytest.raises(ValueError, match="unknown numeric mode 'sse9'"):
        pin_backend("sse9")


def test_pinning_after_numpy_is_loaded_is_a_programming_error():
    code = "import numpy; from numpynet.backend import pin_backend; pin_backend('exact')"
    result = subprocess.run([sys.executable, "-c", f"import sys; sys.path.insert(0, "
                             f"{str(PROJECT / 'src')!r}); {code}"], capture_output=True, text=True)
    assert result.returncode == 1 and "before numpy is imported" in result.stderr


@pytest.mark.hostile
@pytest.mark.skipif(TEST_NUMERICS != "avx2", reason="the suite computes in another mode")
def test_a_numpy_without_its_openblas_or_off_the_class_level_is_refused(monkeypatch):
    import numpynet.backend as backend

    monkeypatch.setattr(backend, "_openblas", lambda: None)  # conda's MKL, macOS's Accelerate
    with pytest.raises(ConfigError, match="needs the OpenBLAS that NumPy's wheels from PyPI"):
        finish_pinning()
    # A virtual machine hiding part of AVX2's level puts NumPy's loops on another one.
    monkeypatch.setattr(backend, "_numpy_level", lambda: "baseline")
    with pytest.raises(ConfigError, match="NumPy runs its loops at baseline here, not X86_V3"):
        finish_pinning()


def test_a_stage_shows_its_help_without_a_params_file(tmp_path):
    result = subprocess.run([sys.executable, str(PROJECT / "stages" / "train.py"), "--help"],
                            cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "--checkpoint" in result.stdout
