"""The binary floating-point formats a deterministic sum supports, and how each is computed.

float64 and float32 are summed as they are. float16 and bfloat16 (`ml_dtypes.bfloat16`, the
format gradients are reduced in) are widened to float32 first, exactly (every float16 and
bfloat16 value is a float32 value), summed exactly, and rounded once to their own precision:
never through float32's rounding, which would round twice.
"""

from __future__ import annotations

import functools
import sys
from dataclasses import dataclass
from typing import Any

import numpy as np

_NATIVE = (np.dtype(np.float64), np.dtype(np.float32), np.dtype(np.float16))


@functools.lru_cache(maxsize=None)
def _ml_dtypes() -> Any:
    """Import ml_dtypes on first need: it costs about 0.5 s per process, which 72 ranks on a
    few cores pay at every launch when imported with the package."""
    try:
        import ml_dtypes
    except ImportError:  # bfloat16 then is simply not offered
        return None
    return ml_dtypes


def bfloat16() -> np.dtype | None:
    """Return the bfloat16 dtype, or None without ml_dtypes."""
    module = _ml_dtypes()
    return None if module is None else np.dtype(module.bfloat16)


def is_supported(dtype: np.dtype) -> bool:
    """Return whether a deterministic sum accepts `dtype`, importing ml_dtypes only when the
    dtype could be its bfloat16 (an array of it exists only once ml_dtypes is imported)."""
    if dtype in _NATIVE:
        return True
    if "ml_dtypes" not in sys.modules:
        return False
    return dtype in supported()


def supported() -> tuple[np.dtype, ...]:
    """Return the dtypes a deterministic sum accepts."""
    extra = bfloat16()
    return _NATIVE if extra is None else _NATIVE + (extra,)


@dataclass(frozen=True)
class FloatFormat:
    """The parameters of a binary floating-point format that rounding needs."""

    precision: int
    """Significand bits, the hidden bit included (53, 24, 11, 8)."""
    quantum: int
    """Exponent of the smallest subnormal, 2^quantum (-1074, -149, -24, -133)."""
    max_exponent: int
    """Every finite value is below 2^max_exponent (1024, 128, 16, 128)."""
    dtype: np.dtype
    """The storage format."""
    compute: np.dtype
    """The format its contributions are summed in, exactly: the dtype itself or float32."""

    @property
    def min_normal_exponent(self) -> int:
        """The exponent of the smallest normal value."""
        return self.quantum + self.precision - 1

    @classmethod
    def of(cls, dtype: Any) -> FloatFormat:
        return _format_of(np.dtype(dtype))


@functools.lru_cache(maxsize=None)
def _format_of(dtype: np.dtype) -> FloatFormat:
    """FloatFormat.of, once per dtype (every deterministic sum asks, np.finfo is not free)."""
    if not is_supported(dtype):
        names = ", ".join(d.name for d in supported())
        raise TypeError(f"deterministic sums support {names}, got {dtype}")
    info = np.finfo(dtype) if dtype.kind == "f" else _ml_dtypes().finfo(dtype)
    compute = dtype if dtype.itemsize >= 4 else np.dtype(np.float32)
    return FloatFormat(precision=int(info.nmant) + 1, quantum=int(np.log2(float(info.smallest_subnormal))),
                       max_exponent=int(info.maxexp), dtype=dtype, compute=compute)


def widen(xp: Any, x: Any, fmt: FloatFormat) -> Any:
    """Return `x` in its compute format, exactly (a view when that is its own format)."""
    if fmt.compute == fmt.dtype:
        return x
    if fmt.dtype == np.float16:
        return x.astype(np.float32)
    # bfloat16 is the top half of a float32: shifting the bits is exact, with NaN payloads kept.
    return (xp.ascontiguousarray(x).view(np.uint16).astype(np.uint32) << np.uint32(16)).view(np.float32)


def narrow(xp: Any, x: Any, fmt: FloatFormat) -> Any:
    """Return float values already representable in `fmt` (or infinite, or NaN) as fmt's dtype."""
    if x.dtype == fmt.dtype:
        return x
    if fmt.dtype == np.float16 or x.dtype != np.float32:
        return x.astype(fmt.dtype)
    # Exact for representable values; the shift keeps a NaN a NaN (its top mantissa bit is set).
    return (x.view(np.uint32) >> np.uint32(16)).astype(np.uint16).view(fmt.dtype)
