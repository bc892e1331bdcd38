"""A roll call: every rank that can still answer says where it is, without any collective.

Called from watchdog threads when a deadline passes, while main threads may be blocked inside
MPI: each rank sends its status to every other rank with non-blocking point-to-point messages
on a communicator reserved for this, and collects the answers that arrive within a grace
period. Ranks that never answer are hung (stopped) or dead; ranks that answer with an earlier
call number never reached the call the others wait in.
"""

from __future__ import annotations

import re
import time
from collections import Counter

import numpy as np
from mpi4py import MPI

from ..util.text import rank_ranges

WIDTH = 200
TAG = 7301


def roll_call(comm: MPI.Intracomm, status: str, *, grace_s: float) -> dict[int, str]:
    """Send `status` to every rank and return {rank: status} of those that answered in time.

    Point-to-point only, safe from a second thread under MPI_THREAD_MULTIPLE. Requests that did
    not complete are cancelled (receives) or left to the end of the job (sends).
    """
    me, size = comm.rank, comm.size
    mine = np.zeros(WIDTH, dtype=np.uint8)
    encoded = status.encode()[:WIDTH]
    mine[: len(encoded)] = np.frombuffer(encoded, dtype=np.uint8)
    answers = np.zeros((size, WIDTH), dtype=np.uint8)
    receives = {r: comm.Irecv(answers[r], source=r, tag=TAG) for r in range(size) if r != me}
    for r in range(size):
        if r != me:
            comm.Isend(mine, dest=r, tag=TAG)
    got = {me: status}
    deadline = time.monotonic() + grace_s
    while receives and time.monotonic() < deadline:
        for r, request in list(receives.items()):
            if request.Test():
                got[r] = answers[r].tobytes().rstrip(b"\0").decode(errors="replace")
                del receives[r]
        time.sleep(0.01)
    for request in receives.values():
        request.Cancel()
    return got


def diagnose(size: int, answers: dict[int, str], what: str) -> str:
    """Return a report naming the ranks that did not answer and those behind the others."""
    silent = [r for r in range(size) if r not in answers]
    calls = {r: int(m.group(1)) for r, text in answers.items() if (m := re.search(r"#(\d+)", text))}
    lines = [f"{what}: a roll call of {size} ranks got {len(answers)} answers"]
    if silent:
        lines.append(f"  ranks {rank_ranges(silent)} did not answer (hung or dead)")
    if calls:
        common, _ = Counter(calls.values()).most_common(1)[0]
        waiting = sorted(r for r, c in calls.items() if c == common)
        behind = sorted(r for r, c in calls.items() if c < common)
        example = answers[waiting[0]]
        lines.append(f"  ranks {rank_ranges(waiting)} wait in collective #{common}: {example}")
        for r in behind:
            lines.append(f"  rank {r} never reached collective #{common}: it is {answers[r]}")
        if silent:
            lines.append(f"  ranks {rank_ranges(silent)} never reached collective #{common}")
    for r in sorted(answers):
        if r not in calls:
            lines.append(f"  rank {r}: {answers[r]}")
    return "\n".join(lines)
