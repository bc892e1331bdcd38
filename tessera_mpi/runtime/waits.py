"""Waiting for a non-blocking MPI request with a deadline: the way every bounded wait is done."""

from __future__ import annotations

import time

from mpi4py import MPI


def wait_for(request: MPI.Request, timeout: float) -> bool:
    """Poll `request` for up to `timeout` seconds; return whether it completed.

    Sleeps between polls, from 10 us growing to 5 ms, so a late request costs little CPU (ranks
    may share cores) and a prompt one little latency. MPI errors propagate to the caller.
    """
    deadline = time.monotonic() + timeout
    pause = 1e-5
    while not request.Test():
        if time.monotonic() >= deadline:
            return False
        time.sleep(pause)
        pause = min(pause * 2, 5e-3)
    return True
