"""A per-rank deadline that turns a hang into a diagnosed error and the end of the job."""

from __future__ import annotations

import threading
from types import TracebackType

from mpi4py import MPI

from .crash import fatal

STAGGER_S = 2.0
"""Ranks other than 0 fire this much later, so a live rank 0 usually speaks for the job alone."""


class Watchdog:
    """Context manager: if the block runs longer than `timeout_s`, end the job naming `what`.

    Local (no communication). The timer runs in a daemon thread, which calls MPI_Abort while the
    main thread may be blocked inside MPI; that is why MPI is initialized with THREAD_MULTIPLE.
    """

    def __init__(self, timeout_s: float | None, what: str, *, code: int = 1) -> None:
        self.timeout_s = timeout_s
        self.what = what
        self.code = code
        self._timer: threading.Timer | None = None

    def _fire(self) -> None:
        fatal(
            f"{self.what} did not finish within {self.timeout_s:g} s "
            "(a rank is hung, dead or far slower than the others); ending the job",
            code=self.code,
        )

    def __enter__(self) -> Watchdog:
        if self.timeout_s is not None:
            delay = self.timeout_s + (STAGGER_S if MPI.COMM_WORLD.rank != 0 else 0.0)
            self._timer = threading.Timer(delay, self._fire)
            self._timer.daemon = True
            self._timer.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._timer is not None:
            self._timer.cancel()
