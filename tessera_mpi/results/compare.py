"""Comparing two results files: check status changes and whether their digests show identical bits."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .reader import RunResults
from .schema import STATUSES

DIGEST_KEY = ("case", "algorithm", "variant")
"""Columns that name one digest in a check's `digests` table."""


@dataclass
class Comparison:
    """What differs between a base run and a new run."""

    lines: list[str] = field(default_factory=list)
    regressions: list[str] = field(default_factory=list)
    """Checks that got worse (passed -> failed, say) and digests that changed."""

    @property
    def ok(self) -> bool:
        return not self.regressions


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _digests(data: np.ndarray) -> dict[tuple[str, ...], str]:
    return {tuple(_text(row[k]) for k in DIGEST_KEY): _text(row["sha256"]) for row in data}


def compare_runs(base: RunResults, new: RunResults) -> Comparison:
    """Return the differences between `base` and `new`, check by check."""
    result = Comparison()
    for name in sorted(set(base.checks) | set(new.checks), key=lambda n: (n not in base.checks, n)):
        if name not in new.checks:
            result.lines.append(f"{name}: only in the base run")
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
        if "digests" in before.datasets and "digests" in after.datasets:
            workload = _workload_change(base, new, name)
            if workload:
                result.lines.append(f"  digests not comparable: {workload}")
            else:
                _compare_digests(name, _digests(before.datasets["digests"]),
                                 _digests(after.datasets["digests"]), result)
    return result


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
