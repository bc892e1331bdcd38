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

from .. import errors
from ..errors import DivergenceError
from ..runtime.agree import divergence
from ..util.text import rank_ranges
from .call import Group


def _rebuilt(kind: str, text: str) -> Exception:
    """Return an argument error of the class named `kind` (raised on another rank) saying `text`."""
    cls = getattr(errors, kind, None) or {"TypeError": TypeError}.get(kind, ValueError)
    try:
        return cls(text)
    except Exception:  # noqa: BLE001 - a class that takes other arguments: keep the kind
        return (TypeError if issubclass(cls, TypeError) else ValueError)(text)


def _digest(value: Any) -> bytes:
    return hashlib.blake2b(pickle.dumps(value, protocol=4), digest_size=8).digest()


def agree_call(group: Group, what: str, signature: Any, *, local: Any = None,
               error: Exception | None = None) -> None:
    """Agree that every member of `group` passed `signature` and the same `local` (typically the
    local shape, which must match among ranks that combine elementwise), and that none found
    its arguments wrong (`error`: the exception this rank's validation raised).

    An argument error on any rank raises the same error on every rank (the first failing
    rank's, naming the ranks where it arose), so no rank goes on alone to a collective the
    others never reach.

    Collective over the group. A call of its own on the call path (tracked, so a rank that
    skipped the collective leaves the others waiting here and the roll call says so; no
    planned fault strikes it). Costs one all-gather of 16 bytes per rank; the values travel
    only when something differs. Messages name ranks by their job-world rank.
    """
    problem = None if error is None else f"{type(error).__name__}: {error}"
    mine = np.frombuffer(_digest((what, signature, problem)) + _digest(local), dtype=np.uint8)
    digests = np.empty((group.size, 16), dtype=np.uint8)
    with group.call(f"{what} (argument check)", inject=False):
        group.comm.Allgather(mine, digests)
        if (digests == digests[0]).all():
            if error is not None:
                raise error  # the same error on every rank already
            return
        records = group.comm.allgather((signature, local, problem, what))
    named = list(group.members)
    called = [record[3] for record in records]
    if any(c != called[0] for c in called):
        groups: dict[str, list[int]] = {}
        for r, c in enumerate(called):
            groups.setdefault(c, []).append(named[r])
        raise DivergenceError("different collectives were called at the same point: "
                              + "; ".join(f"ranks {rank_ranges(r)} called {c}" for c, r in groups.items()))
    failed = [r for r in range(group.size) if records[r][2] is not None]
    if failed:
        first = records[failed[0]][2]
        alike = [named[r] for r in failed if records[r][2] == first]
        text = first.split(": ", 1)[1] + f" (on rank{'s' if len(alike) > 1 else ''} {rank_ranges(alike)})"
        if len(failed) > len(alike):
            text += f"; other argument errors on ranks {rank_ranges(sorted(set(named[r] for r in failed) - set(alike)))}"
        if error is not None and problem == first:
            raise _rebuilt(type(error).__name__, text) from error
        kind = first.split(":", 1)[0]
        raise _rebuilt(kind, text)
    records = [(sig, loc) for sig, loc, _, _ in records]
    signatures = [s for s, _ in records]
    if any(s != signatures[0] for s in signatures):
        raise DivergenceError(f"{what} was called with different arguments on different ranks: "
                              f"{divergence(signatures, named)}")
    shown = "; ".join(f"rank {named[r]} has {records[r][1]!r}" for r in range(min(group.size, 8)))
    raise DivergenceError(f"{what} needs equal local shapes among the ranks it combines, but ranks "
                          f"{rank_ranges(named)} differ: {shown}")
