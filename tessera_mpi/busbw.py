"""Bandwidth conventions of nccl-tests: what "size" means per collective, algbw and busbw.

algbw = size / time with GB = 1e9 bytes. busbw = algbw x a factor that makes the figure
comparable to the link bandwidth whatever the rank count: 2(n-1)/n for all-reduce; (n-1)/n for
all-gather, reduce-scatter and all-to-all, whose size is the total buffer (n x the per-rank
part); 1 for broadcast, reduce and point-to-point.
"""

from __future__ import annotations

COLLECTIVES = ("all_reduce", "all_gather", "reduce_scatter", "broadcast", "all_to_all", "sendrecv")
"""The collectives the bandwidth sweep measures, in report order."""

_TOTAL_BUFFER = {"all_gather", "reduce_scatter", "all_to_all"}
"""Collectives whose nccl-tests size is the total (n x per-rank) buffer."""


def bus_factor(collective: str, ranks: int) -> float:
    """Return the busbw/algbw factor of `collective` over `ranks` participants."""
    if ranks < 1:
        raise ValueError(f"a collective needs at least one rank, got {ranks}")
    if collective == "all_reduce":
        return 2.0 * (ranks - 1) / ranks
    if collective in _TOTAL_BUFFER:
        return (ranks - 1) / ranks
    if collective in ("broadcast", "reduce", "sendrecv", "send", "recv", "shift"):
        return 1.0
    raise ValueError(f"no bus bandwidth convention for {collective!r}")


def per_rank_count(collective: str, size_bytes: int, ranks: int, itemsize: int) -> int:
    """Return the elements per rank (the per-rank part for total-buffer collectives) for `size_bytes`."""
    unit = itemsize * (ranks if collective in _TOTAL_BUFFER else 1)
    return max(1, size_bytes // unit)


def size_of(collective: str, count: int, ranks: int, itemsize: int) -> int:
    """Return the nccl-tests size in bytes of `collective` with `count` elements per rank part."""
    return count * itemsize * (ranks if collective in _TOTAL_BUFFER else 1)


def algbw_gbps(size_bytes: int, seconds: float) -> float:
    """Return the algorithm bandwidth in GB/s (1e9 bytes per second)."""
    return size_bytes / seconds / 1e9 if seconds > 0 else 0.0


def busbw_gbps(collective: str, size_bytes: int, seconds: float, ranks: int) -> float:
    """Return the bus bandwidth in GB/s."""
    return algbw_gbps(size_bytes, seconds) * bus_factor(collective, ranks)
