"""The certified fast path of the exact sum on the CPU: compensated summation compiled with numba,
and a per-element proof that its rounding is the correctly rounded exact sum.

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

No fast-math: reassociation would turn TwoSum's errors into zeros.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .formats import FloatFormat

import importlib.util

TILE = 512
"""Columns accumulated together: their state stays in L1 while the rows stream by."""
UNROLL = 8
"""Rows added per pass over a tile's state: an eighth of the state loads and stores (measured
15-25% faster than 4 for float32 at P = 8)."""
TINY_GAP = 2.0 ** -900
SLACK = 1.0 - 2.0 ** -40
ROUNDER = 1.5 * 2.0 ** 52
"""(y + ROUNDER) - ROUNDER is y rounded to an integer, ties to even, for |y| < 2^51."""
ZERO, ONE, FIELD = np.uint64(0), np.uint64(1), np.uint64(52)
MANTISSA = np.uint64((1 << 52) - 1)
EXPONENT = np.uint64(0x7FF)
ABSOLUTE = np.uint64((1 << 63) - 1)


def available() -> bool:
    """Return whether the compiled kernel can run here (numba installed; imported on first use,
    as it costs about 0.4 s and 100 MB per process)."""
    return importlib.util.find_spec("numba") is not None


def _accumulate(state: Any, rows: Any, width: int) -> None:
    """Add `rows` (a tuple of 1-D slices) into the state (s, c, c2, b, A) of one tile, two levels."""
    s, c, c2, b, a = state[0], state[1], state[2], state[3], state[4]
    for j in range(width):
        hi, lo, lo2, err, mag = s[j], c[j], c2[j], b[j], a[j]
        for row in rows:
            x = _load(row[j])
            total = hi + x
            virtual = total - hi
            q = (hi - (total - virtual)) + (x - virtual)
            hi = total
            total = lo + q
            virtual = total - lo
            r = (lo - (total - virtual)) + (q - virtual)
            lo = total
            lo2 += r
            err += abs(r)
            mag += abs(x)
        s[j], c[j], c2[j], b[j], a[j] = hi, lo, lo2, err, mag


def _accumulate_one_level(state: Any, rows: Any, width: int) -> None:
    """Add `rows` into the state with one level: c = fl(sum q), b = fl(sum |q|), c2 stays 0.

    For contributions of at most 24 bits the float64 partial sums are nearly always exact
    (every q is 0, b stays 0: the exact case), so the second level would only cost time.
    """
    s, c, b, a = state[0], state[1], state[3], state[4]
    for j in range(width):
        hi, lo, err, mag = s[j], c[j], b[j], a[j]
        for row in rows:
            x = _load(row[j])
            total = hi + x
            virtual = total - hi
            q = (hi - (total - virtual)) + (x - virtual)
            hi = total
            lo += q
            err += abs(q)
            mag += abs(x)
        s[j], c[j], b[j], a[j] = hi, lo, err, mag


def _finish(state: Any, out: Any, failed: Any, width: int, precision: int, quantum: int,
            min_normal: float, guard: float, factor: float) -> int:
    """Write the certified sums of one tile into `out` (and False into `failed`), or True."""
    s, c, c2, b, a = state[0], state[1], state[2], state[3], state[4]
    failures = 0
    narrow = precision < 53
    for j in range(width):
        hi, lo = s[j], c[j]
        v = hi + lo
        virtual = v - hi
        t = (hi - (v - virtual)) + (lo - virtual)
        exact = b[j] == 0.0
        word = _float_bits(v)
        if precision == 24:
            rounded = np.float64(np.float32(_bits_float(word)))
        elif narrow:
            scale = max(np.int64((word >> FIELD) & EXPONENT) - 1023 - (precision - 1), quantum)
            down = _bits_float(np.uint64(1023 - scale) << FIELD)
            up = _bits_float(np.uint64(1023 + scale) << FIELD)
            rounded = (((_bits_float(word) * down) + ROUNDER) - ROUNDER) * up
        else:
            rounded = v
        magnitude = _float_bits(rounded) & ABSOLUTE
        gap_exponent = max(np.int64(magnitude >> FIELD) - 1023 - (precision - 1), quantum, -1022)
        gap = _bits_float(np.uint64(1023 + gap_exponent) << FIELD)
        if (magnitude & MANTISSA) == ZERO and abs(rounded) > min_normal:
            gap *= 0.5
        error = abs(v - rounded) + abs(t) + abs(c2[j]) + factor * b[j]
        certified = exact or (gap >= TINY_GAP and 2.0 * error < gap * SLACK)
        ok = a[j] < guard and certified
        zero = a[j] == 0.0
        out[j] = hi if zero else rounded
        failed[j] = not (zero or ok)
        failures += 0 if zero or ok else 1
    return failures


def _kernel(values: Any, out: Any, failed: Any, precision: int, quantum: int, min_normal: float,
            guard: float, factor: float) -> int:
    count, n = values.shape
    state = np.zeros((5, TILE))
    failures = 0
    one_level = values.itemsize < 8  # float32 and the 16-bit formats: at most 24 bits
    for start in range(0, n, TILE):
        stop = min(start + TILE, n)
        width = stop - start
        state[:, :width] = 0.0
        # -0 is the identity of IEEE addition (+0 would turn a sum of -0s into +0).
        state[0, :width] = -0.0
        i = 0
        while i + UNROLL <= count:
            rows = (values[i, start:stop], values[i + 1, start:stop], values[i + 2, start:stop],
                    values[i + 3, start:stop], values[i + 4, start:stop], values[i + 5, start:stop],
                    values[i + 6, start:stop], values[i + 7, start:stop])
            if one_level:
                _accumulate_one_level_c(state, rows, width)
            else:
                _accumulate_c(state, rows, width)
            i += UNROLL
        while i < count:
            if one_level:
                _accumulate_one_level_c(state, (values[i, start:stop],), width)
            else:
                _accumulate_c(state, (values[i, start:stop],), width)
            i += 1
        failures += _finish_c(state, out[start:stop], failed[start:stop], width, precision,
                              quantum, min_normal, guard, factor)
    return failures


def _value_of_float16(h: Any) -> float:
    """The float64 value of float16 bits: its magnitude bits moved into a float32 (then 2^-112
    times the value, subnormals included), scaled back exactly; all-ones exponents are inf/NaN."""
    rest = np.uint32(h) & np.uint32(0x7FFF)
    special = np.float64(_bits_float32(np.uint32(0x7F800000) | ((rest & np.uint32(0x3FF)) << np.uint32(13))))
    finite = np.float64(_bits_float32(rest << np.uint32(13))) * 2.0 ** 112
    value = special if rest >= np.uint32(0x7C00) else finite
    return -value if (np.uint32(h) & np.uint32(0x8000)) != np.uint32(0) else value


def _float16_bits(values: Any, out: Any) -> None:
    """Write the float16 bits of float32 `values` (each a float16 value, an infinity or a NaN)."""
    for j in range(values.size):
        x = values[j]
        sign = np.uint16((_float32_bits(x) >> np.uint32(16)) & np.uint32(0x8000))
        magnitude = np.uint16(_float32_bits(np.float32(abs(x) * np.float32(2.0 ** -112))) >> np.uint32(13))
        magnitude = np.uint16(0x7C00) if abs(x) == np.inf else magnitude
        out[j] = np.uint16(0x7E00) if x != x else sign | magnitude


_compiled: Any = None
_narrow_float16: Any = None


def _build() -> None:
    """Import numba and compile (or load from its cache) the kernels, once per process."""
    global _compiled, _narrow_float16, _load, _float_bits, _bits_float, _bits_float32, _float32_bits
    global _accumulate_c, _accumulate_one_level_c, _finish_c, _value_of_float16_c
    from numba import njit, types
    from numba.extending import intrinsic, overload

    def bitcast(source: Any, target: Any) -> Any:
        def typer(typingctx: Any, x: Any) -> Any:
            return target(source), lambda context, builder, sig, args: builder.bitcast(
                args[0], context.get_value_type(target))
        return intrinsic(typer)

    # Register moves, unlike a view of an array.
    _float_bits = bitcast(types.float64, types.uint64)
    _bits_float = bitcast(types.uint64, types.float64)
    _float32_bits = bitcast(types.float32, types.uint32)
    _bits_float32 = bitcast(types.uint32, types.float32)
    jit = njit(cache=True, nogil=True, boundscheck=False)
    _value_of_float16_c = jit(_value_of_float16)

    def load(x: Any) -> float:
        """float64 of a contribution: float16 bits arrive as uint16, bfloat16 bits as int16."""

    # Unannotated: numba compares this signature with the implementations' (lambdas) exactly.
    @overload(load, inline="always")
    def _load_typed(x):  # type: ignore[no-untyped-def]
        if isinstance(x, types.Float):
            return lambda x: np.float64(x)
        if x == types.uint16:
            return lambda x: _value_of_float16_c(x)
        if x == types.int16:
            return lambda x: np.float64(_bits_float32(np.uint32(np.uint16(x)) << np.uint32(16)))
        return None

    _load = load
    _accumulate_c = jit(_accumulate)
    _accumulate_one_level_c = jit(_accumulate_one_level)
    _finish_c = jit(_finish)
    _narrow_float16 = jit(_float16_bits)
    _compiled = jit(_kernel)


def kernel_view(values: Any, fmt: FloatFormat) -> Any:
    """Return `values` as the kernel reads them: float32/float64 as they are, float16 bits as
    uint16 and bfloat16 bits as int16 (the kernel's decoding is chosen by that type)."""
    if fmt.dtype.itemsize >= 4:
        return values
    return values.view(np.uint16 if fmt.dtype == np.float16 else np.int16)


def narrow_float16(values: Any) -> np.ndarray:
    """Return float32 `values` that hold float16 values (or inf, NaN) as float16, exactly and
    fast (NumPy's own cast is a slow loop)."""
    if _compiled is None:
        _build()
    out = np.empty(values.size, dtype=np.uint16)
    _narrow_float16(np.ascontiguousarray(values).reshape(-1), out)
    return out.view(np.float16).reshape(values.shape)


def certified_sum(values: Any, fmt: FloatFormat) -> tuple[np.ndarray, np.ndarray, int]:
    """Return (sums, failed, failures) for a (P, n) NumPy array of fmt's dtype.

    sums[j] is the correctly rounded sum of column j (in fmt's compute dtype, holding a value
    of fmt) wherever failed[j] is False; elsewhere it is undefined and the caller must take the
    exact path. Needs `available()`.
    """
    if values.dtype != fmt.dtype or values.ndim != 2:
        raise TypeError(f"certified_sum needs a (P, n) array of {fmt.dtype}, got {values.shape} {values.dtype}")
    if _compiled is None:
        _build()
    rows = values.shape[0]
    out = np.empty(values.shape[1], dtype=fmt.compute)
    failed = np.empty(values.shape[1], dtype=np.bool_)
    if values.shape[1] == 0:
        return out, failed, 0
    min_normal = 2.0 ** fmt.min_normal_exponent
    guard = 2.0 ** (fmt.max_exponent - 2)
    factor = 2.0 * rows * 2.0 ** -53
    failures = _compiled(kernel_view(np.ascontiguousarray(values), fmt), out, failed, fmt.precision, fmt.quantum,
                         min_normal, guard, factor)
    return out, failed, int(failures)
