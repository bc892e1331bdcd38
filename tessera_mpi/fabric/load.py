"""Production-like background load: a continuous all-reduce stream over the whole mesh, on a
private communicator, in a background thread of every rank.

Checks run beside it unchanged (their communicators never see the load's messages), so what they
verify under load is what production sees: a fabric that other traffic keeps busy. It needs
MPI_THREAD_MULTIPLE, which the runtime asks for; without it the load refuses to start
(LoadUnavailableError) rather than pretend.

    with BackgroundLoad(mesh) as load:       # collective: every rank enters and leaves
        figures = measure()
        with load.paused():                  # collective: the same figures without load
            idle = measure()
    load.stats()                             # all-reduces and bytes it ran, and for how long
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from types import TracebackType

import numpy as np
from mpi4py import MPI

from ..comm.call import Group
from ..dist.mesh import Mesh
from ..errors import LoadError, LoadUnavailableError

MESSAGE_BYTES = {"full": 16 << 20, "small": 64 << 10, "quick": 4 << 10}
"""Bytes each rank contributes per load all-reduce: real hardware, oversubscribed machines, --quick."""


@dataclass(frozen=True)
class LoadStats:
    """What the background stream did on this rank (every rank ran the same iterations)."""

    iterations: int
    """All-reduces completed."""
    message_bytes: int
    """Bytes this rank contributed to each."""
    seconds: float
    """Time the stream ran."""

    @property
    def bytes(self) -> int:
        """Payload bytes this rank contributed over all iterations."""
        return self.iterations * self.message_bytes

    def __add__(self, other: LoadStats) -> LoadStats:
        return LoadStats(iterations=self.iterations + other.iterations, message_bytes=self.message_bytes,
                         seconds=self.seconds + other.seconds)

    def since(self, earlier: LoadStats) -> LoadStats:
        """Return what was done after `earlier`, an earlier `stats()` of the same load."""
        return LoadStats(iterations=self.iterations - earlier.iterations, message_bytes=self.message_bytes,
                         seconds=self.seconds - earlier.seconds)


class BackgroundLoad:
    """A continuous all-reduce stream on a duplicate of the mesh communicator.

    Construction, `start` and leaving `paused()` are collective over the mesh: every rank must
    call them at the same point. `stop` stops every rank's stream: each iteration also
    all-reduces a stop vote, so all ranks leave after the same iteration, the first in which any
    rank asked. A rank that dies or hangs leaves the others' streams waiting, as any collective
    does; the suite's watchdog around every check ends such a job.
    """

    def __init__(self, mesh: Mesh, *, message_bytes: int = MESSAGE_BYTES["full"]) -> None:
        provided = MPI.Query_thread()
        if provided != MPI.THREAD_MULTIPLE:
            raise LoadUnavailableError(
                f"background load needs MPI_THREAD_MULTIPLE, but this MPI provides thread level "
                f"{provided} (THREAD_MULTIPLE is {MPI.THREAD_MULTIPLE}); run without --under-load")
        if message_bytes < 4:
            raise ValueError(f"message_bytes must be at least 4, got {message_bytes}")
        rt = mesh.runtime
        self._backend = rt.backend
        # A background group: its calls leave the main thread's tracker and planned faults alone.
        self.group = Group.of(mesh.comm.Dup(), tracked=False)
        self.message_bytes = message_bytes - message_bytes % 4
        # Zeros stay zeros under SUM, so the stream can run for ever on one buffer.
        self._payload = rt.backend.xp.zeros(self.message_bytes // 4, dtype=np.float32)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._run_stats = LoadStats(iterations=0, message_bytes=self.message_bytes, seconds=0.0)
        self._total = self._run_stats
        self._error: BaseException | None = None

    @property
    def running(self) -> bool:
        return self._thread is not None

    def _stream(self) -> None:
        # The current device is per thread: without this the stream would run on device 0.
        self._backend.use_in_thread()
        vote, agreed = np.zeros(1, dtype=np.int8), np.zeros(1, dtype=np.int8)
        iterations, start = 0, MPI.Wtime()
        reduce, _ = self.group.bind("background load", "all_reduce", None, self._payload, op="sum")
        try:
            while True:
                reduce()
                vote[0] = self._stop.is_set()
                self.group.comm.Allreduce(vote, agreed, op=MPI.MAX)
                iterations += 1
                if agreed[0]:
                    break
        except BaseException as exc:  # reported by stop() in the main thread
            self._error = exc
        self._run_stats = LoadStats(iterations=iterations, message_bytes=self.message_bytes,
                                    seconds=MPI.Wtime() - start)

    def start(self) -> None:
        """Start the stream (collective over the mesh)."""
        if self._thread is not None:
            raise LoadError("the background load is already running")
        self._stop.clear()
        self._thread = threading.Thread(target=self._stream, name="tessera-load", daemon=True)
        self._thread.start()

    def stop(self) -> LoadStats:
        """Stop the stream on every rank; return what this run of it did."""
        if self._thread is None:
            raise LoadError("the background load is not running")
        self._stop.set()
        self._thread.join()
        self._thread = None
        if self._error is not None:
            error, self._error = self._error, None
            raise LoadError(f"the background load failed: {error}") from error
        self._total = self._total + self._run_stats
        return self._run_stats

    @contextmanager
    def paused(self) -> Iterator[None]:
        """Stop the stream for the block and start it again after (collective over the mesh)."""
        self.stop()
        try:
            yield
        finally:
            self.start()

    def stats(self) -> LoadStats:
        """Return what every finished run of the stream did, together."""
        return self._total

    def close(self) -> None:
        """Stop the stream if it runs and free its communicator (collective over the mesh)."""
        if self._thread is not None:
            self.stop()
        self.group.comm.Free()

    def __enter__(self) -> BackgroundLoad:
        self.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

