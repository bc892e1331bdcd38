"""Deterministic distributed sums: the correctly rounded sum of one contribution per rank.

Three algorithms give the same bits (each returns the unique correctly rounded sum):

- "gather": one all-gather of every contribution, then the exact local sum of all P on every
  rank. One collective, P times the buffer received: the choice for small buffers.
- "digits": agree on an exponent grid with one tiny Allreduce(MAX), cut every value into
  integer-valued float64 digits on it, Allreduce(SUM) the digits exactly, round once. Two
  collectives and (digits + 1) float64 per element; kept for `algorithm=` and as the
  independent check of the other two.
- "alltoall": all-to-all of slices, an exact local sum of the P contributions of each slice on
  its owner, all-gather of the results. The bytes of a ring all-reduce: the choice for large
  buffers.

`choose` picks one from the buffer size and rank count (thresholds measured, docs/performance.md).
Collective over the call's group: every member calls with arrays of the same shape and dtype.
Every message goes through `call`, a call in progress on the call path (`comm.Call`), which
stages device buffers for its transport. The 16-bit formats travel as their bit patterns
(MPI has no bfloat16), and are summed in float32 (formats.py).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from ..comm.call import Call
from . import scratch
from .exact_sum import canonical_nan, decode, digit_bits, digit_count, encode, exact_sum, exponent_bounds
from .formats import FloatFormat, widen

ALGORITHMS = ("auto", "gather", "digits", "alltoall")
GATHER_UP_TO_BYTES = 64 * 1024
"""algorithm="auto" gathers every contribution while the gathered total (size x buffer bytes)
is at most this; beyond it the all-to-all algorithm moves fewer bytes and wins."""


def choose(algorithm: str, nbytes: int, size: int) -> str:
    """Return the algorithm to use for a buffer of `nbytes` over `size` ranks."""
    if algorithm != "auto":
        return algorithm
    return "gather" if size == 1 or nbytes * size <= GATHER_UP_TO_BYTES else "alltoall"


def movable(x: Any) -> Any:
    """Return `x` as the transport can move it: 16-bit floats as their unsigned bit patterns."""
    return x.view(np.uint16) if x.dtype.itemsize == 2 else x


def sum_gather(call: Call, xp: Any, x: Any) -> Any:
    """Return the correctly rounded sum of `x` over the group by gathering every contribution."""
    flat = xp.ascontiguousarray(x).reshape(-1)
    # Fresh, not scratch: below the threshold it is small (NumPy's allocator reuses it anyway),
    # and a scratch buffer here measured 40-80 us slower per call at 8 ranks, 512 B-4 KiB.
    gathered = xp.empty((call.size, flat.size), dtype=flat.dtype)
    call.all_gather(movable(flat), movable(gathered))
    return exact_sum(xp, gathered).reshape(x.shape)


def sum_digits(call: Call, xp: Any, x: Any) -> Any:
    """Return the correctly rounded sum of `x` over the group by exact digit all-reduction."""
    dtype = np.dtype(x.dtype)
    fmt = FloatFormat.of(dtype)
    x = widen(xp, xp.ascontiguousarray(x), fmt)
    bits = digit_bits(call.size)
    top, low = exponent_bounds(xp, x, fmt)
    bounds = xp.asarray([int(top), -int(low)], dtype=np.int64)
    call.all_reduce(None, bounds, op="max")
    grid_top, grid_low = (int(v) for v in (bounds[0], -bounds[1]))
    stack = encode(xp, x, grid_top, digit_count(grid_top - grid_low, bits), bits)
    call.all_reduce(None, stack, op="sum")
    return canonical_nan(xp, decode(xp, stack, grid_top, bits, call.size, dtype))


def reduce_scatter_exact(call: Call, xp: Any, blocks: Any) -> Any:
    """Return the correctly rounded sum over ranks of row `call.rank` of `blocks`.

    `blocks` is (P, chunk), row i destined for rank i: one all-to-all brings each rank the P
    contributions to its row, which it sums exactly. Equal rows let MPI use its all-to-all
    algorithms rather than the slower all-to-all-v.
    """
    received = scratch.buffer(xp, "received", blocks.shape, blocks.dtype)
    call.all_to_all(movable(blocks), movable(received))
    return exact_sum(xp, received)


def sum_alltoall(call: Call, xp: Any, x: Any, *, out: Any = None) -> Any:
    """Return the correctly rounded sum of `x` over the group: exact reduce-scatter, then all-gather.

    The n elements split as P equal slices of n // P (one all-to-all, an exact local sum per
    slice on its owner, one all-gather straight into the result) and a tail of n mod P < P
    elements, gathered whole and summed exactly on every rank. Equal slices let MPI use its
    all-to-all algorithms, and the result needs no padded copy of `x` nor a copy out of a
    padded gather (all-to-all-v, or padding to equal rows, were slower at 72 ranks:
    docs/performance.md); each element's sum is the same wherever it is computed.
    The result goes into `out` (which may be `x`) when given; a new array otherwise.
    """
    flat = xp.ascontiguousarray(x).reshape(-1)
    size, n = call.size, flat.size
    even = n - n % size
    direct = out is not None and out.flags.c_contiguous
    if direct:
        result = out.reshape(-1)
    elif out is None:
        result = xp.empty(n, dtype=x.dtype)  # returned: never scratch
    else:
        result = scratch.buffer(xp, "result", (n,), x.dtype)
    # The tail first: with out=x its send buffer is the end of the result.
    tail = None
    if even < n:
        gathered = scratch.buffer(xp, "tail", (size, n - even), flat.dtype)
        call.all_gather(movable(flat[even:]), movable(gathered))
        tail = exact_sum(xp, gathered)
    if even:
        part = reduce_scatter_exact(call, xp, flat[:even].reshape(size, even // size))
        call.all_gather(movable(part), movable(result[:even].reshape(size, even // size)))
    if tail is not None:
        result[even:] = tail
    if out is None:
        return result.reshape(x.shape)
    if not direct:
        out[...] = result.reshape(x.shape)
    return out


def deterministic_sum(call: Call, xp: Any, x: Any, *, algorithm: str = "auto", out: Any = None) -> Any:
    """Return the correctly rounded sum of `x` over the group with the named (or chosen)
    algorithm, written into `out` when given."""
    chosen = choose(algorithm, x.nbytes, call.size)
    if chosen == "alltoall":
        return sum_alltoall(call, xp, x, out=out)
    result = sum_gather(call, xp, x) if chosen == "gather" else sum_digits(call, xp, x)
    if out is None:
        return result
    out[...] = result
    return out
