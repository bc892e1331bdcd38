"""What profiling sessions record: one entry per call made through the call path while a
session is open (`profile.session()` reads and reports them)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Record:
    """One call as this rank saw it."""

    name: str
    size_bytes: int
    """The nccl-tests size of the call (the total buffer for all-gather, reduce-scatter, all-to-all)."""
    dtype: str
    participants: int
    seconds: float


@dataclass(eq=False)
class Recorder:
    """The records of one open session on this rank."""

    records: list[Record] = field(default_factory=list)


sessions: list[Recorder] = []
"""Open sessions, innermost last; the call path times calls only while this is not empty."""


def record(name: str, *, size_bytes: int, dtype: Any, participants: int, seconds: float) -> None:
    """Add one call to every open session."""
    entry = Record(name=name, size_bytes=int(size_bytes), dtype=np.dtype(dtype).name,
                   participants=int(participants), seconds=float(seconds))
    for s in sessions:
        s.records.append(entry)
