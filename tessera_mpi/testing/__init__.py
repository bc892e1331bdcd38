"""Collective assertions for tests that run on every rank (`mpirun -n N python -m pytest --with-mpi`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mpi4py import MPI

from ..errors import CollectiveAssertionError
from ..runtime.agree import agree

if TYPE_CHECKING:
    from ..dist.mesh import Mesh

__all__ = ["CollectiveAssertionError", "assert_all"]


def assert_all(condition: object, message: str = "", *, mesh: Mesh | None = None,
               comm: MPI.Intracomm | None = None) -> None:
    """Assert `condition` on every rank together: if it is false on any rank, raise
    CollectiveAssertionError on all of them, naming the failing ranks (with mesh coordinate,
    host and device) and each one's `message`.

    Collective: call on every rank of `mesh` (or `comm`, or the whole job when neither is
    given). A plain `assert` that fails on one rank would leave the others waiting in the
    test's next collective; this one fails the test everywhere at the same point.
    """
    from .. import runtime

    describe = None
    if mesh is not None:
        comm, describe = mesh.comm, mesh.describe
    elif comm is None:
        rt = runtime.start()
        comm, describe = rt.control, rt.describe
    verdict = agree(comm, bool(condition), message)
    if not verdict.ok:
        total = f"{len(verdict.failing)} of {comm.size} ranks"
        raise CollectiveAssertionError(f"assertion failed on {total}:\n{verdict.summary(describe)}",
                                       verdict.failing)
