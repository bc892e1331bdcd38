"""Verdicts that cannot lie: culprits, references, the self-test's rules, the soak's trend and
dips, and the faults that plant defects (one process)."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from tessera_mpi import dist, runtime
from tessera_mpi.errors import FaultPlanError
from tessera_mpi.fault import FaultPlan
from tessera_mpi.fault.inject import Injection
from tessera_mpi.results import CheckRecord
from tessera_mpi.suite.checks.soak import judge_dips, judge_trend
from tessera_mpi.suite.context import CheckContext
from tessera_mpi.suite.options import parse_options
from tessera_mpi.suite.registry import SelfTest
from tessera_mpi.suite.runner import _headline, _Outcome, _verdicts
from tessera_mpi.suite.selftest import judge
from tessera_mpi.suite.verdict import Culprit, Reference


def test_culprits_print_parse_and_involve():
    for c in (Culprit.rank(5), Culprit.link(3, 7), Culprit.pair(9, 2), Culprit.whole()):
        assert Culprit.parse(str(c)) == c
    assert str(Culprit.pair(9, 2)) == "pair 2-9" and str(Culprit.link(3, 7)) == "link 3 -> 7"
    assert Culprit.link(3, 7).involves(Culprit.rank(7)) and not Culprit.rank(7).involves(Culprit.rank(3))
    assert not Culprit.whole().involves(Culprit.rank(1))
    with pytest.raises(ValueError, match="not a culprit"):
        Culprit.parse("host n07")


def test_a_reference_holds_within_its_bounds_and_says_how_it_misses():
    ref = Reference("all_reduce peak busbw", "GB/s", "0.8 x 900", target=900, lower=720)
    assert ref.holds(800) and not ref.holds(700) and not ref.holds(float("nan"))
    assert ref.shortfall(700) == "all_reduce peak busbw 700 GB/s is below 720 GB/s (0.8 x 900)"
    assert "above 0.25" in Reference("share", "", "s", upper=0.25).shortfall(0.5)
    assert "within" in ref.shortfall(800)
    with pytest.raises(ValueError, match="lower or an upper bound"):
        Reference("x", "", "s", target=1.0)


def _record(status, culprits=()):
    return CheckRecord(name="links", status=status, duration_s=1.0, message="", headline="h",
                       attrs={"culprits": [str(c) for c in culprits]})


SPEC = SelfTest("one slow rank", lambda n, o: {"delay_ms": 20, "ranks": [n - 1]}, lambda n: Culprit.rank(n - 1))


@pytest.mark.parametrize("planted, clean, verdict", [
    (_record("failed", [Culprit.rank(7)]), _record("passed"), "caught"),
    (_record("failed", [Culprit.rank(7), Culprit.whole()]), _record("passed"), "caught"),
    (_record("failed", [Culprit.link(2, 7)]), _record("passed"), "caught"),
    (_record("passed"), _record("passed"), "MISSED"),
    (_record("skipped"), _record("passed"), "MISSED"),
    (_record("failed", [Culprit.whole()]), _record("passed"), "wrong culprit"),
    (_record("failed", [Culprit.rank(3)]), _record("passed"), "wrong culprit"),
    (_record("failed", [Culprit.rank(7), Culprit.rank(3)]), _record("passed"), "wrong culprit"),
    (_record("failed", [Culprit.rank(7)]), _record("failed"), "clean run failed"),
    (_record("error"), _record("passed"), "error"),
])
def test_the_self_test_requires_a_clean_pass_and_the_planted_culprit(planted, clean, verdict):
    assert judge(SPEC, SPEC.culprit(8), planted, clean) == verdict


def test_a_self_test_that_is_not_exact_accepts_more_culprits():
    loose = SelfTest("a drop that never happens", lambda n, o: {}, lambda n: Culprit.rank(5), exact=False)
    assert judge(loose, Culprit.rank(5), _record("failed", [Culprit.rank(5), Culprit.rank(1)]), _record("passed")) == "caught"
    assert judge(loose, Culprit.rank(5), _record("failed", [Culprit.rank(1)]), _record("passed")) == "wrong culprit"


def _outcome(*, sanity=False, performance=False, judged=False, first="", culprits=(), not_judged=""):
    return _Outcome(sanity, performance, judged, first, tuple(culprits), not_judged)


def test_the_record_says_what_failed_and_a_failing_headline_says_it_first():
    everyone = [_outcome(), _outcome(performance=True, judged=True, first="performance: slow", culprits=[Culprit.rank(1)]),
                _outcome(sanity=True, first="sanity: wrong", culprits=[Culprit.rank(2)])]
    v = _verdicts("failed", everyone)
    assert v["sanity"] == "failed" and v["performance"] == "failed" and v["culprits"] == ["rank 1", "rank 2"]
    assert _headline("failed", "figures", "failed on ...", everyone) == "performance: slow"
    assert _headline("passed", "figures", "", everyone) == "figures"
    quiet = _verdicts("passed", [_outcome(not_judged="no expectation"), _outcome(not_judged="no expectation")])
    assert quiet["performance"] == "not judged" and quiet["not_judged"] == "no expectation"
    assert _verdicts("passed", [_outcome(judged=True)])["performance"] == "passed"
    assert _verdicts("error", everyone)["sanity"] == "error"


@pytest.fixture
def ctx():
    mesh = dist.Mesh(axes=["dp"])
    options = parse_options(["--self-test"], {"soak": ""})
    return CheckContext(mesh=mesh, options=options)


def _rows(busbw):
    return [{"t_s": 0.2 * i, "busbw_GBps": float(b)} for i, b in enumerate(busbw)]


def test_a_gradual_fall_fails_the_trend_and_a_single_dip_of_the_same_depth_is_a_dip(ctx):
    steady = np.full(40, 100.0)
    dipped = steady.copy()
    dipped[20] = 50.0
    falling = np.linspace(100.0, 50.0, 40)
    waited = np.ones((40, 1))
    judge_trend(ctx, _rows(dipped), waited)
    judge_dips(ctx, _rows(dipped))
    assert [f.message.split(":")[0] for f in ctx.findings] == ["1 dip"], [f.message for f in ctx.findings]
    ctx.findings.clear()
    judge_trend(ctx, _rows(falling), waited)
    assert ctx.findings and all(f.message.startswith("throttling") for f in ctx.findings)
    assert all(f.kind == "performance" for f in ctx.findings)
    ctx.findings.clear()
    judge_trend(ctx, _rows(steady), waited)
    judge_dips(ctx, _rows(steady))
    assert not ctx.findings


def test_plans_for_the_new_faults():
    assert FaultPlan.make(8, throttle=0.5, ranks=[3]).throttled == (3,)
    assert FaultPlan.make(8, plant="dist.bit_flip", ranks=[2]).plants("dist.bit_flip", 2)
    assert FaultPlan.make(8, plant="fault.drops_never_strike").plants("fault.drops_never_strike", 6)
    assert not FaultPlan.make(8, plant="dist.bit_flip", ranks=[2]).plants("dist.bit_flip", 3)
    for kwargs, text in [({"throttle": 1.5, "ranks": [1]}, "fraction between 0 and 1"),
                         ({"throttle": 0.5}, "needs ranks"), ({"plant": "gpu.melt"}, "not a planted defect"),
                         ({"ulps": 1}, "give corrupt_device too"),
                         ({"delay_ms": 5, "throttle": 0.5, "ranks": [1]}, "open one block for each")]:
        with pytest.raises(FaultPlanError, match=text):
            FaultPlan.make(8, **kwargs)


def test_an_ulp_corruption_moves_one_element_by_one_ulp():
    runtime.start()
    injection = Injection(FaultPlan.make(1, corrupt_device=0, ulps=1))
    injection.calls = 1
    result = np.ones(16)
    injection.after(result)
    moved = np.flatnonzero(result != 1.0)
    assert len(moved) == 1 and result[moved[0]] == np.nextafter(1.0, 2.0)


def test_a_throttle_stretches_the_pace_to_the_planned_speed(monkeypatch):
    runtime.start()
    clock = {"now": 0.0}
    slept = []
    class Clock:
        monotonic = staticmethod(lambda: clock["now"])
        sleep = staticmethod(lambda s: slept.append(s))

    monkeypatch.setattr(sys.modules["tessera_mpi.fault.inject"], "time", Clock)
    injection = Injection(FaultPlan.make(1, throttle=0.25, throttle_s=10.0, ranks=[0]))
    injection._opened = 0.0
    for _ in range(40):
        injection.before("all_reduce")
        clock["now"] += (slept[-1] if slept else 0.0) + 1.0   # each collective's own work takes 1 s
    # After the ramp the pace is 1/0.25: three seconds of sleep per second of work.
    assert slept[0] < 0.1 and slept[-1] == pytest.approx(3.0)
    assert all(b >= a - 1e-9 for a, b in zip(slept, slept[1:])), "the speed falls gradually"


def test_a_victim_that_meets_the_loss_before_its_drop_point_dies_then(monkeypatch):
    """A slow victim still in the argument check when a fast one died is lost too (real mode)."""
    import importlib

    inject = importlib.import_module("tessera_mpi.fault.inject")  # the module, not fault.inject()
    runtime.start()
    killed = []
    monkeypatch.setattr(inject.os, "kill", lambda pid, sig: killed.append(sig))
    injection = Injection(FaultPlan.make(2, drop_device=0))  # this process is rank 0
    injection.mode = "real"
    injection.lost(RuntimeError("all_reduce (argument check) failed: ranks lost"))
    assert killed == [inject.signal.SIGKILL]
    # Past its drop point (it struck, or it is no victim) a rank that meets a loss lives on.
    killed.clear()
    injection.calls = 1
    injection.lost(RuntimeError("later"))
    assert killed == []
    injection.calls, injection.mode = 0, "simulated"
    injection.lost(RuntimeError("simulated: nothing dies"))
    assert killed == []
