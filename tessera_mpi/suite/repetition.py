"""`--repeat N`: one record standing for every repetition of a check, and their spread."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..util.text import rank_ranges
from ..results import CheckRecord, Dataset, table
from ..results.schema import STATUSES


@dataclass(frozen=True)
class Spread:
    """Durations of a check over its repetitions, in seconds."""

    minimum: float
    median: float
    maximum: float

    @classmethod
    def of(cls, records: Sequence[CheckRecord]) -> Spread:
        durations = [r.duration_s for r in records]
        return cls(min(durations), statistics.median(durations), max(durations))


def _failing(record: CheckRecord) -> list[int]:
    return [int(rank) for rank in record.attrs.get("failing_ranks", ())]


def combine(records: Sequence[CheckRecord]) -> CheckRecord:
    """Return the record of a check run once per element of `records` (in repetition order).

    One repetition is that repetition's record. Otherwise: the most severe status of any
    repetition (a check that failed once failed); the datasets, attributes and headline of the
    first repetition with that status (the last when all passed), whose number is the
    `repetition` attribute; failing ranks of every repetition; the non-passing repetitions'
    messages; the total duration; and a `repetitions` table of every repetition (with the
    bytes of background load beside it under --under-load).
    """
    if len(records) == 1:
        return records[0]
    level = max(STATUSES.index(r.status) for r in records)
    if level == 0:
        chosen = len(records) - 1
    else:
        chosen = next(i for i, r in enumerate(records) if STATUSES.index(r.status) == level)
    shown = records[chosen]
    rows = [{"repetition": i + 1, "status": r.status, "duration_s": r.duration_s,
             "failing_ranks": rank_ranges(_failing(r)), "headline": r.headline}
            for i, r in enumerate(records)]
    if all("load_bytes" in r.attrs for r in records):
        for row, r in zip(rows, records):
            row["load_bytes"] = int(r.attrs["load_bytes"])
    failing = sorted({rank for r in records for rank in _failing(r)})
    message = "\n".join(f"repetition {i + 1}: {r.message}" for i, r in enumerate(records)
                        if r.status != "passed" and r.message)
    attrs = dict(shown.attrs, repetition=chosen + 1, repetitions=len(records),
                 failing_ranks=np.array(failing, dtype=np.int64),
                 culprits=sorted({str(c) for r in records for c in r.attrs.get("culprits", ())}))
    for verdict in ("sanity", "performance"):
        if any(r.attrs.get(verdict) == "failed" for r in records):
            attrs[verdict] = "failed"
    datasets = dict(shown.datasets)
    datasets["repetitions"] = Dataset(table(rows), {"description": "status, duration and headline of each repetition"})
    return CheckRecord(name=shown.name, status=STATUSES[level], duration_s=sum(r.duration_s for r in records),
                       message=message, headline=shown.headline, datasets=datasets, attrs=attrs,
                       health=shown.health)
