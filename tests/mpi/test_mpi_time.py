"""A rank's time in MPI calls at 4 ranks: a planted slow rank (fault.inject's delay, as the
self-test plants one) spends the least time inside the collectives, the others wait for it;
the runner gathers every rank's figure into the check's `calls` table, and the rack map's
option puts each on its rank's cell."""

import numpy as np
import pytest
from mpi4py import MPI

from tessera_mpi import dist, fault, op
from tessera_mpi.results import ResultsWriter, read_results, table
from tessera_mpi.results.html.rackmap import rank_metrics, ranks_of
from tessera_mpi.suite.checks import registered
from tessera_mpi.suite.options import parse_options
from tessera_mpi.suite.registry import Check
from tessera_mpi.suite.runner import run_check
from tessera_mpi.testing import assert_all

SLOW = 2
DELAY_MS = 60.0
CALLS = 4


@pytest.mark.mpi(min_size=4)
def test_the_rank_the_others_wait_for_spends_least_time_in_mpi_calls(tmp_path):
    def body(ctx):
        x = dist.tensor((64,), mesh=ctx.mesh)
        with fault.inject(delay_ms=DELAY_MS, ranks=[SLOW]):
            for _ in range(CALLS):
                op.all_reduce(x, op="sum", check=False)

    mesh = dist.Mesh(axes=["dp"])
    options = parse_options(["--tests", "mesh"], {name: c.help for name, c in registered().items()})
    record = run_check(Check("waits", body, "all-reduces with one late rank"), mesh=mesh, options=options)
    calls = record.datasets["calls"].data
    size = MPI.COMM_WORLD.size
    assert_all(sorted(calls["rank"].tolist()) == list(range(size)), str(calls))
    seconds = dict(zip(calls["rank"].tolist(), calls["seconds"].tolist()))
    others = [s for r, s in seconds.items() if r != SLOW]
    # Each of the others waits about the delay in each call; the late rank finds them there.
    assert_all(min(others) >= 0.5 * CALLS * DELAY_MS / 1e3 and seconds[SLOW] < 0.5 * min(others), str(seconds))
    # Through the writer and the report: the option's values are on the ranks' cells.
    path = tmp_path / f"waits-{MPI.COMM_WORLD.rank}.h5"
    writer = ResultsWriter(path, attrs={"schema_version": "1.5", "world_size": size}, ranks=table(
        [{"rank": r, "host": "node01", "local_rank": r, "local_size": size, "device": "cpu",
          "coords": np.array([r], dtype=np.int32)} for r in range(size)]))
    writer.add(record)
    writer.write()
    run = read_results(path)
    values = rank_metrics(run, ranks_of(run))["mpi-waits"]["values"]
    assert_all(int(np.argmin(values)) == SLOW and values == [seconds[r] for r in range(size)], str(values))
