"""Point-to-point bandwidth between rank pairs, as osu_bw and osu_bibw measure it.

A window of non-blocking sends of one message each; unidirectional waits for a one-byte
acknowledgement so the sender's clock covers delivery; bidirectional sends both ways at once.
Every received message is checked against the sender's pattern (sweep.values). Pairs are
scheduled in rounds (the circle method), so all pairs of N ranks take N-1 rounds (N if odd),
every rank busy in every round.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
from mpi4py import MPI

from .fault import hooks
from .runtime import Runtime
from .runtime.tracker import tracker
from .sweep import values

TAG = 7101


def rounds(n: int) -> list[list[tuple[int, int]]]:
    """Return rounds of disjoint pairs (a < b) covering every pair of `n` ranks exactly once."""
    players = list(range(n)) + ([None] if n % 2 else [])
    m = len(players)
    schedule = []
    for _ in range(m - 1):
        pairs = []
        for i in range(m // 2):
            a, b = players[i], players[m - 1 - i]
            if a is not None and b is not None:
                pairs.append((min(a, b), max(a, b)))
        schedule.append(pairs)
        players = [players[0], players[-1], *players[1:-1]]
    return schedule


def partner(pairs: list[tuple[int, int]], rank: int) -> int | None:
    """Return `rank`'s partner in a round, or None when it sits out."""
    for a, b in pairs:
        if rank in (a, b):
            return b if rank == a else a
    return None


@dataclass
class Buffers:
    """One rank's message buffers for point-to-point tests, allocated once."""

    send: Any
    recv: list[Any]
    count: int

    @classmethod
    def make(cls, rt: Runtime, rank: int, count: int, window: int) -> Buffers:
        xp = rt.backend.xp
        return cls(send=values(xp, rank, 0, count, np.float32),
                   recv=[xp.empty(count, dtype=np.float32) for _ in range(window)], count=count)

    @property
    def nbytes(self) -> int:
        return int(self.send.nbytes)


def _wrong(rt: Runtime, buffers: Buffers, source: int) -> int:
    expected = values(rt.backend.xp, source, 0, buffers.count, np.float32)
    return int(sum(int((r != expected).sum()) for r in buffers.recv))


@contextmanager
def _guarded(comm: MPI.Intracomm, name: str) -> Iterator[None]:
    """Apply the fault hooks and the tracker around one window, as around every collective."""
    if hooks.active:
        hooks.before(name)
    tracker.enter(name)
    try:
        yield
    except MPI.Exception as exc:
        raise hooks.lost(exc, comm, name) from exc
    tracker.leave()


def _received(rt: Runtime, buffers: Buffers, source: int) -> int:
    if hooks.active:
        for r in buffers.recv:
            hooks.after(r)
    return _wrong(rt, buffers, source)


def send_window(comm: MPI.Intracomm, rt: Runtime, buffers: Buffers, dest: int) -> float:
    """Send a window of messages to `dest` and wait for its acknowledgement; return seconds."""
    staging = rt.staging
    ack = np.zeros(1, dtype=np.uint8)
    with _guarded(comm, "p2p send"):
        start = MPI.Wtime()
        source = staging.send_buffer(buffers.send)
        requests = [comm.Isend(source, dest=dest, tag=TAG) for _ in buffers.recv]
        MPI.Request.Waitall(requests)
        comm.Recv(ack, source=dest, tag=TAG + 1)
        seconds = MPI.Wtime() - start
    return seconds


def receive_window(comm: MPI.Intracomm, rt: Runtime, buffers: Buffers, source: int) -> int:
    """Receive a window of messages from `source`, acknowledge; return wrong elements."""
    staging = rt.staging
    with _guarded(comm, "p2p receive"):
        targets = [staging.recv_buffer(r) for r in buffers.recv]
        requests = [comm.Irecv(t, source=source, tag=TAG) for t in targets]
        MPI.Request.Waitall(requests)
        comm.Send(np.zeros(1, dtype=np.uint8), dest=source, tag=TAG + 1)
        for target, r in zip(targets, buffers.recv):
            staging.finish(target, r)
    return _received(rt, buffers, source)


def exchange_window(comm: MPI.Intracomm, rt: Runtime, buffers: Buffers, peer: int) -> tuple[float, int]:
    """Send a window to `peer` while receiving one from it; return (seconds, wrong elements)."""
    staging = rt.staging
    with _guarded(comm, "p2p exchange"):
        start = MPI.Wtime()
        targets = [staging.recv_buffer(r) for r in buffers.recv]
        receives = [comm.Irecv(t, source=peer, tag=TAG) for t in targets]
        source = staging.send_buffer(buffers.send)
        sends = [comm.Isend(source, dest=peer, tag=TAG) for _ in buffers.recv]
        MPI.Request.Waitall(receives + sends)
        for target, r in zip(targets, buffers.recv):
            staging.finish(target, r)
        seconds = MPI.Wtime() - start
    return seconds, _received(rt, buffers, peer)
