"""The benchmark fill pattern: what every rank sends, so every result is known exactly.

Element i that rank r sends holds ((7r + 13i) mod 31) + 1: small integers, so every sum is exact
in any order and every result is predictable, element by element, on every rank.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def values(xp: Any, rank: int, start: int, count: int, dtype: Any) -> Any:
    """Return what rank `rank` holds at positions start..start+count: ((7r + 13i) mod 31) + 1."""
    index = xp.arange(start, start + count, dtype=np.int64)
    return ((7 * rank + 13 * index) % 31 + 1).astype(dtype)


def summed(xp: Any, ranks: int, start: int, count: int, dtype: Any) -> Any:
    """Return the sum over ranks 0..ranks-1 of `values` at positions start..start+count (exact)."""
    residues = np.arange(31)
    table = np.array([sum(((7 * r + k) % 31) + 1 for r in range(ranks)) for k in residues], dtype=np.float64)
    index = xp.arange(start, start + count, dtype=np.int64)
    return xp.asarray(table)[(13 * index) % 31].astype(dtype)
