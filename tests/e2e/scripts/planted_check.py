"""Run the suite with one extra check, `planted`, that misbehaves as argv[1] says.

Usage: planted_check.py MODE [suite flags...]; MODE is fail, raise-one, raise-all, hang, skip,
die (rank 3 is killed, unplanned, while the others all-reduce) or slow (every rank sleeps 1.5 s).
"""

import os
import signal
import sys
import time

from tessera_mpi import dist, op

from tessera_mpi.suite import register
from tessera_mpi.suite.cli import run

MODE = sys.argv[1]


@register("planted", help="a check that misbehaves on purpose")
def planted(ctx):
    rank = ctx.mesh.rank
    if MODE == "fail":
        if rank in (2, 5):
            ctx.fail(f"planted failure seen by rank {rank}")
        ctx.headline = "planted"
    elif MODE == "raise-one":
        if rank == 2:
            raise RuntimeError("boom on rank two")
        ctx.mesh.comm.Barrier()
    elif MODE == "raise-all":
        raise RuntimeError("boom everywhere")
    elif MODE == "hang":
        if rank == 1:
            time.sleep(3600)
        ctx.mesh.comm.Barrier()
    elif MODE == "die":
        if rank == 3:
            os.kill(os.getpid(), signal.SIGKILL)
        x = dist.tensor((64,), mesh=ctx.mesh)
        for _ in range(3):
            op.all_reduce(x, op="sum")
            time.sleep(0.2)
    elif MODE == "slow":
        time.sleep(1.5)
        ctx.headline = "slow"
    elif MODE == "skip":
        ctx.skip("not applicable to this mesh")


sys.exit(run(sys.argv[2:]))
