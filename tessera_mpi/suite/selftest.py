"""`--self-test`: every selected check runs with each of its planted defects and clean; it must
pass clean and fail planted, naming the planted culprit. It proves, on the hardware at hand,
that the suite can see a fault before its pass is trusted.

Defects are planted with `fault.inject` only (drops, delays, throttling, corruption, and the
named plants of fault.PLANTS), so what is tested is the check as users run it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from .. import fault, runtime
from ..hardware.telemetry import telemetry
from ..results import CheckRecord
from .options import SuiteOptions
from .registry import Check, SelfTest
from .verdict import Culprit

DURATION_S = {"full": 60.0, "small": 10.0, "quick": 6.0}
"""The soak length the self-test gives a check that needs --duration when none was passed."""


@dataclass(frozen=True)
class SelfTestRow:
    """One planted defect and what the check made of it (a row of /selftest)."""

    check: str
    defect: str
    planted: str
    """The fault.inject arguments, as text."""
    expected: str
    """The culprit the check had to name."""
    status: str
    """The planted run's status."""
    named: str
    """The culprits the planted run named."""
    clean: str
    """The clean run's status."""
    verdict: str
    """caught, MISSED, wrong culprit, clean run <status>, or error."""
    detail: str
    """The planted run's headline."""

    @property
    def ok(self) -> bool:
        return self.verdict == "caught"


def options_for(spec: SelfTest | None, options: SuiteOptions, *, oversubscribed: bool) -> SuiteOptions:
    """Return the options a self-test run of a check uses (a soak length when it needs one)."""
    needs = spec.needs_duration if spec is not None else False
    if not needs or options.duration_s > 0:
        return options
    size = "quick" if options.quick else "small" if oversubscribed else "full"
    return dataclasses.replace(options, duration_s=DURATION_S[size])


def _text(plan: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in plan.items())


def judge(spec: SelfTest, expected: Culprit, planted: CheckRecord, clean: CheckRecord) -> str:
    """Return the row's verdict: the clean run must pass, the planted one fail naming `expected`
    (numbered as the job started, as the runner records culprits; see `expected_culprit`)."""
    if clean.status != "passed":
        return f"clean run {clean.status}"
    if planted.status == "error":
        return "error"
    if planted.status != "failed":
        return "MISSED"
    named = [Culprit.parse(str(c)) for c in planted.attrs.get("culprits", ())]
    if not any(c.involves(expected) or expected.involves(c) for c in named):
        return "wrong culprit"
    innocent = [c for c in named if c.kind != "global" and not set(c.ranks) & set(expected.ranks)]
    if spec.exact and innocent:
        return "wrong culprit"
    return "caught"


def expected_culprit(spec: SelfTest, rt: runtime.Runtime) -> Culprit:
    """The culprit a planted run on `rt`'s world must name: the spec numbers it in that world,
    which an earlier shrink may have renumbered; the record numbers it as the job started."""
    return spec.culprit(rt.size).renumbered(rt.at_start)


def planted_runs(check: Check, run: Any, options: SuiteOptions, clean: CheckRecord | None
                 ) -> list[tuple[SelfTest, Culprit, dict, CheckRecord]]:
    """Run `check` once per planted defect, inside its fault.inject block; `run(options)` runs
    the check on every rank and returns its record, `clean` is the clean run's when it came
    first. Collective over the job's world. Each run comes with the culprit it had to name."""
    done: list[tuple[SelfTest, Culprit, dict, CheckRecord]] = []
    if _not_applicable(check, clean):
        return done
    for spec in check.selftests:
        rt = runtime.current()
        expected = expected_culprit(spec, rt)
        given = options_for(spec, options, oversubscribed=rt.oversubscribed)
        plan = spec.plan(rt, given, None if clean is None else dict(clean.attrs))
        emulated = telemetry().emulated
        saved = emulated.save() if emulated is not None else None
        with fault.inject(**plan):
            record = run(spec.scope(given, rt.size) if spec.scope is not None else given)
        if emulated is not None and saved is not None:
            # A planted defect lasts its run: the emulated GPU's counters are put back, or
            # every later health judgement would see it.
            emulated.restore(saved)
        done.append((spec, expected, plan, record))
    return done


def _not_applicable(check: Check, clean: CheckRecord | None) -> bool:
    return (clean is not None and clean.status == "skipped" and bool(check.selftests)
            and all(spec.optional for spec in check.selftests))


def rows(check: Check, planted: list[tuple[SelfTest, Culprit, dict, CheckRecord]], clean: CheckRecord
         ) -> list[SelfTestRow]:
    """Return the self-test rows of one check from its planted runs and its clean run."""
    out: list[SelfTestRow] = []
    if _not_applicable(check, clean):
        return out
    for spec, expected, plan, record in planted:
        out.append(SelfTestRow(
            check=check.name, defect=spec.defect, planted=_text(plan), expected=str(expected),
            status=record.status, named=", ".join(map(str, record.attrs.get("culprits", ()))) or "none",
            clean=clean.status, verdict=judge(spec, expected, record, clean), detail=record.headline,
        ))
    if not check.selftests:
        out.append(SelfTestRow(check=check.name, defect="(none planted)", planted="", expected="", status="",
                               named="", clean=clean.status, verdict="no planted defect", detail=""))
    return out
