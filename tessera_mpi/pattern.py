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


def fill_pattern(
    xp: Any, box: Sequence[tuple[int, int]], global_shape: Sequence[int], dtype: np.dtype
) -> Any:
    """Return the pattern values of the block `box` ([start, stop) per dimension) as an `xp` array."""
    dtype = np.dtype(dtype)
    bits = pattern_bits(dtype)
    strides = [1] * len(global_shape)
    for d in range(len(global_shape) - 2, -1, -1):
        strides[d] = strides[d + 1] * int(global_shape[d + 1])
    flat = xp.zeros(tuple(stop - start for start, stop in box), dtype=np.uint64)
    for d, ((start, stop), stride) in enumerate(zip(box, strides)):
        shape = [1] * len(box)
        shape[d] = stop - start
        flat += (xp.arange(start, stop, dtype=np.uint64) * np.uint64(stride)).reshape(shape)
    hashed = (flat * np.uint64(MULTIPLIER)) & np.uint64((1 << bits) - 1)
    if dtype.kind == "f":
        return (1.0 + hashed.astype(np.float64) * (2.0 ** -bits)).astype(dtype)
    return hashed.astype(dtype)
