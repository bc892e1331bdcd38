"""Ending the job on an error: never a deadlock, the error printed once with its rank.

An exception on one rank while the others wait in a collective would hang them forever, and
MPI_Finalize after it can hang too, so an uncaught exception ends the whole job with a non-zero
code. When every rank fails at once (the same bad input everywhere) the job ends cleanly and
rank 0 prints the errors grouped by text instead of once per rank.
"""

from __future__ import annotations

import os
import sys
import threading
import time
import traceback
from types import TracebackType
from typing import NoReturn

from mpi4py import MPI

from . import pmix, state

from ..util.text import rank_ranges
from .waits import wait_for

GRACE_ENV = "TESSERA_ERROR_GRACE"
DEFAULT_GRACE_S = 5.0
"""How long a failing rank waits to learn whether every rank failed before it aborts the job."""
EXIT_STAGGER_S = 0.05
"""With fault tolerance, ranks that leave non-zero without agreeing leave this much apart, by rank."""


def _whoami() -> str:
    rt = state.runtime
    if rt is None:
        return f"rank {MPI.COMM_WORLD.rank} (host {os.uname().nodename})"
    return f"rank {rt.rank} ({rt.placement})"


_leaving: list[tuple[int, bool | None]] = []
"""(exit code, speaker) once this rank is on its way out of a job that is ending (see `leave`)."""


def leave(code: int, *, speaker: bool | None = None) -> None:
    """Mark this rank as leaving with `code` (`speaker` as in `exit_now`): from now on an
    exception or a normal end of the main thread exits at once, by the same rule, instead of
    reporting again or entering MPI_Finalize, which can hang while other ranks are dead or
    stopped (and would stop the thread that is ending the job)."""
    if not _leaving:
        _leaving.append((code, speaker))


def leave_if_leaving() -> None:
    """Exit now if `leave` was called; otherwise return."""
    if _leaving:
        code, speaker = _leaving[0]
        exit_now(code, speaker=speaker)


def _fault_tolerant() -> bool:
    rt = state.runtime
    return rt is not None and rt.ft.real


def exit_now(code: int, *, speaker: bool | None = None) -> NoReturn:
    """Leave this process at once with `code`, without MPI_Finalize.

    With fault tolerance on, prterun (Open MPI 5.0.11) was seen to hang after every rank had
    left when several left non-zero at the same moment (5 of 30 runs; 0 of 30 when only one did,
    or when they left 50 ms apart). So where the ranks agree on the code, one `speaker` carries
    it and the others leave with 0 (mpirun's status is then the speaker's); where they cannot
    agree (`speaker` None), each leaves EXIT_STAGGER_S x its rank later.
    With fault tolerance on, the rank first finalizes its PMIx client (see runtime/pmix.py):
    without it, survivors leaving together made prterun abort the job on SIGPIPE, exit 1,
    after every survivor had recovered.
    """
    leave(code, speaker=speaker)
    sys.stdout.flush()
    sys.stderr.flush()
    if _fault_tolerant():
        if code and speaker is None:
            time.sleep(EXIT_STAGGER_S * MPI.COMM_WORLD.rank)
        elif code and not speaker:
            code = 0
        pmix.finalize()
    os._exit(code)


def _write(text: str) -> None:
    sys.stdout.flush()
    sys.stderr.write(text if text.endswith("\n") else text + "\n")
    sys.stderr.flush()


def report(message: str) -> None:
    """Print `message` to stderr, naming this rank, host and device."""
    _write(f"tessera_mpi: {_whoami()}: {message}")


def fatal(message: str, *, code: int = 1) -> NoReturn:
    """Print `message` once, naming this rank, and end the whole job with exit code `code`.

    Callable from any thread: with MPI_THREAD_MULTIPLE it calls MPI_Abort; otherwise it exits
    this process, which every MPI launcher turns into the end of the job. With fault tolerance
    on, MPI_Abort ends only the caller (and was seen to stall the launcher), so the process
    just exits (see `exit_now`): the others learn of it as a failure.
    """
    leave(code)
    report(message)
    if MPI.COMM_WORLD.size > 1 and not _fault_tolerant() and (
        threading.current_thread() is threading.main_thread()
        or MPI.Query_thread() == MPI.THREAD_MULTIPLE
    ):
        MPI.COMM_WORLD.Abort(code)
    exit_now(code)


def grace_seconds() -> float:
    """Return the grace period from TESSERA_ERROR_GRACE, or the default."""
    try:
        return max(0.0, float(os.environ.get(GRACE_ENV, DEFAULT_GRACE_S)))
    except ValueError:
        return DEFAULT_GRACE_S


def _all_failed(comm: MPI.Intracomm, grace: float) -> bool:
    """Return whether every rank of `comm` reached this point within `grace` seconds."""
    try:
        return wait_for(comm.Ibarrier(), grace)
    except MPI.Exception:
        return False  # a member failed (fault tolerance on): certainly not everyone is here


def _hook(kind: type[BaseException], value: BaseException, tb: TracebackType | None) -> None:
    leave_if_leaving()
    text = "".join(traceback.format_exception(kind, value, tb)).rstrip()
    state.record_exit_code(1)
    rt = state.runtime
    if MPI.COMM_WORLD.size == 1:
        _write(f"tessera_mpi: {_whoami()}: uncaught exception\n{text}")
        return
    if rt is None or not _all_failed(rt.error_comm, grace_seconds()):
        fatal(f"uncaught exception, ending the job\n{text}")
    headline = f"{kind.__name__}: {value}"
    headlines = rt.error_comm.gather(headline, root=0)
    if rt.error_comm.rank == 0:
        groups: dict[str, list[int]] = {}
        for rank, line in enumerate(headlines or []):
            groups.setdefault(line, []).append(rank)
        lines = [f"  ranks {rank_ranges(r)}: {line}" for line, r in groups.items()]
        _write(
            f"tessera_mpi: uncaught exception on all {rt.size} ranks\n"
            + "\n".join(lines)
            + f"\nrank 0 traceback:\n{text}"
        )
    if _fault_tolerant():
        exit_now(1, speaker=rt.error_comm.rank == 0)


def install_excepthook() -> None:
    """Route uncaught exceptions through the job-ending handler (idempotent)."""
    sys.excepthook = _hook
