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
_WRAP = 1 << 32


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
    # h(i) keeps only the low k <= 31 bits of i * MULTIPLIER, which depend only on i mod 2^32:
    # uint32 arithmetic, wrapping, gives the values of exact products at half the memory traffic.
    # 1 + h / 2^k is exact in float32 for k <= 23 (float32, float16, bfloat16), so only float64
    # is computed in float64.
    work = np.float64 if dtype.itemsize > 4 else np.float32
    scale, mask, multiplier = work(2.0 ** -bits), np.uint32((1 << bits) - 1), np.uint32(MULTIPLIER)
    if not shape:
        flat = xp.zeros((1,), dtype=np.uint32)
        out[...] = _values(flat * multiplier & mask, dtype, work, scale)[0]
        return out
    inner = int(np.prod(shape[1:], dtype=np.int64))
    # A box that spans every trailing dimension is one run of consecutive flat indices.
    whole_rows = all((start, stop) == (0, int(n)) for (start, stop), n in zip(box[1:], global_shape[1:]))
    step = max(1, CHUNK_ELEMENTS // max(inner, 1))
    first = box[0][0]
    for lo in range(0, shape[0], step):
        hi = min(lo + step, shape[0])
        if whole_rows:
            flat = xp.arange((hi - lo) * inner, dtype=np.uint32).reshape((hi - lo,) + shape[1:])
            flat += np.uint32(((first + lo) * strides[0]) % _WRAP)
        else:
            flat = xp.zeros((hi - lo,) + shape[1:], dtype=np.uint32)
            for d, ((start, stop), stride) in enumerate(zip(box, strides)):
                begin, end = (first + lo, first + hi) if d == 0 else (start, stop)
                view = [1] * len(shape)
                view[d] = end - begin
                offsets = (np.arange(begin, end, dtype=np.uint64) * np.uint64(stride % _WRAP)) % np.uint64(_WRAP)
                flat += xp.asarray(offsets.astype(np.uint32)).reshape(view)
        flat *= multiplier
        flat &= mask
        out[lo:hi] = _values(flat, dtype, work, scale)
    return out


def _values(hashed: Any, dtype: np.dtype, work: type, scale: Any) -> Any:
    """1 + h / 2^k for floats (computed in `work`, exact), h itself for integers, as `dtype`."""
    if dtype.kind != "f":
        return hashed.astype(dtype)
    block = hashed.astype(work)
    block *= scale
    block += work(1.0)
    return block.astype(dtype, copy=False)
