"""Run the suite with one extra check, `planted`, that misbehaves as argv[1] says.

Usage: planted_check.py MODE [suite flags...]; MODE is fail, raise-one, raise-all, hang or skip.
"""

import sys
import time

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
    elif MODE == "skip":
        ctx.skip("not applicable to this mesh")


sys.exit(run(sys.argv[2:]))
