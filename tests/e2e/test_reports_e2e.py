"""--junit, --json and --baseline end to end: the files CI reads, and a regression failing the run."""

import json
import xml.etree.ElementTree as ET

from conftest import mpirun

from tessera_mpi.results import read_results


def _cases(path):
    suite = ET.parse(path).getroot().find("testsuite")
    return suite, {c.get("name"): c for c in suite.findall("testcase")}


def test_reports_and_a_baseline_regression(tmp_path):
    base = tmp_path / "base.h5"
    done = mpirun(4, "-m", "tessera_mpi.suite", "--tests", "mesh,determinism,bandwidth", "--quick",
                  "--out", str(base), "--junit", str(tmp_path / "base.xml"), "--json", str(tmp_path / "base.json"),
                  timeout=300, env={"SLURM_JOB_ID": "4242", "SLURM_JOB_NODELIST": "gpu[01-18]"})
    assert done.returncode == 0, done.stdout + done.stderr
    suite, cases = _cases(tmp_path / "base.xml")
    assert list(cases) == ["mesh", "determinism", "bandwidth"]
    assert suite.get("failures") == "0" and suite.get("errors") == "0" and suite.get("tests") == "3"
    assert all(c.find("failure") is None and c.find("system-out").text for c in cases.values())
    summary = json.loads((tmp_path / "base.json").read_text())
    assert summary["complete"] and summary["passed"] and summary["exit_code"] == 0
    assert [c["name"] for c in summary["checks"]] == ["mesh", "determinism", "bandwidth"]
    assert summary["provenance"]["world_size"] == 4 and summary["results_file"] == str(base)
    # mpirun inside a Slurm allocation: the job is recorded in the provenance and the JUnit properties.
    assert summary["provenance"]["slurm_job_id"] == "4242"
    assert summary["provenance"]["launcher"] == "mpirun (Slurm job 4242 on gpu[01-18])"
    assert {p.get("name"): p.get("value") for p in suite.find("properties")}["slurm_nodelist"] == "gpu[01-18]"

    # The same workload compared with itself: identical digests, status unchanged.
    same = mpirun(4, "-m", "tessera_mpi.suite", "--tests", "mesh,determinism", "--quick",
                  "--out", str(tmp_path / "same.h5"), "--baseline", str(base), timeout=300)
    assert same.returncode == 0, same.stdout + same.stderr
    assert "identical bits: all" in same.stdout and "no regression" in same.stdout

    # An expectation the fabric cannot meet: bandwidth passed -> failed is a regression.
    new = tmp_path / "new.h5"
    worse = mpirun(4, "-m", "tessera_mpi.suite", "--tests", "mesh,bandwidth", "--quick", "--expect-busbw", "5000",
                   "--out", str(new), "--baseline", str(base), "--junit", str(tmp_path / "new.xml"),
                   "--json", str(tmp_path / "new.json"), timeout=300)
    assert worse.returncode == 1, worse.stdout + worse.stderr
    assert "bandwidth: passed -> failed (regression)" in worse.stdout
    assert "against the baseline" in worse.stdout.splitlines()[-2]
    suite, cases = _cases(tmp_path / "new.xml")
    failure = cases["bandwidth"].find("failure")
    assert failure is not None and "below --min-efficiency 0.8" in failure.text
    assert cases["baseline"].find("failure") is not None and "passed -> failed" in cases["baseline"].find("failure").text
    assert int(suite.get("failures")) == 2
    summary = json.loads((tmp_path / "new.json").read_text())
    assert summary["exit_code"] == 1 and not summary["passed"]
    assert any("bandwidth: passed -> failed" in r for r in summary["baseline"]["regressions"])
    assert read_results(new).attrs["baseline_regressions"] >= 1


def test_bad_report_and_baseline_arguments_exit_2_once(tmp_path):
    for args, message in (
        (("--baseline", str(tmp_path / "missing.h5")), "--baseline: cannot open"),
        (("--junit", str(tmp_path / "x.xml"), "--json", str(tmp_path)), "is a folder"),
        (("--junit", "/proc/x.xml"), "--junit /proc/x.xml cannot be written"),
    ):
        done = mpirun(4, "-m", "tessera_mpi.suite", "--tests", "mesh", "--quick", *args, timeout=120)
        assert done.returncode == 2, done.stdout + done.stderr
        assert done.stderr.count(message) == 1, done.stderr


def test_the_baseline_cannot_be_the_results_file(tmp_path):
    base = tmp_path / "base.h5"
    assert mpirun(2, "-m", "tessera_mpi.suite", "--tests", "mesh", "--out", str(base), timeout=120).returncode == 0
    done = mpirun(2, "-m", "tessera_mpi.suite", "--tests", "mesh", "--out", str(base), "--baseline", str(base),
                  timeout=120)
    assert done.returncode == 2 and done.stderr.count("--out and --baseline name the same file") == 1, done.stderr
    assert read_results(base).checks["mesh"].status == "passed"  # left untouched
