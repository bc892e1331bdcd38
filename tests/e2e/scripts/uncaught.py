"""A user script whose ranks raise: argv[1] is "one" (rank 3 only) or "all"."""

import sys

from tessera_mpi import dist

mesh = dist.Mesh(axes=["dp"])
if sys.argv[1] == "all" or mesh.rank == 3:
    raise ValueError(f"bad input seen on rank {mesh.rank}" if sys.argv[1] == "one" else "bad input")
mesh.comm.Barrier()
