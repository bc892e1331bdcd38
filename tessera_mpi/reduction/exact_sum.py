"""Correctly rounded sums, vectorized: exact integer digits on an exponent grid, one rounding.

Every finite float is an integer multiple of a power of two. Cut each contribution into K
"digits" of b bits on a shared grid (digit k holds the bits between 2^(T-(k+1)b) and 2^(T-kb),
where 2^T bounds every contribution), store each digit as an integer-valued float64, and add
digits position by position: with b = 53 - bit_length(P), any sum of P digits stays an integer
below 2^53, so float64 adds them exactly whatever the order. The exact total is then rounded
once to the target format (round to nearest, ties to even, subnormals and overflow as IEEE
754 says). The answer is unique, so it has the same bits on every rank, for every algorithm,
rank order and backend.

IEEE special values follow the rules of a sum: NaN if any contribution is NaN or both infinities
occur, otherwise the infinity that occurs; an exact zero is -0 only when every contribution is -0.
NaN results are always the positive quiet NaN, whatever payload the inputs carried.

All functions take the array namespace `xp` (NumPy or CuPy) and loop only over digits and
contributions, never over elements. Arrays of float16 and bfloat16 are handled in their compute
format, float32 (formats.py), while rounding is to their own `FloatFormat`.

`exact_sum` takes the certified compiled fast path (cpu_kernel.py for NumPy arrays where
a C compiler built it, gpu_kernel.py for CuPy arrays), and this module's array path,
`exact_sum_numpy` (the reference and the fallback), for the elements it cannot certify and
everywhere else.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import numpy as np

from . import cpu_kernel, gpu_kernel
from .formats import FloatFormat, narrow, widen

COUNT_BITS = 13
"""Bits per special-value counter packed into one float64 (4 counters, so P < 2^13)."""
MAX_CONTRIBUTIONS = (1 << COUNT_BITS) - 1


def digit_bits(contributions: int) -> int:
    """Return b, the digit width for which a sum of `contributions` digits is exact in float64."""
    if not 1 <= contributions <= MAX_CONTRIBUTIONS:
        raise ValueError(f"exact sums support 1 to {MAX_CONTRIBUTIONS} contributions, got {contributions}")
    return 53 - int(contributions).bit_length()


EMPTY_LOW = 1 << 20
"""The `low` bound of data with no finite non-zero value: above any top, so it widens nothing."""


def magnitude_bits(xp: Any, x: Any) -> Any:
    """Return the bit patterns of |x| as unsigned integers (they order like the magnitudes)."""
    dtype = np.dtype(x.dtype)
    unsigned = np.dtype(f"u{dtype.itemsize}")
    return xp.ascontiguousarray(x).view(unsigned) & unsigned.type((1 << (8 * dtype.itemsize - 1)) - 1)


def exponent_bounds(
    xp: Any, x: Any, fmt: FloatFormat, axis: int | None = None, *, bits: Any = None
) -> tuple[Any, Any]:
    """Return (top, low) over `axis` (all of x when None): |v| < 2^top and every set bit of
    every finite v is >= 2^low.

    Zeros and non-finite values are ignored; with nothing else, top is the quantum and low is
    EMPTY_LOW, so they never widen a grid. The extremes are found on `bits` (from
    `magnitude_bits`, computed here when not given): four cheap integer passes.
    """
    dtype = np.dtype(x.dtype)
    magnitude = magnitude_bits(xp, x) if bits is None else bits
    unsigned = magnitude.dtype.type
    infinity = unsigned(np.array(np.inf, dtype=dtype).view(magnitude.dtype))
    largest = magnitude.max(axis=axis)
    if bool((largest >= infinity).any()):
        largest = xp.where(magnitude < infinity, magnitude, unsigned(0)).max(axis=axis)
    # Zeros wrap around to the largest pattern and drop out of the minimum; so do specials.
    with np.errstate(over="ignore"):
        smallest = (magnitude - unsigned(1)).min(axis=axis) + unsigned(1)
    present = largest > 0
    _, top = xp.frexp(xp.where(present, largest, 1).view(dtype).astype(np.float64))
    _, low = xp.frexp(xp.where(present & (smallest < infinity), smallest, 1).view(dtype).astype(np.float64))
    top = xp.where(present, top.astype(np.int64), fmt.quantum)
    low = xp.where(present, xp.maximum(low.astype(np.int64) - fmt.precision, fmt.quantum), EMPTY_LOW)
    return top, low


def _times_pow2(a: Any, exponent: int, out: Any = None) -> Any:
    """Return a * 2^exponent (into `out` if given), exact whenever the result is representable.

    Beyond +-1000 the power is applied as two factors, so that neither factor over- or
    underflows and the intermediate lies between a and the result.
    """
    if -1000 < exponent < 1000:
        return np.multiply(a, math.ldexp(1.0, exponent), out=out)
    half = exponent // 2
    product = np.multiply(a, math.ldexp(1.0, half), out=out)
    return np.multiply(product, math.ldexp(1.0, exponent - half), out=product)


def digit_count(span: int, bits: int) -> int:
    """Return how many digits of `bits` bits cover `span` bit positions (at least one)."""
    return max(1, -(-int(span) // bits))


def split(xp: Any, x: Any, top: int, count: int, bits: int) -> Iterator[Any]:
    """Yield `count` integer-valued float64 digits of `x` on the grid with top `top`.

    x = sum_k digit_k * 2^(top - (k+1) bits) exactly, each digit of the sign of x and below
    2^bits in magnitude, provided 2^(top - count bits) is at or below every set bit of x.
    Non-finite values must have been replaced by zeros.
    """
    rest = x.astype(np.float64, copy=True)
    lowered = xp.empty_like(rest)
    for k in range(count):
        scale = top - (k + 1) * bits
        digit = xp.trunc(_times_pow2(rest, -scale))
        rest -= _times_pow2(digit, scale, out=lowered)
        yield digit


def special_counts(xp: Any, x: Any) -> Any:
    """Return one float64 per element packing counts of NaN, +inf, -inf and -0, to be summed."""
    return (
        xp.isnan(x) * np.float64(1.0)
        + (x == np.inf) * np.float64(1 << COUNT_BITS)
        + (x == -np.inf) * np.float64(1 << (2 * COUNT_BITS))
        + ((x == 0) & xp.signbit(x)) * np.float64(1 << (3 * COUNT_BITS))
    )


def finite_part(xp: Any, x: Any) -> Any:
    """Return `x` with NaN and infinities replaced by zeros (they travel as counts)."""
    return xp.where(xp.isfinite(x), x, xp.zeros((), dtype=x.dtype))


def encode(xp: Any, x: Any, top: int, count: int, bits: int) -> Any:
    """Return a (count + 1, *x.shape) float64 stack: the digits of x, then its special counts.

    Summing such stacks elementwise (in any order, with MPI or NumPy) is exact.
    """
    stack = xp.empty((count + 1,) + tuple(x.shape), dtype=np.float64)
    for k, digit in enumerate(split(xp, finite_part(xp, x), top, count, bits)):
        stack[k] = digit
    stack[count] = special_counts(xp, x)
    return stack


def _normalize(xp: Any, digits: list[Any], bits: int) -> None:
    """Carry in place so that digits 1.. lie in [0, 2^bits); digit 0 keeps the sign."""
    for k in range(len(digits) - 1, 0, -1):
        carry = xp.floor(digits[k] * math.ldexp(1.0, -bits))
        digits[k] -= carry * math.ldexp(1.0, bits)
        digits[k - 1] += carry


def _shift(xp: Any, v: Any, left: Any) -> tuple[Any, Any]:
    """Return (v shifted left by `left` bits, or right by -left; whether set bits fell off)."""
    right = xp.clip(-left, 0, 63).astype(np.uint64)
    up = v << xp.clip(left, 0, 63).astype(np.uint64)
    gone = -left >= 64
    down = xp.where(gone, np.uint64(0), v >> right)
    low_bits = (v & ((np.uint64(1) << right) - np.uint64(1))) != 0
    lost = (left < 0) & xp.where(gone, v != 0, low_bits)
    return xp.where(left >= 0, up, down), lost


def _round_magnitude(xp: Any, digits: list[Any], top: int, bits: int, fmt: FloatFormat) -> tuple[Any, Any]:
    """Round the non-negative positional number in `digits` to `fmt`; return (float64 value, is zero)."""
    stack = xp.stack(digits + [xp.zeros_like(digits[0])] * 2)
    nonzero = stack != 0
    lead = xp.argmax(nonzero, axis=0)
    is_zero = ~nonzero.any(axis=0)

    def pick(offset: int) -> Any:
        return xp.take_along_axis(stack, (lead + offset)[None], axis=0)[0].astype(np.uint64)

    a, b, c = pick(0), pick(1), pick(2)
    index = xp.arange(stack.shape[0]).reshape((-1,) + (1,) * (stack.ndim - 1))
    sticky = (nonzero & (index >= lead + 3)).any(axis=0)
    _, a_bits = xp.frexp(xp.where(is_zero, 1.0, a.astype(np.float64)))
    a_bits = a_bits.astype(np.int64)
    # W: the top 63 bits of the exact magnitude A*2^(2b) + B*2^b + C, bit 62 set; the bits
    # below W only matter as a sticky bit for rounding.
    b_part, b_lost = _shift(xp, b, 63 - a_bits - bits)
    c_part, c_lost = _shift(xp, c, 63 - a_bits - 2 * bits)
    w = (a << (63 - a_bits).astype(np.uint64)) | b_part | c_part
    sticky = sticky | b_lost | c_lost
    t = (a_bits + 2 * bits - 63) + top - (lead + 3) * bits
    # The result's last kept bit: precision below the leading bit, or the subnormal quantum.
    ulp = xp.maximum(t + 63 - fmt.precision, fmt.quantum)
    drop = ulp - t
    deep = drop >= 64
    drop_u = xp.clip(drop, 1, 63).astype(np.uint64)
    mantissa = xp.where(deep, np.uint64(0), w >> drop_u)
    rest = w & ((np.uint64(1) << drop_u) - np.uint64(1))
    half = np.uint64(1) << (drop_u - np.uint64(1))
    odd = (mantissa & np.uint64(1)) == np.uint64(1)
    up = ~deep & ((rest > half) | ((rest == half) & (sticky | odd)))
    mantissa = mantissa + up.astype(np.uint64)
    with np.errstate(over="ignore"):
        value = xp.ldexp(mantissa.astype(np.float64), ulp.astype(np.int32))
    return value, is_zero


def decode(xp: Any, summed: Any, top: int, bits: int, contributions: int, dtype: Any) -> Any:
    """Return the correctly rounded sum, as `dtype`, from a summed `encode` stack.

    `contributions` is how many stacks were summed (it decides when a zero is -0).
    """
    fmt = FloatFormat.of(dtype)
    digits = [summed[k] for k in range(summed.shape[0] - 1)]
    counts = summed[-1].astype(np.int64)
    _normalize(xp, digits, bits)
    negative = digits[0] < 0
    digits = [xp.where(negative, -d, d) for d in digits]
    _normalize(xp, digits, bits)
    magnitude, is_zero = _round_magnitude(xp, digits, top, bits, fmt)
    with np.errstate(over="ignore"):
        value = xp.where(negative, -magnitude, magnitude).astype(dtype)
    mask = (1 << COUNT_BITS) - 1
    nan = (counts & mask) > 0
    pinf = ((counts >> COUNT_BITS) & mask) > 0
    ninf = ((counts >> (2 * COUNT_BITS)) & mask) > 0
    all_negzero = ((counts >> (3 * COUNT_BITS)) & mask) == contributions
    zero = xp.where(all_negzero, xp.asarray(-0.0, dtype=dtype), xp.asarray(0.0, dtype=dtype))
    value = xp.where(is_zero, zero, value)
    value = xp.where(pinf, xp.asarray(np.inf, dtype=dtype), value)
    value = xp.where(ninf, xp.asarray(-np.inf, dtype=dtype), value)
    return xp.where(nan | (pinf & ninf), xp.asarray(np.nan, dtype=dtype), value)


CHUNK = 1 << 14
"""Elements per pass in `exact_sum`: small enough that a chunk's contributions usually span
few binades as a whole (one scalar test then certifies its float64 sum), and that the
temporaries stay small."""


def exact_sum(xp: Any, values: Any) -> Any:
    """Return the correctly rounded sum over axis 0 of `values` (P contributions per element).

    Certified compiled fast path where it can run, `exact_sum_numpy` for what it cannot certify.
    """
    fmt = FloatFormat.of(values.dtype)
    on_device = getattr(xp, "__name__", "") == "cupy"
    if values.shape[0] > MAX_CONTRIBUTIONS or not (on_device or (xp is np and cpu_kernel.available())):
        return exact_sum_numpy(xp, values)
    count = values.shape[0]
    flat = xp.ascontiguousarray(values).reshape(count, -1)
    if on_device:
        out, failed, failures = gpu_kernel.certified_sum(xp, flat, fmt)
    else:
        out, failed, failures = cpu_kernel.certified_sum(flat, fmt)
    if failures:
        # Only these can be NaN: the kernel certifies no element with a NaN or an infinity.
        if on_device:
            # The failure count was the call's one host round trip (gpu_kernel.certified_sum);
            # nothing below waits for the device again.
            index = _compact(xp, failed, failures)
            exact = _exact_columns_device(xp, widen(xp, flat[:, index], fmt), fmt)
        else:
            index = xp.flatnonzero(failed)
            exact = _exact_columns(xp, widen(xp, flat[:, index], fmt), fmt)
        out[index] = widen(xp, canonical_nan(xp, exact), fmt)
    if fmt.dtype == np.float16 and not on_device:
        return cpu_kernel.narrow_float16(out).reshape(values.shape[1:])
    return narrow(xp, out, fmt).reshape(values.shape[1:])


def exact_sum_numpy(xp: Any, values: Any) -> Any:
    """Return `exact_sum` with array operations only (NumPy or CuPy): the reference path."""
    fmt = FloatFormat.of(values.dtype)
    count = values.shape[0]
    flat = widen(xp, xp.ascontiguousarray(values).reshape(count, -1), fmt)
    return canonical_nan(xp, _exact_columns(xp, flat, fmt)).reshape(values.shape[1:])


def _exact_columns(xp: Any, flat: Any, fmt: FloatFormat) -> Any:
    """Return the correctly rounded column sums of (P, n) `flat` (fmt's compute dtype) as fmt.

    Elements whose contributions span few enough binades are summed exactly in float64 and
    rounded once (most float32 data); the others go through the digits.
    """
    count = flat.shape[0]
    all_bits = magnitude_bits(xp, flat)
    out = xp.empty(flat.shape[1], dtype=fmt.dtype)
    # A float64 sum is exact when every partial sum's bits fit in 53, [low, top + log2 P),
    # and stay below float64's overflow threshold 2^1024.
    spare = 53 - count.bit_length()
    headroom = 1024 - count.bit_length()
    for start in range(0, flat.shape[1], CHUNK):
        block = flat[:, start:start + CHUNK]
        bits = all_bits[:, start:start + CHUNK]
        result = _ieee_fast_sum(xp, block, count, fmt)
        chunk_top, chunk_low = exponent_bounds(xp, block, fmt, bits=bits)
        if int(chunk_top) - int(chunk_low) > spare or int(chunk_top) > headroom:
            top, low = exponent_bounds(xp, block, fmt, axis=0, bits=bits)
            inexact = (top - low > spare) | (top > headroom)
            # Elements holding NaN or an infinity are what the float64 sum says, too; an
            # infinite float64 sum of finite values (overflow on the way) is not.
            special = xp.flatnonzero(~xp.isfinite(result))
            if special.size:
                inexact[special] = xp.isfinite(block[:, special]).all(axis=0)
            index = xp.flatnonzero(inexact)
            if index.size:
                result[index] = _digit_sum(xp, block[:, index], top[index], low[index], fmt, fmt.dtype)
        out[start:start + CHUNK] = result
    return out


def _compact(xp: Any, mask: Any, count: int) -> Any:
    """Return the indices of `mask`'s `count` true entries, in order, with no shape that depends
    on the data: on a device such a shape (flatnonzero's) is a host round trip."""
    slot = xp.where(mask, xp.cumsum(mask) - 1, count)  # every false entry lands in a spare slot
    index = xp.empty(count + 1, dtype=np.int64)
    index[slot] = xp.arange(mask.size, dtype=np.int64)
    return index[:count]


def _exact_columns_device(xp: Any, flat: Any, fmt: FloatFormat) -> Any:
    """`_exact_columns` for device arrays, with no host round trip: every column by digits on
    the grid of fmt's whole exponent range, since choosing a narrower grid (or the float64 sum,
    chunk by chunk) needs answers on the host. The columns with a NaN or an infinity are what
    their float64 sum says. Meant for the few columns the certified kernel leaves."""
    with np.errstate(over="ignore", invalid="ignore"):
        total = xp.sum(flat, axis=0, dtype=np.float64)
    special = round_to(xp, total, fmt)
    digits = _digits_on_grid(xp, finite_part(xp, flat), fmt.max_exponent, fmt.quantum, fmt.dtype)
    # A sum of zeros is -0 only when every zero is -0; the digits alone give +0.
    all_negative_zero = ((flat == 0) & xp.signbit(flat)).all(axis=0)
    digits = xp.where(all_negative_zero, xp.asarray(-0.0, dtype=digits.dtype), digits)
    return xp.where(xp.isfinite(flat).all(axis=0), digits, special)


def _digit_sum(xp: Any, block: Any, top: Any, low: Any, fmt: FloatFormat, dtype: Any) -> Any:
    """Return the correctly rounded column sums of `block`, all finite, by digits."""
    return _digits_on_grid(xp, block, int(top.max()), int(low.min()), dtype)


def _digits_on_grid(xp: Any, block: Any, grid_top: int, grid_low: int, dtype: Any) -> Any:
    """Return the correctly rounded column sums of `block`, all finite, by digits on the grid
    from 2^grid_low (at or below every set bit) to 2^grid_top (above every magnitude)."""
    count = block.shape[0]
    bits = digit_bits(count)
    digits = digit_count(grid_top - grid_low, bits)
    summed = xp.empty((digits + 1, block.shape[1]), dtype=np.float64)
    for k, digit in enumerate(split(xp, block, grid_top, digits, bits)):
        summed[k] = digit.sum(axis=0)
    summed[digits] = 0
    return decode(xp, summed, grid_top, bits, count, dtype)


def _ieee_fast_sum(xp: Any, block: Any, count: int, fmt: FloatFormat) -> Any:
    """Return the float64 sum of `block` over axis 0 rounded once to `fmt`, with IEEE's signed zeros.

    NumPy's reductions start from +0, which would turn a sum of -0s into +0.
    """
    with np.errstate(over="ignore", invalid="ignore"):
        total = xp.sum(block, axis=0, dtype=np.float64)
    zeros = xp.flatnonzero(total == 0)
    if zeros.size:
        negative = ((block[:, zeros] == 0) & xp.signbit(block[:, zeros])).sum(axis=0) == count
        total[zeros] = xp.where(negative, -0.0, 0.0)
    return round_to(xp, total, fmt)


def round_to(xp: Any, x: Any, fmt: FloatFormat) -> Any:
    """Return float64 `x` rounded once to `fmt` (nearest, ties to even, IEEE overflow), as fmt's dtype.

    float64 to float32 (and to itself) is a correctly rounded cast; the 16-bit formats are
    rounded here, on float64, because a cast through float32 would round twice.
    """
    with np.errstate(over="ignore", invalid="ignore"):
        if fmt.dtype.itemsize >= 4:
            return x.astype(fmt.dtype)
        _, exponent = xp.frexp(x)
        scale = xp.maximum(exponent.astype(np.int64) - fmt.precision, fmt.quantum).astype(np.int32)
        rounded = xp.where(xp.isfinite(x), xp.ldexp(xp.rint(xp.ldexp(x, -scale)), scale), x)
        return rounded.astype(fmt.dtype)


def canonical_nan(xp: Any, x: Any) -> Any:
    """Return `x` with every NaN replaced by the positive quiet NaN, so NaN results compare bitwise."""
    return xp.where(xp.isnan(x), xp.asarray(np.nan, dtype=x.dtype), x)
