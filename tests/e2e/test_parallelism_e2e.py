"""The parallelism check end to end: 8 and 72 ranks, planted faults named on their ranks, other
meshes, and the suite under load and repeated."""

import pytest
from conftest import SCRIPTS, mpirun

from tessera_mpi.parallel.verify import QUANTITIES, TOLERANCES
from tessera_mpi.results import read_results

PLANTED = str(SCRIPTS / "planted_parallelism.py")
PLANTED_CHECK = str(SCRIPTS / "planted_check.py")


def _text(value):
    return value.decode() if isinstance(value, bytes) else value


def test_parallelism_at_8_ranks(tmp_path):
    out = tmp_path / "p.h5"
    done = mpirun(8, "-m", "tessera_mpi.suite", "--tests", "parallelism", "--out", str(out), timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    check = read_results(out).checks["parallelism"]
    assert check.status == "passed" and "tp=2 x pp=2 x dp=2 (1F1B" in check.headline
    assert "dp replicas bitwise identical" in check.headline
    errors = check.datasets["errors"]
    assert len(errors) == 3 * len(QUANTITIES) and (errors["ranks_over"] == 0).all()
    assert all(row["max_rel_err"] <= TOLERANCES[_text(row["quantity"])] for row in errors)
    steps = check.datasets["steps"]
    assert steps["replicas_identical"].all() and steps["loss"][-1] < steps["loss"][0]
    assert (abs(steps["loss"] - steps["reference_loss"]) <= 1e-5 * steps["reference_loss"]).all()
    traffic = {_text(r["axis"]): r for r in check.datasets["traffic"]}
    assert all(traffic[a]["bytes"] > 0 and traffic[a]["group_size"] == 2 for a in ("tp", "pp", "dp"))
    phases = {_text(r["phase"]) for r in check.datasets["phases"]}
    assert {"step", "forward", "backward", "tp_comm", "pp_comm", "dp_comm", "optimizer"} <= phases
    assert list(check.datasets["schedule"]["max_in_flight"]) == [2, 1]


@pytest.mark.parametrize("kind, victim, named", [
    ("wrong_shard", 5, "rank 5 (tp=1,pp=0,dp=1; host"),
    ("drop_micro_batch", 6, "rank 6 (tp=1,pp=1,dp=0; host"),
])
def test_planted_faults_fail_the_check_and_name_the_rank(tmp_path, kind, victim, named):
    out = tmp_path / "f.h5"
    done = mpirun(8, PLANTED, kind, str(victim), "--tests", "par-planted", "--out", str(out), timeout=120)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "par-planted   FAILED" in done.stdout
    culprit = "step 0: shard (rel err" if kind == "wrong_shard" else "step 0: gradient (rel err"
    # The message lines name the rank; the check's own line (its headline) says what failed first.
    lines = [line for line in done.stdout.splitlines() if culprit in line and not line.lstrip().startswith("par-")]
    assert lines and all(named in line for line in lines), done.stdout
    check = read_results(out).checks["par-planted"]
    assert check.status == "failed" and victim in list(check.attrs["failing_ranks"])
    # A failing headline says what failed first; the figures stay beside it.
    assert check.headline.startswith("sanity: step 0: ") and check.attrs["sanity"] == "failed"
    assert check.attrs["culprits"] == [f"rank {victim}"]
    assert "off the float64 reference" in check.attrs["figures"]


def test_other_meshes(tmp_path):
    done = mpirun(8, "-m", "tessera_mpi.suite", "--tests", "parallelism", "--mesh", "2x4", "--axes", "pp,dp",
                  "--out", str(tmp_path / "a.h5"), timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "tp=1 x pp=2 x dp=4" in done.stdout
    done = mpirun(4, "-m", "tessera_mpi.suite", "--tests", "parallelism", "--mesh", "2x2", "--axes", "tp,ep",
                  "--out", str(tmp_path / "b.h5"), timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "parallelism   SKIPPED" in done.stdout and "include ['ep']" in done.stdout


def test_under_load_and_repeated(tmp_path):
    out = tmp_path / "u.h5"
    done = mpirun(8, "-m", "tessera_mpi.suite", "--tests", "determinism,parallelism", "--under-load",
                  "--repeat", "2", "--quick", "--out", str(out), timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "under load: a continuous all-reduce" in done.stdout and "repetition 2 of 2" in done.stdout
    assert done.stdout.count("background all-reduces of 4096 bytes per rank") == 4
    assert "parallelism" in done.stdout.split("status per repetition")[1].split("\n\n")[0]
    run = read_results(out)
    assert run.attrs["under_load"] in (True, 1) and run.attrs["repeat"] == 2
    for name in ("determinism", "parallelism"):
        check = run.checks[name]
        assert check.status == "passed" and check.attrs["repetitions"] == 2
        rows = check.datasets["repetitions"]
        assert [_text(s) for s in rows["status"]] == ["passed", "passed"] and (rows["load_bytes"] > 0).all()
        assert check.attrs["load_iterations"] >= 1


def test_a_repetition_that_fails_fails_the_check(tmp_path):
    out = tmp_path / "r.h5"
    done = mpirun(8, PLANTED_CHECK, "fail", "--tests", "mesh,planted", "--repeat", "2", "--out", str(out),
                  timeout=120)
    assert done.returncode == 1, done.stdout + done.stderr
    table = done.stdout.split("status per repetition")[1]
    assert "passed passed" in table.split("\n")[1] and "failed failed" in table.split("\n")[2], done.stdout
    planted = read_results(out).checks["planted"]
    assert planted.status == "failed" and planted.attrs["repetition"] == 1
    assert [_text(s) for s in planted.datasets["repetitions"]["failing_ranks"]] == ["2,5", "2,5"]
    assert planted.message.startswith("repetition 1: failed on rank 2 (tp=0,pp=1,dp=0; host ")
    assert "\nrepetition 2: failed on rank 2 " in planted.message


@pytest.mark.slow
def test_parallelism_at_72_ranks(nvl72_run):
    """Reads the session's one 72-rank run of the default suite (emulated NVL72, device code paths)."""
    done = nvl72_run.done
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-3000:]
    check = read_results(nvl72_run.out).checks["parallelism"]
    assert check.status == "passed", check.message
    # How long it takes is a performance figure, recorded in docs/performance.md, not asserted here.
    assert "tp=6 x pp=6 x dp=2" in check.headline
    # 1F1B with --quick's 2 micro-batches over 6 stages: stage s holds min(2, 6 - s) in flight.
    assert list(check.datasets["schedule"]["max_in_flight"]) == [min(2, 6 - s) for s in range(6)]
