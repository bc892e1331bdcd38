"""Failing, raising, hanging and skipped checks: the job always ends, and says where and why."""

import pytest
from conftest import FT, SCRIPTS, mpirun

from tessera_mpi.results import read_results

PLANTED = str(SCRIPTS / "planted_check.py")


def test_failure_names_ranks_host_and_device(tmp_path):
    out = tmp_path / "f.h5"
    done = mpirun(8, PLANTED, "fail", "--tests", "mesh,planted", "--out", str(out), timeout=120)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "planted       FAILED" in done.stdout
    assert "failed on rank 2 (tp=0,pp=1,dp=0; host " in done.stdout
    assert "device cpu): planted failure seen by rank 2" in done.stdout
    assert "rank 5 (tp=1,pp=0,dp=1; host " in done.stdout
    assert "FAILED: 1 passed, 1 failed" in done.stdout
    run = read_results(out)
    assert run.checks["mesh"].status == "passed"
    planted = run.checks["planted"]
    assert planted.status == "failed" and list(planted.attrs["failing_ranks"]) == [2, 5]


def test_exception_on_one_rank_ends_the_job_and_keeps_finished_checks(tmp_path):
    out = tmp_path / "r.h5"
    done = mpirun(8, PLANTED, "raise-one", "--tests", "mesh,planted", "--out", str(out), timeout=120)
    assert done.returncode != 0
    assert done.stderr.count("RuntimeError: boom on rank two") == 1, done.stderr
    assert "tessera_mpi: rank 2 (host " in done.stderr and "check 'planted' raised on this rank" in done.stderr
    run = read_results(out)
    assert list(run.checks) == ["mesh"] and run.checks["mesh"].status == "passed"
    assert [p.name for p in tmp_path.iterdir()] == ["r.h5"], "no half-written temporary file"


def test_exception_on_every_rank_is_an_error_and_the_suite_goes_on(tmp_path):
    out = tmp_path / "e.h5"
    done = mpirun(8, PLANTED, "raise-all", "--tests", "planted,mesh", "--out", str(out), timeout=120)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "planted       ERROR" in done.stdout
    assert "error on ranks 0-7" in done.stdout and "RuntimeError: boom everywhere" in done.stdout
    run = read_results(out)
    assert run.checks["planted"].status == "error" and run.checks["mesh"].status == "passed"
    assert "boom everywhere" in run.checks["planted"].attrs["traceback"]


def test_a_hung_rank_is_turned_into_an_error_by_the_watchdog(tmp_path):
    out = tmp_path / "h.h5"
    done = mpirun(8, PLANTED, "hang", "--tests", "mesh,planted", "--timeout", "3", "--out", str(out),
                  timeout=120)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "check 'planted' did not finish within 3 s" in done.stderr
    assert list(read_results(out).checks) == ["mesh"]


def test_skip_is_not_a_failure(tmp_path):
    done = mpirun(4, PLANTED, "skip", "--tests", "planted", "--out", str(tmp_path / "s.h5"), timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "planted       SKIPPED" in done.stdout and "not applicable to this mesh" in done.stdout


@pytest.mark.parametrize("mode", ["one", "all"])
def test_uncaught_exception_in_a_user_script(mode):
    done = mpirun(8, str(SCRIPTS / "uncaught.py"), mode, timeout=120)
    assert done.returncode != 0
    if mode == "one":
        assert done.stderr.count("ValueError: bad input seen on rank 3") == 1, done.stderr
        assert "tessera_mpi: rank 3 (host " in done.stderr
    else:
        assert done.stderr.count("uncaught exception on all 8 ranks") == 1, done.stderr
        assert "ranks 0-7: ValueError: bad input" in done.stderr


def test_an_unplanned_loss_under_ulfm_is_one_report_and_an_error_record(tmp_path):
    out = tmp_path / "lost.h5"
    done = mpirun(8, PLANTED, "die", "--tests", "mesh,planted,links", "--out", str(out), timeout=120,
                  launcher=FT["real"])
    text = done.stdout + done.stderr
    assert done.returncode == 1, text
    assert "Traceback" not in text and "MPI_ERR_PROC_FAILED" not in text, text
    lost = "unplanned loss during check 'planted': rank 3 (host "
    assert text.count("tessera_mpi: rank 0 (host ") == 1 and lost in text, text
    assert "at tp=0,pp=1,dp=1 was lost; this rank met it in " in text
    assert text.count("ending the job: the results file records it as an error") == 1, text
    run = read_results(out)
    assert run.checks["mesh"].status == "passed" and run.checks["planted"].status == "error"
    assert lost in run.checks["planted"].message and list(run.checks["planted"].attrs["failing_ranks"]) == [3]
    assert "links" not in run.checks and not run.attrs["complete"]


def test_a_check_over_its_timeout_ends_the_job_whatever_the_margin(tmp_path):
    out = tmp_path / "slow.h5"
    done = mpirun(4, PLANTED, "slow", "--tests", "mesh,planted", "--timeout", "0.5", "--out", str(out),
                  timeout=120)
    text = done.stdout + done.stderr
    assert done.returncode == 1, text
    assert text.count("check 'planted' did not finish within 0.5 s") == 1, text
    assert "a roll call of 4 ranks got 4 answers" in text
    for r in range(4):  # every rank appears in the report, each where it is
        assert f"  rank {r}: between collectives" in text, text
    assert not read_results(out).attrs["complete"]
