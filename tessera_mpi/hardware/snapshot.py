"""`Snapshot`: one GPU's health counters at one moment, and what changed between two of them."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from .counters import BY_NAME, COUNTERS, CounterSpec

DEVICE = -1
"""The `link` of a counter of the whole GPU (not of one NVLink)."""


@dataclass(frozen=True)
class Snapshot:
    """Counter values by (counter, link); counters the GPU or driver does not support are absent
    (and named in `unsupported`); `problems` are what stopped reading (the GPU is lost, ...)."""

    taken_at: float
    """time.monotonic() when it was read."""
    values: Mapping[tuple[str, int], float] = field(default_factory=dict)
    unsupported: tuple[str, ...] = ()
    problems: tuple[str, ...] = ()

    def get(self, counter: str, link: int = DEVICE) -> float | None:
        return self.values.get((counter, link))

    def links(self) -> list[int]:
        """The NVLinks this snapshot has a state for, in order."""
        return sorted(link for name, link in self.values if name == "nvlink_up")


@dataclass(frozen=True)
class Change:
    """One counter that moved between two snapshots of a GPU."""

    spec: CounterSpec
    link: int
    before: float
    after: float

    @property
    def increase(self) -> float:
        return self.after - self.before

    def __str__(self) -> str:
        """"NVLink 7: 4,112 CRC errors" or "uncorrectable ECC errors (volatile) 0 -> 1"."""
        where = f"NVLink {self.link}: " if self.link != DEVICE else ""
        if self.spec.kind == "count":
            return f"{where}{_count(self.increase)} {self.spec.what}"
        if self.spec.name == "nvlink_up":
            return f"{where}{'went down' if self.after < 0.5 else 'came up'}"
        return f"{where}{self.spec.what}: {_count(self.before)} -> {_count(self.after)}"


def _count(value: float) -> str:
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.3g}"


def changes(before: Snapshot, after: Snapshot) -> list[Change]:
    """Counters that grew and states that changed from `before` to `after` (gauges never count),
    in COUNTERS order then link order. A counter read in only one of them is not a change."""
    found = []
    for spec in COUNTERS:
        if spec.kind == "gauge":
            continue
        for (name, link), value in sorted(after.values.items(), key=lambda kv: kv[0][1]):
            if name != spec.name:
                continue
            old = before.values.get((name, link))
            if old is None:
                continue
            moved = value > old if spec.kind == "count" else value != old
            if moved:
                found.append(Change(spec, link, float(old), float(value)))
    return found


def rows(rank: int, gpu: str, before: Snapshot, after: Snapshot, *, only_changed: bool) -> list[dict]:
    """The /health/<check> rows of one GPU: rank, gpu, link (-1: the whole GPU), counter, before,
    after (NaN where not read). With `only_changed`, just the counters that moved; problems and
    unsupported counters are not rows (they go into the check's attributes)."""
    moved = {(c.spec.name, c.link) for c in changes(before, after)}
    keys = sorted(set(before.values) | set(after.values), key=lambda k: (_order(k[0]), k[1]))
    out = []
    for key in keys:
        if only_changed and key not in moved:
            continue
        out.append({"rank": int(rank), "gpu": gpu, "link": int(key[1]), "counter": key[0],
                    "before": _value(before.values.get(key)), "after": _value(after.values.get(key))})
    return out


def _order(name: str) -> int:
    spec = BY_NAME.get(name)
    return COUNTERS.index(spec) if spec is not None else len(COUNTERS)


def _value(value: float | None) -> float:
    return math.nan if value is None else float(value)
