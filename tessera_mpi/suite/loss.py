"""An unplanned loss: a rank dies (a GPU drops, a node reboots) outside any fault-injection block.

Without fault tolerance the launcher ends the whole job at once (Open MPI prints which process
exited); nothing in the job can act. With it (ULFM), the survivors' next collective with the lost
rank fails: the check that was running becomes an `error` naming the lost rank (host, device,
mesh coordinate) and where this rank was, the results writer records it (the file stays marked
incomplete: the run did not finish), the lowest survivor prints one report, and the job ends
with exit 1. The suite does not go on after an unplanned loss: the rack needs a technician.
"""

from __future__ import annotations

from mpi4py import MPI

from .. import runtime
from ..comm import hooks
from ..dist.mesh import Mesh
from ..errors import DeviceLostError, UnplannedLossError
from ..runtime.ft import FAILURE_CLASSES, learn_failed
from ..runtime.tracker import tracker


def lost_ranks(exc: BaseException) -> tuple[int, ...]:
    """Return the world ranks lost if `exc` says a process failed (real fault tolerance, outside
    a fault-injection block), else (). Revokes the framework's control communicator so that every
    survivor meets the failure too. Local, bounded."""
    rt = runtime.current()
    if rt is None or not rt.ft.real or hooks.active:
        return ()
    if isinstance(exc, DeviceLostError) and exc.failed:
        return tuple(exc.failed)
    failure = isinstance(exc, DeviceLostError) or (
        isinstance(exc, MPI.Exception) and exc.Get_error_class() in FAILURE_CLASSES)
    if not failure:
        return ()
    try:
        rt.control.Revoke()
    except MPI.Exception:
        pass
    return learn_failed(rt.control, rt.world) or (-1,)


def loss_error(lost: tuple[int, ...], check: str, mesh: Mesh, exc: BaseException) -> UnplannedLossError:
    """Return the error that names the lost ranks, the check and the collective in which this
    rank met the loss (`exc`)."""
    rt = runtime.current()
    met = (f"in {str(exc).split(' failed:', 1)[0]}" if isinstance(exc, DeviceLostError) and " failed:" in str(exc)
           else "in the check's agreement" if isinstance(exc, MPI.Exception) else "")
    known = [r for r in lost if r >= 0]
    names = "; ".join(f"{rt.describe(r)} at {mesh.where(r)}" for r in known) or "a rank this one cannot name"
    return UnplannedLossError(f"unplanned loss during check {check!r}: {names} was lost; this rank met it "
                              f"{met} (after collective #{tracker.calls - tracker.base} of the check)", tuple(known))
