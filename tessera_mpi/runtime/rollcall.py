"""A roll call: every rank that can still answer says where it is, without any collective.

Held by whichever thread finds that a deadline passed, while main threads may be blocked inside
MPI: the asker sends a small request to every rank on the communicator reserved for this (the
runtime's `watch`), and every rank's sentinel thread (runtime/sentinel.py) answers with its
tracker's status, whatever its main thread is doing: waiting in a collective, working between
collectives, or waiting at the end of the program for the others. Ranks that never answer
within the grace period are stopped or dead.

Point-to-point only, safe from a second thread under MPI_THREAD_MULTIPLE. Each roll call
takes a fresh answer tag, so a late answer to an earlier one is never mistaken for a new one.
"""

from __future__ import annotations

import itertools
import re
import time
from collections import Counter
from typing import Any

import numpy as np
from mpi4py import MPI

from ..util.text import rank_ranges

WIDTH = 200
"""Bytes of one answer (a status is one short line)."""
ASK_TAG = 7301
"""Tag of a request: one int32, the tag to answer with."""
END_TAG = 7302
"""Tag of a report handed to the rank that ends the job (see runtime/watchdog.py)."""
LEAVE_TAG = 7303
"""Tag of the order to leave, sent by the rank that ends a fault-tolerant job."""
ANSWER_TAGS = range(7400, 7900)
"""Tags answers come back on, one per roll call in turn."""
_answer_tags = itertools.cycle(ANSWER_TAGS)

FINISHED = "finished the program"
"""How a rank that left the program while others still run says so (runtime.tracker)."""


def roll_call(comm: MPI.Intracomm, status: str, *, grace_s: float) -> dict[int, str]:
    """Ask every rank where it is and return {rank: status} of those that answered in time
    (this rank's own `status` included).

    Local to the asker: the others answer from their sentinel threads. Receives that did not
    complete are cancelled; a rank whose sentinel is not running (no MPI_THREAD_MULTIPLE) does
    not answer.
    """
    me, size = comm.rank, comm.size
    tag = next(_answer_tags)
    ask = np.array([tag], dtype=np.int32)
    answers = np.zeros((size, WIDTH), dtype=np.uint8)
    receives = {r: comm.Irecv(answers[r], source=r, tag=tag) for r in range(size) if r != me}
    sends = [comm.Isend(ask, dest=r, tag=ASK_TAG) for r in range(size) if r != me]
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
    del sends  # sends to silent ranks stay pending until the job ends
    return got


def send(comm: MPI.Intracomm, dest: int, tag: int, payload: tuple[Any, ...]) -> MPI.Request:
    """Send a control message (END_TAG or LEAVE_TAG) to `dest`'s sentinel; return its request."""
    return comm.isend(payload, dest=dest, tag=tag)


def encode(status: str) -> np.ndarray:
    """Return `status` as one fixed-width answer."""
    answer = np.zeros(WIDTH, dtype=np.uint8)
    raw = status.encode()[:WIDTH]
    answer[: len(raw)] = np.frombuffer(raw, dtype=np.uint8)
    return answer


_CALL = re.compile(r"^in (.+?) #(\d+)")
_NUMBER = re.compile(r"#(\d+)")


def diagnose(size: int, answers: dict[int, str], what: str) -> str:
    """Return a report naming, by rank, which collective each rank waits in (name and call
    number), which ranks never reached it, which left the program without calling it, and
    which did not answer. Every rank of `size` appears in exactly one line."""
    silent = [r for r in range(size) if r not in answers]
    waiting: dict[int, tuple[str, int]] = {}
    for r, text in answers.items():
        if m := _CALL.match(text):
            waiting[r] = (m.group(1), int(m.group(2)))
    finished = sorted(r for r, text in answers.items() if text.startswith(FINISHED))
    numbers = {r: int(m.group(1)) for r, text in answers.items() if (m := _NUMBER.search(text))}
    lines = [f"{what}: a roll call of {size} ranks got {len(answers)} answers"]
    if silent:
        lines.append(f"  ranks {rank_ranges(silent)} did not answer (hung or dead)")
    common = None
    if waiting:
        common, _ = Counter(n for _, n in waiting.values()).most_common(1)[0]
        by_call: dict[tuple[str, int], list[int]] = {}
        for r, call in sorted(waiting.items()):
            by_call.setdefault(call, []).append(r)
        for (name, number), ranks in by_call.items():
            example = answers[ranks[0]]
            if number == common:
                lines.append(f"  ranks {rank_ranges(ranks)} wait in collective #{common}: {example}")
            else:
                lines.append(f"  ranks {rank_ranges(ranks)} wait in {name} #{number}, not #{common}: {example}")
    named = next((name for name, n in waiting.values() if n == common), None)
    if finished:
        missing = f" without calling {named} #{common}" if common is not None else ""
        counts = sorted({numbers.get(r, 0) for r in finished})
        after = f" (after #{counts[0]})" if len(counts) == 1 else ""
        lines.append(f"  ranks {rank_ranges(finished)} {FINISHED}{missing}{after}")
    for r in sorted(answers):
        if r in waiting or r in finished:
            continue
        if common is not None and numbers.get(r, 0) < common:
            lines.append(f"  rank {r} never reached collective #{common}: it is {answers[r]}")
        else:
            lines.append(f"  rank {r}: {answers[r]}")
    if silent and common is not None:
        lines.append(f"  ranks {rank_ranges(silent)} never reached collective #{common}")
    return "\n".join(lines)
