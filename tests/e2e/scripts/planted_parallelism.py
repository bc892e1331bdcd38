"""Run the suite with one extra check, `par-planted`: the parallelism check with a planted defect.

Usage: planted_parallelism.py KIND RANK [suite flags...]; KIND is wrong_shard or drop_micro_batch,
RANK the job rank that holds it (fault.inject(plant="parallel.KIND", ranks=[RANK])).
"""

import sys

from tessera_mpi import fault
from tessera_mpi.suite import register
from tessera_mpi.suite.checks.parallelism import run_parallelism
from tessera_mpi.suite.cli import run

KIND, RANK = sys.argv[1], int(sys.argv[2])


@register("par-planted", help="the parallelism check with a planted defect")
def planted(ctx):
    with fault.inject(plant=f"parallel.{KIND}", ranks=[RANK]):
        run_parallelism(ctx)


sys.exit(run(sys.argv[3:]))
