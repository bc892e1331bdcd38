"""Bandwidth figures as nccl-tests computes them: algbw = size / time with GB = 1e9 bytes,
busbw = algbw x the collective's bus factor (see collectives.py for sizes and factors)."""

from __future__ import annotations

from .collectives import spec


def bus_factor(collective: str, ranks: int) -> float:
    """Return the busbw/algbw factor of `collective` over `ranks` participants."""
    if ranks < 1:
        raise ValueError(f"a collective needs at least one rank, got {ranks}")
    return spec(collective).bus(ranks)


def per_rank_count(collective: str, size_bytes: int, ranks: int, itemsize: int) -> int:
    """Return the elements per rank (the per-rank part for total-buffer collectives) for `size_bytes`."""
    return spec(collective).per_rank_count(size_bytes, ranks, itemsize)


def size_of(collective: str, count: int, ranks: int, itemsize: int) -> int:
    """Return the nccl-tests size in bytes of `collective` with `count` elements per rank part."""
    return spec(collective).size_of(count, ranks, itemsize)


def algbw_gbps(size_bytes: int, seconds: float) -> float:
    """Return the algorithm bandwidth in GB/s (1e9 bytes per second)."""
    return size_bytes / seconds / 1e9 if seconds > 0 else 0.0


def busbw_gbps(collective: str, size_bytes: int, seconds: float, ranks: int) -> float:
    """Return the bus bandwidth in GB/s."""
    return algbw_gbps(size_bytes, seconds) * bus_factor(collective, ranks)
