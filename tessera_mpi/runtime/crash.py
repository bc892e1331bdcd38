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

from .._text import rank_ranges

GRACE_ENV = "TESSERA_ERROR_GRACE"
DEFAULT_GRACE_S = 5.0
"""How long a failing rank waits to learn whether every rank failed before it aborts the job."""


def _whoami() -> str:
    from . import context

    rt = context.current()
    if rt is None:
        return f"rank {MPI.COMM_WORLD.rank} (host {os.uname().nodename})"
    return f"rank {rt.rank} ({rt.placement})"


def _write(text: str) -> None:
    sys.stdout.flush()
    sys.stderr.write(text if text.endswith("\n") else text + "\n")
    sys.stderr.flush()


def fatal(message: str, *, code: int = 1) -> NoReturn:
    """Print `message` once, naming this rank, and end the whole job with exit code `code`.

    Callable from any thread: with MPI_THREAD_MULTIPLE it calls MPI_Abort; otherwise it exits
    this process, which every MPI launcher turns into the end of the job.
    """
    _write(f"tessera_mpi: {_whoami()}: {message}")
    if MPI.COMM_WORLD.size > 1 and (
        threading.current_thread() is threading.main_thread()
        or MPI.Query_thread() == MPI.THREAD_MULTIPLE
    ):
        MPI.COMM_WORLD.Abort(code)
    os._exit(code)


def grace_seconds() -> float:
    """Return the grace period from TESSERA_ERROR_GRACE, or the default."""
    try:
        return max(0.0, float(os.environ.get(GRACE_ENV, DEFAULT_GRACE_S)))
    except ValueError:
        return DEFAULT_GRACE_S


def _all_failed(comm: MPI.Intracomm, grace: float) -> bool:
    """Return whether every rank of `comm` reached this point within `grace` seconds."""
    request = comm.Ibarrier()
    deadline = time.monotonic() + grace
    while not request.Test():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


def _hook(kind: type[BaseException], value: BaseException, tb: TracebackType | None) -> None:
    from . import context

    text = "".join(traceback.format_exception(kind, value, tb)).rstrip()
    context.record_exit_code(1)
    rt = context.current()
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


def install_excepthook() -> None:
    """Route uncaught exceptions through the job-ending handler (idempotent)."""
    sys.excepthook = _hook
