"""The JSON summary of a suite run, and the record both reports are made from."""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ..results.reader import plain
from ..results.schema import STATUSES
from ..results.writer import CheckRecord

JSON_FORMAT = 1
"""Version of the JSON summary's layout; bumped when a key changes meaning or disappears."""


@dataclass(frozen=True)
class RunSummary:
    """What a report says about a run: its provenance, its checks so far, and how it ended."""

    attrs: dict[str, Any]
    """The results file's root attributes (provenance)."""
    checks: Sequence[CheckRecord]
    results_file: str
    elapsed_s: float
    complete: bool
    """False while the run is still going (reports are rewritten after every check)."""
    exit_code: int | None = None
    baseline: str | None = None
    """The --baseline file, when one was compared."""
    baseline_lines: Sequence[str] = field(default_factory=tuple)
    baseline_regressions: Sequence[str] = field(default_factory=tuple)
    selftest: Sequence[dict[str, Any]] = field(default_factory=tuple)
    """Under --self-test, one row per planted defect (see suite/selftest.py)."""

    @property
    def counts(self) -> dict[str, int]:
        counted = Counter(c.status for c in self.checks)
        return {status: counted[status] for status in STATUSES}


def _json_safe(value: Any) -> Any:
    """Return an attribute value as something json can write: plain, and no NaN or infinity."""
    value = plain(value)
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


def _check(record: CheckRecord) -> dict[str, Any]:
    attrs = {k: _json_safe(v) for k, v in record.attrs.items()
             if k not in ("traceback", "failing_ranks", "sanity", "performance", "culprits")}
    return {
        "name": record.name,
        "status": record.status,
        "duration_s": round(float(record.duration_s), 6),
        "headline": record.headline,
        "message": record.message,
        "sanity": record.attrs.get("sanity"),
        "performance": record.attrs.get("performance"),
        "culprits": _json_safe(record.attrs.get("culprits", [])),
        "failing_ranks": _json_safe(record.attrs.get("failing_ranks", [])),
        "attrs": attrs,
    }


def summary_json(run: RunSummary) -> str:
    """Return the JSON summary (see docs/reports.md)."""
    baseline = None
    if run.baseline is not None:
        baseline = {"file": run.baseline, "regressions": list(run.baseline_regressions),
                    "lines": list(run.baseline_lines)}
    document = {
        "format": JSON_FORMAT,
        "complete": run.complete,
        "exit_code": run.exit_code,
        "passed": run.complete and run.exit_code == 0,
        "results_file": run.results_file,
        "elapsed_s": round(run.elapsed_s, 3),
        "counts": run.counts,
        "provenance": {k: _json_safe(v) for k, v in run.attrs.items()},
        "checks": [_check(c) for c in run.checks],
        "baseline": baseline,
        "selftest": [{k: _json_safe(v) for k, v in row.items()} for row in run.selftest] or None,
    }
    return json.dumps(document, indent=2, allow_nan=False) + "\n"
