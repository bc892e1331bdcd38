"""The metadata agreement before a collective: the same call, with compatible shards, on every
rank that takes part.

A collective called with different shapes, dtypes or operations on different ranks corrupts
memory or hangs inside the library. One small all-gather among the ranks of the collective's
own group turns that into the same DivergenceError on each of them, naming who passed what. It
runs in the group, not over the whole mesh, because groups legitimately reach their
collectives at different times (pipeline stages do). Benchmarks switch it off (check=False).
"""

from __future__ import annotations

import hashlib
import pickle
from typing import Any

import numpy as np

from ..errors import DivergenceError
from ..runtime.agree import divergence
from ..util.text import rank_ranges
from .call import Group


def _digest(value: Any) -> bytes:
    return hashlib.blake2b(pickle.dumps(value, protocol=4), digest_size=8).digest()


def agree_call(group: Group, what: str, signature: Any, *, local: Any = None) -> None:
    """Agree that every member of `group` passed `signature` and the same `local` (typically the
    local shape, which must match among ranks that combine elementwise).

    Collective over the group. A call of its own on the call path (tracked, so a rank that
    skipped the collective leaves the others waiting here and the roll call says so; no
    planned fault strikes it). Costs one all-gather of 16 bytes per rank; the values travel
    only when something differs. Messages name ranks by their job-world rank.
    """
    mine = np.frombuffer(_digest(signature) + _digest(local), dtype=np.uint8)
    digests = np.empty((group.size, 16), dtype=np.uint8)
    with group.call(f"{what} (argument check)", inject=False):
        group.comm.Allgather(mine, digests)
        if (digests == digests[0]).all():
            return
        records = group.comm.allgather((signature, local))
    named = list(group.members)
    signatures = [s for s, _ in records]
    if any(s != signatures[0] for s in signatures):
        raise DivergenceError(f"{what} was called with different arguments on different ranks: "
                              f"{divergence(signatures, named)}")
    shown = "; ".join(f"rank {named[r]} has {records[r][1]!r}" for r in range(min(group.size, 8)))
    raise DivergenceError(f"{what} needs equal local shapes among the ranks it combines, but ranks "
                          f"{rank_ranges(named)} differ: {shown}")
