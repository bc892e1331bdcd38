"""Small text helpers for rank lists and sizes in messages."""

from __future__ import annotations

from collections.abc import Iterable


def rank_ranges(ranks: Iterable[int]) -> str:
    """Return ranks as compact ranges: [0, 1, 2, 5, 7, 8] -> "0-2,5,7-8"."""
    ordered = sorted(set(ranks))
    if not ordered:
        return "none"
    parts = []
    start = prev = ordered[0]
    for r in ordered[1:] + [None]:
        if r is not None and r == prev + 1:
            prev = r
            continue
        parts.append(str(start) if start == prev else f"{start}-{prev}")
        if r is not None:
            start = prev = r
    return ",".join(parts)


def plural(n: int, word: str) -> str:
    """Return "1 rank" / "3 ranks"."""
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def shape_str(shape: Iterable[int]) -> str:
    """Return a shape as 6x6x2."""
    return "x".join(str(s) for s in shape)


def human_bytes(n: int) -> str:
    """Return 8 B, 64 KiB, 4 MiB, 1 GiB."""
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= scale and n % scale == 0:
            return f"{n // scale} {unit}"
    return f"{n} B"
