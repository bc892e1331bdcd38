"""The fabric benchmark engine: one collective at one size, verified, then timed.

Like nccl-tests, it works on preallocated buffers of the array backend (no tensor layer, no
allocation inside the timed loop), in-place and out-of-place. Every element rank r sends at
position i holds ((7r + 13i) mod 31) + 1: small integers, so every sum is exact in any order
and every result is predictable, element by element, on every rank.

Every function here is collective over `comm`.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
from mpi4py import MPI

from .busbw import algbw_gbps, busbw_gbps, per_rank_count, size_of
from .fault import hooks
from .runtime import Runtime
from .runtime.tracker import tracker
from .timing import Timing, iterations_for, time_loop

VARIANTS = {
    "all_reduce": (False, True),
    "all_gather": (False, True),
    "reduce_scatter": (False, True),
    "broadcast": (True,),
    "all_to_all": (False, True),
    "sendrecv": (False, True),
}
"""The variants (in_place flags) of each collective: MPI broadcasts only in place."""


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


@dataclass
class Kernel:
    """Buffers and calls for one (collective, count, in_place) on one rank."""

    run: Callable[[], None]
    """One call of the collective, staging included."""
    load: Callable[[], None]
    """Put the verification input in place (in-place variants overwrite their input)."""
    result: Callable[[], Any]
    """The array to verify after one run."""
    expected: Callable[[], Any]
    quiet: Callable[[], None]
    """Put timing input in place: zeros where repeated in-place sums would otherwise grow."""
    waited: list[float]
    """Seconds spent inside MPI so far (one float, shared with the wrapped call)."""


def _mpi(rt: Runtime, comm: MPI.Intracomm, name: str, call: Callable[..., None],
         waited: list[float]) -> Callable[[Any, Any], Callable[[], None]]:
    """Return bind(send, recv): the MPI call of (send, recv) arrays (send None: in place) as a
    function of no arguments, with the backend's staging, the fault hooks and the tracker, as
    every tessera_mpi collective is wrapped.

    `waited[0]` accumulates the seconds spent inside MPI: a straggler, which arrives last,
    waits least. The timed loop calls the bound function once per iteration: one frame, host
    buffers resolved when bound.
    """
    staging = rt.staging
    what = f"the {name} sweep"

    def bind(send: Any, recv: Any) -> Callable[[], None]:
        host_source = MPI.IN_PLACE if send is None else send
        device = staging.device

        def run() -> None:
            if hooks.active:
                hooks.before(name)
            tracker.enter(name)
            entered = MPI.Wtime()
            try:
                if device:
                    source = staging.send_buffer(send) if send is not None else MPI.IN_PLACE
                    target = staging.send_buffer(recv) if send is None else staging.recv_buffer(recv)
                    call(source, target)
                    staging.finish(target, recv)
                else:
                    call(host_source, recv)
            except MPI.Exception as exc:
                raise hooks.lost(exc, comm, what) from exc
            waited[0] += MPI.Wtime() - entered
            tracker.leave()
            if hooks.active:
                hooks.after(recv)
        return run

    return bind


def kernel(collective: str, comm: MPI.Intracomm, rt: Runtime, *, count: int, dtype: Any, in_place: bool) -> Kernel:
    """Return the kernel of `collective` with `count` elements per rank (part), allocated once."""
    xp = rt.backend.xp
    me, p = comm.rank, comm.size
    zero = lambda a: (lambda: a.fill(0))  # noqa: E731
    waited = [0.0]

    if collective == "all_reduce":
        send = values(xp, me, 0, count, dtype)
        recv = xp.empty(count, dtype=dtype)
        call = _mpi(rt, comm, collective, partial(comm.Allreduce, op=MPI.SUM), waited)
        if in_place:
            return Kernel(call(None, recv), lambda: xp.copyto(recv, send), lambda: recv,
                          lambda: summed(xp, p, 0, count, dtype), zero(recv), waited)
        return Kernel(call(send, recv), lambda: None, lambda: recv,
                      lambda: summed(xp, p, 0, count, dtype), lambda: None, waited)
    if collective == "all_gather":
        send = values(xp, me, 0, count, dtype)
        recv = xp.empty(p * count, dtype=dtype)
        call = _mpi(rt, comm, collective, comm.Allgather, waited)

        def gathered() -> Any:
            return xp.concatenate([values(xp, r, 0, count, dtype) for r in range(p)])

        if in_place:
            def load() -> None:
                recv[me * count:(me + 1) * count] = send
            return Kernel(call(None, recv), load, lambda: recv, gathered, lambda: None, waited)
        return Kernel(call(send, recv), lambda: None, lambda: recv, gathered, lambda: None, waited)
    if collective == "reduce_scatter":
        send = values(xp, me, 0, p * count, dtype)
        call = _mpi(rt, comm, collective, partial(comm.Reduce_scatter_block, op=MPI.SUM), waited)
        expected = lambda: summed(xp, p, me * count, count, dtype)  # noqa: E731
        if in_place:
            buf = xp.empty(p * count, dtype=dtype)
            return Kernel(call(None, buf), lambda: xp.copyto(buf, send), lambda: buf[:count],
                          expected, zero(buf), waited)
        recv = xp.empty(count, dtype=dtype)
        return Kernel(call(send, recv), lambda: None, lambda: recv, expected, lambda: None, waited)
    if collective == "broadcast":
        buf = xp.empty(count, dtype=dtype)
        call = _mpi(rt, comm, collective, lambda s, r: comm.Bcast(r, root=0), waited)

        def load() -> None:
            buf[...] = values(xp, 0, 0, count, dtype) if me == 0 else 0
        return Kernel(call(None, buf), load, lambda: buf, lambda: values(xp, 0, 0, count, dtype),
                      lambda: None, waited)
    if collective == "all_to_all":
        send = values(xp, me, 0, p * count, dtype)
        call = _mpi(rt, comm, collective, comm.Alltoall, waited)

        def received() -> Any:
            return xp.concatenate([values(xp, s, me * count, count, dtype) for s in range(p)])

        if in_place:
            buf = xp.empty(p * count, dtype=dtype)
            return Kernel(call(None, buf), lambda: xp.copyto(buf, send), lambda: buf, received,
                          lambda: None, waited)
        recv = xp.empty(p * count, dtype=dtype)
        return Kernel(call(send, recv), lambda: None, lambda: recv, received, lambda: None, waited)
    if collective == "sendrecv":
        send = values(xp, me, 0, count, dtype)
        to, frm = (me + 1) % p, (me - 1) % p
        expected = lambda: values(xp, frm, 0, count, dtype)  # noqa: E731
        if in_place:
            buf = xp.empty(count, dtype=dtype)
            call = _mpi(rt, comm, collective, lambda s, r: comm.Sendrecv_replace(r, dest=to, source=frm), waited)
            return Kernel(call(None, buf), lambda: xp.copyto(buf, send), lambda: buf, expected,
                          lambda: None, waited)
        recv = xp.empty(count, dtype=dtype)
        call = _mpi(rt, comm, collective, lambda s, r: comm.Sendrecv(s, dest=to, recvbuf=r, source=frm), waited)
        return Kernel(call(send, recv), lambda: None, lambda: recv, expected, lambda: None, waited)
    raise ValueError(f"the sweep does not know collective {collective!r}")


@dataclass(frozen=True)
class Measurement:
    """One verified, timed (collective, size, variant), identical on every rank."""

    collective: str
    size_bytes: int
    count: int
    dtype: str
    in_place: bool
    timing: Timing
    algbw_gbps: float
    busbw_gbps: float
    wrong_by_rank: tuple[int, ...]
    waits_least: int = 0
    """The rank that spent the least time inside MPI: with a straggler, the straggler."""
    wait_spread: float = 0.0
    """(most - least waited) / the slowest rank's time: near 0 in balance, near 1 with a straggler."""

    @property
    def wrong(self) -> int:
        return sum(self.wrong_by_rank)

    def row(self) -> dict[str, Any]:
        """Return the results-table row (see docs/results-schema.md)."""
        t = self.timing
        return {
            "size_bytes": self.size_bytes, "count": self.count, "dtype": self.dtype,
            "in_place": self.in_place, "iters": t.iterations,
            "time_us_avg": t.t_avg * 1e6, "time_us_min": t.t_min * 1e6, "time_us_max": t.t_max * 1e6,
            "time_us_p50": t.p50 * 1e6, "time_us_p99": t.p99 * 1e6,
            "host_time_us_max": (t.host_t_max if t.host_t_max is not None else t.t_max) * 1e6,
            "algbw_GBps": self.algbw_gbps, "busbw_GBps": self.busbw_gbps, "wrong": self.wrong,
        }


def verify(k: Kernel, comm: MPI.Intracomm, xp: Any) -> tuple[int, ...]:
    """Run the kernel once on its verification input; return every rank's count of wrong elements."""
    k.load()
    k.run()
    wrong = int((k.result() != k.expected()).sum())
    return tuple(int(w) for w in comm.allgather(wrong))


def measure(
    collective: str,
    comm: MPI.Intracomm,
    rt: Runtime,
    *,
    size_bytes: int,
    dtype: Any = np.float32,
    in_place: bool = False,
    budget_s: float = 0.2,
    max_iterations: int = 1000,
) -> Measurement:
    """Verify, then time `collective` at `size_bytes` (nccl-tests size) for about `budget_s`.

    The iteration count is calibrated from one call (the slowest rank's) and capped by bytes
    moved, as IMB does; it is the same on every rank.
    """
    dtype = np.dtype(dtype)
    count = per_rank_count(collective, size_bytes, comm.size, dtype.itemsize)
    k = kernel(collective, comm, rt, count=count, dtype=dtype, in_place=in_place)
    wrong = verify(k, comm, rt.backend.xp)
    k.quiet()
    comm.Barrier()
    start = MPI.Wtime()
    k.run()
    once = comm.allreduce(MPI.Wtime() - start, op=MPI.MAX)
    size = size_of(collective, count, comm.size, dtype.itemsize)
    cap = min(max_iterations, iterations_for(size))
    iterations = max(2, min(cap, int(budget_s / max(once, 1e-7))))
    k.waited[0] = 0.0
    timing = time_loop(comm, k.run, iterations=iterations, warmup=1, clock=rt.backend.clock())
    waited = np.array(comm.allgather(k.waited[0]))
    spread = float((waited.max() - waited.min()) / max(timing.t_max * (iterations + 1), 1e-12))
    return Measurement(
        collective=collective, size_bytes=size, count=count, dtype=dtype.name, in_place=in_place,
        timing=timing, algbw_gbps=algbw_gbps(size, timing.t_max),
        busbw_gbps=busbw_gbps(collective, size, timing.t_max, comm.size), wrong_by_rank=wrong,
        waits_least=int(waited.argmin()), wait_spread=spread,
    )


def sizes(low: int, high: int, factor: int) -> list[int]:
    """Return low, low*factor, ... up to high (inclusive), the sweep's nominal sizes in bytes."""
    if low < 1 or high < low or factor < 2:
        raise ValueError(f"sizes need 1 <= MIN <= MAX and FACTOR >= 2, got {low}:{high}:{factor}")
    out = []
    size = low
    while size <= high:
        out.append(size)
        size *= factor
    return out


def distinct(collective: str, nominal: list[int], ranks: int, itemsize: int) -> Iterator[int]:
    """Yield the nominal sizes that give distinct element counts for `collective` (small sizes
    of total-buffer collectives all round up to one element per rank)."""
    seen = set()
    for size in nominal:
        count = per_rank_count(collective, size, ranks, itemsize)
        if count not in seen:
            seen.add(count)
            yield size


def memory_cap(rt: Runtime, comm: MPI.Intracomm) -> int:
    """Return the largest sweep size (bytes) every rank can hold (collective over `comm`).

    The all-to-all variants hold about four buffers of the size (send, receive, expected, a
    temporary), so a quarter of this rank's share of free memory, the same on every rank.
    """
    if rt.backend.name == "cupy":
        free, _ = rt.backend.xp.cuda.Device().mem_info
        share = free / max(1, math.ceil(rt.placement.local_size / max(1, rt.backend.device_count())))
    else:
        free = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        share = free / rt.placement.local_size
    return int(comm.allreduce(int(share // 4), op=MPI.MIN))

