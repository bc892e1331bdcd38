"""JUnit XML and the JSON summary: statuses, messages, incomplete runs, characters XML cannot carry."""

import json
import xml.etree.ElementTree as ET

import numpy as np

from tessera_mpi.reports import RunSummary, junit_xml, summary_json
from tessera_mpi.results import CheckRecord

ATTRS = {"world_size": np.int64(72), "mesh_shape": np.array([6, 6, 2]), "mesh_axes": ["tp", "pp", "dp"],
         "created": "2026-12-01T10:00:00Z", "slurm_job_id": "1234"}


def _record(name, status, message="", **attrs):
    return CheckRecord(name=name, status=status, duration_s=1.5, message=message, headline=f"{name} headline",
                       attrs={"failing_ranks": np.array([3], dtype=np.int64), **attrs})


CHECKS = [
    _record("mesh", "passed"),
    _record("bandwidth", "failed", "failed on rank 3 (host n1, device 2): all_reduce 9 GB/s\nsecond line"),
    _record("faults", "error", "error on rank 5: RuntimeError: boom\x00", traceback="Traceback ...\x07"),
    _record("soak", "skipped", "skipped: --duration not given"),
]


def _cases(text):
    root = ET.fromstring(text)
    suite = root.find("testsuite")
    return root, suite, {c.get("name"): c for c in suite.findall("testcase")}


def test_junit_statuses_messages_and_properties():
    text = junit_xml(RunSummary(attrs=ATTRS, checks=CHECKS, results_file="r.h5", elapsed_s=9.0, complete=True,
                                exit_code=1))
    root, suite, cases = _cases(text)
    assert (root.get("tests"), root.get("failures"), root.get("errors"), root.get("skipped")) == ("4", "1", "1", "1")
    assert cases["mesh"].find("failure") is None and cases["mesh"].find("system-out").text == "mesh headline"
    failure = cases["bandwidth"].find("failure")
    assert failure.get("message") == "failed on rank 3 (host n1, device 2): all_reduce 9 GB/s"
    assert failure.text.endswith("second line")
    error = cases["faults"].find("error")
    assert "boom?" in error.get("message") and "Traceback ...?" in error.text  # NUL and BEL replaced
    assert cases["soak"].find("skipped").get("message") == "skipped: --duration not given"
    properties = {p.get("name"): p.get("value") for p in suite.find("properties")}
    assert properties["mesh_shape"] == "6x6x2" and properties["slurm_job_id"] == "1234"
    assert properties["results_file"] == "r.h5" and float(cases["mesh"].get("time")) == 1.5


def test_junit_of_an_unfinished_run_and_a_baseline_regression():
    text = junit_xml(RunSummary(attrs=ATTRS, checks=CHECKS[:1], results_file="r.h5", elapsed_s=1.0, complete=False,
                                baseline="base.h5", baseline_lines=("mesh: passed -> failed (regression)",),
                                baseline_regressions=("mesh: passed -> failed",)))
    _, suite, cases = _cases(text)
    assert cases["run"].find("error").get("type") == "incomplete"
    assert "regression" in cases["baseline"].find("failure").get("message")
    assert suite.get("failures") == "1" and suite.get("errors") == "1"


def test_json_summary():
    document = json.loads(summary_json(RunSummary(attrs=ATTRS, checks=CHECKS, results_file="r.h5", elapsed_s=9.0,
                                                  complete=True, exit_code=1)))
    assert document["format"] == 1 and document["complete"] and not document["passed"]
    assert document["counts"] == {"passed": 1, "skipped": 1, "failed": 1, "error": 1}
    assert document["provenance"]["mesh_shape"] == [6, 6, 2] and document["provenance"]["world_size"] == 72
    bandwidth = document["checks"][1]
    assert bandwidth["failing_ranks"] == [3] and bandwidth["status"] == "failed" and "traceback" not in bandwidth["attrs"]
    assert document["baseline"] is None
