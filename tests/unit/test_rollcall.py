"""The roll call's report and the collective timeout's configuration (no MPI communication)."""

import pytest

from tessera_mpi.errors import ConfigError
from tessera_mpi.runtime.rollcall import diagnose
from tessera_mpi.runtime.sentinel import DEFAULT_TIMEOUT_S, timeout_from_env
from tessera_mpi.runtime.tracker import Tracker


def test_every_rank_appears_once_by_where_it_is():
    answers = {0: "in all_reduce #4 (check 'x')", 1: "in all_reduce #4 (check 'x')",
               2: "finished the program after #3", 3: "finished the program after #3",
               4: "between collectives, after #3", 6: "in all_gather #4", 7: "between collectives, after #9"}
    text = diagnose(8, answers, "where every rank is")
    lines = text.splitlines()
    assert lines[0] == "where every rank is: a roll call of 8 ranks got 7 answers"
    assert "  ranks 5 did not answer (hung or dead)" in lines
    assert "  ranks 0-1 wait in collective #4: in all_reduce #4 (check 'x')" in lines
    assert "  ranks 6 wait in collective #4: in all_gather #4" in lines
    assert "  ranks 2-3 finished the program without calling all_reduce #4 (after #3)" in lines
    assert "  rank 4 never reached collective #4: it is between collectives, after #3" in lines
    assert "  rank 7: between collectives, after #9" in lines
    assert "  ranks 5 never reached collective #4" in lines
    assert len(lines) == 8  # the headline, one line per group above, and the silent rank's call


def test_a_finished_rank_says_so():
    t = Tracker()
    t.calls, t.current = 5, "all_reduce"
    assert t.status() == "in all_reduce #5"
    t.current, t.finished = "", True
    assert t.status() == "finished the program after #5"


@pytest.mark.parametrize("raw", ["0", "-3", "soon", "nan", "inf"])
def test_a_bad_collective_timeout_is_a_configuration_error(raw):
    with pytest.raises(ConfigError, match="TESSERA_COLLECTIVE_TIMEOUT"):
        timeout_from_env({"TESSERA_COLLECTIVE_TIMEOUT": raw})


def test_the_collective_timeout_defaults_and_reads_the_environment():
    assert timeout_from_env({}) == DEFAULT_TIMEOUT_S == 300.0
    assert timeout_from_env({"TESSERA_COLLECTIVE_TIMEOUT": " 2.5 "}) == 2.5
