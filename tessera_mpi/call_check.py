"""The metadata agreement before a collective: the same call on every rank, compatible shards.

A collective called with different shapes, dtypes or operations on different ranks corrupts
memory or hangs inside MPI. One small allgather over the mesh turns that into the same
DivergenceError on every rank, naming who passed what. Benchmarks switch it off (check=False).
"""

from __future__ import annotations

import hashlib
import pickle
from collections.abc import Sequence
from typing import Any

import numpy as np

from ._text import rank_ranges
from .agree import divergence
from .errors import DivergenceError
from .mesh import Mesh


def _digest(value: Any) -> bytes:
    return hashlib.blake2b(pickle.dumps(value, protocol=4), digest_size=8).digest()


def check_call(
    mesh: Mesh,
    what: str,
    signature: Any,
    *,
    local: Any = None,
    group_axes: Sequence[int] = (),
) -> None:
    """Agree that every mesh rank passed `signature`, and that `local` is equal within groups.

    Collective over the mesh. Groups are the ranks that exchange in a collective over the mesh
    axes `group_axes` (see Mesh.leaders); `local` is typically the local shape,
    which must match among the ranks that exchange elementwise. Costs one allgather of 16
    bytes per rank; the values themselves travel only when something differs.
    """
    mine = np.frombuffer(_digest(signature) + _digest(local), dtype=np.uint8)
    digests = np.empty((mesh.size, 16), dtype=np.uint8)
    mesh.comm.Allgather(mine, digests)
    signatures_differ = bool((digests[:, :8] != digests[0, :8]).any())
    leaders = mesh.leaders(group_axes)
    locals_differ = bool((digests[:, 8:] != digests[leaders, 8:]).any())
    if not signatures_differ and not locals_differ:
        return
    records = mesh.comm.allgather((signature, local))
    if signatures_differ:
        raise DivergenceError(f"{what} was called with different arguments on different ranks: "
                              f"{divergence([s for s, _ in records])}")
    groups: dict[int, list[int]] = {}
    for rank, leader in enumerate(leaders.tolist()):
        groups.setdefault(leader, []).append(rank)
    for ranks in groups.values():
        values = [records[r][1] for r in ranks]
        if any(v != values[0] for v in values):
            detail = "; ".join(f"rank {r} has {records[r][1]!r}" for r in ranks[:8])
            raise DivergenceError(f"{what} needs equal local shapes among the ranks it combines, "
                                  f"but ranks {rank_ranges(ranks)} differ: {detail}")
