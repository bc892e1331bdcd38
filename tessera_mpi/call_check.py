"""The metadata agreement before a collective: the same call, with compatible shards, on every
rank that takes part.

A collective called with different shapes, dtypes or operations on different ranks corrupts
memory or hangs inside MPI. One small allgather among the ranks of the collective's own group
turns that into the same DivergenceError on each of them, naming who passed what. It runs in
the group, not over the whole mesh, because groups legitimately reach their collectives at
different times (pipeline stages do). Benchmarks switch it off (check=False).
"""

from __future__ import annotations

import hashlib
import pickle
from collections.abc import Callable
from typing import Any

import numpy as np
from mpi4py import MPI

from ._text import rank_ranges
from .agree import divergence
from .errors import DivergenceError
from .runtime.tracker import tracker


def _digest(value: Any) -> bytes:
    return hashlib.blake2b(pickle.dumps(value, protocol=4), digest_size=8).digest()


def check_call(
    comm: MPI.Intracomm,
    what: str,
    signature: Any,
    *,
    local: Any = None,
    rank_of: Callable[[int], int] = lambda r: r,
) -> None:
    """Agree that every rank of `comm` passed `signature` and the same `local` (typically the
    local shape, which must match among ranks that combine elementwise).

    Collective over `comm`, the collective's group. Costs one allgather of 16 bytes per rank;
    the values themselves travel only when something differs. `rank_of` turns a rank of `comm`
    into the rank the message names (the job's world rank).
    """
    mine = np.frombuffer(_digest(signature) + _digest(local), dtype=np.uint8)
    digests = np.empty((comm.size, 16), dtype=np.uint8)
    # Tracked as a call of its own: a rank that skipped the collective leaves the others
    # waiting here, and the roll call must say so.
    tracker.enter(f"{what} (argument check)")
    comm.Allgather(mine, digests)
    tracker.leave()
    if (digests == digests[0]).all():
        return
    records = comm.allgather((signature, local))
    named = [rank_of(r) for r in range(comm.size)]
    signatures = [s for s, _ in records]
    if any(s != signatures[0] for s in signatures):
        raise DivergenceError(f"{what} was called with different arguments on different ranks: "
                              f"{divergence(signatures, named)}")
    shown = "; ".join(f"rank {named[r]} has {records[r][1]!r}" for r in range(min(comm.size, 8)))
    raise DivergenceError(f"{what} needs equal local shapes among the ranks it combines, but ranks "
                          f"{rank_ranges(named)} differ: {shown}")

