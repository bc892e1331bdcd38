"""MPI tests: run under `mpirun -n 4 python -m pytest --with-mpi tests/mpi`.

Every assertion goes through `assert_everywhere`, so a failure on one rank fails the test on
all ranks together; a rank failing alone would leave the others waiting in the next test.
"""

import pytest
from mpi4py import MPI

from tessera_mpi.agree import agree


def assert_everywhere(condition: bool, message: str = "") -> None:
    """Assert `condition` collectively: every rank fails if any rank's condition is false."""
    verdict = agree(MPI.COMM_WORLD, bool(condition), message)
    assert verdict.ok, verdict.summary()


@pytest.fixture
def world():
    return MPI.COMM_WORLD


@pytest.fixture(autouse=True)
def _hang_guard(request):
    """End the whole job, naming the test, if a test hangs (a mismatched collective, say)."""
    from tessera_mpi.runtime import Watchdog

    with Watchdog(120, f"MPI test {request.node.nodeid}"):
        yield
