"""The certified fast path of the exact sum on the CPU: compensated summation in C
(certified_sum.c), and a per-element proof that its rounding is the correctly rounded exact sum.

For each element (a column of the (P, n) contributions, widened exactly to float64), with
TwoSum (Knuth's error-free addition, a + b = fl(a + b) + err exactly; Higham, *Accuracy and
Stability of Numerical Algorithms*, 2nd ed., 2002, section 4.3):

1. Along the column, s_k = fl(s_(k-1) + x_k) with error q_k, so sum(x) = s_P + sum(q) exactly.
   The q_k are added with TwoSum too: c = fl(sum q) with errors r_k, sum(q) = c + sum(r); the
   r_k are added plainly into c2, and b = fl(sum |r_k|), A = fl(sum |x_k|).
   Contributions of at most 24 bits (float32, and float16 and bfloat16 widened to it) take one
   level: their float64 partial sums are nearly always exact, so the q_k are added plainly
   into c, b = fl(sum |q_k|), c2 = 0, and "r" below reads "q". When b == 0 there, s_P is the
   exact sum (t = 0) and rounding it once to the target is the answer, ties included.
2. v = fl(s_P + c) with its error t, so sum(x) = v + t + sum(r).
3. Exact case, b == 0: every r_k is 0 (a float sum of non-negative terms is 0 only when all
   are), so sum(x) = v + t exactly and v, fl(sum(x)), is its correctly rounded float64 value,
   ties included.
4. Otherwise a certificate: |sum(r) - c2| <= gamma_(P-1) * sum|r_k| (the plain-summation bound,
   Higham (4.4), gamma_n = n u / (1 - n u), u = 2^-53), which 2 P u * b exceeds. R = v rounded
   once to p bits (ties to even); the exact sum lies within e = |v - R| + |t| + |c2| + 2 P u b
   of R, and R is certified when 2 e < the smaller of R's two gaps to its neighbours, compared
   against gap * (1 - 2^-40) to cover the three roundings in computing e (and an absolute
   2^-1075 if 2 P u b underflows, far below the slack because gaps below 2^-900 are refused).
   A tie is never certified by this test.

Not certified (left to the exact digits path): any NaN or infinity among the inputs, A >=
2^(max_exponent - 2) (then no partial sum, TwoSum intermediate or result can overflow), and,
in the certificate case, gaps below 2^-900 (float64 results near the subnormal range). A sum
whose contributions are all zeros is s_P, whose IEEE sign is -0 exactly when every
contribution is -0; any other zero sum is +0, and so is v in round to nearest.

No fast-math and no FMA contraction (-ffp-contract=off): reassociation would turn TwoSum's
errors into zeros, and a fused multiply-add would round the narrow formats' scaling differently.

Why C rather than numba (which ran this kernel before): importing numba and loading its cached
compilation cost 0.5-0.7 s of CPU and 100 MB per process, paid by every rank of every job that
sums deterministically: at 72 ranks on 2 cores, 20-25 s per launch. The C file is compiled once
per machine and CPU (runtime/native_build.py, -O3 -march=native, as numba compiled for the host
CPU) and loaded with ctypes in about a millisecond. Without a C compiler the kernel is
unavailable and `exact_sum` takes its NumPy path, which gives the same bits, slower.
"""

from __future__ import annotations

import ctypes
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import NativeBuildError
from ..runtime import native_build
from .formats import FloatFormat

SOURCE = Path(__file__).with_name("certified_sum.c")
ABI = 1
"""TESSERA_SUM_ABI of certified_sum.c that this module calls."""
CC_ENV = "TESSERA_CC"
"""The C compiler to build the kernel with (default: $CC, else cc, gcc or clang on PATH)."""
DISABLE_ENV = "TESSERA_EXACT_KERNEL"
"""Set to 0 to take the NumPy path of the exact sum everywhere (the reference, slower)."""
TINY_GAP = 2.0 ** -900
SLACK = 1.0 - 2.0 ** -40
"""The certificate's constants, as certified_sum.c writes them (gpu_kernel.py passes these)."""
FLAGS = (["-O3", "-march=native", "-mprefer-vector-width=512", "-ffp-contract=off", "-fno-fast-math",
          "-fno-trapping-math"],
         ["-O3", "-march=native", "-ffp-contract=off", "-fno-fast-math", "-fno-trapping-math"],
         ["-O3", "-ffp-contract=off", "-fno-fast-math", "-fno-trapping-math"])
"""Tried in order: -march=native with 512-bit vectors preferred (GCC and clang on x86; where
the CPU has AVX-512, GCC otherwise keeps to 256-bit vectors, and the kernel ran 1.4x slower:
docs/performance.md; lane width changes no value, since every column is summed in its own
lane in row order), -march=native alone where the compiler has no such option, else the
baseline ISA."""
FORMATS = ("float64", "float32", "float16", "bfloat16")
"""The formats certified_sum.c has a kernel for, by dtype name (tessera_certified_sum_<name>)."""

_dll: ctypes.CDLL | None = None
_reason: str | None = None


def available() -> bool:
    """Return whether the compiled kernel can run here, building it on first use (once per
    machine; see `reason()` when it cannot). Local: no communication."""
    global _dll, _reason
    if _dll is None and _reason is None:
        try:
            _dll = _load(_build())
        except (OSError, NativeBuildError) as exc:
            _reason = str(exc)
    return _dll is not None


def reason() -> str:
    """Why `available()` is False ("" when it is not)."""
    return _reason or ""


def _compiler() -> str:
    for given in (os.environ.get(CC_ENV), os.environ.get("CC")):
        if given:
            return given
    for name in ("cc", "gcc", "clang"):
        found = shutil.which(name)
        if found:
            return found
    raise NativeBuildError(f"no C compiler (cc, gcc or clang on PATH, ${CC_ENV} or $CC)")


def _build() -> Path:
    if os.environ.get(DISABLE_ENV, "1") == "0":
        raise NativeBuildError(f"disabled by {DISABLE_ENV}=0")
    return native_build.build(SOURCE, stem="certified_sum", compiler=_compiler(), flag_sets=FLAGS,
                              depends_on=[native_build.cpu_identity()])


def _load(path: Path) -> ctypes.CDLL:
    dll = ctypes.CDLL(str(path))
    if dll.tessera_sum_abi() != ABI:
        raise NativeBuildError(f"{path} has sum ABI {dll.tessera_sum_abi()}, this module calls {ABI}")
    p, i, lng, d = ctypes.c_void_p, ctypes.c_int, ctypes.c_long, ctypes.c_double
    for name in FORMATS:
        function = getattr(dll, f"tessera_certified_sum_{name}")
        function.argtypes = [p, lng, lng, p, p, i, i, d, d, d]
        function.restype = lng
    dll.tessera_float16_bits.argtypes = [p, lng, p]
    dll.tessera_float16_bits.restype = None
    return dll


def narrow_float16(values: Any) -> np.ndarray:
    """Return float32 `values` that hold float16 values (or inf, NaN) as float16, exactly and
    fast (NumPy's own cast is a slow loop). Needs `available()`."""
    if not available():
        raise NativeBuildError(f"the compiled exact sum is unavailable: {reason()}")
    source = np.ascontiguousarray(values, dtype=np.float32).reshape(-1)
    out = np.empty(source.size, dtype=np.uint16)
    assert _dll is not None
    _dll.tessera_float16_bits(source.ctypes.data, source.size, out.ctypes.data)
    return out.view(np.float16).reshape(np.shape(values))


def certified_sum(values: Any, fmt: FloatFormat) -> tuple[np.ndarray, np.ndarray, int]:
    """Return (sums, failed, failures) for a (P, n) NumPy array of fmt's dtype.

    sums[j] is the correctly rounded sum of column j (in fmt's compute dtype, holding a value
    of fmt) wherever failed[j] is False; elsewhere it is undefined and the caller must take the
    exact path. Needs `available()`.
    """
    if values.dtype != fmt.dtype or values.ndim != 2:
        raise TypeError(f"certified_sum needs a (P, n) array of {fmt.dtype}, got {values.shape} {values.dtype}")
    if not available():
        raise NativeBuildError(f"the compiled exact sum is unavailable: {reason()}")
    assert _dll is not None
    rows, n = values.shape
    out = np.empty(n, dtype=fmt.compute)
    failed = np.empty(n, dtype=np.bool_)
    if n == 0:
        return out, failed, 0
    data = np.ascontiguousarray(values)
    function = getattr(_dll, f"tessera_certified_sum_{fmt.dtype.name}")
    failures = function(data.ctypes.data, rows, n, out.ctypes.data, failed.ctypes.data, fmt.precision,
                        fmt.quantum, 2.0 ** fmt.min_normal_exponent, 2.0 ** (fmt.max_exponent - 2),
                        2.0 * rows * 2.0 ** -53)
    return out, failed, int(failures)
