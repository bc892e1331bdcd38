"""The pytest plugin under mpirun: the docs example, planted failures named on every rank, a hung test."""

from conftest import ROOT, SCRIPTS, mpirun

from tessera_mpi.results import read_results

PYTEST = ("-m", "pytest", "-q", "-p", "no:cacheprovider", "--color=no", "--with-mpi")


def test_the_docs_example_passes_and_records(tmp_path):
    out = tmp_path / "rack.h5"
    done = mpirun(8, *PYTEST, str(ROOT / "docs" / "example_rack_test.py"), "--tessera-mesh", "4x2",
                  "--tessera-results", str(out), timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    run = read_results(out)
    assert run.attrs["world_size"] == 8 and list(run.attrs["mesh_shape"]) == [4, 2]
    recorded = [c for c in run.checks.values() if "bandwidth_is_recorded" in c.name]
    assert len(recorded) == 2 and all(c.status == "passed" and c.datasets["busbw"][0] > 0 for c in recorded)


def test_a_failure_on_one_rank_fails_everywhere_and_names_it(tmp_path):
    out = tmp_path / "planted.h5"
    done = mpirun(4, *PYTEST, str(SCRIPTS / "rack_tests_planted.py"), "--tessera-results", str(out), timeout=300)
    assert done.returncode != 0
    # Every rank's pytest reports the same failure, naming rank 2 with its host and device.
    assert done.stdout.count("assertion failed on 1 of 4 ranks") >= 4, done.stdout
    assert "rank 2 (dp=2; host" in done.stdout and "value is 41" in done.stdout
    assert done.stdout.count("1 failed, 2 passed") == 4, done.stdout
    run = read_results(out)
    assert run.checks["rack_tests_planted::test_passes"].status == "passed"
    assert list(run.checks["rack_tests_planted::test_passes"].datasets["ranks"]) == [0, 1, 2, 3]


def test_a_hung_test_ends_the_job_with_a_diagnosis(tmp_path):
    done = mpirun(4, *PYTEST, str(SCRIPTS / "rack_tests_planted.py"), "-k", "hangs", "--tessera-timeout", "5",
                  timeout=120, env={"PLANT_HANG": "1"})
    assert done.returncode != 0
    text = done.stdout + done.stderr
    assert text.count("rack_tests_planted.py::test_hangs_when_asked did not finish within 5 s") == 1, text
    # Rank 1 skipped the collective and left: it says so to the roll call from the end of its program.
    assert "ranks 0,2-3 wait in collective #1: in op.all_reduce (argument check) #1" in text, text
    assert "ranks 1 finished the program without calling op.all_reduce (argument check) #1" in text, text
