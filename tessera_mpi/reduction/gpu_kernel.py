"""The certified fast path of the exact sum on a GPU: cpu_kernel.py's algorithm and proof as one
CuPy RawKernel, one thread per element, so a device buffer is summed with no per-element
Python and no host round trip (only the count of uncertified elements comes back).

The arithmetic, the error bounds and their sources, and what is refused are exactly those of
cpu_kernel.py's docstring. Compiled without FMA contraction (--fmad=false): contracting
TwoSum's steps would change what it computes.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from .cpu_kernel import SLACK, TINY_GAP
from .formats import FloatFormat

SOURCE = r"""
extern "C" __global__ void certified_sum(const INPUT* values, long long rows, long long n, COMPUTE* out,
                                         bool* failed, int precision, int quantum, double min_normal,
                                         double guard, double factor, double tiny_gap, double slack,
                                         unsigned long long* failures) {
    long long j = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (j >= n) return;
    double s = -0.0, c = 0.0, c2 = 0.0, b = 0.0, a = 0.0;
    for (long long i = 0; i < rows; ++i) {
        double x = LOAD(values[i * n + j]);
        double total = s + x, virt = total - s;
        double q = (s - (total - virt)) + (x - virt);
        s = total;
#if TWO_LEVEL
        total = c + q; virt = total - c;
        double r = (c - (total - virt)) + (q - virt);
        c = total; c2 += r; b += fabs(r);
#else
        c += q; b += fabs(q);
#endif
        a += fabs(x);
    }
    double v = s + c, virt = v - s;
    double t = (s - (v - virt)) + (c - virt);
    bool exact = b == 0.0;
    double rounded = v;
    if (precision == 24) {
        rounded = (double)__double2float_rn(v);
    } else if (precision < 53) {
        long long e = (long long)((__double_as_longlong(v) >> 52) & 0x7FF) - 1023 - (precision - 1);
        long long scale = e > quantum ? e : quantum;
        double down = __longlong_as_double((1023 - scale) << 52);
        double up = __longlong_as_double((1023 + scale) << 52);
        rounded = (((v * down) + 6755399441055744.0) - 6755399441055744.0) * up;
    }
    unsigned long long magnitude = (unsigned long long)__double_as_longlong(rounded) & 0x7FFFFFFFFFFFFFFFULL;
    long long ge = (long long)(magnitude >> 52) - 1023 - (precision - 1);
    if (ge < quantum) ge = quantum;
    if (ge < -1022) ge = -1022;
    double gap = __longlong_as_double((1023 + ge) << 52);
    if ((magnitude & 0xFFFFFFFFFFFFFULL) == 0 && fabs(rounded) > min_normal) gap *= 0.5;
    double error = fabs(v - rounded) + fabs(t) + fabs(c2) + factor * b;
    bool certified = exact || (gap >= tiny_gap && 2.0 * error < gap * slack);
    bool zero = a == 0.0;
    bool ok = zero || (a < guard && certified);
    out[j] = (COMPUTE)(zero ? s : rounded);
    failed[j] = !ok;
    if (!ok) atomicAdd(failures, 1ULL);
}
"""

LOADS = {
    "float64": ("double", "double", "(double)", 1),
    "float32": ("float", "float", "(double)", 0),
    # float16 and bfloat16 arrive as their bits, decoded as cpu_kernel.py does.
    "float16": ("unsigned short", "float", "half_value", 0),
    "bfloat16": ("unsigned short", "float", "bfloat16_value", 0),
}
HELPERS = r"""
__device__ double half_value(unsigned short h) {
    unsigned int rest = h & 0x7FFF;
    double value = rest >= 0x7C00 ? (double)__int_as_float(0x7F800000 | ((rest & 0x3FF) << 13))
                                  : (double)__int_as_float(rest << 13) * 5192296858534827628530496329220096.0;
    return (h & 0x8000) ? -value : value;
}
__device__ double bfloat16_value(unsigned short h) { return (double)__int_as_float(((unsigned int)h) << 16); }
"""


def source(fmt: FloatFormat) -> str:
    """Return the CUDA source of the kernel for `fmt`."""
    input_type, compute, load, two_level = LOADS[fmt.dtype.name]
    body = SOURCE.replace("INPUT", input_type).replace("COMPUTE", compute).replace("LOAD", load)
    return HELPERS + f"#define TWO_LEVEL {two_level}\n" + body


@functools.lru_cache(maxsize=None)
def _kernel(cupy: Any, name: str) -> Any:
    return cupy.RawKernel(source(FloatFormat.of(np.dtype(name) if name != "bfloat16" else _bf16())),
                          "certified_sum", options=("--fmad=false",))


def _bf16() -> np.dtype:
    from .formats import bfloat16
    dtype = bfloat16()
    assert dtype is not None
    return dtype


def certified_sum(cupy: Any, values: Any, fmt: FloatFormat) -> tuple[Any, Any, int]:
    """Return (sums, failed, failures) for a (P, n) CuPy array of fmt's dtype, as
    cpu_kernel.certified_sum does; the arrays stay on the device."""
    rows, n = values.shape
    out = cupy.empty(n, dtype=fmt.compute)
    failed = cupy.empty(n, dtype=cupy.bool_)
    failures = cupy.zeros(1, dtype=cupy.uint64)
    if n:
        data = cupy.ascontiguousarray(values)
        data = data.view(cupy.uint16) if fmt.dtype.itemsize == 2 else data
        threads = 256
        _kernel(cupy, fmt.dtype.name)(
            ((n + threads - 1) // threads,), (threads,),
            (data, np.int64(rows), np.int64(n), out, failed, np.int32(fmt.precision), np.int32(fmt.quantum),
             np.float64(2.0 ** fmt.min_normal_exponent), np.float64(2.0 ** (fmt.max_exponent - 2)),
             np.float64(2.0 * rows * 2.0 ** -53), np.float64(TINY_GAP), np.float64(SLACK), failures))
    return out, failed, int(failures.get()[0])
