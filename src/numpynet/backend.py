"""Pin the numeric backend so that the same inputs give the same bytes on every machine of a mode.

NumPy's BLAS (OpenBLAS) picks a matrix-multiply kernel by looking at the CPU, and splits the work
among as many threads as there are cores. Both change the order in which products are summed, so
two machines, or one machine with another thread count, train slightly different models. NumPy
dispatches its own element-wise loops by CPU feature as well. So the train and evaluate stages
compute in one of three *numeric modes*, chosen by ``numerics.mode`` in ``params.yaml`` (a DVC
param of exactly those stages) and set by :func:`pin_backend` before NumPy is imported:

* ``avx2`` (the default): every x86-64 CPU with AVX2 and FMA (Intel since 2013, AMD since 2015,
  AVX-512 machines included) runs OpenBLAS's Haswell kernel on :data:`BLAS_THREADS` threads, with
  NumPy's own loops capped at the same level (X86_V3). They all compute the same bits.
* ``avx512``: the SkylakeX kernel and NumPy's AVX-512 loops, for CPUs with AVX-512 (Intel
  Skylake-X and later, AMD Zen 4 and later): faster there, and other bits than ``avx2``.
* ``exact``: any CPU, any BLAS, any thread count. Matrix products are computed exactly on
  integers (see :mod:`numpynet.matmul`), so neither the kernel nor the threads change a bit;
  OpenBLAS keeps its own choice of both, so every core works.

Elementary functions never depend on the mode: :mod:`numpynet.portable_math` computes them the
same way everywhere. :func:`backend_provenance` says what computed a process's numbers; the train
stage stores it beside the model.
"""

from __future__ import annotations

import ctypes
import glob
import os
import platform
import sys
from dataclasses import dataclass
from pathlib import Path

from numpynet.errors import ConfigError

BLAS_THREADS = 2
BLAS_SPIN_EXPONENT = 4  # OpenBLAS's smallest
EXACT = "exact"


@dataclass(frozen=True)
class KernelClass:
    """One class of x86-64 CPUs that compute the same bits: an OpenBLAS kernel forced on all of
    them, NumPy's dispatch targets above the class's level switched off, the CPU features needed
    (as Linux's /proc/cpuinfo and as NumPy name them)."""

    openblas_coretype: str
    numpy_disabled: str
    numpy_level: str
    cpu_flags: frozenset[str]
    numpy_features: tuple[str, ...]
    cpus: str


KERNEL_CLASSES = {
    "avx2": KernelClass(
        "Haswell", "X86_V4,AVX512_ICL,AVX512_SPR", "X86_V3", frozenset({"avx2", "fma"}),
        ("AVX2", "FMA3"), "x86-64 with AVX2 and FMA (Intel since 2013, AMD since 2015)",
    ),
    "avx512": KernelClass(
        "SkylakeX", "AVX512_ICL,AVX512_SPR", "X86_V4",
        frozenset({"avx2", "fma", "avx512f", "avx512cd", "avx512bw", "avx512dq", "avx512vl"}),
        ("AVX2", "FMA3", "AVX512F", "AVX512CD", "AVX512BW", "AVX512DQ", "AVX512VL"),
        "x86-64 with AVX-512 F/CD/BW/DQ/VL (Intel Skylake-X and later, AMD Zen 4 and later)",
    ),
}
NUMERIC_MODES = (*KERNEL_CLASSES, EXACT)
# NumPy's dispatch levels, lowest first.
_NUMPY_LEVELS = ("X86_V3", "X86_V4", "AVX512_ICL", "AVX512_SPR")

_pinned_mode: str | None = None


def cpu_flags(cpuinfo: str | None = None) -> frozenset[str] | None:
    """The instruction-set flags of this CPU: empty where it is no x86-64, None where it is one
    but they cannot be read before NumPy loads (no ``/proc/cpuinfo``: macOS, Windows).

    ``cpuinfo`` is the text of ``/proc/cpuinfo``; it is read from there when not given.
    """
    if cpuinfo is None:
        if platform.machine().lower() not in ("x86_64", "amd64"):
            return frozenset()
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text(encoding="ascii", errors="replace")
        except OSError:
            return None
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "flags":
            return frozenset(value.split())
    return None


def runnable_modes(cpuinfo: str | None = None) -> list[str]:
    """The numeric modes this CPU is known to compute, ``exact`` last (it runs everywhere)."""
    flags = cpu_flags(cpuinfo) or frozenset()
    return [name for name, kind in KERNEL_CLASSES.items() if kind.cpu_flags <= flags] + [EXACT]


def _cannot_run(mode: str, kind: KernelClass, detail: str) -> ConfigError:
    runs = runnable_modes()[0]
    return ConfigError(
        f"numerics.mode: {mode} needs {kind.cpus}, and {detail}; set numerics.mode: {runs} in "
        f"params.yaml (dvc exp run -S numerics.mode={runs}), knowing that its bytes differ from "
        f"a {mode} run's"
    )


def pin_backend(mode: str) -> None:
    """Set this process up to compute in numeric ``mode`` (one of :data:`NUMERIC_MODES`).

    Must run before NumPy is imported: OpenBLAS and NumPy read these settings once, when they
    load. A kernel class this CPU cannot run is a :class:`ConfigError` that says which mode can.
    """
    global _pinned_mode
    if mode not in NUMERIC_MODES:
        raise ValueError(f"unknown numeric mode {mode!r}; expected one of {NUMERIC_MODES}")
    kind = KERNEL_CLASSES.get(mode)
    flags = cpu_flags()
    # Flags that cannot be read yet are checked through NumPy by finish_pinning().
    if kind is not None and flags is not None and not kind.cpu_flags <= flags:
        raise _cannot_run(mode, kind, f"this CPU ({platform.machine() or 'unknown'}) is not one")
    if "numpy" in sys.modules:
        raise RuntimeError("pin_backend() must run before numpy is imported")
    if kind is not None:
        os.environ["OPENBLAS_CORETYPE"] = kind.openblas_coretype
        os.environ["NPY_DISABLE_CPU_FEATURES"] = kind.numpy_disabled
        os.environ["OPENBLAS_NUM_THREADS"] = str(BLAS_THREADS)
    # OpenBLAS's helper threads spin for about 2**28 cycles (a tenth of a second) after each
    # product before they sleep, and the optimizer's threads run in exactly that gap: spinning
    # for 2**BLAS_SPIN_EXPONENT cycles gives them the cores (measured: the AdamW step of the
    # CIFAR-10 net went from 3.1 s to 1.6 s an epoch) and slows no product. Bits do not change.
    os.environ["OPENBLAS_THREAD_TIMEOUT"] = str(BLAS_SPIN_EXPONENT)
    _pinned_mode = mode


def pinned_mode() -> str | None:
    """The numeric mode :func:`pin_backend` set in this process, or None."""
    return _pinned_mode


def finish_pinning() -> None:
    """Once NumPy is imported, for a kernel class: check that the CPU has the class's features
    and that NumPy's loops and OpenBLAS's kernel run at its level, then fix the thread count.
    (In exact mode, :mod:`numpynet.matmul` computes exact products.)"""
    mode = _pinned_mode
    kind = KERNEL_CLASSES.get(mode)
    if kind is None:
        return
    import numpy as np
    from numpy._core._multiarray_umath import __cpu_features__

    missing = [name for name in kind.numpy_features if not __cpu_features__.get(name)]
    if missing:
        raise _cannot_run(mode, kind, f"this CPU lacks {', '.join(missing)}")
    level = _numpy_level()
    if level != kind.numpy_level:
        # A virtual machine may hide part of a level (MOVBE, F16C ...): NumPy's loops then run
        # at another level, and compute other bits.
        raise _cannot_run(mode, kind, f"NumPy runs its loops at {level} here, not {kind.numpy_level}")
    lib = _openblas()
    core = _openblas_call(lib, "openblas_get_corename", ctypes.c_char_p) if lib else None
    if core is None or core.decode().lower() != kind.openblas_coretype.lower():
        blas = np.__config__.CONFIG["Build Dependencies"]["blas"]
        raise ConfigError(
            f"numerics.mode: {mode} needs the OpenBLAS that NumPy's wheels from PyPI carry "
            f"(running its {kind.openblas_coretype} kernel), but this NumPy computes with "
            f"{blas.get('name')} {blas.get('version')}"
            f"{f' ({core.decode()} kernel)' if core else ''}; install NumPy from PyPI "
            f"(pip install -r requirements.lock) or set numerics.mode: exact"
        )
    # OPENBLAS_NUM_THREADS alone does not do it on a machine with fewer cores: OpenBLAS caps
    # the variable at the core count, but not this call.
    _openblas_call(lib, "openblas_set_num_threads", None, ctypes.c_int(BLAS_THREADS))


def _numpy_level() -> str:
    """The highest of NumPy's x86 dispatch levels its loops run at in this process."""
    from numpy._core._multiarray_umath import __cpu_features__

    return ([t for t in _NUMPY_LEVELS if __cpu_features__.get(t)] or ["baseline"])[-1]


def _openblas() -> ctypes.CDLL | None:
    """NumPy's bundled OpenBLAS (the wheels' scipy-openblas), or None when it has another BLAS."""
    import numpy as np

    package = Path(np.__file__).resolve().parent
    # Linux and Windows wheels keep it beside the package, macOS wheels inside it.
    candidates = sorted(glob.glob(str(package.parent / "numpy.libs" / "*scipy_openblas*")))
    candidates += sorted(glob.glob(str(package / ".dylibs" / "*scipy_openblas*")))
    return ctypes.CDLL(candidates[0]) if candidates else None


def _openblas_call(lib: ctypes.CDLL, name: str, restype, *args):
    """Call ``name`` under the 64-bit-integer wheels' symbol prefix/suffix or the plain one."""
    for symbol in (f"scipy_{name}64_", f"scipy_{name}", name):
        function = getattr(lib, symbol, None)
        if function is not None:
            function.restype = restype
            return function(*args)
    return None


def backend_provenance() -> dict:
    """What computes this process's numbers: the numeric mode and the versions; in a kernel class
    also the BLAS kernel, its threads and NumPy's dispatch level.

    Exact mode leaves out what differs between machines and changes no bit (the BLAS, its kernel
    and threads), so the record, an output of the train stage, is the same bytes everywhere too.
    """
    import numpy as np

    blas = np.__config__.CONFIG["Build Dependencies"]["blas"]
    provenance = {"numeric_mode": _pinned_mode or "unpinned", "numpy": np.__version__}
    if _pinned_mode == EXACT:
        return provenance
    provenance["blas"] = f"{blas.get('name')} {blas.get('version')}"
    provenance["numpy_simd"] = _numpy_level()
    lib = _openblas()
    if lib is not None:
        core = _openblas_call(lib, "openblas_get_corename", ctypes.c_char_p)
        threads = _openblas_call(lib, "openblas_get_num_threads", ctypes.c_int)
        provenance["blas_kernel"] = core.decode() if core else "unknown"
        provenance["blas_threads"] = threads
    return provenance
