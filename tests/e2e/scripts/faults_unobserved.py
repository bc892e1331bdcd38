"""Run the suite with the faults check's two-victim loss going unobserved (argv: suite flags).

The defect is planted here, in the test, not in the framework: survivors that caught
drop-two's DeviceLostError report that they did not, so the check must fail blaming drop-two's
victims. Those are numbered in the world that drop-one's loss shrank and renumbered, which is
what the culprits must not be named by.

A second check, `after-shrink` (run it after faults: `--tests faults,after-shrink`), fails on the
last rank of the world the faults check left, which a shrink renumbered: its culprit is that
rank as the check numbers it (the default, this rank), and its message names the launcher's
rank for it (OMPI_COMM_WORLD_RANK, the rank at start, known without the framework).
"""

import os
import sys

from tessera_mpi.suite import register
from tessera_mpi.suite.checks import faults
from tessera_mpi.suite.cli import run


@register("after-shrink", help="fails on the last rank of the shrunk world (a test's planted defect)")
def after_shrink(ctx):
    rt = ctx.runtime
    if rt.rank == rt.size - 1:
        ctx.fail(f"planted on launcher rank {os.environ['OMPI_COMM_WORLD_RANK']}, {rt.describe(rt.rank)}")
    ctx.headline = f"after-shrink on {rt.size} ranks"


observed = faults._lost
faults._lost = lambda exc, victims: False if len(victims) == 2 else observed(exc, victims)
sys.exit(run(sys.argv[1:]))
