"""Collectives that only some ranks call: the job ends within the collective timeout with one
report naming where every rank is, and no rank is left running."""

import re
import subprocess
import time
import uuid

import pytest
from conftest import SCRIPTS, mpirun

SCRIPT = str(SCRIPTS / "partial_collective.py")
TIMEOUT_S = 3.0


def _run(n: int, mode: str, *, timeout_s: float = TIMEOUT_S, limit: float = 120):
    token = f"tessera-{uuid.uuid4().hex[:12]}"
    done = mpirun(n, SCRIPT, mode, token, timeout=limit,
                  env={"TESSERA_COLLECTIVE_TIMEOUT": str(timeout_s)})
    ended = time.time()
    entered = re.search(r"ENTERED (\d+\.\d+)", done.stdout)
    assert entered, done.stdout + done.stderr
    took = ended - float(entered.group(1))  # from the partial collective's start to the job's end
    time.sleep(0.5)
    left = subprocess.run(["pgrep", "-f", token], capture_output=True, text=True).stdout.split()
    assert not left, f"processes left running: {left}"
    return done, took


@pytest.mark.parametrize("n", [4, pytest.param(72, marks=pytest.mark.slow)])
def test_ranks_that_left_are_named_and_the_job_ends(n):
    done, took = _run(n, "leave", limit=240)
    text = done.stdout + done.stderr
    assert done.returncode == 1, text
    assert text.count("a roll call of") == 1, text
    assert f"a roll call of {n} ranks got {n} answers" in text
    assert "op.all_reduce (argument check) #1 did not finish within 3 s" in text
    assert "ranks 0-1 wait in collective #1: in op.all_reduce (argument check) #1" in text
    assert f"ranks 2-{n - 1} finished the program without calling op.all_reduce (argument check) #1" in text
    assert took < TIMEOUT_S + 10, took


def test_a_rank_alive_elsewhere_is_named_as_never_arriving():
    done, took = _run(4, "stuck")
    text = done.stdout + done.stderr
    assert done.returncode == 1, text
    assert text.count("a roll call of 4 ranks got 4 answers") == 1, text
    assert "ranks 0-2 wait in collective #" in text
    assert "rank 3 never reached collective #" in text and "between collectives" in text
    assert took < TIMEOUT_S + 12, took


def test_different_collectives_fail_every_rank_with_one_error():
    done, _ = _run(4, "other")
    text = done.stdout + done.stderr
    assert done.returncode == 1, text
    assert ("DivergenceError: different collectives were called at the same point: ranks 0-1 called "
            "op.all_reduce; ranks 2-3 called op.all_gather") in text
    assert "uncaught exception on all 4 ranks" in text


def test_one_ranks_bad_argument_fails_every_rank_the_same_way():
    done, _ = _run(4, "bogus")
    assert done.returncode == 0, done.stdout + done.stderr
    error = "ValueError: op.all_reduce: op='bogus' is not a reduction; choose one of sum, prod, max, min, avg (on rank 0)"
    for r in range(4):
        assert f"rank {r}: {error}" in done.stdout, done.stdout
        assert f"rank {r}: then all_reduce gave" in done.stdout
    assert len({line.split("gave")[1] for line in done.stdout.splitlines() if "gave" in line}) == 1
