"""What a check receives: the mesh, the options, and where it puts its findings on this rank."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal, NoReturn, TypeVar


from .. import runtime
from ..dist.mesh import Mesh
from ..errors import TesseraError
from ..fabric.load import BackgroundLoad
from ..results import Dataset
from ..runtime import Runtime
from .options import SuiteOptions
from .verdict import Culprit, Reference


T = TypeVar("T")


class CheckSkipped(TesseraError):
    """Raised by a check (through `ctx.skip`) that does not apply to this run."""


@dataclass(frozen=True)
class Finding:
    """One problem a rank found: wrong data or missing ranks (sanity), or a figure outside its
    reference (performance), and where it is when the check can tell."""

    kind: Literal["sanity", "performance"]
    message: str
    culprits: tuple[Culprit, ...]
    at_start: bool = False
    """The culprits are already numbered as the job started (a lost rank has no rank now); else
    they are ranks of the world the check ran on, which the runner renumbers."""


@dataclass
class CheckContext:
    """One rank's view of one check. Findings stay local until the runner agrees on them."""

    mesh: Mesh
    options: SuiteOptions
    findings: list[Finding] = field(default_factory=list)
    judgements: list[dict[str, Any]] = field(default_factory=list)
    """One row per performance figure judged against a reference (the `references` table)."""
    not_judged: str = ""
    """Why performance was not judged, when it was not."""
    datasets: dict[str, Dataset] = field(default_factory=dict)
    attrs: dict[str, Any] = field(default_factory=dict)
    headline: str = ""
    """The one-line figure the suite prints for this check (set it on rank 0 at least)."""
    load: BackgroundLoad | None = None
    """The background load running beside the check under --under-load (None otherwise); a check
    that reports figures with and without load measures the latter inside `load.paused()`."""

    results_path: str = ""
    """The run's results file, the same on every rank (a check that drops rank 0 checks that the
    file survives)."""
    earlier: tuple[tuple[str, str], ...] = ()
    """(name, status) of every check the results file holds before this one, on every rank."""

    @property
    def runtime(self) -> Runtime:
        """The job's runtime now (a check that injects failures rebuilds it)."""
        current = runtime.current()
        assert current is not None
        return current

    @property
    def is_root(self) -> bool:
        """True on the rank that prints and writes results."""
        return self.runtime.rank == 0

    def sized(self, *, full: T, small: T, quick: T) -> T:
        """Return the size for this run: `quick` with --quick, `small` when the machine is
        oversubscribed (more ranks than cores), `full` on real hardware. The same on every rank."""
        if self.options.quick:
            return quick
        return small if self.runtime.oversubscribed else full

    @property
    def judge_timing(self) -> bool:
        """Whether timing figures are judged: on real hardware, and under --self-test (which must
        show the judgement can fail); not on an oversubscribed machine, where timings measure CPU
        scheduling rather than the fabric, nor where ranks share a GPU, where they measure the
        GPU's time slicing and host staging. The same on every rank."""
        return self.options.self_test or not (self.runtime.oversubscribed or self.shared_devices)

    @property
    def timing_not_judged(self) -> str:
        """Why timing figures are not judged ("" when they are), for records and headlines."""
        if self.judge_timing:
            return ""
        if self.runtime.oversubscribed:
            return "oversubscribed machine: timings measure CPU scheduling"
        return f"ranks share a GPU ({self.shared_devices}): timings measure its time slicing and host staging"

    @property
    def shared_devices(self) -> str:
        """"" when every rank has a device of its own (or none), else which device ranks share
        ("cuda:0 NVIDIA H200 ... on n07"). The same on every rank."""
        seen: set[tuple[str, str]] = set()
        for p in self.runtime.placements:
            if p.device != "cpu" and (p.host, p.device) in seen:
                return f"{p.device} on {p.host}"
            seen.add((p.host, p.device))
        return ""

    def relative(self, flag: str, given: float) -> tuple[float, str]:
        """Return (the threshold of a relative timing reference, its source) for `flag` given as
        `given`. On an oversubscribed machine (judged only under --self-test) it is loosened to
        what scheduling noise does not reach (NOISE_FLOORS), which planted defects exceed."""
        if not self.runtime.oversubscribed or given <= NOISE_FLOORS[flag]:
            return given, f"{flag} {given:g}"
        floor = NOISE_FLOORS[flag]
        return floor, f"{flag} {given:g}, loosened to {floor:g} on this oversubscribed machine"

    def fail(self, message: str, *, culprit: Culprit | Iterable[Culprit] | None = None, at_start: bool = False) -> None:
        """Record that the data were wrong (a sanity failure): the check goes on and fails at the
        end. `culprit` (one or several) defaults to this rank, which saw it; its ranks are those of
        the world now (the runner renumbers them as the job started), or with `at_start` already so."""
        self.findings.append(Finding("sanity", message, _culprits(culprit, Culprit.rank(self.runtime.rank)),
                                     at_start=at_start))

    def judge(self, reference: Reference, value: float, *, culprit: Culprit | Iterable[Culprit] | None = None,
              message: str = "") -> bool:
        """Judge one performance figure against `reference`; return whether it holds.

        A miss is a performance failure naming `culprit` (default: the shortfall is global) with
        `message` (default: the reference's account of the shortfall). Judgements of figures
        that every rank computes alike are the same on every rank.
        """
        holds = reference.holds(value)
        culprits = _culprits(culprit, Culprit.whole())
        self.judgements.append({
            "what": reference.what, "value": float(value), "unit": reference.unit,
            "target": _nan(reference.target), "lower": _nan(reference.lower), "upper": _nan(reference.upper),
            "source": reference.source, "verdict": "passed" if holds else "failed",
            "culprit": ", ".join(map(str, culprits)) if not holds else "",
        })
        if not holds:
            self.findings.append(Finding("performance", message or reference.shortfall(value), culprits))
        return holds

    def skip_judging(self, reason: str) -> None:
        """Say why performance is not judged (the record's performance is then "not judged")."""
        self.not_judged = reason

    def skip(self, reason: str) -> NoReturn:
        """End the check as skipped (call on every rank)."""
        raise CheckSkipped(reason)

    def save(self, name: str, data: Any, **attrs: Any) -> None:
        """Store `data` (host or device array) as /checks/<check>/<name>; only the root rank's
        saves are written."""
        self.datasets[name] = Dataset(self.runtime.backend.to_host(data), attrs)


NOISE_FLOORS = {"--slow-link-fraction": 0.12, "--min-trend": 0.5}
"""Relative timing references on an oversubscribed machine: a link or pair below 0.12 x the
median, a soak falling below half its start. Measured here (2 cores, 8 ranks): clean runs'
slowest links and pairs at 0.37-0.48 x the median, once 0.19 (a bisection pair, in a clean-clone
make test on 2026-12-04, which failed the self-test's clean run at the old floor of 0.2), soak
trends 0.68-1.59; a rank delayed 20 ms per call put its links and pairs at 0.05 x (the planted
slow rank is delayed 20 x a clean call, links.PLANTED_STRETCH), a rank throttled to a quarter of
its speed the soak below 0.4."""


def _culprits(given: Culprit | Iterable[Culprit] | None, default: Culprit) -> tuple[Culprit, ...]:
    if given is None:
        return (default,)
    return (given,) if isinstance(given, Culprit) else tuple(given) or (default,)


def _nan(value: float | None) -> float:
    return float("nan") if value is None else float(value)
