"""Comparing two results files: check status changes, bandwidth per size beyond the runs' own
noise, and whether their digests show identical bits."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..util.text import human_bytes
from .measures import is_bandwidth_table, text
from .reader import RunResults
from .schema import STATUSES

DEFAULT_NOISE_FLOOR = 0.05
"""Bandwidth changes smaller than this share are noise even when both runs were very steady."""
ROW_KEY = ("size_bytes", "in_place")
"""Columns that name one measurement in a bandwidth table, besides its `transport` (tables of
schema 1.3 and earlier have none: their rows are MPI's)."""
DIGEST_KEY = ("case", "algorithm", "variant")
"""Columns that name one digest in a check's `digests` table."""


@dataclass
class Comparison:
    """What differs between a base run and a new run."""

    lines: list[str] = field(default_factory=list)
    regressions: list[str] = field(default_factory=list)
    """Checks that got worse (passed -> failed, say), bandwidth that fell beyond the noise, and
    digests that changed."""

    @property
    def ok(self) -> bool:
        return not self.regressions


def _digests(data: np.ndarray) -> dict[tuple[str, ...], str]:
    return {tuple(text(row[k]) for k in DIGEST_KEY): text(row["sha256"]) for row in data}


def compare_runs(base: RunResults, new: RunResults, *, noise_floor: float = DEFAULT_NOISE_FLOOR) -> Comparison:
    """Return the differences between `base` and `new`, check by check (see `_compare_bandwidth`
    for what counts as a bandwidth regression)."""
    result = Comparison()
    for name in sorted(set(base.checks) | set(new.checks), key=lambda n: (n not in base.checks, n)):
        if name not in new.checks:
            # Missing from the new run is lost evidence, unless that run ended and never chose it.
            chose = [str(s) for s in new.attrs.get("checks_selected", [name])]
            ended = bool(new.attrs.get("complete", True))
            if ended and name not in chose:
                result.lines.append(f"{name}: only in the base run (not selected in the new run)")
            else:
                line = f"{name}: missing from the new run" + ("" if ended else " (it ended early)")
                result.lines.append(line + " (regression)")
                result.regressions.append(line)
            continue
        if name not in base.checks:
            result.lines.append(f"{name}: only in the new run ({new.checks[name].status})")
            continue
        before, after = base.checks[name], new.checks[name]
        if before.status != after.status:
            worse = STATUSES.index(after.status) > STATUSES.index(before.status)
            line = f"{name}: {before.status} -> {after.status}"
            result.lines.append(line + (" (regression)" if worse else ""))
            if worse:
                result.regressions.append(line)
        else:
            result.lines.append(f"{name}: {after.status}")
        tables = [k for k in before.datasets if k in after.datasets and is_bandwidth_table(before.datasets[k])
                  and is_bandwidth_table(after.datasets[k])]
        if tables:
            if base.attrs.get("world_size") != new.attrs.get("world_size"):
                result.lines.append(f"  bandwidth not compared: world sizes differ "
                                    f"({base.attrs.get('world_size')} vs {new.attrs.get('world_size')})")
            else:
                for key in tables:
                    _compare_bandwidth(name, key, before.datasets[key], after.datasets[key], result,
                                       noise_floor=noise_floor)
        if "digests" in before.datasets and "digests" in after.datasets:
            workload = _workload_change(base, new, name)
            if workload:
                result.lines.append(f"  digests not comparable: {workload}")
            else:
                _compare_digests(name, _digests(before.datasets["digests"]),
                                 _digests(after.datasets["digests"]), result)
    return result


def spread(row: np.void) -> float:
    """Return a measurement's own relative spread: (p99 - p50) / p50 of its iteration times, or,
    in tables without percentiles, (max - min) / max of the ranks' mean times."""
    names = row.dtype.names
    if "time_us_p99" in names and "time_us_p50" in names and row["time_us_p50"] > 0:
        return float((row["time_us_p99"] - row["time_us_p50"]) / row["time_us_p50"])
    high = float(row["time_us_max"])
    return float((high - row["time_us_min"]) / high) if high > 0 else 0.0


def _row_key(row: np.void) -> tuple:
    names = row.dtype.names or ()
    return (text(row["transport"]) if "transport" in names else "mpi", *(row[k].item() for k in ROW_KEY))


def _compare_bandwidth(name: str, key: str, before: np.ndarray, after: np.ndarray, result: Comparison, *,
                       noise_floor: float) -> None:
    """Compare busbw size by size. A change counts only beyond the noise of that size: the
    larger of the two runs' own spreads (see `spread`) and `noise_floor`. Slower beyond it is
    a regression."""
    rows = {_row_key(r): r for r in before}
    slower, faster, within, largest = [], [], 0, 0.0
    for row in after:
        old = rows.get(_row_key(row))
        if old is None or old["busbw_GBps"] <= 0:
            continue
        change = float(row["busbw_GBps"] / old["busbw_GBps"] - 1.0)
        noise = max(spread(old), spread(row), noise_floor)
        over = _row_key(row)[0]
        where = f"{human_bytes(int(row['size_bytes']))}{' in place' if row['in_place'] else ''}" \
            + ("" if over == "mpi" else f" over {over}")
        text = f"{where} {change:+.0%} (noise {noise:.0%})"
        if change < -noise:
            slower.append(text)
        elif change > noise:
            faster.append(text)
        else:
            within += 1
            largest = change if abs(change) > abs(largest) else largest
    compared = len(slower) + len(faster) + within
    if not compared:
        result.lines.append(f"  {key}: no sizes in common")
        return
    parts = []
    if slower:
        parts.append(f"{len(slower)} slower beyond noise: {', '.join(slower)}")
        result.regressions.append(f"{name}/{key}: {len(slower)} of {compared} sizes slower beyond noise")
    if faster:
        parts.append(f"{len(faster)} faster: {', '.join(faster)}")
    if within:
        parts.append(f"{within} within noise (largest change {largest:+.0%})")
    result.lines.append(f"  {key} busbw, {compared} sizes: " + "; ".join(parts)
                        + (" (regression)" if slower else ""))


def _workload_change(base: RunResults, new: RunResults, name: str) -> str:
    """Return why two runs summed different data (so their digests cannot match), or ""."""
    if base.attrs.get("world_size") != new.attrs.get("world_size"):
        return f"world sizes differ ({base.attrs.get('world_size')} vs {new.attrs.get('world_size')})"
    before = base.checks[name].attrs.get("elements_per_rank")
    after = new.checks[name].attrs.get("elements_per_rank")
    if before != after:
        return f"elements per rank differ ({before} vs {after})"
    return ""


def _compare_digests(name: str, before: dict, after: dict, result: Comparison) -> None:
    common = sorted(set(before) & set(after))
    changed = [key for key in common if before[key] != after[key]]
    if not common:
        result.lines.append(f"  digests: none in common ({len(before)} vs {len(after)})")
        return
    if changed:
        shown = ", ".join("/".join(k) for k in changed[:5])
        line = f"{name}: {len(changed)} of {len(common)} digests differ ({shown})"
        result.lines.append(f"  {len(changed)} of {len(common)} digests differ: {shown}")
        result.regressions.append(line)
    else:
        result.lines.append(f"  identical bits: all {len(common)} digests in common are equal")
    only = len(set(before) ^ set(after))
    if only:
        result.lines.append(f"  {only} digests appear in one run only")
