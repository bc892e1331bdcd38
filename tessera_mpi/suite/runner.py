"""Running checks collectively: one agreement per check, printing and results on rank 0."""

from __future__ import annotations

import time
import traceback
from collections.abc import Sequence

import numpy as np

from ..agree import AgreementTimeout, agree
from ..load import BackgroundLoad
from ..mesh import Mesh
from ..results import CheckRecord, ResultsWriter
from ..results.schema import STATUSES
from ..runtime import Runtime, Watchdog, fatal
from ..runtime.crash import grace_seconds
from . import console
from .context import CheckContext, CheckSkipped
from .options import SuiteOptions
from .registry import Check
from .repetition import combine

MAX_SHOWN_FAILURES = 3
"""Failure messages a rank contributes to the agreed message; the count of the rest is given."""


def _local_outcome(check: Check, ctx: CheckContext) -> tuple[int, str]:
    """Run `check` on this rank; return (status level, message) before any agreement."""
    try:
        check.run(ctx)
    except CheckSkipped as exc:
        return STATUSES.index("skipped"), str(exc)
    except Exception as exc:
        ctx.attrs["traceback"] = traceback.format_exc()
        return STATUSES.index("error"), f"{type(exc).__name__}: {exc}"
    if ctx.failures:
        shown = "; ".join(ctx.failures[:MAX_SHOWN_FAILURES])
        more = len(ctx.failures) - MAX_SHOWN_FAILURES
        return STATUSES.index("failed"), shown + (f" (and {more} more)" if more > 0 else "")
    return STATUSES.index("passed"), ""


def run_check(check: Check, *, rt: Runtime, mesh: Mesh, options: SuiteOptions,
              load: BackgroundLoad | None = None) -> CheckRecord:
    """Run one check on every rank and agree on its status. Collective over the world.

    A rank whose check raised waits at most the error grace period for the others to reach the
    agreement: if they do not (typically because they wait for it inside a collective), it
    ends the job, printing its traceback, rather than let them hang. With `load`, the
    background stream runs while the check does (inside the watchdog, which also covers
    stopping it) and what it moved goes into the record's `load_*` attributes.
    """
    ctx = CheckContext(mesh=mesh, options=options, runtime=rt, load=load)
    start = time.perf_counter()
    with Watchdog(options.timeout_s, f"check {check.name!r}"):
        if load is not None:
            before = load.stats()
            load.start()
        level, message = _local_outcome(check, ctx)
        if load is not None:
            load.stop()
            # A check may pause the load (to measure without it): count every run of it.
            stats = load.stats().since(before)
            ctx.attrs.update(load_iterations=stats.iterations, load_message_bytes=stats.message_bytes,
                             load_bytes=stats.bytes, load_seconds=stats.seconds)
        errored = level == STATUSES.index("error")
        try:
            verdict = agree(
                rt.control, level == 0, message, severity=level,
                timeout=min(options.timeout_s, grace_seconds()) if errored else None,
            )
        except AgreementTimeout:
            fatal(f"check {check.name!r} raised on this rank while the others went on; "
                  f"ending the job\n{ctx.attrs['traceback']}")
    duration = time.perf_counter() - start
    status = STATUSES[verdict.level]
    attrs = dict(ctx.attrs)
    attrs["failing_ranks"] = np.array(
        [] if status == "skipped" else verdict.failing, dtype=np.int64
    )
    if status == "skipped":
        message = verdict.messages[verdict.failing[0]]
    elif verdict.ok:
        message = ""
    else:
        message = f"{status} on {verdict.summary(mesh.describe)}"
    return CheckRecord(
        name=check.name,
        status=status,
        duration_s=duration,
        message=message,
        headline=ctx.headline or status,
        datasets=ctx.datasets,
        attrs=attrs,
    )


def run_checks(
    checks: Sequence[Check],
    *,
    rt: Runtime,
    mesh: Mesh,
    options: SuiteOptions,
    writer: ResultsWriter | None,
    load: BackgroundLoad | None = None,
) -> list[list[CheckRecord]]:
    """Run `checks` in order, the whole selection `options.repeat` times, on every rank.

    Rank 0 prints every repetition of every check and rewrites the results file after each,
    with each check's repetitions so far combined into one record. Returns, per check, its
    record of every repetition.
    """
    history: list[list[CheckRecord]] = [[] for _ in checks]
    for repetition in range(1, options.repeat + 1):
        if writer is not None and options.repeat > 1:
            console.repetition(repetition, options.repeat)
        for check, records in zip(checks, history):
            record = run_check(check, rt=rt, mesh=mesh, options=options, load=load)
            records.append(record)
            if writer is not None:
                writer.add(combine(records))
                console.check_line(record)
    return history
