"""What the runner does with the GPUs' counters around each check: the changes each rank saw,
the line a result carries about them, the /health/<check> table, throttling of fabric checks."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..hardware import rules
from ..hardware.snapshot import Snapshot, changes, rows
from ..hardware.telemetry import Telemetry
from ..results import Dataset
from ..results.table import STRING

HEALTH_CHECKS = ("health", "health_end")
"""Checks whose /health table holds every counter; the others' hold only what moved."""
MAX_MOVED = 8
"""Changed counters one rank reports per check (the table holds them all)."""
COLUMNS = [("rank", np.int64), ("gpu", STRING), ("link", np.int64), ("counter", STRING),
           ("before", np.float64), ("after", np.float64)]


@dataclass(frozen=True)
class Observed:
    """One rank's counters around one check: the changes in words, and its table rows."""

    moved: tuple[str, ...] = ()
    rows: tuple[dict, ...] = ()


def observed(check: str, tel: Telemetry, rank: int, before: Snapshot | None, after: Snapshot | None) -> Observed:
    """Return what this rank's GPU counters did during `check` (local), and note throttling
    during a fabric check for the `health` check to judge."""
    if before is None or after is None:
        return Observed()
    tel.throttled.extend(t for t in rules.throttle_seen(check, after) if t not in tel.throttled)
    who = f"rank {rank} GPU serial {tel.identity.serial}" if tel.identity.serial else f"rank {rank}"
    moved = tuple(f"{who} {change}" for change in changes(before, after))
    problems = tuple(f"{who}: {p}" for p in after.problems)
    # A health check's table spans the suite so far: from the first snapshot to now.
    whole = check in HEALTH_CHECKS
    table = rows(rank, tel.label(), (tel.baseline or before) if whole else before, after, only_changed=not whole)
    return Observed((moved + problems)[:MAX_MOVED], tuple(table))


def summary(moved: Sequence[str]) -> str:
    """"GPU counters during the check: rank 12 ... NVLink 7: 4,112 CRC errors; ..." (four named)."""
    more = f" (and {len(moved) - 4} more)" if len(moved) > 4 else ""
    return f"GPU counters during the check: {'; '.join(moved[:4])}{more}"


def table_of(gathered: Sequence[Sequence[dict]] | None, check: str, tel: Telemetry) -> Dataset | None:
    """The /health/<check> table from every rank's rows (rank 0; None without telemetry)."""
    if not tel.available or gathered is None:
        return None
    every = [row for part in gathered for row in part]
    data = np.empty(len(every), dtype=COLUMNS)
    for name, _ in COLUMNS:
        data[name] = [row[name] for row in every]
    what = "every counter" if check in HEALTH_CHECKS else "the counters that moved"
    return Dataset(data, {"description": f"GPU health counters before and after the check ({what}), one row "
                                         "per rank, GPU, link (-1: the whole GPU) and counter", "source": tel.source})
