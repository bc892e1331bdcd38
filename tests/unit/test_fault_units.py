"""Fault plans, mesh repair, roll-call diagnosis, mode detection, results takeover."""

import numpy as np
import pytest

from tessera_mpi.errors import ConfigError
from tessera_mpi.fault import FaultPlan, FaultPlanError
from tessera_mpi.dist.mesh import plan_repair
from tessera_mpi.results import CheckRecord, Dataset, ResultsWriter, read_results, table
from tessera_mpi.runtime.ft import detect
from tessera_mpi.runtime.rollcall import diagnose
from tessera_mpi.runtime.tracker import Tracker

from test_results import ATTRS, RANKS


def test_plans():
    plan = FaultPlan.make(8, drop_device=[5, 2], after=3)
    assert plan.drop == (2, 5) and plan.after == 3
    assert FaultPlan.make(8, delay_ms=10, ranks=3, jitter_ms=2).delayed == (3,)
    assert FaultPlan.make(8, hang_device=1, stall_s=2.0).stall_s == 2.0


@pytest.mark.parametrize("kwargs, text", [
    ({"drop_device": 8}, "not in the job's 8 ranks"),
    ({"drop_device": [1, 1]}, "twice"),
    ({"drop_device": list(range(8))}, "all 8 ranks"),
    ({"drop_device": 1, "hang_device": 1}, "both drop and hang"),
    ({"delay_ms": 5}, "needs ranks"),
    ({"ranks": [1]}, "give delay_ms"),
    ({"delay_ms": 5, "ranks": [1], "jitter_ms": 9}, "jitter_ms <= delay_ms"),
    ({"corrupt_device": 1, "bits": 0}, "bits=0"),
    ({"drop_device": 1, "after": -1}, "after=-1"),
    ({"hang_device": 1, "stall_s": 0}, "stall_s=0"),
    ({}, "needs a fault"),
])
def test_plan_errors(kwargs, text):
    with pytest.raises(FaultPlanError, match=text):
        FaultPlan.make(8, **kwargs)


def test_plan_error_is_a_config_error_and_kinds_are_type_errors():
    with pytest.raises(ConfigError):
        FaultPlan.make(4, drop_device=9)
    with pytest.raises(TypeError):
        FaultPlan.make(4, drop_device="1")


def test_repair_with_spares_then_replica_then_1d():
    axes, shape = ("tp", "dp"), (3, 2)
    members = (0, 1, 2, 3, 4, 5)
    spare = plan_repair(axes, shape, members, (6, 7), {1})
    assert spare.shape == (3, 2) and spare.members == (0, 6, 2, 3, 4, 5) and spare.spares == (7,)
    assert "spare 6 took the place of 1" in spare.note
    replica = plan_repair(axes, shape, members, (), {3})
    assert replica.shape == (3, 1) and replica.members == (0, 2, 4) and replica.spares == (1, 5)
    both = plan_repair(axes, shape, members, (), {0, 1})
    assert both.members == () and both.note.startswith("lost")
    line = plan_repair(("dp",), (4,), (0, 1, 2, 3), (), {0, 2})
    assert line.shape == (2,) and line.members == (1, 3)
    assert plan_repair(("tp", "pp"), (2, 2), (0, 1, 2, 3), (), {2}).note.startswith("lost")
    dead_spare = plan_repair(axes, shape, members, (6,), {6})
    assert dead_spare.members == members and dead_spare.spares == ()


def test_roll_call_diagnosis():
    answers = {0: "in all_reduce #12 (check 'faults')", 1: "in all_reduce #12 (check 'faults')",
               3: "between collectives, after #11 (check 'faults')"}
    text = diagnose(5, answers, "hang after 3 s")
    assert "ranks 2,4 did not answer (hung or dead)" in text
    assert "ranks 0-1 wait in collective #12: in all_reduce #12" in text
    assert "rank 3 never reached collective #12: it is between collectives, after #11" in text
    assert "ranks 2,4 never reached collective #12" in text


def test_tracker_status():
    t = Tracker()
    t.phase = "check 'x'"
    t.calls, t.current = 1, "all_reduce"  # as the call path enters call #1
    assert t.status() == "in all_reduce #1 (check 'x')"
    t.current = ""  # as it leaves
    assert t.status() == "between collectives, after #1 (check 'x')"


def test_mode_detection(monkeypatch):
    monkeypatch.delenv("OMPI_MCA_mpi_ft_enable", raising=False)
    monkeypatch.delenv("TESSERA_FT", raising=False)
    assert detect().mode == "simulated" and "--with-ft ulfm" in detect().reason
    monkeypatch.setenv("OMPI_MCA_mpi_ft_enable", "1")
    assert detect().mode == "real"
    monkeypatch.setenv("TESSERA_FT", "simulated")
    assert detect().mode == "simulated"
    monkeypatch.delenv("OMPI_MCA_mpi_ft_enable")
    monkeypatch.setenv("TESSERA_FT", "real")
    with pytest.raises(ConfigError, match="TESSERA_FT=real but"):
        detect()
    monkeypatch.setenv("TESSERA_FT", "maybe")
    with pytest.raises(ConfigError, match="choose auto, real or simulated"):
        detect()


def test_a_new_rank_0_takes_the_results_file_over(tmp_path):
    path = tmp_path / "run.h5"
    first = ResultsWriter(path, attrs=ATTRS, ranks=RANKS)
    first.add(CheckRecord(name="mesh", status="passed", duration_s=1.0, message="", headline="ok",
                          datasets={"groups": Dataset(table([{"axes": "dp", "size": 2}]), {"unit": "ranks"})},
                          attrs={"failing_ranks": np.array([], dtype=np.int64)}))
    second = ResultsWriter.resume(path)
    second.attrs["final_world_size"] = 1
    second.add(CheckRecord(name="faults", status="passed", duration_s=2.0, message="", headline="done"))
    run = read_results(path)
    assert list(run.checks) == ["mesh", "faults"] and run.attrs["final_world_size"] == 1
    assert run.checks["mesh"].datasets["groups"]["size"][0] == 2 and run.checks["mesh"].headline == "ok"
