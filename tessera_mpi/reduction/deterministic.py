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
    received = xp.empty_like(blocks)
    call.all_to_all(movable(blocks), movable(received))
    return exact_sum(xp, received)


def rows(xp: Any, flat: Any, size: int) -> Any:
    """Return `flat` as (size, ceil(n / size)) rows, zero-padded at the end (the shard rule)."""
    chunk = -(-flat.size // size)
    if chunk * size == flat.size:
        return flat.reshape(size, chunk)
    padded = xp.zeros(size * chunk, dtype=flat.dtype)
    padded[: flat.size] = flat
    return padded.reshape(size, chunk)


def sum_alltoall(call: Call, xp: Any, x: Any, *, out: Any = None) -> Any:
    """Return the correctly rounded sum of `x` over the group: exact reduce-scatter, then all-gather.

    The result goes into `out` (which may be `x`) when given.
    """
    flat = xp.ascontiguousarray(x).reshape(-1)
    part = reduce_scatter_exact(call, xp, rows(xp, flat, call.size))
    fits = out is not None and part.size * call.size == flat.size and out.flags.c_contiguous
    gathered = out.reshape(call.size, part.size) if fits else xp.empty((call.size, part.size), dtype=x.dtype)
    call.all_gather(movable(part), movable(gathered))
    result = gathered.reshape(-1)[: flat.size].reshape(x.shape)
    if out is not None and not fits:
        out[...] = result
        return out
    return result


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
