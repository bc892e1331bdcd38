"""--self-test end to end: every check caught its planted defects and named the planted culprit,
with real ULFM and simulated fault tolerance, at 8 and 72 ranks; a check that cannot fail fails
the self-test; the docs' sample failures are lines such runs print."""

import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

from conftest import FT, ROOT, SCRIPTS, mpirun, unproduced_samples

from tessera_mpi.results import read_results

CHECKS_DOC = ROOT / "docs" / "checks.md"
ROWS = 12
"""Planted defects of the built-in checks."""


def _rows(path: Path) -> list[dict]:
    data = read_results(path).tables["selftest"]
    return [{name: (row[name].decode() if isinstance(row[name], bytes) else row[name]) for name in data.dtype.names}
            for row in data]


def test_self_test_at_8_ranks_simulated(tmp_path):
    out, junit, summary = tmp_path / "self8.h5", tmp_path / "self8.xml", tmp_path / "self8.json"
    done = mpirun(8, "-m", "tessera_mpi.suite", "--self-test", "--quick", "--out", str(out), "--junit", str(junit),
                  "--json", str(summary), timeout=400)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-3000:]
    rows = _rows(out)
    assert len(rows) == ROWS and all(r["verdict"] == "caught" for r in rows), rows
    assert {r["check"] for r in rows} == {"mesh", "sharding", "determinism", "bandwidth", "links", "bisection",
                                          "soak", "parallelism", "faults"}
    # The tautology of the plan compared with itself is gone: a drop that never happens is undetected.
    faults = next(r for r in rows if r["check"] == "faults")
    assert faults["status"] == "failed" and "rank 5" in faults["named"] and "not detected" in faults["detail"]
    # A failing check's headline says what failed first, sanity or performance.
    assert all(re.match(r"(sanity|performance): ", r["detail"]) for r in rows), [r["detail"] for r in rows]
    soak = next(r for r in rows if r["check"] == "soak")
    assert soak["detail"].startswith("performance: throttling") and soak["named"] == "rank 7"
    assert "self-test PASSED: 12 of 12 planted defects caught" in done.stdout
    cases = {c.get("name"): c for c in ET.parse(junit).getroot().iter("testcase")}
    assert sum(name.startswith("selftest ") for name in cases) == ROWS
    assert all(cases[name].find("failure") is None for name in cases if name.startswith("selftest "))
    document = json.loads(summary.read_text())
    assert document["passed"] and len(document["selftest"]) == ROWS
    unproduced = unproduced_samples(CHECKS_DOC, done.stdout)
    assert not unproduced, f"docs/checks.md shows sample lines this run did not print: {unproduced}"


def test_self_test_with_real_failures(tmp_path):
    out = tmp_path / "real.h5"
    done = mpirun(8, "-m", "tessera_mpi.suite", "--self-test", "--quick", "--tests", "mesh,faults", "--out", str(out),
                  timeout=300, launcher=FT["real"])
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-3000:]
    rows = {r["check"]: r for r in _rows(out)}
    assert rows["faults"]["verdict"] == "caught" and rows["faults"]["status"] == "failed"
    assert read_results(out).checks["faults"].attrs["mode"] == "real"


def test_a_check_that_cannot_fail_fails_the_self_test(tmp_path):
    out = tmp_path / "blind.h5"
    done = mpirun(4, str(SCRIPTS / "blind_check.py"), "--self-test", "--tests", "mesh,blind,unplanted", "--out",
                  str(out), timeout=120)
    assert done.returncode == 1, done.stdout + done.stderr
    rows = {r["check"]: r for r in _rows(out)}
    assert rows["mesh"]["verdict"] == "caught"
    assert rows["blind"]["verdict"] == "MISSED" and rows["blind"]["status"] == "passed"
    assert rows["unplanted"]["verdict"] == "no planted defect"
    assert "self-test FAILED: 2 of 3 planted defects not caught" in done.stdout


# The 72-rank self-test shares its launch with the planted slow rank on an emulated NVL72:
# tests/e2e/test_topology_e2e.py::test_self_test_at_72_ranks_and_a_slow_rank_on_its_emulated_host.
