"""`python -m tessera_mpi.suite`."""

import sys

from .cli import run

sys.exit(run())
