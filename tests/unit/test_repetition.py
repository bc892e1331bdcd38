"""--repeat: one record per check standing for all its repetitions."""

import numpy as np

from tessera_mpi.results import CheckRecord, Dataset
from tessera_mpi.suite.repetition import Spread, combine


def _record(status, duration, failing=(), **attrs):
    message = "" if status == "passed" else f"{status}!"
    return CheckRecord(name="c", status=status, duration_s=duration, message=message,
                       headline=f"{status} {duration}", datasets={"d": Dataset(np.array([duration]))},
                       attrs={"failing_ranks": np.array(failing, dtype=np.int64), **attrs})


def test_one_repetition_is_itself():
    r = _record("passed", 1.0)
    assert combine([r]) is r


def test_worst_status_wins_and_its_first_repetition_is_shown():
    records = [_record("passed", 1.0), _record("failed", 2.0, (3, 4)), _record("failed", 3.0, (5,)),
               _record("passed", 4.0)]
    c = combine(records)
    assert c.status == "failed" and c.duration_s == 10.0 and c.headline == "failed 2.0"
    assert c.attrs["repetition"] == 2 and c.attrs["repetitions"] == 4
    assert list(c.attrs["failing_ranks"]) == [3, 4, 5]
    assert c.message == "repetition 2: failed!\nrepetition 3: failed!"
    rows = c.datasets["repetitions"].data
    assert list(rows["status"]) == ["passed", "failed", "failed", "passed"]
    assert list(rows["failing_ranks"]) == ["none", "3-4", "5", "none"]
    assert c.datasets["d"].data.tolist() == [2.0]
    assert (Spread.of(records).minimum, Spread.of(records).median, Spread.of(records).maximum) == (1.0, 2.5, 4.0)


def test_all_passed_shows_the_last_and_load_is_tabled():
    records = [_record("passed", 1.0, load_bytes=10), _record("passed", 2.0, load_bytes=30)]
    c = combine(records)
    assert c.status == "passed" and c.attrs["repetition"] == 2 and c.message == ""
    assert c.datasets["repetitions"].data["load_bytes"].tolist() == [10, 30]
