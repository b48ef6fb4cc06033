"""Pin the numeric backend so that the same inputs give the same bytes on every machine.

NumPy's BLAS (OpenBLAS) picks a matrix-multiply kernel by looking at the CPU, and splits the work
among as many threads as there are cores. Both change the order in which products are summed, so
two machines, or one machine with a different thread count, train slightly different models. NumPy
itself dispatches its element-wise loops (``exp``, ``log`` ...) by CPU feature as well. Rather than
trust that detection, every stage calls :func:`pin_backend` before NumPy is imported:

* the *kernel class* comes from the CPU's instruction set: ``avx512`` (AVX-512 F/CD/BW/DQ/VL, Intel
  Skylake-X and later, AMD Zen 4 and later) or ``avx2`` (AVX2 + FMA); on other CPUs, or where the
  CPU cannot be read, OpenBLAS's own choice stands and the class is ``auto``. Each class forces one
  OpenBLAS kernel (``OPENBLAS_CORETYPE``) and caps NumPy's own dispatch at one instruction-set
  level (``NPY_DISABLE_CPU_FEATURES``), so an Intel and an AMD machine of one class run the same
  code paths;
* OpenBLAS always runs :data:`BLAS_THREADS` threads, whatever the core count (the thread count
  changes the bits with some kernels): :func:`pin_blas_threads`, once NumPy is loaded; its idle
  threads stop spinning at once, so that the optimizer's threads get the cores between products.

``NUMPYNET_KERNEL_CLASS`` (``avx512``, ``avx2`` or ``auto``) overrides the detected class, e.g. to
compare kernels on one machine; forcing a class the CPU lacks crashes with an illegal instruction.
:func:`backend_provenance` says what was used; the train stage stores it beside the model.
"""

from __future__ import annotations

import ctypes
import glob
import os
import platform
import sys
from pathlib import Path

from numpynet.errors import ConfigError

KERNEL_CLASS_ENV = "NUMPYNET_KERNEL_CLASS"
BLAS_THREADS = 2
BLAS_SPIN_EXPONENT = 4  # OpenBLAS's smallest

# Per class: the OpenBLAS kernel to force, and NumPy's dispatch targets above the class's level.
_KERNELS = {
    "avx512": ("SkylakeX", "AVX512_ICL,AVX512_SPR"),
    "avx2": ("Haswell", "X86_V4,AVX512_ICL,AVX512_SPR"),
}
# NumPy's dispatch levels, lowest first.
_NUMPY_LEVELS = ("X86_V3", "X86_V4", "AVX512_ICL", "AVX512_SPR")
_AVX512_FLAGS = {"avx512f", "avx512cd", "avx512bw", "avx512dq", "avx512vl"}
_AVX2_FLAGS = {"avx2", "fma"}


def detect_kernel_class(cpuinfo: str | None = None) -> str:
    """The kernel class of this CPU: ``avx512``, ``avx2``, or ``auto`` when it cannot be told.

    ``cpuinfo`` is the text of ``/proc/cpuinfo``; it is read from there when not given.
    """
    if cpuinfo is None:
        if platform.machine().lower() not in ("x86_64", "amd64"):
            return "auto"
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text(encoding="ascii", errors="replace")
        except OSError:
            return "auto"
    flags: set[str] = set()
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "flags":
            flags = set(value.split())
            break
    if _AVX512_FLAGS <= flags:
        return "avx512"
    if _AVX2_FLAGS <= flags:
        return "avx2"
    return "auto"


def pin_backend() -> str:
    """Choose the kernel class and thread count for this process; return the class.

    Must run before NumPy is imported: OpenBLAS reads these settings once, when it loads.
    """
    if "numpy" in sys.modules:
        raise RuntimeError("pin_backend() must run before numpy is imported")
    kernel_class = os.environ.get(KERNEL_CLASS_ENV) or detect_kernel_class()
    if kernel_class not in (*_KERNELS, "auto"):
        raise ConfigError(
            f"{KERNEL_CLASS_ENV}={kernel_class!r}: expected one of {', '.join(_KERNELS)}, auto"
        )
    os.environ[KERNEL_CLASS_ENV] = kernel_class
    if kernel_class in _KERNELS:
        coretype, disabled_numpy_targets = _KERNELS[kernel_class]
        os.environ["OPENBLAS_CORETYPE"] = coretype
        os.environ["NPY_DISABLE_CPU_FEATURES"] = disabled_numpy_targets
    os.environ["OPENBLAS_NUM_THREADS"] = str(BLAS_THREADS)
    # OpenBLAS's helper threads spin for about 2**28 cycles (a tenth of a second) after each
    # product before they sleep, and the optimizer's threads run in exactly that gap: spinning
    # for 2**BLAS_SPIN_EXPONENT cycles gives them the cores (measured: the AdamW step of the
    # CIFAR-10 net went from 3.1 s to 1.6 s an epoch) and slows no product. Bits do not change.
    os.environ["OPENBLAS_THREAD_TIMEOUT"] = str(BLAS_SPIN_EXPONENT)
    return kernel_class


def _openblas() -> ctypes.CDLL | None:
    """NumPy's bundled OpenBLAS (the wheels' scipy-openblas), or None when it has another BLAS."""
    import numpy as np

    libs = Path(np.__file__).resolve().parent.parent / "numpy.libs"
    candidates = sorted(glob.glob(str(libs / "libscipy_openblas*")))
    return ctypes.CDLL(candidates[0]) if candidates else None


def _openblas_call(lib: ctypes.CDLL, name: str, restype, *args):
    """Call ``name`` under the 64-bit-integer wheels' symbol prefix/suffix or the plain one."""
    for symbol in (f"scipy_{name}64_", f"scipy_{name}", name):
        function = getattr(lib, symbol, None)
        if function is not None:
            function.restype = restype
            return function(*args)
    return None


def pin_blas_threads() -> None:
    """Make OpenBLAS run :data:`BLAS_THREADS` threads; call it once NumPy is imported.

    ``OPENBLAS_NUM_THREADS`` alone does not do it on a machine with fewer cores: OpenBLAS caps
    the variable at the core count, but not this call.
    """
    lib = _openblas()
    if lib is not None:
        _openblas_call(lib, "openblas_set_num_threads", None, ctypes.c_int(BLAS_THREADS))


def backend_provenance() -> dict:
    """What computes this process's numbers: kernel class, BLAS kernel and threads, versions."""
    import numpy as np

    from numpy._core._multiarray_umath import __cpu_features__

    blas = np.__config__.CONFIG["Build Dependencies"]["blas"]
    provenance = {
        "kernel_class": os.environ.get(KERNEL_CLASS_ENV, "unpinned"),
        "numpy": np.__version__,
        "blas": f"{blas.get('name')} {blas.get('version')}",
        "numpy_simd": ([t for t in _NUMPY_LEVELS if __cpu_features__.get(t)] or ["baseline"])[-1],
    }
    lib = _openblas()
    if lib is not None:
        core = _openblas_call(lib, "openblas_get_corename", ctypes.c_char_p)
        threads = _openblas_call(lib, "openblas_get_num_threads", ctypes.c_int)
        provenance["blas_kernel"] = core.decode() if core else "unknown"
        provenance["blas_threads"] = threads
    return provenance
