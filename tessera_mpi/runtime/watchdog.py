"""A per-rank deadline that turns a hang into a diagnosed error and the end of the job."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import ClassVar, NoReturn

from mpi4py import MPI

from . import state

from .crash import exit_now, fatal, leave, report
from .rollcall import END_TAG, LEAVE_TAG, diagnose, roll_call, send
from .tracker import tracker

ROLL_CALL_GRACE_S = 5.0
"""How long a roll call waits for answers: longer than the stagger, so ranks that fire late answer."""

LEAVE_DELAY_S = 2.0
"""After a diagnosed hang, ranks other than the reporting one leave this much later, so the
report is printed before the launcher sees them go."""
SETTLE_S = 1.0
"""With fault tolerance, the reporting rank, which carries the non-zero code, leaves this long
after killing the silent ranks; the others leave LEAVE_DELAY_S after."""

CONTINUE_S = 0.5
"""How long a continued silent rank has to leave by itself before it is killed."""

STAGGER_S = 2.0
"""Ranks other than 0 fire this much later, so a live rank 0 usually speaks for the job alone."""


def _signal(pids: list[int], sig: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except OSError:
            pass


HANDOVER_S = 15.0
"""How long a rank that handed its report to the chair waits for the chair to end the job
before it concludes the chair is gone and ends the job itself."""

_ending = threading.Lock()
"""Held by the one thread of this process that ends the job: a rank can time out, be handed
a report and be told to leave at once, and must print and leave once."""


def _hold_forever() -> NoReturn:
    # Another thread of this process is ending the job; this one has nothing left to do.
    while True:
        time.sleep(3600)


def end_after_roll_call(answers: dict[int, str], me: int, message: str, *, code: int = 1) -> NoReturn:
    """End the job with `message`, printed once, by the chair: the lowest rank that answered
    the roll call (every asker finds the same one). Another rank hands its report to the
    chair's sentinel and waits; if the chair does not end the job within HANDOVER_S (it died
    meanwhile), it ends the job itself. Called from a background thread."""
    rt = state.runtime
    chair = min(answers)
    if rt is not None and me != chair and rt.size > 1:
        try:
            send(rt.watch, chair, END_TAG, (message, code, sorted(answers)))
            time.sleep(HANDOVER_S)
        except MPI.Exception:
            pass
    end_as_chair(message, code=code, answered=sorted(answers))


def end_as_chair(message: str, *, code: int, answered: list[int]) -> NoReturn:
    """Print `message` and end the job (see `end_after_roll_call`).

    Without fault tolerance MPI_Abort ends every rank, the silent ones too. With it, MPI_Abort
    ends only the caller and a stopped process never exits, so the chair tells every rank that
    answered to leave; each kills the silent ranks on its own host, waits for the launcher to
    take in their deaths, and leaves."""
    if not _ending.acquire(blocking=False):
        _hold_forever()
    rt = state.runtime
    real = rt is not None and rt.ft.real
    # The main thread may raise (its collective fails once the silent ranks are killed) and
    # exit first: by the same rule, so that one rank carries the code.
    leave(code, speaker=True if real else None)
    if not real:
        fatal(message, code=code)
    report(message)
    me = rt.watch.rank
    for rank in answered:
        if rank != me:
            try:
                send(rt.watch, rank, LEAVE_TAG, (code, answered))
            except MPI.Exception:
                pass
    _kill_silent_on_my_host(answered)
    time.sleep(SETTLE_S)
    exit_now(code, speaker=True)


def leave_as_told(code: int, *, answered: list[int]) -> NoReturn:
    """The chair of a fault-tolerant job said the job ends: leave with it (not carrying the code)."""
    if not _ending.acquire(blocking=False):
        _hold_forever()
    leave(code, speaker=False)
    _kill_silent_on_my_host(answered)
    time.sleep(LEAVE_DELAY_S)
    exit_now(code, speaker=False)


def _kill_silent_on_my_host(answered: list[int]) -> None:
    rt = state.runtime
    if rt is None:
        return
    mine = rt.placements[rt.rank].process_host
    silent = [where.pid for rank, where in enumerate(rt.placements)
              if rank not in answered and where.process_host == mine and where.pid]
    # A stopped process is first continued (a planned hang then leaves by itself), and
    # killed only if it is still there: a stopped process killed outright was seen to leave
    # mpirun hanging after every rank had gone.
    _signal(silent, signal.SIGCONT)
    time.sleep(CONTINUE_S)
    _signal(silent, signal.SIGKILL)


def end_hung_job(message: str, *, code: int = 1) -> NoReturn:
    """Hold a roll call, add its diagnosis to `message` and end the job (see
    `end_after_roll_call`). Called from a background thread when a deadline passed."""
    rt = state.runtime
    if rt is None or rt.size == 1:
        fatal(message, code=code)
    answers = roll_call(rt.watch, tracker.status(), grace_s=ROLL_CALL_GRACE_S)
    message += "\n" + diagnose(rt.size, answers, "where every rank is")
    end_after_roll_call(answers, rt.watch.rank, message, code=code)


class Watchdog:
    """Context manager: if the block runs longer than `timeout_s`, diagnose and end the job.

    Local until it fires. The timer runs in a daemon thread, which holds a roll call (so the
    message names the ranks that never reached the collective the others wait in) and calls
    MPI_Abort while the main thread may be blocked inside MPI; that is why MPI is initialized
    with THREAD_MULTIPLE. `on_timeout` replaces that ending (fault injection's planned stalls).
    """

    _armed: ClassVar[set[Watchdog]] = set()

    def __init__(
        self, timeout_s: float | None, what: str, *, code: int = 1, stagger: bool = True,
        on_timeout: Callable[[], None] | None = None,
    ) -> None:
        self.timeout_s = timeout_s
        self.what = what
        self.code = code
        self.stagger = stagger
        self.on_timeout = on_timeout
        self._timer: threading.Timer | None = None

    def _fire(self) -> None:
        if self.on_timeout is not None:
            self.on_timeout()
            return
        self.end_job()

    def end_job(self) -> NoReturn:
        """Hold the roll call, print the diagnosis once and end the job (the default timeout)."""
        end_hung_job(f"{self.what} did not finish within {self.timeout_s:g} s "
                     "(a rank is hung, dead or far slower than the others); ending the job", code=self.code)

    @classmethod
    def disarm_all(cls) -> None:
        """Cancel every armed watchdog of this process (a rank that parks must not fire)."""
        for dog in list(cls._armed):
            dog.__exit__(None, None, None)

    def __enter__(self) -> Watchdog:
        if self.timeout_s is not None:
            late = self.stagger and MPI.COMM_WORLD.rank != 0
            self._timer = threading.Timer(self.timeout_s + (STAGGER_S if late else 0.0), self._fire)
            self._timer.daemon = True
            self._timer.start()
            Watchdog._armed.add(self)
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._timer is not None:
            self._timer.cancel()
        Watchdog._armed.discard(self)
