"""Run the suite with one extra check, `par-planted`: the parallelism check with a fault.

Usage: planted_parallelism.py KIND RANK [suite flags...]; KIND is wrong_shard or drop_micro_batch,
RANK the mesh rank that holds it.
"""

import sys

from tessera_mpi.parallel import PlantedFault
from tessera_mpi.suite import register
from tessera_mpi.suite.checks.parallelism import run_parallelism
from tessera_mpi.suite.cli import run

FAULT = PlantedFault(sys.argv[1], rank=int(sys.argv[2]))


@register("par-planted", help="the parallelism check with a planted fault")
def planted(ctx):
    run_parallelism(ctx, fault=FAULT)


sys.exit(run(sys.argv[3:]))
