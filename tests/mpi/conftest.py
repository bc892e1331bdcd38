"""MPI tests: run under `mpirun -n 4 python -m pytest --with-mpi tests/mpi`.

Every assertion goes through tessera_mpi.testing.assert_all, so a failure on one rank fails the
test on all ranks together; a rank failing alone would leave the others waiting in the next
test. The tessera_mpi pytest plugin guards every test with a watchdog.
"""

import pytest
from mpi4py import MPI


@pytest.fixture
def world():
    return MPI.COMM_WORLD
