"""Check `faults`: planned failures, each detected, attributed and recovered from.

Scenarios, in order, on the job's world as it stands: a hung rank (a planned stall the watchdog
must diagnose), a slow rank (the collective stays correct and the straggler is named), silent
data corruption (verify=True and the sweep's verification name the rank), then device losses,
each shrinking the job: one rank (the guide's section 3.5 example as written), two at once,
rank 0 (the results file moves to the new rank 0 and stays complete), a member of a multi-axis
mesh (its data-parallel replica is dropped), a member of a mesh with a spare (the spare takes
its place), and a rank in the middle of a bandwidth sweep. Real failures with ULFM
(`mpirun --with-ft ulfm`), simulated ones otherwise; the mode is recorded.

Run it last: it leaves the job with fewer ranks (the runner gives later checks a new mesh).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from ... import dist, fault, op, runtime
from ...comm import nccl
from ...errors import CorruptionError
from ...results import read_results, table
from ...runtime.watchdog import ROLL_CALL_GRACE_S
from ...fabric.sweep import measure
from ..context import CheckContext
from ..registry import SelfTest, register
from ..verdict import Culprit

DELAY_MS = 30.0
HANG_S_PER_RANK = 0.05
"""The hang scenario's watchdog waits this much longer per rank (ranks share cores when oversubscribed)."""


@dataclass
class Outcome:
    """One scenario as the survivors saw it (a row of /checks/faults/scenarios), the same on every rank."""

    scenario: str
    victims: str
    """The victims' ranks as the job started ("5" or "1,6"): /ranks numbers them so, a shrink does not."""
    detected: bool
    """The fault was observed: by every surviving member for a loss, by every rank for corruption."""
    observers: str
    """How many of the ranks that had to see it did ("7/7")."""
    detection_ms: float
    """The slowest observer's time from the fault to its observation."""
    recovery_ms: float
    survivors: int
    verified: bool
    """The job was verified by communication after the fault (or the file read back from disk)."""
    detail: str
    hosts: str = ""
    """Where the victims were as the job started: "emul-n10 local rank 1" per victim."""


def _located(scenario: Callable[[CheckContext], Outcome | list[Outcome]], ctx: CheckContext) -> list[Outcome]:
    """Run one scenario and name its victims as the job started.

    A scenario numbers its victims in the world it starts on, which an earlier loss has shrunk
    and renumbered (rank 5 of the 7 survivors of rank 5's loss was rank 6, and its local rank
    moved too): each is translated to its rank at start-up, and its host and local rank are
    those of the placement captured then, so that a culprit names the part to pull."""
    rt = runtime.current()
    done = scenario(ctx)
    outcomes = done if isinstance(done, list) else [done]
    for o in outcomes:
        at_start = [rt.origin[int(v)] for v in o.victims.split(",")]
        o.victims = ",".join(map(str, at_start))
        o.hosts = ", ".join(f"{rt.started[r].host} local rank {rt.started[r].local_rank}" for r in at_start)
    return outcomes


def _world() -> dist.Mesh:
    return dist.Mesh(axes=["dp"], devices=range(runtime.current().size))


def _observations(found: bool, seconds: float, *, required: bool = True) -> tuple[bool, str, float]:
    """Gather what every rank observed; return (all required observed, "k/m", slowest ms).
    Collective over the job's world as it stands."""
    everyone = runtime.current().control.allgather((bool(required), bool(found), float(seconds)))
    needed = [(saw, s) for must, saw, s in everyone if must]
    seen = [s for saw, s in needed if saw]
    return bool(needed) and len(seen) == len(needed), f"{len(seen)}/{len(needed)}", max(seen, default=0.0) * 1e3


def _hang(ctx: CheckContext) -> Outcome:
    mesh = _world()
    victim = mesh.size // 2
    # Long enough for every other rank to be waiting in the collective when the watchdog fires
    # (72 oversubscribed ranks need seconds to get there), and the stall outlasts the roll call,
    # so the stalled rank cannot be mistaken for one that merely answered late.
    timeout = ctx.sized(full=5.0, small=2.0, quick=1.0) + HANG_S_PER_RANK * mesh.size
    x = dist.tensor((16,), mesh=mesh)
    mesh.comm.Barrier()
    start = time.monotonic()
    with fault.inject(hang_device=victim, stall_s=timeout + ROLL_CALL_GRACE_S + 1.0, timeout=timeout) as injection:
        y = op.all_reduce(x, op="max")
    found = bool(re.search(rf"\branks? {victim} (never reached|did not answer)", injection.diagnosis))
    took = (injection.detected_at or time.monotonic()) - start
    detected, observers, slowest = _observations(found, took, required=mesh.rank != victim)
    ok = _observations(bool(np.array_equal(y.numpy(), x.numpy())), 0.0)[0]
    return Outcome("hang", str(victim), detected, observers, slowest, 0.0, mesh.size, ok,
                   injection.diagnosis.replace("\n", " | "))


def _delay(ctx: CheckContext) -> Outcome:
    """A slow rank: detected when the sweep names it as the straggler (the rank that waits least
    inside MPI); how much t_max rose is reported, not judged, since oversubscription hides it."""
    rt = runtime.current()
    victim = rt.size - 1
    size = ctx.sized(full=1 << 20, small=1 << 12, quick=1 << 10)
    base = measure("all_reduce", rt.world, rt, size_bytes=size, budget_s=0.05)
    with fault.inject(delay_ms=DELAY_MS, ranks=[victim]):
        slow = measure("all_reduce", rt.world, rt, size_bytes=size, budget_s=0.05)
    ratio = slow.timing.t_max / base.timing.t_max
    named = slow.waits_least
    return Outcome("delay", str(victim), named == victim, f"{int(named == victim)}/1", 0.0, 0.0, rt.size,
                   slow.wrong == 0, f"t_max {base.timing.t_max * 1e6:.0f} us -> {slow.timing.t_max * 1e6:.0f} us "
                   f"({ratio:.1f}x) with {DELAY_MS:g} ms on rank {victim}; the rank that waits least inside MPI "
                   f"(the straggler) is {named}, wait spread {slow.wait_spread:.2f}")


def _corruption(ctx: CheckContext) -> list[Outcome]:
    mesh = _world()
    victim = mesh.size - 1
    verify: list[Outcome] = []
    if mesh.size >= 3:  # with two ranks there is no majority to tell the corrupted result apart
        x = dist.tensor((4096,), mesh=mesh)
        named: tuple[int, ...] = ()
        start = time.monotonic()
        try:
            with fault.inject(corrupt_device=victim, bits=1, seed=1):
                op.all_reduce(x, op="sum", deterministic=True, verify=True)
        except CorruptionError as exc:
            named = exc.ranks
        detected, observers, slowest = _observations(named == (victim,), time.monotonic() - start)
        after = op.all_reduce(x, op="sum", deterministic=True, verify=True)
        clean = _observations(bool(np.isfinite(after.numpy()).all()), 0.0)[0]
        verify.append(Outcome(
            "corruption-verify", str(victim), detected, observers, slowest, 0.0, mesh.size, clean,
            f"op.all_reduce(verify=True) raised CorruptionError naming ranks {list(named)} on this rank; "
            f"{observers} ranks named rank {victim}; the next verified all-reduce passed"))
    rt = runtime.current()
    with fault.inject(corrupt_device=victim, bits=1, seed=2):
        m = measure("all_reduce", rt.world, rt, size_bytes=1 << 14, budget_s=0.01)
    wrong = [r for r, w in enumerate(m.wrong_by_rank) if w]
    return verify + [
        Outcome("corruption-sweep", str(victim), wrong == [victim], f"{int(wrong == [victim])}/1", 0.0, 0.0,
                rt.size, True, f"the sweep's verification found wrong elements on ranks {wrong}"),
    ]


Work = Callable[[], Any]
Verify = Callable[[dist.Mesh], tuple[bool, str]]


def _lost(exc: BaseException | None, victims: tuple[int, ...]) -> bool:
    """Whether `exc` (or what it was raised from) is a DeviceLostError naming every victim."""
    while exc is not None:
        if isinstance(exc, fault.DeviceLostError):
            return set(victims) <= set(exc.failed)
        exc = exc.__cause__
    return False


def _drop(name: str, victims: tuple[int, ...], build: Callable[[], tuple[dist.Mesh, Work, Verify]],
          *, after: int = 0) -> Outcome:
    """Lose `victims` during the work on the mesh that `build` makes, then run its verification.

    Detected only where observed: a surviving member's work must have raised DeviceLostError
    naming the victims; recovered only when the rebuilt mesh is verified by communication."""
    mesh, work, verify = build()
    before = runtime.current().size
    member = mesh.is_member
    runtime.current().world.Barrier()
    start = time.monotonic()
    caught: BaseException | None = None
    caught_at = None
    with fault.inject(drop_device=victims, after=after):
        try:
            work()
        except RuntimeError as exc:
            caught, caught_at = exc, time.monotonic()
    done = time.monotonic()
    observed = _lost(caught, victims)
    detected, observers, slowest = _observations(observed, (caught_at or done) - start, required=member)
    ok, detail = verify(mesh)
    survivors = runtime.current().size
    verified = _observations(ok, 0.0)[0] and survivors == before - len(victims)
    return Outcome(name, ",".join(map(str, victims)), detected, observers, slowest,
                   (done - (caught_at or start)) * 1e3, survivors, verified,
                   f"{detail}; {observers} surviving members observed DeviceLostError naming the victims; "
                   f"here: {'raised ' + type(caught).__name__ if caught else 'no collective failed'}; "
                   f"mesh: {mesh.note}")


def _ones(mesh: dist.Mesh, expected: int, axis: str | None = None) -> tuple[bool, str]:
    """An all-reduce of ones over the rebuilt mesh must count its members (on members)."""
    if not mesh.is_member:
        return True, f"not a member of the rebuilt {mesh}"
    total = op.all_reduce(dist.tensor([1.0], mesh=mesh), op="sum", axis=axis).numpy()[0]
    return total == expected, f"all-reduce of ones over {mesh} gave {total:g}, expected {expected}"


def _guide_victim(n: int) -> int:
    """The guide's section 3.5 drops rank 5; smaller jobs lose their last rank instead."""
    return 5 if n > 5 else n - 1


def _nccl_unavailable() -> str:
    """Why NCCL cannot run on some rank ("" where it runs on every rank); agreed over the world."""
    rt = runtime.current()
    return next((reason for reason in rt.control.allgather(nccl.unavailable(rt.backend)) if reason), "")


def _nccl_rebuilt(rebuilt: dist.Mesh, before: Any, before_size: int, expected: int) -> tuple[bool, str]:
    """After recovery, the NCCL communicator `before` (of the mesh before the loss, over
    `before_size` ranks) must have been aborted, and the rebuilt mesh's NCCL group must make a
    new one from the shrunk MPI group that all-reduces ones to `expected` (on members)."""
    if not rebuilt.is_member:
        return True, f"not a member of the rebuilt {rebuilt}"
    total = op.all_reduce(dist.tensor([1.0], mesh=rebuilt), op="sum", transport="nccl").numpy()[0]
    after = rebuilt.group(None, transport="nccl")[1].transport
    ok = not before.live and after is not before and after.live and after.size == rebuilt.size and total == expected
    verdict = "are rebuilt" if ok else "were NOT rebuilt as they must be"
    return ok, (f"NCCL communicators {verdict} from the shrunk MPI group: the one over {before_size} ranks "
                f"{'was aborted' if not before.live else 'is STILL LIVE'}, a new one over {after.size} ranks "
                f"all-reduced ones to {total:g} (expected {expected})")


def _guide_example(ctx: CheckContext) -> Outcome:
    n = runtime.current().size
    victim = _guide_victim(n)
    why = _nccl_unavailable()
    ctx.attrs["nccl_after_recovery"] = f"not exercised: NCCL is unavailable: {why}" if why else ""

    def build() -> tuple[dist.Mesh, Work, Verify]:
        mesh = dist.Mesh(axes=["dp"], devices=range(n))
        X = dist.tensor((1024,), mesh=mesh)
        # Where NCCL runs, a live NCCL communicator for the recovery to replace.
        before = None if why else mesh.group(None, transport="nccl")[1].transport
        if before is not None:
            op.all_reduce(X, op="sum", transport="nccl")

        def work() -> None:
            # The guide's section 3.5 block; the injection is opened around it by _drop.
            try:
                Y = op.all_reduce(X, op="sum")  # noqa: F841
            except RuntimeError as e:
                raise RuntimeError(f"Caught simulated GPU failure: {e}") from e

        def verify(rebuilt: dist.Mesh) -> tuple[bool, str]:
            survivors = op.all_reduce(X, op="sum", deterministic=True).numpy()
            same = bool(np.array_equal(survivors, X.numpy() * np.float32(rebuilt.size)))
            ok, detail = _ones(rebuilt, n - 1)
            detail += f"; the follow-up all-reduce of X {'equals' if same else 'DIFFERS from'} the survivors' sum"
            if before is not None:
                rebuilt_ok, text = _nccl_rebuilt(rebuilt, before, n, n - 1)
                agreed = _observations(rebuilt_ok, 0.0)
                ctx.attrs["nccl_after_recovery"] = f"{text}; {agreed[1]} ranks observed it"
                ctx.attrs["nccl_rebuilt"] = agreed[0]
                ok, detail = ok and agreed[0], f"{detail}; {text}"
            return ok and same, detail

        return mesh, work, verify

    return _drop("drop-one (guide 3.5)", (victim,), build)


def _one_axis(name: str, victims: tuple[int, ...]) -> Outcome:
    n = runtime.current().size

    def build() -> tuple[dist.Mesh, Work, Verify]:
        mesh = dist.Mesh(axes=["dp"], devices=range(n))
        x = dist.tensor((256,), mesh=mesh)
        return mesh, lambda: op.all_reduce(x, op="sum"), lambda rebuilt: _ones(rebuilt, n - len(victims))

    return _drop(name, victims, build)


def _rank0(ctx: CheckContext) -> Outcome:
    """Lose rank 0, which writes the results file: the new rank 0 must have rewritten it (its
    generation is recorded in the file) with every earlier check and its status."""
    outcome = _one_axis("drop-rank-0", (0,))
    rt = runtime.current()
    found = (False, "")
    if rt.rank == 0:
        try:
            run = read_results(ctx.results_path)
            held = tuple((name, c.status) for name, c in run.checks.items())
            generation = run.attrs.get("written_in_generation")
            missing = [e for e in ctx.earlier if e not in held]
            ok = generation == rt.generation and not missing
            found = (ok, f"the results file read back from disk was written in generation {generation} "
                         f"(now {rt.generation}) and holds {list(held)}"
                         + (f"; it lacks {missing}" if missing else ""))
        except OSError as exc:
            found = (False, f"the results file cannot be read after losing rank 0: {exc}")
    ok, text = rt.control.bcast(found, root=0)
    outcome.verified = outcome.verified and ok
    outcome.detail += f"; {text}"
    return outcome


def _multi_axis(name: str, *, spares: int) -> Outcome:
    """A member of a (tp, dp) mesh is lost: with a spare it is replaced, without one its
    data-parallel replica is dropped."""
    n = runtime.current().size
    tp = (n - spares) // 2

    def build() -> tuple[dist.Mesh, Work, Verify]:
        mesh = dist.Mesh(axes=["tp", "dp"], devices=range(2 * tp + spares), shape=(tp, 2), spares=spares)
        x = dist.tensor((64,), mesh=mesh) if mesh.is_member else None

        def work() -> None:
            if x is not None:
                op.all_reduce(x, op="sum")

        expected = 2 * tp if spares else tp
        return mesh, work, lambda rebuilt: _ones(rebuilt, expected)

    return _drop(name, (1,), build)


def _sweep(ctx: CheckContext) -> Outcome:
    rt = runtime.current()
    sizes = (8, 1024, ctx.sized(full=1 << 20, small=1 << 14, quick=1 << 12))

    def build() -> tuple[dist.Mesh, Work, Verify]:
        mesh = _world()

        def work() -> None:
            for size in sizes:
                measure("all_reduce", mesh.group(None)[1], rt, size_bytes=size, budget_s=0.01)

        def verify(rebuilt: dist.Mesh) -> tuple[bool, str]:
            m = measure("all_reduce", rebuilt.group(None)[1], runtime.current(), size_bytes=sizes[-1],
                        budget_s=0.01)
            return m.wrong == 0, f"a sweep size on the {rebuilt.size} survivors: {m.wrong} wrong elements"

        return mesh, work, verify

    # Each size runs a verification, a calibration, a warm-up and two or more timed calls:
    # the eighth call falls inside the second size.
    return _drop("drop-in-sweep", (rt.size - 1,), build, after=7)


def _judge(ctx: CheckContext, outcomes: list[Outcome], rt: runtime.Runtime) -> None:
    """Fail `ctx` for every scenario not detected (blaming its victims, named by their ranks and
    placements when the job started, see _located) or not verified (blaming no part). Local."""
    for o in outcomes:
        at_start = [int(v) for v in o.victims.split(",")]
        if not o.detected:
            ctx.fail(f"{o.scenario}: the fault on {', '.join(map(rt.describe_started, at_start))} was not detected "
                     f"or named ({o.observers} observed it): {o.detail}", culprit=[Culprit.rank(v) for v in at_start],
                     at_start=True)
        elif not o.verified:
            # Recovery is the framework's work: no part of the rack is to blame for it failing.
            ctx.fail(f"{o.scenario}: after the fault, verification failed: {o.detail}", culprit=Culprit.whole())


DROPS: tuple[tuple[int, str, Callable[[CheckContext], Outcome]], ...] = (
    (3, "drop-one (guide 3.5)", _guide_example),
    (4, "drop-two", lambda ctx: _one_axis("drop-two", (1, runtime.current().size - 2))),
    (3, "drop-rank-0", _rank0),
    (4, "drop-replica", lambda ctx: _multi_axis("drop-replica", spares=0)),
    (3, "drop-with-spare", lambda ctx: _multi_axis("drop-with-spare", spares=1)),
    (3, "drop-in-sweep", _sweep),
)
"""Each loss scenario, after the ranks the job needs before it (so that two or more survive)."""


@register("faults", help="injected hang, delay, corruption and device losses: detected, named, recovered",
          selftests=(SelfTest("a drop that never happens", lambda rt, o, clean: {"plant": "fault.drops_never_strike"},
                              lambda n: Culprit.rank(_guide_victim(n)), exact=False, planted_first=True),))
def check_faults(ctx: CheckContext) -> None:
    if ctx.load is not None:
        ctx.skip("fault injection does not run under --under-load: the load's stream would lose the failed ranks")
    rt = runtime.current()
    if rt.size < 2:
        ctx.skip("fault injection needs at least two ranks")
    start_size = rt.size
    outcomes = [o for scenario in (_hang, _delay, _corruption) for o in _located(scenario, ctx)]
    skipped = [] if rt.size >= 3 else ["corruption-verify (needs 3 ranks, a majority to name the corrupted one)"]
    for needed, name, scenario in DROPS:
        if runtime.current().size >= needed:
            outcomes.extend(_located(scenario, ctx))
        else:
            skipped.append(f"{name} (needs {needed} ranks, {runtime.current().size} left)")
    rt = runtime.current()
    _judge(ctx, outcomes, rt)
    ctx.save("scenarios", table([asdict(o) for o in outcomes]),
             description="one row per scenario, agreed by the ranks: who observed the fault and how late, "
                         "recovery, verification; victims and hosts as the job's world was numbered when it "
                         "started, details as numbered in the world the scenario ran on")
    ctx.attrs.update(mode=rt.ft.mode, mode_reason=rt.ft.reason, start_ranks=start_size, end_ranks=rt.size,
                     roll_call_grace_s=ROLL_CALL_GRACE_S)
    drops = [o for o in outcomes if o.scenario.startswith("drop")]
    worst = max((o.detection_ms + o.recovery_ms for o in drops), default=0.0)
    ctx.headline = (f"{rt.ft.mode} faults: {sum(o.detected and o.verified for o in outcomes)}/{len(outcomes)} "
                    f"scenarios detected and recovered; {start_size} -> {rt.size} ranks; slowest loss to rebuilt "
                    f"mesh {worst:.0f} ms" + ("; NCCL communicators rebuilt from the shrunk MPI group"
                                              if ctx.attrs.get("nccl_rebuilt") is True else "")
                    + (f"; skipped for too few ranks: {', '.join(skipped)}" if skipped else ""))
    ctx.attrs["skipped_scenarios"] = skipped

