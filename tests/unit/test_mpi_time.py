"""A rank's time in MPI calls: what the call path adds up (tracker.seconds), what a check
records of it (`calls` table), and the report's rack-map option built from it.

Single process: the transport is MPI on COMM_SELF, made slow where a test needs a known time
inside the call.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pytest
from mpi4py import MPI

from tessera_mpi import dist, runtime
from tessera_mpi.comm import hooks
from tessera_mpi.comm.call import Group
from tessera_mpi.comm.transport import MpiTransport
from tessera_mpi.fabric.sweep import kernel
from tessera_mpi.fabric.timing import time_loop
from tessera_mpi.results import CheckRecord, Dataset, ResultsWriter, read_results, table
from tessera_mpi.results.html import run_report
from tessera_mpi.results.html.rackmap import MPI_WORDS, NO_MPI_TIME, rank_metrics, ranks_of
from tessera_mpi.results.measures import mpi_seconds
from tessera_mpi.runtime.tracker import tracker
from tessera_mpi.suite.checks import registered
from tessera_mpi.suite.options import parse_options
from tessera_mpi.suite.registry import Check
from tessera_mpi.suite.runner import run_check

INSIDE_S = 0.02
"""How long the slow transport's all-reduce takes: a known time inside each call."""


class Slow(MpiTransport):
    """MPI on COMM_SELF whose all-reduce takes INSIDE_S longer."""

    def all_reduce(self, send: Any, recv: Any, **kwargs: Any) -> None:
        time.sleep(INSIDE_S)
        super().all_reduce(send, recv, **kwargs)


class Delay:
    """A planned delay as fault.inject plants one: it strikes in `before`, as the call starts."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def before(self, name: str) -> None:
        time.sleep(self.seconds)

    def after(self, result: Any) -> None:
        pass

    def plants(self, name: str) -> bool:
        return False

    def lost(self, error: BaseException) -> None:
        pass


@pytest.fixture
def rt():
    return runtime.start()


def slow_group(rt: runtime.Runtime, *, tracked: bool = True) -> Group:
    return Group(comm=MPI.COMM_SELF, transport=Slow(MPI.COMM_SELF), staging=rt.staging, members=(rt.rank,),
                 tracked=tracked)


def _all_reduces(group: Group, n: int) -> None:
    x, y = np.ones(8), np.empty(8)
    for _ in range(n):
        with group.call("all_reduce", x.nbytes, x.dtype) as call:
            call.all_reduce(x, y)


def test_every_call_adds_its_time_inside_and_a_planted_delay_is_not_counted(rt):
    group = slow_group(rt)
    seconds, calls = tracker.seconds, tracker.calls
    _all_reduces(group, 5)
    inside = tracker.seconds - seconds
    assert tracker.calls - calls == 5
    assert 5 * INSIDE_S <= inside < 5 * INSIDE_S + 0.5, inside
    # A planted delay makes the rank late, not busy in MPI: it strikes before the clock starts.
    delay = Delay(0.05)
    hooks.active.append(delay)
    try:
        seconds, start = tracker.seconds, time.perf_counter()
        _all_reduces(group, 3)
        wall, inside = time.perf_counter() - start, tracker.seconds - seconds
    finally:
        hooks.active.remove(delay)
    assert wall >= 3 * (0.05 + INSIDE_S) and 3 * INSIDE_S <= inside < 3 * 0.05, (wall, inside)


def test_a_failing_call_counts_its_time_and_a_background_group_none(rt):
    class Failing(Slow):
        def all_reduce(self, send: Any, recv: Any, **kwargs: Any) -> None:
            time.sleep(INSIDE_S)
            raise MPI.Exception(MPI.ERR_OTHER)

    group = Group(comm=MPI.COMM_SELF, transport=Failing(MPI.COMM_SELF), staging=rt.staging, members=(rt.rank,))
    seconds = tracker.seconds
    with pytest.raises(MPI.Exception):
        _all_reduces(group, 1)
    assert tracker.seconds - seconds >= INSIDE_S
    # Another thread's calls (the background load) are not this rank's time in MPI.
    seconds = tracker.seconds
    _all_reduces(slow_group(rt, tracked=False), 2)
    assert tracker.seconds == seconds


def test_the_timed_loops_count_bound_calls_each_run_and_a_compiled_batch_once(rt):
    k = kernel("all_reduce", MPI.COMM_SELF, rt, count=16, dtype=np.float32, in_place=False)
    seconds, calls, own = tracker.seconds, tracker.calls, k.call.seconds
    timing = time_loop(MPI.COMM_SELF, k.run, iterations=20, warmup=2)
    assert timing.loop == "python" and tracker.calls - calls == 22
    # The bound call's own sum (the sweeps' wait figure) and the tracker's are the same clock reads.
    assert tracker.seconds - seconds == pytest.approx(k.call.seconds - own, rel=1e-9, abs=1e-12)
    assert tracker.seconds > seconds
    seconds, calls, own = tracker.seconds, tracker.calls, k.call.seconds
    timing = time_loop(MPI.COMM_SELF, k.run, iterations=20, warmup=2, batch=k.batch)
    assert timing.loop == "compiled" and tracker.calls - calls == 1  # one call around the whole loop
    assert tracker.seconds - seconds == pytest.approx(k.call.seconds - own, rel=1e-9, abs=1e-12)


def test_a_check_records_its_calls_and_time_inside_through_the_writer(rt, tmp_path):
    """run_check on one rank: the `calls` table has this rank's time inside the check's calls
    (and not the time outside them), the writer stores it and the reader gives it back."""
    def body(ctx):
        time.sleep(0.1)  # outside any call: not time in MPI
        _all_reduces(slow_group(rt), 4)

    mesh = dist.Mesh(axes=["dp"])
    options = parse_options(["--tests", "mesh"], {name: c.help for name, c in registered().items()})
    record = run_check(Check("waits", body, "a check of four slow all-reduces"), mesh=mesh, options=options)
    calls = record.datasets["calls"].data
    assert calls.dtype.names == ("rank", "seconds", "calls") and len(calls) == 1
    assert int(calls["rank"][0]) == 0 and int(calls["calls"][0]) == 4
    assert 4 * INSIDE_S <= float(calls["seconds"][0]) < 0.1 + 4 * INSIDE_S
    out = tmp_path / "run.h5"
    writer = ResultsWriter(out, attrs={"schema_version": "1.5", "world_size": 1}, ranks=table(
        [{"rank": 0, "host": "node01", "local_rank": 0, "local_size": 1, "device": "cpu",
          "coords": np.array([0], dtype=np.int32)}]))
    writer.add(record)
    writer.write()
    back = read_results(out).checks["waits"].datasets["calls"]
    assert back.dtype.names == ("rank", "seconds", "calls") and back["seconds"][0] == calls["seconds"][0]
    assert mpi_seconds(read_results(out))["waits"][0] == calls["seconds"][0]


def _ranks(n: int) -> np.ndarray:
    return table([{"rank": r, "host": f"node{r // 4 + 1:02d}", "local_rank": r % 4, "local_size": 4,
                   "device": "cpu", "coords": np.array([r], dtype=np.int32)} for r in range(n)])


def _record(name: str, calls: np.ndarray | None) -> CheckRecord:
    datasets = {} if calls is None else {"calls": Dataset(calls)}
    return CheckRecord(name=name, status="passed", duration_s=1.0, message="", headline="ok", datasets=datasets,
                       attrs={"sanity": "passed", "performance": "not judged", "not_judged": "", "figures": "",
                              "culprits": [], "failing_ranks": np.array([], dtype=np.int64)})


def _write(path, records, n=8):
    writer = ResultsWriter(path, attrs={"schema_version": "1.5", "world_size": n, "backend": "numpy",
                                        "created": "2026-12-04T05:00:00Z", "complete": True, "exit_code": 0},
                           ranks=_ranks(n))
    writer.checks = list(records)
    writer.write()
    return read_results(path)


def test_the_rack_map_offers_time_in_mpi_calls_per_check_and_in_total_on_the_right_cells(tmp_path):
    """Rows in launch-rank order or not, a rank lost before the second check (no row): each
    value lands on its rank's cell, in seconds; the total adds every check the rank ran."""
    first = table([{"rank": r, "seconds": 1.0 + r / 10, "calls": 10} for r in range(8)])
    # After a loss of rank 3 the survivors' rows still carry their launch rank, in any order.
    second = table([{"rank": r, "seconds": 0.5 if r == 6 else 2.0, "calls": 4} for r in (7, 0, 1, 2, 4, 5, 6)])
    run = _write(tmp_path / "new.h5", [_record("mesh", first), _record("links", second)])
    metrics = rank_metrics(run, ranks_of(run))
    assert metrics["mpi-mesh"]["values"] == pytest.approx([1.0 + r / 10 for r in range(8)])
    links = metrics["mpi-links"]["values"]
    assert links[3] is None and links[6] == 0.5 and [links[r] for r in (0, 1, 2, 4, 5, 7)] == [2.0] * 6
    total = metrics["mpi-total"]["values"]
    assert total[3] == pytest.approx(1.3) and total[6] == pytest.approx(1.6 + 0.5) and total[0] == pytest.approx(3.0)
    assert {metrics[k]["unit"] for k in ("mpi-total", "mpi-mesh", "mpi-links")} == {"s"}
    assert metrics["mpi-total"]["label"] == f"{MPI_WORDS}: all checks"
    # Not also offered as an anonymous per-rank column.
    assert not [k for k in metrics if "calls" in k]
    page = run_report(run)
    assert f'<option value="mpi-total">{MPI_WORDS}: all checks</option>' in page
    assert f'<option value="mpi-links">{MPI_WORDS}: links</option>' in page
    assert 'id="no-mpi-time"' not in page
    # The check's section says who waited least (the rank the others waited for).
    assert "min 0.5 s (rank 6)" in page


def test_an_older_file_without_the_calls_tables_still_reports_and_says_so(tmp_path):
    old = _write(tmp_path / "old.h5", [_record("mesh", None), _record("links", None)])
    assert mpi_seconds(old) == {}
    assert not [k for k in rank_metrics(old, ranks_of(old)) if k.startswith("mpi-")]
    page = run_report(old)
    assert 'value="mpi-' not in page and NO_MPI_TIME in page and page.count('class="cell ') >= 8
