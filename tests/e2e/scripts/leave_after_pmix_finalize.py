"""Every rank leaves with os._exit(0) without MPI_Finalize; argv[1] "pmix" finalizes PMIx first.

What a fault-tolerant survivor does at the end (crash.exit_now): the launcher must then see a
normal end. Without the PMIx goodbye it sees ranks that ended without finalizing.
"""

import os
import sys

from mpi4py import MPI

from tessera_mpi.runtime import pmix

MPI.COMM_WORLD.Barrier()
if sys.argv[1] == "pmix":
    print(f"rank {MPI.COMM_WORLD.rank}: {pmix.finalize()}", flush=True)
os._exit(0)
