"""The fabric benchmark engine: one collective at one size, verified, then timed.

Like nccl-tests, it works on preallocated buffers of the array backend (no tensor layer, no
allocation inside the timed loop), in-place and out-of-place, every call through the call
path bound once. Every rank sends the benchmark pattern (fabric.pattern), so every result is
known element by element on every rank.

Every function here is collective over the group.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from mpi4py import MPI

from ..comm.call import Batch, Call, Group
from ..runtime import Runtime
from ..runtime.device import sharing_machine
from .busbw import algbw_gbps, busbw_gbps
from .collectives import SWEPT, TABLE, spec
from .pattern import values
from .timing import Timing, iterations_for, time_loop

LoopChoice = Literal["auto", "python"]
"""`measure`'s loop: "auto" (compiled where every rank has it) or "python" (always)."""

VARIANTS: dict[str, tuple[bool, ...]] = {name: TABLE[name].variants for name in SWEPT}
"""The variants (in_place flags) of each swept collective, from the table of collectives."""


@dataclass
class Kernel:
    """Buffers and calls for one (collective, count, in_place) on one rank."""

    run: Callable[[], None]
    """One call of the collective through the call path, staging included."""
    load: Callable[[], None]
    """Put the verification input in place (in-place variants overwrite their input)."""
    result: Callable[[], Any]
    """The array to verify after one run."""
    expected: Callable[[], Any]
    quiet: Callable[[], None]
    """Put timing input in place: zeros where repeated in-place sums would otherwise grow."""
    call: Call
    """The bound call: `call.seconds` adds up the time spent inside it (a straggler, which
    arrives last, waits least)."""
    batch: Batch | None = None
    """The same call as a compiled timed loop, where the transport has one for it."""


def _peers(collective: str, rank: int, ranks: int) -> dict[str, Any]:
    """The transport arguments of one swept call besides its buffers."""
    if collective in ("all_reduce", "reduce_scatter"):
        return {"op": "sum"}
    if collective == "broadcast":
        return {"root": 0}
    if collective == "sendrecv":
        return {"dest": (rank + 1) % ranks, "source": (rank - 1) % ranks}
    return {}


def kernel(collective: str, group: Group | MPI.Intracomm, rt: Runtime, *, count: int, dtype: Any,
           in_place: bool) -> Kernel:
    """Return the kernel of `collective` with `count` elements per rank part, allocated once.

    The buffers follow the collective's spec: its send and receive parts, where an in-place
    input sits, and the expected result on the pattern.
    """
    group = as_group(group)
    s = spec(collective)
    backend = rt.backend
    xp = backend.xp
    me, p = group.rank, group.size
    send_count, recv_count = s.parts(s.send_parts, p) * count, s.parts(s.recv_parts, p) * count
    source = backend.empty(send_count, dtype)
    source[...] = values(xp, me, 0, send_count, dtype)
    if in_place:
        buffer = backend.empty(max(send_count, recv_count), dtype)
        at = s.in_place_at(me, count)

        def load() -> None:
            if s.only_root_sends and me != 0:
                buffer[...] = 0
            else:
                buffer[at:at + send_count] = source

        send, recv, view = None, buffer, buffer[:recv_count]
    else:
        recv = backend.empty(recv_count, dtype)
        send, view, load = source, recv, (lambda: None)
    peers = _peers(collective, me, p)
    run, call = group.bind(collective, collective, send, recv, result=recv, **peers)
    # Built here, before any timing: the first use compiles the loop (once per machine).
    batch = group.bind_batch(call, collective, send, recv, result=recv, **peers)
    quiet = (lambda: recv.fill(0)) if in_place and s.reduces else (lambda: None)
    expected = s.expected
    assert expected is not None, f"{collective} is not a swept collective"
    return Kernel(run=run, load=load, result=lambda: view, expected=lambda: expected(xp, me, p, count, dtype),
                  quiet=quiet, call=call, batch=batch)


def transport_label(group: Group) -> str:
    """What results call the group's transport: its name, marked "(emulated)" for the emulation."""
    return group.transport.label


def as_group(group: Group | MPI.Intracomm) -> Group:
    """Return `group`, or the group of a bare communicator's ranks."""
    return group if isinstance(group, Group) else Group.of(group)


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
    transport: str = "mpi"
    """What moved the data: "mpi", "nccl", or "nccl (emulated)" (MPI under NCCL's conventions)."""
    waits_least: int = 0
    """The rank that spent the least time inside MPI: with a straggler, the straggler."""
    wait_spread: float = 0.0
    """(most - least waited) / the slowest rank's time: near 0 in balance, near 1 with a straggler."""
    buffers: str = "host"
    """How the buffers reached the transport (runtime.transfer.BufferPath): "host", "direct"
    (device buffers to a CUDA-aware MPI) or "staged" (through pinned host buffers)."""

    @property
    def wrong(self) -> int:
        return sum(self.wrong_by_rank)

    def row(self) -> dict[str, Any]:
        """Return the results-table row (see docs/results-schema.md)."""
        t = self.timing
        return {
            "transport": self.transport, "size_bytes": self.size_bytes, "count": self.count, "dtype": self.dtype,
            "in_place": self.in_place, "iters": t.iterations,
            "time_us_avg": t.t_avg * 1e6, "time_us_min": t.t_min * 1e6, "time_us_max": t.t_max * 1e6,
            "time_us_p50": t.p50 * 1e6, "time_us_p99": t.p99 * 1e6,
            "host_time_us_max": (t.host_t_max if t.host_t_max is not None else t.t_max) * 1e6,
            "loop": t.loop, "buffers": self.buffers,
            "algbw_GBps": self.algbw_gbps, "busbw_GBps": self.busbw_gbps, "wrong": self.wrong,
        }


def verify(k: Kernel, comm: Group | MPI.Intracomm, xp: Any, *, batch: Batch | None = None) -> tuple[int, ...]:
    """Run the kernel once on its verification input (through `batch`, the compiled loop, when
    given: the loop that times is the one verified); return every rank's count of wrong elements.
    Collective: every rank passes a batch or none."""
    k.load()
    if batch is None:
        k.run()
    else:
        batch(0, np.empty(2))
    wrong = int((k.result() != k.expected()).sum())
    return tuple(int(w) for w in as_group(comm).comm.allgather(wrong))


def measure(
    collective: str,
    group: Group | MPI.Intracomm,
    rt: Runtime,
    *,
    size_bytes: int,
    dtype: Any = np.float32,
    in_place: bool = False,
    budget_s: float = 0.2,
    max_iterations: int = 1000,
    loop: LoopChoice = "auto",
    percentiles: bool = False,
) -> Measurement:
    """Verify, then time `collective` at `size_bytes` (nccl-tests size) for about `budget_s`.

    The iteration count is calibrated from one call (the slowest rank's) and capped by bytes
    moved, as IMB does; it is the same on every rank. `loop="auto"` times in the compiled loop
    where the call has one on every rank (`timing.loop` says which ran), "python" always in
    Python. `percentiles` asks device-event timing for one event pair per iteration (see
    `time_loop`).
    """
    if loop not in ("auto", "python"):
        raise ValueError(f"loop must be 'auto' or 'python', got {loop!r}")
    group = as_group(group)
    # A process lost between two calls (in a barrier or a gather) is named like one lost in a call.
    with group.control(f"{collective} at {size_bytes} B"):
        comm, s = group.comm, spec(collective)
        dtype = np.dtype(dtype)
        count = s.per_rank_count(size_bytes, comm.size, dtype.itemsize)
        k = kernel(collective, group, rt, count=count, dtype=dtype, in_place=in_place)
        compiled = loop == "auto" and comm.allreduce(int(k.batch is not None and k.batch.usable), op=MPI.MIN)
        batch = k.batch if compiled else None
        wrong = verify(k, group, rt.backend.xp, batch=batch)
        k.quiet()
        comm.Barrier()
        start = MPI.Wtime()
        k.run()
        if group.transport.stream_ordered:
            rt.backend.synchronize()  # the call was only queued: calibrate on its completion
        once = comm.allreduce(MPI.Wtime() - start, op=MPI.MAX)
        size = s.size_of(count, comm.size, dtype.itemsize)
        cap = min(max_iterations, iterations_for(size))
        iterations = max(2, min(cap, int(budget_s / max(once, 1e-7))))
        k.call.seconds = 0.0
        timing = time_loop(comm, k.run, iterations=iterations, warmup=1, clock=rt.backend.clock(),
                           batch=batch, percentiles=percentiles)
        waited = np.array(comm.allgather(k.call.seconds))
        spread = float((waited.max() - waited.min()) / max(timing.t_max * (iterations + 1), 1e-12))
    return Measurement(
        collective=collective, size_bytes=size, count=count, dtype=dtype.name, in_place=in_place,
        timing=timing, algbw_gbps=algbw_gbps(size, timing.t_max),
        busbw_gbps=busbw_gbps(collective, size, timing.t_max, comm.size), wrong_by_rank=wrong,
        transport=transport_label(group),
        waits_least=int(waited.argmin()), wait_spread=spread, buffers=group.staging.path,
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
        count = spec(collective).per_rank_count(size, ranks, itemsize)
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
        # The machine's memory, shared by every rank on it (emulated hosts included).
        share = free / sharing_machine(rt.placement, rt.placements)
    return int(comm.allreduce(int(share // 4), op=MPI.MIN))

