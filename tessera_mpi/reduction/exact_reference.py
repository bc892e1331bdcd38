"""The slow, obviously correct reference for `exact_sum`: Python fractions, one element at a time.

Used by the determinism check and the tests to prove the fast sums right, never to compute them.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from fractions import Fraction

import numpy as np

from .formats import FloatFormat


def round_fraction(value: Fraction, dtype: np.dtype) -> float:
    """Round an exact rational to `dtype` (any format of formats.py): nearest, ties to even, IEEE overflow."""
    fmt = FloatFormat.of(dtype)
    if value == 0:
        return 0.0
    magnitude = abs(value)
    high = magnitude.numerator.bit_length() - magnitude.denominator.bit_length()
    if Fraction(2) ** high > magnitude:
        high -= 1
    ulp = max(high - fmt.precision + 1, fmt.quantum)
    scaled = magnitude / Fraction(2) ** ulp
    whole = math.floor(scaled)
    rest = scaled - whole
    if rest > Fraction(1, 2) or (rest == Fraction(1, 2) and whole % 2 == 1):
        whole += 1
    if whole * Fraction(2) ** ulp >= Fraction(2) ** fmt.max_exponent:
        rounded = math.inf
    else:
        rounded = math.ldexp(whole, ulp)
    return rounded if value > 0 else -rounded


def reference_sum(contributions: Iterable[float], dtype: np.dtype) -> float:
    """Return the correctly rounded IEEE sum of `contributions` in `dtype`, as a Python float."""
    values = [float(v) for v in contributions]
    if any(math.isnan(v) for v in values) or (math.inf in values and -math.inf in values):
        return math.nan
    if math.inf in values:
        return math.inf
    if -math.inf in values:
        return -math.inf
    total = sum((Fraction(v) for v in values), Fraction(0))
    if total == 0:
        all_negative_zero = all(v == 0 and math.copysign(1.0, v) < 0 for v in values)
        return -0.0 if all_negative_zero else 0.0
    return round_fraction(total, np.dtype(dtype))


def reference_sums(values: np.ndarray) -> np.ndarray:
    """Return `reference_sum` of every column of a (P, ...) array, as an array of its dtype."""
    flat = values.reshape(values.shape[0], -1)
    out = np.array([reference_sum(flat[:, i], values.dtype) for i in range(flat.shape[1])])
    return out.astype(values.dtype).reshape(values.shape[1:])
