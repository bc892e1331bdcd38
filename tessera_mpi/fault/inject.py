"""`fault.inject`: a block in which planned faults strike, and recovery when it ends.

    with fault.inject(drop_device=5):
        try:
            Y = op.all_reduce(X, op="sum")
        except RuntimeError as e:
            print("Caught simulated GPU failure:", e)
    # here the survivors have agreed on the failed set and work on rebuilt meshes

Collective: every rank of the job's world must enter the block with the same arguments and
issue the same collectives inside it (the fault strikes at the same call on every rank).

Drop, real mode (ULFM): the dropped rank's process kills itself on entering the struck
collective; survivors' collectives that involve it raise DeviceLostError (and revoke their
communicator). On leaving the block every survivor revokes every mesh communicator (so no
survivor waits for one that already left), the world is shrunk, and the runtime and every mesh
are rebuilt. Collectives inside the block should run on meshes: a failure revokes the
communicator it happened on, which interrupts whatever else uses that communicator.
Drop, simulated mode: every rank raises DeviceLostError at the struck collective without
communicating; on leaving, the world is split into survivors, and the dropped ranks park (take
no part) until the survivors finish, when they leave together.
Hang: the hung rank stops (for ever: SIGSTOP; or for stall_s seconds). After `timeout` the
survivors' watchdog holds a roll call and names the ranks that never reached the collective;
for ever, the job ends with that diagnosis; with stall_s, it is recorded and the block goes on.
Delay: the listed ranks start every collective late. Throttle: the listed ranks' collectives
slow down gradually, to `throttle` times their speed over `throttle_s` seconds (a link or GPU
degrading, thermal throttling). Corruption: the listed ranks' result buffers get flipped bits
(or, with `ulps`, one element `ulps` units in the last place off) after the struck collective
(op.all_reduce(..., verify=True) and the suite's verifications catch it). Plant: a defect at a
named point of the framework (fault.PLANTS), upstream of every verification: what
`--self-test` uses to prove each check can fail.
GPU counters (emulated backend only): `ecc_error`, `link_errors`, `link_down` and
`throttle_reason` move the listed ranks' emulated NVML counters at the struck collective, as an
uncorrectable ECC error, NVLink errors, a link going down or throttling would; they stay moved
(a GPU's counters do not heal). On real GPUs they are refused: their counters cannot be faked.
"""

from __future__ import annotations

import os
import random
import signal
import sys
import time
from types import TracebackType
from typing import Any

import numpy as np
from mpi4py import MPI

from .. import runtime
from ..util.text import rank_ranges
from ..errors import DeviceLostError
from ..runtime.crash import exit_now
from ..runtime.rollcall import diagnose, roll_call
from ..runtime.sentinel import sentinel
from ..runtime.tracker import tracker
from ..comm import hooks
from ..errors import FaultPlanError
from ..hardware.telemetry import telemetry
from ..runtime.watchdog import ROLL_CALL_GRACE_S, Watchdog, end_after_roll_call
from .plan import CounterFault, FaultPlan


class Injection:
    """One `fault.inject` block: the plan, and what happened (filled in on every survivor)."""

    def __init__(self, plan: FaultPlan) -> None:
        self.plan = plan
        self.rt = runtime.start()
        self.mode = self.rt.ft.mode
        self.me = self.rt.rank
        self.calls = 0
        self.struck_at: float | None = None
        self.detected_at: float | None = None
        self.recovered_at: float | None = None
        self.failed: tuple[int, ...] = ()
        """Ranks (numbered as when the block started) that the survivors agreed have failed."""
        self.errors: list[BaseException] = []
        self.diagnosis = ""
        """The roll call's report, when a hang was detected."""
        self.corrupted = False
        self._rng = random.Random(plan.seed * 1000003 + self.me)
        self._watchdog: Watchdog | None = None
        self._raised = False
        """This rank observed a failure: a simulated drop raised here, or a collective's
        transport failure was translated into DeviceLostError (the call path says so)."""
        self._opened = time.monotonic()
        self._paced: float | None = None
        self._slept = 0.0

    # The hooks, called by every collective inside the block.

    def before(self, name: str) -> None:
        self.calls += 1
        plan, me = self.plan, self.me
        if me in plan.delayed and self.calls > plan.after:
            time.sleep(max(0.0, plan.delay_ms + self._rng.uniform(-plan.jitter_ms, plan.jitter_ms)) / 1e3)
        if me in plan.throttled:
            self._throttle()
        if self.calls != plan.after + 1:
            return
        self.struck_at = time.monotonic()
        for fault in plan.counters:
            if fault.rank == me:
                _strike_counters(fault)
        if plan.drop:
            self._drop(name)
        if me in plan.hang:
            sys.stdout.flush()
            if plan.stall_s is None:
                os.kill(os.getpid(), signal.SIGSTOP)
                # Continued: the others diagnosed the hang and are ending the job. Leave
                # quietly; a stopped process killed outright was seen to leave mpirun hanging.
                exit_now(0, speaker=False)
            time.sleep(plan.stall_s)

    def _throttle(self) -> None:
        """Stretch this rank's pace between collectives to 1/speed, the speed falling linearly
        from 1 to `throttle` over `throttle_s` seconds of the block (then staying there): the
        time since the last collective began, less the throttle's own sleep, is the work."""
        now = time.monotonic()
        plan = self.plan
        if self._paced is not None:
            work = max(0.0, now - self._paced - self._slept)
            progress = min(1.0, (now - self._opened) / plan.throttle_s)
            speed = 1.0 - (1.0 - (plan.throttle or 1.0)) * progress
            self._slept = work * (1.0 / speed - 1.0)
            time.sleep(self._slept)
        self._paced = now

    def lost(self, error: BaseException) -> None:
        """The call path translated a transport failure into `error` on this rank.

        A planned victim that meets the loss before its own drop point dies now: with several
        victims, a slow one can still be in the argument check (which plants nothing) when a
        fast one dies in the collective; it would otherwise live on as a survivor, and the
        plan, the shrunk job and the check's expectations would disagree on who was lost."""
        self._raised = True
        if self.mode == "real" and self.me in self.plan.drop and self.calls <= self.plan.after \
                and not hooks.planted("fault.drops_never_strike"):
            sys.stdout.flush()
            sys.stderr.flush()
            os.kill(os.getpid(), signal.SIGKILL)

    def plants(self, name: str) -> bool:
        """Whether this block plants defect `name` on this rank (the hook the taps ask)."""
        return self.plan.plants(name, self.me)

    def _drop(self, name: str) -> None:
        if hooks.planted("fault.drops_never_strike"):
            return
        victims = ", ".join(self.rt.describe(r) for r in self.plan.drop)
        if self.mode == "real":
            if self.me in self.plan.drop:
                sys.stdout.flush()
                sys.stderr.flush()
                os.kill(os.getpid(), signal.SIGKILL)
            return
        self.detected_at = time.monotonic()
        self._raised = True
        raise DeviceLostError(f"{name} failed: ranks lost ({victims}) [simulated failure: "
                              f"{self.rt.ft.reason}]", self.plan.drop)

    def after(self, result: Any) -> None:
        if self.me not in self.plan.corrupt or self.corrupted or self.calls != self.plan.after + 1:
            return
        self.corrupted = True
        flat = result.reshape(-1)
        if flat.size == 0:
            return
        if self.plan.ulps and flat.dtype.kind == "f":
            # One element moves by `ulps` units in the last place: the smallest wrong answer.
            index = self._rng.randrange(flat.size)
            value = flat[index:index + 1]
            for _ in range(self.plan.ulps):
                value[...] = np.nextafter(value, np.inf if value[0] >= 0 else -np.inf)
            return
        view = flat.view(np.uint8)
        for _ in range(self.plan.bits):
            byte = self._rng.randrange(view.size)
            view[byte : byte + 1] ^= np.uint8(1 << self._rng.randrange(8))

    # The block.

    def __enter__(self) -> Injection:
        self._opened = time.monotonic()
        # Count calls from the block's start: every rank enters it at the same point, so the
        # roll call's numbers compare across ranks whatever each did before.
        self._base = tracker.scope()
        hooks.active.append(self)
        if self.plan.hang:
            self._watchdog = Watchdog(self.plan.timeout_s, "a collective inside fault.inject", stagger=False,
                                      on_timeout=self._hang_detected)
            self._watchdog.__enter__()
        return self

    def _hang_detected(self) -> None:
        """Watchdog thread: hold a roll call; end the job unless the hang is a planned stall."""
        rt = self.rt
        answers = roll_call(rt.watch, tracker.status(), grace_s=ROLL_CALL_GRACE_S)
        self.diagnosis = diagnose(rt.size, answers, f"hang after {self.plan.timeout_s:g} s")
        self.detected_at = time.monotonic()
        if self.plan.stall_s is None:
            end_after_roll_call(answers, rt.watch.rank, self.diagnosis)

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None
    ) -> bool:
        hooks.active.remove(self)
        tracker.base = self._base
        if self._watchdog is not None:
            self._watchdog.__exit__(None, None, None)
        if value is not None:
            self.errors.append(value)
            if self.detected_at is None:
                self.detected_at = time.monotonic()
        if not self.plan.drop:
            return False
        expected = isinstance(value, (DeviceLostError, MPI.Exception))
        if self.mode == "real":
            self._recover_real()
        else:
            self._recover_simulated()
        self.recovered_at = time.monotonic()
        unplanned = set(self.failed) - set(self.plan.drop)
        if unplanned:
            raise DeviceLostError(f"ranks {rank_ranges(unplanned)} failed besides the planned ones "
                                  f"{rank_ranges(self.plan.drop)}", tuple(sorted(unplanned))) from value
        return expected

    def _recover_real(self) -> None:
        """Recover from what was observed: a rank that met the failure revokes the meshes'
        communicators (releasing survivors still waiting in a mesh collective with one that
        already left), the survivors shrink the world, and the runtime is rebuilt only if a
        process really failed. A rank that met nothing revokes nothing: it would break the
        collectives of ranks still working. The world itself is never revoked: a slower survivor
        may still be finishing a world collective from before the block."""
        rt = self.rt
        if self._raised:
            for comm in _mesh_communicators():
                try:
                    comm.Revoke()
                except MPI.Exception:
                    pass
        old_group = rt.world.Get_group()
        world = rt.world.Shrink()
        kept = MPI.Group.Translate_ranks(world.Get_group(), list(range(world.size)), old_group)
        self.failed = tuple(sorted(set(range(rt.size)) - set(kept)))
        if not self.failed:
            world.Free()
            return
        runtime.rebuild(world, self.failed, real=True)

    def _recover_simulated(self) -> None:
        """Recover from what was observed, not from what was planned: only when some rank's
        collective raised the simulated failure do the victims leave and the survivors go on."""
        rt = self.rt
        if not rt.control.allreduce(int(self._raised), op=MPI.MAX):
            return
        dropped = self.me in self.plan.drop
        world = rt.world.Split(MPI.UNDEFINED if dropped else 0, key=rt.rank)
        self.failed = self.plan.drop
        if dropped:
            park(rt)
        runtime.rebuild(world, self.failed, real=False)


def _strike_counters(fault: CounterFault) -> None:
    """Move this rank's emulated GPU counters as `fault` says (inject checked they exist)."""
    gpu = telemetry().emulated
    assert gpu is not None
    if fault.kind == "ecc_error":
        gpu.ecc_error(fault.count)
    elif fault.kind == "link_errors":
        gpu.link_errors(fault.link, fault.count, fault.detail)
    elif fault.kind == "link_down":
        gpu.link_down(fault.link)
    else:
        gpu.throttle(fault.detail)


def _mesh_communicators() -> list[MPI.Comm]:
    """Every communicator of every live mesh: where collectives inside the block run."""
    comms: list[MPI.Comm] = []
    for mesh in runtime.live_meshes():
        comms.extend(mesh._comms.values())
    return comms


def park(rt: runtime.Runtime) -> None:
    """A rank dropped in simulated mode: take no part until the survivors finish, then leave.

    Never returns. It waits on the job's original world (which the survivors also reach when
    they finish), polling so that it does not spin a core the survivors need.
    """
    Watchdog.disarm_all()
    sentinel.stop()
    sys.stdout.flush()
    request = runtime.context.shutdown_comm().Ibarrier()
    while not request.Test():
        time.sleep(0.05)
    MPI.Finalize()
    os._exit(0)


def inject(
    drop_device: int | list[int] | None = None,
    *,
    hang_device: int | list[int] | None = None,
    stall_s: float | None = None,
    delay_ms: float = 0.0,
    ranks: int | list[int] | None = None,
    jitter_ms: float = 0.0,
    throttle: float | None = None,
    throttle_s: float = 10.0,
    plant: str | None = None,
    corrupt_device: int | list[int] | None = None,
    bits: int = 1,
    ulps: int = 0,
    after: int = 0,
    timeout: float | None = None,
    seed: int = 0,
    ecc_error: int | list[int] | None = None,
    link_errors: dict | list[dict] | None = None,
    link_down: dict | list[dict] | None = None,
    throttle_reason: dict | list[dict] | None = None,
) -> Injection:
    """Return a context manager in which the described faults strike (see the module docstring).

    Ranks are numbered as in the job's world at the start of the block. `ranks` lists the ranks
    that `delay_ms`, `throttle` or `plant` applies to (a plant without ranks applies to every
    rank). `ecc_error=R`, `link_errors={"rank": R, "link": L, "count": N}` (optionally "kind":
    "crc", "replay" or "recovery"), `link_down={"rank": R, "link": L}` and
    `throttle_reason={"rank": R, "reason": "thermal"}` (or "power", "hw_slowdown"; each a list
    of such dicts too) move the emulated GPUs' counters: TESSERA_BACKEND=emulated only. Invalid arguments raise FaultPlanError on every rank before anything happens.
    `timeout` (default: TESSERA_HANG_TIMEOUT or 60 s) is how long survivors wait for a hung rank.
    """
    rt = runtime.start()
    wait = timeout if timeout is not None else float(os.environ.get("TESSERA_HANG_TIMEOUT", "60"))
    plan = FaultPlan.make(
        rt.size, drop_device=drop_device, hang_device=hang_device, stall_s=stall_s, delay_ms=delay_ms,
        ranks=ranks, jitter_ms=jitter_ms, throttle=throttle, throttle_s=throttle_s, plant=plant,
        corrupt_device=corrupt_device, bits=bits, ulps=ulps, after=after, timeout_s=wait, seed=seed,
        ecc_error=ecc_error, link_errors=link_errors, link_down=link_down, throttle_reason=throttle_reason,
    )
    tel = telemetry()
    if plan.counters and tel.emulated is None:
        # The same on every rank: the backend is agreed at start-up.
        where = "a real GPU's counters cannot be faked" if tel.source == "nvml" else tel.reason
        raise FaultPlanError(f"fault.inject({plan.counters[0].kind}=...) moves emulated GPU counters and needs "
                             f"TESSERA_BACKEND=emulated; this job runs the {rt.backend.name} backend ({where})")
    return Injection(plan)
