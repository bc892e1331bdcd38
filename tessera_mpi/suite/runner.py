"""Running checks collectively: one agreement per check, printing and results on rank 0."""

from __future__ import annotations

import time
import traceback
from collections.abc import Sequence
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import numpy as np
from mpi4py import MPI

from .. import runtime
from ..util.text import plural, shape_str
from ..runtime.agree import AgreementTimeout, agree
from ..fabric.load import BackgroundLoad
from ..dist.mesh import Mesh
from ..results import CheckRecord, Dataset, ResultsWriter, table
from ..results.schema import STATUSES
from ..runtime import Runtime, Watchdog, fatal
from ..runtime.crash import exit_now, grace_seconds, report
from ..errors import UnplannedLossError
from ..runtime.tracker import tracker
from ..hardware.telemetry import telemetry
from . import console, gpu, renumber, selftest
from .context import CheckContext, CheckSkipped
from .loss import loss_error, lost_ranks
from .options import SuiteOptions
from .registry import Check
from .reports import Reports
from .repetition import combine
from .selftest import SelfTestRow
from .verdict import Culprit

MAX_SHOWN_FAILURES = 3
"""Failure messages a rank contributes to the agreed message; the count of the rest is given."""


def _local_outcome(check: Check, ctx: CheckContext) -> tuple[int, str]:
    """Run `check` on this rank; return (status level, message) before any agreement. A rank
    lost meanwhile (real fault tolerance) raises UnplannedLossError."""
    try:
        check.run(ctx)
    except CheckSkipped as exc:
        return STATUSES.index("skipped"), str(exc)
    except Exception as exc:
        lost = lost_ranks(exc)
        if lost:
            raise loss_error(lost, check.name, ctx.mesh, exc) from exc
        ctx.attrs["traceback"] = traceback.format_exc()
        return STATUSES.index("error"), f"{type(exc).__name__}: {exc}"
    if ctx.findings:
        texts = [f.message for f in ctx.findings]
        shown = "; ".join(texts[:MAX_SHOWN_FAILURES])
        more = len(texts) - MAX_SHOWN_FAILURES
        return STATUSES.index("failed"), shown + (f" (and {more} more)" if more > 0 else "")
    return STATUSES.index("passed"), ""


@dataclass(frozen=True)
class _Outcome:
    """What one rank found, beyond its status: what the agreed record is made of."""

    sanity_failed: bool
    performance_failed: bool
    judged: bool
    first: str
    """This rank's first finding, "sanity: ..." or "performance: ..."."""
    culprits: tuple[Culprit, ...]
    not_judged: str
    hardware: tuple[str, ...] = ()
    """This rank's GPU counters that moved while the check ran ("rank 12 ... NVLink 7: 4,112 CRC errors")."""
    calls: tuple[int, float, int] = (-1, 0.0, 0)
    """(launch rank, seconds inside, number) of this rank's calls through the call path during the check."""
    start: int = -1
    """This rank's rank when the job started (culprits are numbered so, see renumber.py)."""

    @classmethod
    def of(cls, ctx: CheckContext, rt: Runtime, hardware: tuple[str, ...] = (),
           calls: tuple[int, float, int] = (-1, 0.0, 0)) -> _Outcome:
        first = next((f"{f.kind}: {f.message}" for f in ctx.findings), "")
        culprits = tuple(sorted(renumber.culprits(ctx.findings, rt)))[:MAX_CULPRITS]
        return cls(any(f.kind == "sanity" for f in ctx.findings), any(f.kind == "performance" for f in ctx.findings),
                   bool(ctx.judgements), first[:MAX_HEADLINE], culprits, ctx.not_judged, hardware, calls,
                   rt.at_start(rt.rank))


MAX_CULPRITS = 32
"""Culprits a rank contributes; a record names at most this many."""
MAX_HEADLINE = 400


def _verdicts(status: str, everyone: list[_Outcome]) -> dict[str, Any]:
    """Return the agreed sanity, performance, culprits and the reason nothing was judged."""
    if status in ("error", "skipped"):
        return {"sanity": status, "performance": "not judged", "culprits": [], "not_judged": status}
    culprits = sorted({c for o in everyone for c in o.culprits})[:MAX_CULPRITS]
    performance = ("failed" if any(o.performance_failed for o in everyone)
                   else "passed" if any(o.judged for o in everyone) else "not judged")
    reasons = sorted({o.not_judged for o in everyone if o.not_judged})
    return {"sanity": "failed" if any(o.sanity_failed for o in everyone) else "passed",
            "performance": performance, "culprits": [str(c) for c in culprits],
            "not_judged": "; ".join(reasons) if performance == "not judged" else ""}


def _headline(status: str, figures: str, message: str, everyone: list[_Outcome]) -> str:
    """A failing check's headline says what failed first: the first finding of the lowest rank
    that blames itself (where the fault is), else of the lowest failing rank; a passing one
    gives its figures. `everyone` is in world-rank order."""
    if status == "failed":
        own = (o.first for o in everyone if o.first and Culprit.rank(o.start) in o.culprits)
        return next(own, None) or next((o.first for o in everyone if o.first), message)
    if status == "error":
        return "error: " + (message.splitlines()[0] if message else "the check raised")
    return figures or status


def run_check(check: Check, *, mesh: Mesh, options: SuiteOptions, results_path: str = "",
              load: BackgroundLoad | None = None, earlier: tuple[tuple[str, str], ...] = ()) -> CheckRecord:
    """Run one check on every rank and agree on its status. Collective over the world.

    A rank whose check raised waits at most the error grace period for the others to reach the
    agreement: if they do not (typically because they wait for it inside a collective), it
    ends the job, printing its traceback, rather than let them hang. With `load`, the
    background stream runs while the check does (inside the watchdog, which also covers
    stopping it) and what it moved goes into the record's `load_*` attributes. `earlier` are
    the (name, status) of the checks the results file already holds.
    """
    ctx = CheckContext(mesh=mesh, options=options, load=load, results_path=results_path, earlier=earlier)
    start = time.perf_counter()
    tracker.phase = f"check {check.name!r}"
    tracker.scope()  # a check's calls are numbered from its start, alike on every rank
    inside = tracker.seconds
    tel = telemetry()
    with Watchdog(options.timeout_s, f"check {check.name!r}"):
        # The GPU's counters on both sides of the check: what moved happened while it ran.
        before = tel.snapshot()
        if load is not None:
            load_before = load.stats()
            load.start()
        level, message = _local_outcome(check, ctx)
        # COMM_WORLD's rank is the launch rank, a row of /ranks, even after the world shrank.
        calls = (MPI.COMM_WORLD.Get_rank(), tracker.seconds - inside, tracker.calls - tracker.base)
        if load is not None:
            load.stop()
            # A check may pause the load (to measure without it): count every run of it.
            stats = load.stats().since(load_before)
            ctx.attrs.update(load_iterations=stats.iterations, load_message_bytes=stats.message_bytes,
                             load_bytes=stats.bytes, load_seconds=stats.seconds)
        after = tel.snapshot()
        errored = level == STATUSES.index("error")
        # A check that injected failures leaves a rebuilt runtime: agree among the survivors.
        rt = runtime.current()
        seen = gpu.observed(check.name, tel, rt.at_start(rt.rank), before, after)
        try:
            verdict = agree(
                rt.control, level == 0, message, severity=level,
                timeout=min(options.timeout_s, grace_seconds()) if errored else None,
            )
            everyone = rt.control.allgather(_Outcome.of(ctx, rt, seen.moved, calls))
            gathered = rt.control.gather(seen.rows, root=0)
        except AgreementTimeout:
            fatal(f"check {check.name!r} raised on this rank while the others went on; "
                  f"ending the job\n{ctx.attrs['traceback']}")
        except MPI.Exception as exc:
            lost = lost_ranks(exc)
            if not lost:
                raise
            raise loss_error(lost, check.name, mesh, exc) from exc
    duration = time.perf_counter() - start
    status = STATUSES[verdict.level]
    attrs = dict(ctx.attrs, figures=ctx.headline, **_verdicts(status, everyone))
    # Culprits, failing ranks and the summary are numbered as the job started (renumber.py).
    attrs["failing_ranks"] = np.array(
        [] if status == "skipped" else renumber.failing(verdict, rt), dtype=np.int64
    )
    if status == "skipped":
        message = verdict.messages[verdict.failing[0]]
    elif verdict.ok:
        message = ""
    else:
        whole = mesh.is_member and mesh.devices == tuple(range(rt.size))
        message = f"{status} on {renumber.summary(verdict, rt, mesh.describe if whole else rt.describe)}"
    # A health check's own findings already name what moved.
    moved = [] if check.name in gpu.HEALTH_CHECKS else [line for o in everyone for line in o.hardware]
    figures = ctx.headline
    if moved:
        # A failure and the hardware counters that moved meanwhile, side by side: the likely cause.
        attrs["hardware_changes"] = moved[:MAX_CULPRITS]
        during = gpu.summary(moved)
        figures = f"{figures}; {during}" if figures else during
        attrs["figures"] = figures
        if message:
            message = f"{message}\n{during}"
    datasets = dict(ctx.datasets)
    datasets["calls"] = Dataset(table([dict(zip(("rank", "seconds", "calls"), o.calls)) for o in everyone]), {
        "description": "one row per rank: seconds inside calls through the call path during the check "
                       "(waiting for the others included), and their number; rank is the launch rank"})
    if ctx.judgements:
        rows = [dict(j, culprit=renumber.judgement_culprits(j["culprit"], rt)) for j in ctx.judgements]
        datasets["references"] = Dataset(table(rows), {
            "description": "one row per performance figure judged: value, target, bounds, unit, source, verdict"})
    headline = _headline(status, figures, message if status != "skipped" else "", everyone)
    if moved and status == "failed":
        headline = f"{headline}; {gpu.summary(moved)}"
    return CheckRecord(
        name=check.name,
        status=status,
        duration_s=duration,
        message=message,
        headline=headline,
        datasets=datasets,
        attrs=attrs,
        health=gpu.table_of(gathered, check.name, tel) if rt.rank == 0 else None,
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
    selftest: list[SelfTestRow] = field(default_factory=list)
    """Under --self-test, one row per planted defect of every check run so far (every rank)."""

    def rebuilt(self, old: Runtime, new: Runtime) -> None:
        """Listener for runtime rebuilds (called on every survivor)."""
        if new.rank == 0 and self.writer is None:
            self.writer = ResultsWriter.resume(Path(self.results_path))
        if self.writer is not None:
            self.writer.attrs["lost_ranks"] = [f"{label}: {p}" for label, p in new.lost]
            self.writer.attrs["final_world_size"] = new.size
            # Written now, not at the end of the check: the file must survive the next loss too,
            # and the faults check reads it back to prove the new rank 0 took it over.
            self.writer.attrs["written_in_generation"] = new.generation
            self.writer.write()

    def refresh_mesh(self) -> None:
        """After failures, give later checks a mesh every survivor belongs to (collective)."""
        rt = runtime.current()
        if self.mesh.is_member and self.mesh.devices == tuple(range(rt.size)):
            return
        self.mesh = Mesh(self.options.axes)
        if rt.rank == 0:
            console.note(f"the job continues on {plural(rt.size, 'surviving rank')}: later checks run "
                         f"on a {shape_str(self.mesh.shape)} mesh")


def self_tested(check: Check, run: Any, session: Session) -> tuple[CheckRecord, list]:
    """Run a check clean and with each planted defect (collective), in the order its self-test
    asks for; print each run as it ends. Return (the clean record, the planted runs)."""
    spec = check.selftests[0] if check.selftests else None
    options = selftest.options_for(spec, session.options, oversubscribed=runtime.current().oversubscribed)
    first = spec is not None and spec.planted_first
    planted = _planted(check, run, session, None) if first else []
    clean = run(options)
    if session.writer is not None:
        console.check_line(clean)
    if _noise_suspected(clean):
        # On an oversubscribed machine scheduling noise alone can push one measurement past a
        # relative timing reference; a real defect does not go away when measured again.
        if session.writer is not None:
            console.note(f"{check.name}: the clean run failed only on performance on this oversubscribed "
                         "machine; measuring it once more (the planted runs are judged against this one)")
        clean = run(options)
        clean.attrs["clean_repeated"] = True
        if session.writer is not None:
            console.check_line(clean)
    if not first:
        planted = _planted(check, run, session, clean)
    return clean, planted


def _end_after_loss(loss: UnplannedLossError, check: Check, session: Session) -> NoReturn:
    """Record the running check as an error naming the lost ranks (the writer, if it survived),
    print one report (the lowest survivor) and end the job with exit 1. Never returns."""
    rt = runtime.current()
    survivors = [r for r in range(rt.size) if r not in loss.failed]
    speaker = bool(survivors) and rt.rank == min(survivors)
    text = str(loss)
    if session.writer is not None:
        record = CheckRecord(name=check.name, status="error", duration_s=0.0, message=text, headline=f"error: {text}",
                             datasets={}, attrs={**_verdicts("error", []), "figures": "",
                                                 "failing_ranks": np.array(sorted(map(rt.at_start, loss.failed)),
                                                                          dtype=np.int64)})
        console.check_line(record)
        session.writer.add(record)
        if session.reports is not None:
            session.reports.write(session.writer, complete=False)
    if speaker:
        kept = ("the results file records it as an error" if session.writer is not None else
                f"rank 0, which writes the results file, was lost: {session.results_path} keeps the checks "
                "before this one and is marked incomplete")
        report(f"{text}\nending the job: {kept}; the suite does not go on after an unplanned loss")
    exit_now(1, speaker=speaker)


def _noise_suspected(clean: CheckRecord) -> bool:
    """Whether a clean self-test run failed on performance alone on an oversubscribed machine."""
    a = clean.attrs
    return (runtime.current().oversubscribed and clean.status == "failed" and a.get("sanity") == "passed"
            and a.get("performance") == "failed")


def _planted(check: Check, run: Any, session: Session, clean: CheckRecord | None) -> list:
    generation = runtime.current().generation
    planted = selftest.planted_runs(check, run, session.options, clean)
    if session.writer is not None:
        for spec, _, _, record in planted:
            console.check_line(record, planted=spec.defect)
    if runtime.current().generation != generation:
        session.refresh_mesh()
    return planted


def run_checks(checks: Sequence[Check], session: Session) -> list[list[CheckRecord]]:
    """Run `checks` in order, the whole selection `options.repeat` times, on every rank.

    Rank 0 prints every repetition of every check and rewrites the results file after each,
    with each check's repetitions so far combined into one record. Returns, per check, its
    record of every repetition. Under --self-test each check also runs with its planted
    defects (see selftest.py), and the session keeps the rows.
    """
    options = session.options
    history: list[list[CheckRecord]] = [[] for _ in checks]
    runtime.on_rebuild(session.rebuilt)
    for repetition in range(1, options.repeat + 1):
        if session.writer is not None and options.repeat > 1:
            console.repetition(repetition, options.repeat)
        for index, (check, records) in enumerate(zip(checks, history)):
            generation = runtime.current().generation
            earlier = tuple((h[-1].name, combine(h).status) for h in history if h)

            def run(given: SuiteOptions) -> CheckRecord:
                return run_check(check, mesh=session.mesh, options=given, results_path=session.results_path,
                                 load=session.load, earlier=earlier)

            try:
                if options.self_test:
                    record, planted = self_tested(check, run, session)
                    session.selftest.extend(selftest.rows(check, planted, record))
                else:
                    record = run(options)
            except UnplannedLossError as loss:
                _end_after_loss(loss, check, session)
            records.append(record)
            if session.writer is not None:
                if options.self_test:
                    if session.selftest:  # none yet after a check without rows (health without NVML)
                        rows = table([dataclasses.asdict(r) for r in session.selftest])
                        session.writer.tables["selftest"] = Dataset(rows, {
                            "description": "one row per planted defect: the planted run's status and culprits, the "
                                           "clean run's status, and whether the check caught the defect"})
                else:
                    console.check_line(record)
                session.writer.add(combine(records))
                if session.reports is not None:
                    session.reports.write(session.writer, complete=False)
            last = repetition == options.repeat and index == len(checks) - 1
            if runtime.current().generation != generation and not last:
                session.refresh_mesh()
    return history
