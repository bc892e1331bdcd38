"""The one timing helper: back-to-back iterations after a barrier and warm-up, IMB conventions.

Each rank times every iteration with its backend's clock (MPI.Wtime for host buffers, device
events for device buffers, and the host clock beside them so the two can be compared); the
headline is the maximum over ranks of the per-rank mean (IMB's t_max), with the mean and
minimum over ranks and per-iteration percentiles beside it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
from mpi4py import MPI

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
) -> Timing:
    """Run `body` `warmup` times, then `iterations` timed times, and summarize over `comm`.

    Collective over `comm`: every rank runs the same loop (body is typically a collective).
    `clock` defaults to the host clock; with device events the host clock is read as well.
    """
    clock = HostClock() if clock is None else clock
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
