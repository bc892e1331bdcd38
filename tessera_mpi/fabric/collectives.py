"""The table of collectives: one frozen spec per collective, read by every part that needs a
fact about one (bus bandwidth, the sweep, profiling, the bandwidth check). Adding a collective
is one entry here (and its transport method).

Sizes follow nccl-tests: the size of all-gather, reduce-scatter and all-to-all is the total
buffer (n x the per-rank part), of the others the per-rank buffer. busbw = algbw x `bus(n)`,
the factor that makes the figure comparable to link bandwidth whatever the rank count.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .pattern import summed, values

Expected = Callable[[Any, int, int, int, Any], Any]
"""(xp, rank, ranks, count, dtype) -> what `rank` holds after the call, for the sweep's pattern."""


def _ring(n: int) -> float:
    return 2.0 * (n - 1) / n


def _share(n: int) -> float:
    return (n - 1) / n


def _one(n: int) -> float:
    return 1.0


@dataclass(frozen=True)
class CollectiveSpec:
    """What is true of one collective, wherever it is used."""

    name: str
    bus: Callable[[int], float]
    """busbw / algbw over n ranks (nccl-tests)."""
    total_buffer: bool
    """Its nccl-tests size is the total (n x per-rank part) buffer."""
    send_parts: str
    """Per-rank parts in the send buffer: "1" or "n"."""
    recv_parts: str
    """Per-rank parts in the receive buffer: "1" or "n"."""
    variants: tuple[bool, ...] = ()
    """The in_place flags the sweep measures (empty: not swept). MPI broadcasts only in place."""
    reduces: bool = False
    """Combines contributions: repeated in-place calls would grow the data, so timing runs on zeros."""
    expected: Expected | None = None
    """The result on the sweep's pattern, by which every swept call is verified."""
    in_place_at: Callable[[int, int], int] = lambda rank, count: 0
    """Where this rank's input sits in the in-place buffer."""
    only_root_sends: bool = False
    """Only group rank 0's input matters (broadcast): the others' in-place buffers start at zero."""

    def parts(self, which: str, ranks: int) -> int:
        return ranks if which == "n" else 1

    def per_rank_count(self, size_bytes: int, ranks: int, itemsize: int) -> int:
        """Elements per rank (the per-rank part for total-buffer collectives) for `size_bytes`."""
        unit = itemsize * (ranks if self.total_buffer else 1)
        return max(1, size_bytes // unit)

    def size_of(self, count: int, ranks: int, itemsize: int) -> int:
        """The nccl-tests size in bytes with `count` elements per rank part."""
        return count * itemsize * (ranks if self.total_buffer else 1)


def _gathered(xp: Any, rank: int, ranks: int, count: int, dtype: Any) -> Any:
    return xp.concatenate([values(xp, r, 0, count, dtype) for r in range(ranks)])


def _exchanged(xp: Any, rank: int, ranks: int, count: int, dtype: Any) -> Any:
    return xp.concatenate([values(xp, s, rank * count, count, dtype) for s in range(ranks)])


TABLE: dict[str, CollectiveSpec] = {spec.name: spec for spec in (
    CollectiveSpec("all_reduce", _ring, False, "1", "1", variants=(False, True), reduces=True,
                   expected=lambda xp, me, p, n, dt: summed(xp, p, 0, n, dt)),
    CollectiveSpec("all_gather", _share, True, "1", "n", variants=(False, True), expected=_gathered,
                   in_place_at=lambda rank, count: rank * count),
    CollectiveSpec("reduce_scatter", _share, True, "n", "1", variants=(False, True), reduces=True,
                   expected=lambda xp, me, p, n, dt: summed(xp, p, me * n, n, dt)),
    CollectiveSpec("broadcast", _one, False, "1", "1", variants=(True,), only_root_sends=True,
                   expected=lambda xp, me, p, n, dt: values(xp, 0, 0, n, dt)),
    CollectiveSpec("all_to_all", _share, True, "n", "n", variants=(False, True), expected=_exchanged),
    CollectiveSpec("sendrecv", _one, False, "1", "1", variants=(False, True),
                   expected=lambda xp, me, p, n, dt: values(xp, (me - 1) % p, 0, n, dt)),
    CollectiveSpec("send", _one, False, "1", "1"),
    CollectiveSpec("recv", _one, False, "1", "1"),
)}
"""Every collective by name, in report order."""

SWEPT: tuple[str, ...] = tuple(name for name, spec in TABLE.items() if spec.variants)
"""The collectives the bandwidth sweep measures, in report order."""


def spec(name: str) -> CollectiveSpec:
    """Return the spec of collective `name`; ValueError for a name the table lacks."""
    found = TABLE.get(name)
    if found is None:
        raise ValueError(f"no collective {name!r}; the table has {', '.join(TABLE)}")
    return found
