"""Profiling sessions: every collective issued inside `with profile.session() as sess:` is
recorded (name, nccl-tests size, dtype, participants, this rank's time) and `sess.report()`
turns the records of all ranks into latency and bandwidth figures.

    with profile.session() as sess:
        Y = op.all_reduce(X, op="sum")
        sess.report()   # prints a table on rank 0, returns the figures on every rank

Times come from the backend's clock (device events for device buffers, MPI.Wtime otherwise)
around the communication itself, staging included. The headline time is the maximum over
ranks of the per-rank mean (IMB's t_max); algbw and busbw follow nccl-tests.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from . import runtime
from .comm import profiling
from .comm.profiling import Record
from .fabric.busbw import algbw_gbps, bus_factor


@dataclass(frozen=True)
class Figure:
    """The figures of one kind of call (same name, size, dtype, participants), over all ranks."""

    name: str
    size_bytes: int
    dtype: str
    participants: int
    calls: int
    time_us_max: float
    """Max over ranks of the per-rank mean time: the headline."""
    time_us_avg: float
    time_us_min: float
    time_us_p50: float
    time_us_p99: float
    algbw_GBps: float
    busbw_GBps: float


class Session(profiling.Recorder):
    """The records of one profiling session on this rank (the call path appends them)."""

    def report(self, *, show: bool = True) -> list[Figure]:
        """Return the figures of every kind of call recorded so far, the same on every rank.

        Collective over the job's world: every rank must call it (ranks that recorded nothing
        contribute nothing). With `show`, rank 0 prints them as a table.
        """
        rt = runtime.start()
        everyone = rt.control.allgather(self.records)
        figures = _figures(everyone)
        if show and rt.rank == 0:
            print(format_figures(figures), flush=True)
        return figures


def _figures(everyone: list[list[Record]]) -> list[Figure]:
    groups: dict[tuple, list[list[float]]] = {}
    for rank, records in enumerate(everyone):
        for record in records:
            key = (record.name, record.size_bytes, record.dtype, record.participants)
            per_rank = groups.setdefault(key, [[] for _ in everyone])
            per_rank[rank].append(record.seconds)
    figures = []
    for (name, size, dtype, participants), per_rank in groups.items():
        means = [float(np.mean(t)) for t in per_rank if t]
        every = np.concatenate([t for t in per_rank if t])
        t_max = max(means)
        figures.append(Figure(
            name=name, size_bytes=size, dtype=dtype, participants=participants,
            calls=max(len(t) for t in per_rank),
            time_us_max=t_max * 1e6, time_us_avg=float(np.mean(means)) * 1e6,
            time_us_min=min(means) * 1e6,
            time_us_p50=float(np.percentile(every, 50)) * 1e6,
            time_us_p99=float(np.percentile(every, 99)) * 1e6,
            algbw_GBps=algbw_gbps(size, t_max),
            busbw_GBps=algbw_gbps(size, t_max) * bus_factor(name, participants),
        ))
    return figures


def format_figures(figures: list[Figure]) -> str:
    """Return the report table that rank 0 prints."""
    head = (f"{'collective':<16}{'size':>12}{'dtype':>9}{'ranks':>7}{'calls':>7}{'t_max us':>12}"
            f"{'t_avg us':>11}{'t_min us':>11}{'p50 us':>10}{'p99 us':>10}{'algbw GB/s':>12}{'busbw GB/s':>12}")
    lines = ["profile: time is the max over ranks of each rank's mean (IMB t_max); GB = 1e9 bytes", head]
    for f in figures:
        lines.append(f"{f.name:<16}{f.size_bytes:>12}{f.dtype:>9}{f.participants:>7}{f.calls:>7}"
                     f"{f.time_us_max:>12.1f}{f.time_us_avg:>11.1f}{f.time_us_min:>11.1f}{f.time_us_p50:>10.1f}"
                     f"{f.time_us_p99:>10.1f}{f.algbw_GBps:>12.3f}{f.busbw_GBps:>12.3f}")
    if not figures:
        lines.append("(no collectives were recorded)")
    return "\n".join(lines)


@contextmanager
def session() -> Iterator[Session]:
    """Record every tessera_mpi collective issued on this rank inside the block.

    Local: opening and closing a session needs no communication; `report()` does.
    """
    current = Session()
    profiling.sessions.append(current)
    try:
        yield current
    finally:
        profiling.sessions.remove(current)
