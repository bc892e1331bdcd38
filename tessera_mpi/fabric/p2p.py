"""Point-to-point bandwidth between rank pairs, as osu_bw and osu_bibw measure it.

A window of non-blocking sends of one message each; unidirectional waits for a one-byte
acknowledgement so the sender's clock covers delivery; bidirectional sends both ways at once.
Every received message is checked against the sender's pattern (fabric.pattern). Pairs are
scheduled in rounds (the circle method), so all pairs of N ranks take N-1 rounds (N if odd),
every rank busy in every round.

On host buffers a window's posts, waits, acknowledgement and clock run in compiled code
(`Transport.bind_window`), else in Python; `Buffers.loop` says which ran last. Each side's
choice is its own (no agreement needed): both post the same messages.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from mpi4py import MPI

from ..comm.call import Group
from ..runtime import Runtime
from .pattern import values
from .sweep import as_group

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
    loop: str = "python"
    """The loop of the last window on these buffers: "compiled" or "python"."""
    _windows: dict[tuple[str, int, int], Callable[[], float] | None] = field(default_factory=dict, repr=False)

    @classmethod
    def make(cls, rt: Runtime, rank: int, count: int, window: int) -> Buffers:
        backend = rt.backend
        send = backend.empty(count, np.float32)
        send[...] = values(backend.xp, rank, 0, count, np.float32)
        return cls(send=send, recv=[backend.empty(count, np.float32) for _ in range(window)], count=count)

    @property
    def nbytes(self) -> int:
        return int(self.send.nbytes)


def _window(group: Group, buffers: Buffers, mode: str, peer: int) -> Callable[[], float] | None:
    """The compiled window on these buffers (bound once per mode, peer and transport), or None."""
    key = (mode, peer, id(group.transport))
    if key not in buffers._windows:
        buffers._windows[key] = None if group.staging.device else \
            group.transport.bind_window(mode, buffers.send, buffers.recv, peer=peer, tag=TAG)
    window = buffers._windows[key]
    buffers.loop = "python" if window is None else "compiled"
    return window


def _wrong(rt: Runtime, buffers: Buffers, source: int) -> int:
    """Count the wrong elements received from `source` (after the call: planned corruption
    strikes the last message as the call ends)."""
    expected = values(rt.backend.xp, source, 0, buffers.count, np.float32)
    return int(sum(int((r != expected).sum()) for r in buffers.recv))


def send_window(group: Group | MPI.Intracomm, rt: Runtime, buffers: Buffers, dest: int) -> float:
    """Send a window of messages to `dest` and wait for its acknowledgement; return seconds."""
    group = as_group(group)
    window = _window(group, buffers, "send", dest)
    ack = np.zeros(1, dtype=np.uint8)
    with group.call("p2p send") as call:
        if window is not None:
            return window()
        start = MPI.Wtime()
        call.wait_all([call.start_send(buffers.send, dest=dest, tag=TAG) for _ in buffers.recv])
        group.comm.Recv(ack, source=dest, tag=TAG + 1)
        seconds = MPI.Wtime() - start
    return seconds


def receive_window(group: Group | MPI.Intracomm, rt: Runtime, buffers: Buffers, source: int) -> int:
    """Receive a window of messages from `source`, acknowledge; return wrong elements."""
    group = as_group(group)
    window = _window(group, buffers, "receive", source)
    with group.call("p2p receive") as call:
        if window is not None:
            window()
            call.result(buffers.recv[-1])
        else:
            call.wait_all([call.start_recv(r, source=source, tag=TAG) for r in buffers.recv])
            group.comm.Send(np.zeros(1, dtype=np.uint8), dest=source, tag=TAG + 1)
    return _wrong(rt, buffers, source)


def exchange_window(group: Group | MPI.Intracomm, rt: Runtime, buffers: Buffers, peer: int) -> tuple[float, int]:
    """Send a window to `peer` while receiving one from it; return (seconds, wrong elements)."""
    group = as_group(group)
    window = _window(group, buffers, "exchange", peer)
    with group.call("p2p exchange") as call:
        if window is not None:
            seconds = window()
            call.result(buffers.recv[-1])
        else:
            start = MPI.Wtime()
            receives = [call.start_recv(r, source=peer, tag=TAG) for r in buffers.recv]
            sends = [call.start_send(buffers.send, dest=peer, tag=TAG) for _ in buffers.recv]
            call.wait_all(receives + sends)
            seconds = MPI.Wtime() - start
    return seconds, _wrong(rt, buffers, peer)
