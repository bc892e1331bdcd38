"""The sentinel: one background thread per rank that bounds every collective and answers roll calls.

A collective that some ranks never call (they left the program, or called another one) leaves
the others waiting inside MPI for ever, silently. The sentinel wakes every POLL_S seconds and
reads the tracker, which the call path writes anyway (no cost per call): when the same call
has been in progress for longer than the collective timeout, it holds a roll call and ends the
job with one report (runtime/watchdog.py). Between times it answers other ranks' roll calls
with this rank's status, whatever the main thread is doing, so a report can tell the ranks
waiting in a collective from those working elsewhere and from those that have finished the
program (which wait for the others at the end, still answering: see `depart`).

The timeout is TESSERA_COLLECTIVE_TIMEOUT seconds (default 300) in user scripts; the suite sets
its --timeout. It needs MPI_THREAD_MULTIPLE; without it there is no sentinel (roll calls then
find no answers, and collectives are bounded only by the suite's watchdogs).
"""

from __future__ import annotations

import os
import threading
import time
import numpy as np
from mpi4py import MPI

from ..errors import ConfigError
from . import state
from .rollcall import ASK_TAG, END_TAG, LEAVE_TAG, encode
from .tracker import tracker
from .waits import wait_for
from .watchdog import end_as_chair, end_hung_job, leave_as_told

TIMEOUT_ENV = "TESSERA_COLLECTIVE_TIMEOUT"
DEFAULT_TIMEOUT_S = 300.0
POLL_S = 0.2
"""How often the sentinel looks: the granularity of the deadline and the delay of an answer.
One wake-up costs a few microseconds; 72 oversubscribed ranks spend well under 1% of a core."""


def timeout_from_env(environ: dict[str, str] | None = None) -> float:
    """Return the collective timeout from TESSERA_COLLECTIVE_TIMEOUT (seconds > 0), or the default.

    A value that is not a positive number is a configuration error: raised (every rank reads
    the same environment, so every rank raises the same error)."""
    raw = (os.environ if environ is None else environ).get(TIMEOUT_ENV, "").strip()
    if not raw:
        return DEFAULT_TIMEOUT_S
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value > 0 or value != value or value == float("inf"):
        raise ConfigError(f"{TIMEOUT_ENV}={raw!r} must be a number of seconds > 0")
    return value


class Sentinel:
    """The background thread (see the module docstring). One per process: `sentinel`."""

    def __init__(self) -> None:
        self.timeout_s = DEFAULT_TIMEOUT_S
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._comm: MPI.Intracomm | None = None
        self._ask = np.zeros(1, dtype=np.int32)
        self._request: MPI.Request | None = None
        self._replies: list[tuple[MPI.Request, np.ndarray]] = []
        self._seen: tuple[int, str] = (0, "")
        self._since = 0.0
        self.fired = False
        """A deadline passed on this rank (the job is being ended)."""

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self, timeout_s: float) -> None:
        """Start the thread (no communication). Without MPI_THREAD_MULTIPLE, do nothing."""
        self.timeout_s = timeout_s
        if self.running or MPI.Query_thread() != MPI.THREAD_MULTIPLE:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="tessera-sentinel", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread and withdraw its pending receive (before MPI_Finalize)."""
        if self._thread is None:
            return
        self._stop.set()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=5 * POLL_S)
        self._thread = None
        self._withdraw()

    def _withdraw(self) -> None:
        request, self._request = self._request, None
        if request is not None:
            try:
                request.Cancel()
                wait_for(request, 1.0)
            except MPI.Exception:
                pass
        for reply, _ in self._replies:
            try:
                wait_for(reply, 0.1)
            except MPI.Exception:
                pass
        self._replies = []

    # The thread.

    def _run(self) -> None:
        while not self._stop.wait(POLL_S):
            try:
                self._follow()
                self._serve()
            except MPI.Exception:
                # This communicator lost a member (fault tolerance): answer again once the
                # runtime is rebuilt on the survivors.
                self._request = None
            self._watch_deadline()

    def _follow(self) -> None:
        """Serve the current runtime's roll-call communicator (it changes in a rebuild)."""
        rt = state.runtime
        comm = None if rt is None else rt.watch
        if comm is not self._comm:
            self._comm, self._request, self._replies = comm, None, []
        if self._comm is not None and self._request is None:
            self._request = self._comm.Irecv(self._ask, source=MPI.ANY_SOURCE, tag=ASK_TAG)

    def _serve(self) -> None:
        comm = self._comm
        if comm is None or self._request is None:
            return
        status = MPI.Status()
        while self._request.Test(status):
            answer = encode(tracker.status())
            self._replies.append((comm.Isend(answer, dest=status.source, tag=int(self._ask[0])), answer))
            self._request = comm.Irecv(self._ask, source=MPI.ANY_SOURCE, tag=ASK_TAG)
        self._replies = [(r, a) for r, a in self._replies if not r.Test()]
        for tag, handle in ((END_TAG, _chair), (LEAVE_TAG, _leave)):
            if comm.Iprobe(source=MPI.ANY_SOURCE, tag=tag):
                payload = comm.recv(source=MPI.ANY_SOURCE, tag=tag)
                threading.Thread(target=handle, args=payload, daemon=True).start()

    def _watch_deadline(self) -> None:
        seen = (tracker.calls, tracker.current)
        now = time.monotonic()
        if seen != self._seen or not seen[1] or tracker.finished:
            self._seen, self._since = seen, now
            return
        if not self.fired and now - self._since > self.timeout_s:
            self.fired = True
            what = f"{seen[1]} #{seen[0] - tracker.base}"
            threading.Thread(target=_collective_timed_out, args=(what, self.timeout_s), daemon=True).start()


def _collective_timed_out(what: str, timeout_s: float) -> None:
    end_hung_job(f"{what} did not finish within {timeout_s:g} s (the collective timeout, "
                 f"{TIMEOUT_ENV} or the suite's --timeout); ending the job")


def _chair(message: str, code: int, answered: list[int]) -> None:
    end_as_chair(message, code=code, answered=answered)


def _leave(code: int, answered: list[int]) -> None:
    leave_as_told(code, answered=answered)


sentinel = Sentinel()
"""This process's sentinel."""
