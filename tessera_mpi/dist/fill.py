"""The fill pattern of shape-only tensors: a value derived from each element's global index.

Element i (row-major flat index in the global tensor) holds h(i) = (i * 0x9E3779B1) mod 2^k. The
multiplier is odd, so h is a bijection on k-bit integers: for tensors of up to 2^k elements every
element has its own value, and a shard placed at the wrong offset, transposed, or hit by a bit
flip no longer matches. Floats hold 1 + h(i) / 2^k, which is exact in their mantissa (k = 23 for
float32, 31 for float64, 10 for float16); integers hold h(i) with k one less than their width
(at most 31).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

MULTIPLIER = 0x9E3779B1


def pattern_bits(dtype: np.dtype) -> int:
    """Return k, the number of pattern bits that `dtype` holds exactly."""
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        return min(int(np.finfo(dtype).nmant), 31)
    if dtype.kind in "iu":
        return min(dtype.itemsize * 8 - 1, 31)
    raise TypeError(f"the index pattern needs a float or integer dtype, got {dtype}")


CHUNK_ELEMENTS = 1 << 20
"""Elements computed per pass, so the integer temporaries stay small (72 ranks share one host)."""


def fill_pattern(
    xp: Any, box: Sequence[tuple[int, int]], global_shape: Sequence[int], dtype: np.dtype
) -> Any:
    """Return the pattern values of the block `box` ([start, stop) per dimension) as an `xp` array."""
    dtype = np.dtype(dtype)
    bits = pattern_bits(dtype)
    shape = tuple(stop - start for start, stop in box)
    out = xp.empty(shape, dtype=dtype)
    if out.size == 0:
        return out
    strides = [1] * len(global_shape)
    for d in range(len(global_shape) - 2, -1, -1):
        strides[d] = strides[d + 1] * int(global_shape[d + 1])
    # Fill a few leading-axis slabs at a time; a slab's flat indices are an outer sum of the
    # per-dimension offsets.
    inner = int(np.prod(shape[1:], dtype=np.int64)) if len(shape) > 1 else 1
    step = max(1, CHUNK_ELEMENTS // max(inner, 1))
    first = box[0][0] if box else 0
    for lo in range(0, shape[0] if shape else 1, step):
        hi = min(lo + step, shape[0]) if shape else 1
        flat = xp.zeros((hi - lo,) + shape[1:], dtype=np.uint64)
        for d, ((start, stop), stride) in enumerate(zip(box, strides)):
            begin, end = (first + lo, first + hi) if d == 0 else (start, stop)
            view = [1] * len(shape)
            view[d] = end - begin
            flat += (xp.arange(begin, end, dtype=np.uint64) * np.uint64(stride)).reshape(view)
        hashed = (flat * np.uint64(MULTIPLIER)) & np.uint64((1 << bits) - 1)
        if dtype.kind == "f":
            block = hashed.astype(np.float64) * (2.0 ** -bits) + 1.0
        else:
            block = hashed
        if shape:
            out[lo:hi] = block.astype(dtype)
        else:
            out[...] = block.astype(dtype)
    return out
