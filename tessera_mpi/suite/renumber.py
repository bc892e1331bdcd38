"""A check's ranks as the job started: what the runner records after a shrink renumbered the world.

Checks number ranks in the world they run on. After a loss (the faults check, real or
simulated) the survivors' world is shrunk and renumbered, while the results file's /ranks table,
the HTML rack map and the technician number ranks as the job started. The runner passes every
culprit, `failing_ranks` entry and failure summary through here, the one place that translates,
using the runtime's `origin` (each rank's rank at start) and `started` (the placements then).
Everything here is local: `origin` and `started` are the same on every rank.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable

from ..runtime import Runtime
from ..runtime.agree import Verdict
from .context import Finding
from .verdict import Culprit


def culprits(findings: Iterable[Finding], rt: Runtime) -> set[Culprit]:
    """Return the culprits of `findings`, numbered as the job started (those a check already
    numbered so, `Finding.at_start`, as they are)."""
    return {c if f.at_start else c.renumbered(rt.at_start) for f in findings for c in f.culprits}


def failing(verdict: Verdict, rt: Runtime) -> list[int]:
    """Return the failing ranks of an agreement over `rt`'s world, as ranks at start, sorted."""
    return sorted(rt.at_start(r) for r in verdict.failing)


def summary(verdict: Verdict, rt: Runtime, describe: Callable[[int], str]) -> str:
    """Return `verdict.summary`, for an agreement over `rt`'s world: with `describe` (a rank of
    the world now) while the world is as started, else naming each rank as the job started
    ("rank 6 (rank 5 of the 7 survivors; host emul-n02, local rank 2, ... slot 2 ...)")."""
    if not rt.renumbered:
        return verdict.summary(describe)
    now = {rt.at_start(r): r for r in range(rt.size)}
    started = dataclasses.replace(verdict, failing=tuple(failing(verdict, rt)),
                                  messages={rt.at_start(r): m for r, m in verdict.messages.items()})
    return started.summary(lambda s: f"rank {s} (rank {now[s]} of the {rt.size} survivors; {rt.started[s]})")


def judgement_culprits(text: str, rt: Runtime) -> str:
    """Renumber a references row's culprit column ("rank 3, link 1 -> 2") as the job started."""
    if not text or not rt.renumbered:
        return text
    return ", ".join(str(Culprit.parse(c).renumbered(rt.at_start)) for c in text.split(", "))
