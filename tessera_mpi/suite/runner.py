"""Running checks collectively: one agreement per check, printing and results on rank 0."""

from __future__ import annotations

import time
import traceback
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import runtime
from ..util.text import plural, shape_str
from ..runtime.agree import AgreementTimeout, agree
from ..fabric.load import BackgroundLoad
from ..dist.mesh import Mesh
from ..results import CheckRecord, ResultsWriter
from ..results.schema import STATUSES
from ..runtime import Runtime, Watchdog, fatal
from ..runtime.crash import grace_seconds
from ..runtime.tracker import tracker
from . import console
from .context import CheckContext, CheckSkipped
from .options import SuiteOptions
from .registry import Check
from .reports import Reports
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


def run_check(check: Check, *, mesh: Mesh, options: SuiteOptions, results_path: str = "",
              load: BackgroundLoad | None = None) -> CheckRecord:
    """Run one check on every rank and agree on its status. Collective over the world.

    A rank whose check raised waits at most the error grace period for the others to reach the
    agreement: if they do not (typically because they wait for it inside a collective), it
    ends the job, printing its traceback, rather than let them hang. With `load`, the
    background stream runs while the check does (inside the watchdog, which also covers
    stopping it) and what it moved goes into the record's `load_*` attributes.
    """
    ctx = CheckContext(mesh=mesh, options=options, load=load, results_path=results_path)
    start = time.perf_counter()
    tracker.phase = f"check {check.name!r}"
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
        # A check that injected failures leaves a rebuilt runtime: agree among the survivors.
        rt = runtime.current()
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
        whole = mesh.is_member and mesh.devices == tuple(range(rt.size))
        message = f"{status} on {verdict.summary(mesh.describe if whole else rt.describe)}"
    return CheckRecord(
        name=check.name,
        status=status,
        duration_s=duration,
        message=message,
        headline=ctx.headline or status,
        datasets=ctx.datasets,
        attrs=attrs,
    )


@dataclass
class Session:
    """What the runner keeps across checks, each of which may rebuild the job after failures."""

    mesh: Mesh
    options: SuiteOptions
    results_path: str
    writer: ResultsWriter | None
    """Present on rank 0 only; when rank 0 is lost, the new rank 0 takes the file over."""
    load: BackgroundLoad | None = None
    reports: Reports | None = None

    def rebuilt(self, old: Runtime, new: Runtime) -> None:
        """Listener for runtime rebuilds (called on every survivor)."""
        if new.rank == 0 and self.writer is None:
            self.writer = ResultsWriter.resume(Path(self.results_path))
        if self.writer is not None:
            self.writer.attrs["lost_ranks"] = [f"{label}: {p}" for label, p in new.lost]
            self.writer.attrs["final_world_size"] = new.size

    def refresh_mesh(self) -> None:
        """After failures, give later checks a mesh every survivor belongs to (collective)."""
        rt = runtime.current()
        if self.mesh.is_member and self.mesh.devices == tuple(range(rt.size)):
            return
        self.mesh = Mesh(self.options.axes)
        if rt.rank == 0:
            console.note(f"the job continues on {plural(rt.size, 'surviving rank')}: later checks run "
                         f"on a {shape_str(self.mesh.shape)} mesh")


def run_checks(checks: Sequence[Check], session: Session) -> list[list[CheckRecord]]:
    """Run `checks` in order, the whole selection `options.repeat` times, on every rank.

    Rank 0 prints every repetition of every check and rewrites the results file after each,
    with each check's repetitions so far combined into one record. Returns, per check, its
    record of every repetition.
    """
    options = session.options
    history: list[list[CheckRecord]] = [[] for _ in checks]
    runtime.on_rebuild(session.rebuilt)
    for repetition in range(1, options.repeat + 1):
        if session.writer is not None and options.repeat > 1:
            console.repetition(repetition, options.repeat)
        for index, (check, records) in enumerate(zip(checks, history)):
            generation = runtime.current().generation
            record = run_check(check, mesh=session.mesh, options=options, results_path=session.results_path,
                               load=session.load)
            records.append(record)
            if session.writer is not None:
                session.writer.add(combine(records))
                console.check_line(record)
                if session.reports is not None:
                    session.reports.write(session.writer, complete=False)
            last = repetition == options.repeat and index == len(checks) - 1
            if runtime.current().generation != generation and not last:
                session.refresh_mesh()
    return history
