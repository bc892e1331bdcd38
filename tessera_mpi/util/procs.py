"""Launching and ending MPI jobs from the outside, for harnesses that run mpirun as a subprocess."""

from __future__ import annotations

import os
import shutil
import signal
import sys
from pathlib import Path


def find_mpirun() -> str | None:
    """Return the mpirun beside this Python (the `local-mpi` extra's), else the one on PATH."""
    beside = Path(sys.executable).parent / "mpirun"
    return str(beside) if beside.exists() else shutil.which("mpirun")


def kill_session(sid: int) -> list[int]:
    """SIGKILL every process of session `sid` (start the launcher with start_new_session=True).

    The process group is not enough: Open MPI puts each rank in a group of its own, so killing
    mpirun's group leaves ranks behind, and a stopped (hung) rank would stay for ever.
    Returns the pids signalled.
    """
    killed = []
    try:
        os.killpg(sid, signal.SIGKILL)  # the launcher's own group (and all there is without /proc)
    except OSError:
        pass
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            # The fields after the command name (which may contain spaces) start at ")".
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == sid:  # state, ppid, pgrp, session
            try:
                os.kill(int(entry.name), signal.SIGKILL)
                killed.append(int(entry.name))
            except OSError:
                pass
    return killed
