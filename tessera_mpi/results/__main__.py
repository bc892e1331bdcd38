"""`python -m tessera_mpi.results`."""

import sys

from .cli import run

sys.exit(run())
