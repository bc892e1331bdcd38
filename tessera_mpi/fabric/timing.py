"""The one timing helper: back-to-back iterations after a barrier and warm-up, IMB conventions.

Each rank times its iterations with its backend's clock (MPI.Wtime for host buffers, every
iteration, in compiled code where the call has a compiled loop; device events around the
whole batch for device buffers, or around each iteration when percentiles are asked for, and
the host clock beside them so the two can be compared); the headline is the maximum over
ranks of the per-rank mean (IMB's t_max), with the mean and minimum over ranks and
percentiles beside it (`time_loop` says what they are percentiles of in each mode).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
from mpi4py import MPI

from ..comm.call import Batch
from ..runtime.backend import EventClock, HostClock

Clock = HostClock | EventClock


@dataclass(frozen=True)
class Timing:
    """Times of one timed loop, in seconds, identical on every rank."""

    iterations: int
    t_max: float
    """Max over ranks of the per-rank mean iteration time (the headline)."""
    t_avg: float
    """Mean over ranks of the per-rank mean."""
    t_min: float
    """Min over ranks of the per-rank mean."""
    p50: float
    """Median over all ranks' iterations."""
    p99: float
    """99th percentile over all ranks' iterations."""
    clock: str = "host"
    """The clock that produced the times: "host" or "events"."""

    host_t_max: float | None = None
    """t_max by the host clock, when the times came from device events."""
    loop: str = "python"
    """The loop that issued the calls: "compiled" (barrier, warm-up, calls and clock in compiled
    code) or "python"."""


def iterations_for(nbytes: int, *, max_iterations: int = 1000, min_iterations: int = 5,
                   byte_budget: int = 1 << 30) -> int:
    """Return an iteration count capped by bytes moved, as IMB does (fewer for large buffers)."""
    return int(max(min_iterations, min(max_iterations, byte_budget // max(nbytes, 1))))


def time_loop(
    comm: MPI.Intracomm,
    body: Callable[[], object],
    *,
    iterations: int,
    warmup: int = 2,
    clock: Clock | None = None,
    batch: Batch | None = None,
    percentiles: bool = False,
) -> Timing:
    """Run `body` `warmup` times, then `iterations` timed times, and summarize over `comm`.

    Collective over `comm`: every rank runs the same loop (body is typically a collective).
    `clock` defaults to the host clock; with device events the host clock is read as well.

    Host clock: with a compiled `batch` of the same call (`Group.bind_batch`) usable on every
    rank, the barrier, warm-up, calls and the clock after each call run in compiled code
    (`loop="compiled"`), else the same steps in Python (`loop="python"`). Either way one clock
    reading per iteration, so p50 and p99 are percentiles of single iterations.

    Device events: one event pair around the whole batch, as nccl-tests does; every iteration
    of a rank then counts as the batch's mean, so p50 and p99 are percentiles of the per-rank
    means. With `percentiles` an event pair per iteration instead, and p50 and p99 are those of
    single iterations (at the cost of an event record and a synchronize per iteration).
    """
    clock = HostClock() if clock is None else clock
    if clock.name == "host" and batch is not None and comm.allreduce(int(batch.usable), op=MPI.MIN):
        stamps = np.empty(iterations + 1)
        batch(warmup, stamps)
        return replace(summarize(comm, np.diff(stamps)), loop="compiled")
    for _ in range(warmup):
        body()
    comm.Barrier()
    if clock.name == "host":
        # One timestamp per iteration: each iteration ends where the next begins.
        stamps = np.empty(iterations + 1)
        stamps[0] = MPI.Wtime()
        for i in range(iterations):
            body()
            stamps[i + 1] = MPI.Wtime()
        return summarize(comm, np.diff(stamps))
    if not percentiles:
        wall = MPI.Wtime()
        clock.start()
        for _ in range(iterations):
            body()
        mean = clock.stop() / iterations
        host_mean = (MPI.Wtime() - wall) / iterations
        timing = summarize(comm, np.full(iterations, mean), clock=clock.name)
        return replace(timing, host_t_max=summarize(comm, np.full(1, host_mean)).t_max)
    times = np.empty(iterations)
    host = np.empty(iterations)
    for i in range(iterations):
        wall = MPI.Wtime()
        clock.start()
        body()
        times[i] = clock.stop()
        host[i] = MPI.Wtime() - wall
    timing = summarize(comm, times, clock=clock.name)
    return replace(timing, host_t_max=summarize(comm, host).t_max)


def summarize(comm: MPI.Intracomm, times: np.ndarray, *, clock: str = "host") -> Timing:
    """Return the Timing of per-iteration `times` from every rank (collective over `comm`)."""
    mean = float(times.mean())
    means = np.empty(comm.size)
    comm.Allgather(np.array([mean]), means)
    everything = np.empty(comm.size * len(times))
    comm.Allgather(np.ascontiguousarray(times, dtype=np.float64), everything)
    return Timing(
        iterations=len(times),
        t_max=float(means.max()),
        t_avg=float(means.mean()),
        t_min=float(means.min()),
        p50=float(np.percentile(everything, 50)),
        p99=float(np.percentile(everything, 99)),
        clock=clock,
    )
