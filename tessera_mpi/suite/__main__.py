"""`python -m tessera_mpi.suite`."""

import sys

from .. import runtime
from .cli import run

# After a real failure, finish leaves with os._exit (MPI_Finalize can hang).
sys.exit(runtime.finish(run()))
