"""Bad command lines: each ends at once with exit 2 and one error line, never a hang or a traceback."""

import os
import subprocess
import sys

import pytest
from conftest import ROOT, mpirun

BAD = [
    (["--tests", "mesh,mesh"], "--tests names mesh more than once"),
    (["--tests", "nope"], "unknown check"),
    (["--tests", ""], "empty name"),
    (["--tests", "mesh,,links"], "empty name"),
    (["--sizes", "-5:10"], "--sizes '-5:10': '-5' is not a size"),
    (["--sizes", "8"], "is not MIN:MAX"),
    (["--sizes", "1K:8"], "MAX is below MIN"),
    (["--sizes", "8:1K:1"], "factor"),
    (["--sizes"], "expected one argument"),
    (["--timeout", "0"], "--timeout must be a positive"),
    (["--timeout", "-1"], "--timeout must be a positive"),
    (["--timeout", "soon"], "invalid float"),
    (["--mesh", "0x3"], "not a shape"),
    (["--mesh", "3x3x3"], "configuration error"),
    (["--mesh", "2x2", "--axes", "a,b,c"], "names 3 axes"),
    (["--expect-busbw", "-1"], "--expect-busbw must be above 0"),
    (["--min-efficiency", "2"], "--min-efficiency must be above 0 and at most 1"),
    (["--link-peers", "0"], "--link-peers must be at least 1"),
    (["--repeat", "0"], "--repeat must be at least 1"),
    (["--spares", "-1"], "--spares must be 0 or more"),
    (["--duration", "-1"], "--duration must be 0 or more"),
    (["--out", "same.h5", "--junit", "same.h5"], "--out and --junit name the same file"),
    (["--json", "r.json", "--junit", "./r.json"], "--junit and --json name the same file"),
    (["--tests", "mesh", "--junit", "/etc/passwd/x.xml"], "--junit /etc/passwd/x.xml cannot be written"),
    (["--tests", "mesh", "--baseline", "/nonexistent/base.h5"], "--baseline"),
    (["--bogus"], "unrecognized arguments"),
]


def _error_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("python -m tessera_mpi.suite: ")
            and ("error" in line)]


@pytest.mark.parametrize("argv, text", BAD, ids=[" ".join(a) or "empty" for a, _ in BAD])
def test_bad_input_exits_2_with_one_error_line(argv, text, tmp_path):
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    # A hang would outlive the subprocess timeout and fail the test there (no wall-clock assertion).
    done = subprocess.run([sys.executable, "-m", "tessera_mpi.suite", *argv], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stdout + done.stderr
    errors = _error_lines(done.stderr)
    assert len(errors) == 1 and text in errors[0], done.stderr
    assert "Traceback" not in done.stdout + done.stderr


def test_a_bad_collective_timeout_is_a_configuration_error(tmp_path):
    env = dict(os.environ, TESSERA_COLLECTIVE_TIMEOUT="soon")
    done = subprocess.run([sys.executable, "-m", "tessera_mpi.suite", "--tests", "mesh"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stdout + done.stderr
    errors = _error_lines(done.stderr)
    assert len(errors) == 1 and "TESSERA_COLLECTIVE_TIMEOUT='soon' must be a number of seconds > 0" in errors[0]


@pytest.mark.parametrize("argv, text", [
    (["--tests", "mesh,mesh"], "--tests names mesh more than once"),
    (["--mesh", "3x3"], "configuration error"),
    (["--out", "x.h5", "--json", "x.h5"], "--out and --json name the same file"),
])
def test_at_four_ranks_the_error_is_printed_once(argv, text, tmp_path):
    # A hang would outlive mpirun's timeout and fail the test there (no wall-clock assertion).
    done = mpirun(4, "-m", "tessera_mpi.suite", *argv, timeout=60, cwd=tmp_path,
                  env={"PYTHONPATH": str(ROOT)})
    assert done.returncode == 2, done.stdout + done.stderr
    errors = _error_lines(done.stderr)
    assert len(errors) == 1 and text in errors[0], done.stderr
