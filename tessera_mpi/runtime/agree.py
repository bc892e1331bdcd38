"""Collective agreement: all ranks learn whether every rank succeeded, and which ranks did not."""

from __future__ import annotations

import hashlib
import pickle
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from mpi4py import MPI

from ..errors import AgreementTimeout, DivergenceError
from ..util.text import rank_ranges
from .waits import wait_for

MAX_MESSAGE = 2000
"""Longest per-rank message carried by an agreement; longer ones are cut."""


@dataclass(frozen=True)
class Verdict:
    """The outcome of one agreement, identical on every rank of the communicator."""

    ok: bool
    failing: tuple[int, ...] = ()
    """Ranks (in the agreeing communicator) that reported failure."""
    messages: Mapping[int, str] = field(default_factory=dict)
    """What each failing rank reported."""
    level: int = 0
    """The highest severity any rank reported (0 when every rank is ok)."""

    def summary(self, describe: Callable[[int], str] | None = None) -> str:
        """Return one line per distinct message: "rank 3 (where): message" or "ranks 3,17: message".

        `describe(rank)` says where a rank is (host, device); up to four are spelled out per line.
        """
        if self.ok:
            return "ok on every rank"
        by_text: dict[str, list[int]] = {}
        for rank in self.failing:
            by_text.setdefault(self.messages.get(rank, ""), []).append(rank)
        lines = []
        for text, ranks in by_text.items():
            if len(ranks) == 1:
                who = describe(ranks[0]) if describe else f"rank {ranks[0]}"
                lines.append(f"{who}: {text}" if text else who)
                continue
            line = f"ranks {rank_ranges(ranks)}" + (f": {text}" if text else "")
            if describe:
                more = f"; and {len(ranks) - 4} more" if len(ranks) > 4 else ""
                line += f" [{'; '.join(describe(r) for r in ranks[:4])}{more}]"
            lines.append(line)
        return "\n".join(lines)


def agree(
    comm: MPI.Intracomm,
    ok: bool,
    message: str = "",
    *,
    severity: int = 1,
    timeout: float | None = None,
) -> Verdict:
    """Agree across `comm` on whether every rank is ok; failing ranks and their messages are named.

    Collective: every rank of `comm` must call it. A failing rank reports `severity` (1-127);
    the verdict's `level` is the highest reported. With `timeout`, a rank gives up after that
    many seconds and raises AgreementTimeout (the communicator then has a pending operation and
    must not be used for collectives again). Costs one small allgather; messages travel only
    when some rank failed.
    """
    if not ok and not 1 <= severity <= 127:
        raise ValueError(f"severity must be in 1..127, got {severity}")
    flags = np.zeros(comm.size, dtype=np.int8)
    request = comm.Iallgather(np.array([0 if ok else severity], dtype=np.int8), flags)
    if timeout is None:
        request.Wait()
    elif not wait_for(request, timeout):
        raise AgreementTimeout(
            f"not every rank of {comm.size} reached the agreement within {timeout:g} s"
        )
    failing = tuple(int(r) for r in np.flatnonzero(flags))
    if not failing:
        return Verdict(ok=True)
    texts = comm.allgather("" if ok else message[:MAX_MESSAGE])
    return Verdict(
        ok=False, failing=failing, messages={r: texts[r] for r in failing}, level=int(flags.max())
    )


def divergence(values: list[Any], ranks: list[int] | None = None) -> str:
    """Return "ranks 0-70 passed A; rank 71 passed B" for per-rank values, the ranks being
    `ranks` (default: the values' indices)."""
    groups: dict[str, list[int]] = {}
    for rank, value in zip(ranks if ranks is not None else range(len(values)), values):
        groups.setdefault(repr(value)[:MAX_MESSAGE], []).append(rank)
    return "; ".join(f"rank{'s' if len(r) > 1 else ''} {rank_ranges(r)} passed {t}" for t, r in groups.items())


def agree_equal(comm: MPI.Intracomm, value: Any, *, what: str) -> None:
    """Raise DivergenceError on every rank unless every rank of `comm` passed an equal `value`.

    Collective. `value` must pickle deterministically (tuples, strings, numbers). Costs one
    allgather of a 16-byte digest; the values themselves travel only when they differ.
    """
    local = hashlib.blake2b(pickle.dumps(value, protocol=4), digest_size=16).digest()
    digests = np.empty((comm.size, 16), dtype=np.uint8)
    comm.Allgather(np.frombuffer(local, dtype=np.uint8), digests)
    if (digests == digests[0]).all():
        return
    values = comm.allgather(value)
    raise DivergenceError(f"{what} differs across ranks (it must be the same on all): {divergence(values)}")
