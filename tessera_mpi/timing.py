"""The one timing helper: back-to-back iterations after a barrier and warm-up, IMB conventions.

Each rank times every iteration with MPI.Wtime; the headline is the maximum over ranks of the
per-rank mean (IMB's t_max), with the mean and minimum over ranks and per-iteration
percentiles beside it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from mpi4py import MPI


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


def iterations_for(nbytes: int, *, max_iterations: int = 1000, min_iterations: int = 5,
                   byte_budget: int = 1 << 30) -> int:
    """Return an iteration count capped by bytes moved, as IMB does (fewer for large buffers)."""
    return int(max(min_iterations, min(max_iterations, byte_budget // max(nbytes, 1))))


def time_loop(comm: MPI.Intracomm, body: Callable[[], object], *, iterations: int, warmup: int = 2) -> Timing:
    """Run `body` `warmup` times, then `iterations` timed times, and summarize over `comm`.

    Collective over `comm`: every rank runs the same loop (body is typically a collective).
    """
    for _ in range(warmup):
        body()
    comm.Barrier()
    times = np.empty(iterations)
    for i in range(iterations):
        start = MPI.Wtime()
        body()
        times[i] = MPI.Wtime() - start
    return summarize(comm, times)


def summarize(comm: MPI.Intracomm, times: np.ndarray) -> Timing:
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
    )
