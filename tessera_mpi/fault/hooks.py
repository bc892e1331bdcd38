"""Where faults meet the data path: called by every collective on entry and on its result, and
the translation of MPI's failure errors into DeviceLostError naming the failed ranks."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
from mpi4py import MPI

from .. import runtime
from .._wait import wait_for
from ..errors import DeviceLostError
from ..runtime.ft import FAILURE_CLASSES

if TYPE_CHECKING:
    from .inject import Injection

active: list[Injection] = []
"""Open `fault.inject` blocks on this rank; callers test it before calling the hooks."""

def before(name: str) -> None:
    """Strike the faults planned for this collective (entry): drop, hang, delay."""
    for injection in tuple(active):
        injection.before(name)


def after(result: Any) -> None:
    """Strike the faults planned for this collective's result on this rank: corruption."""
    for injection in tuple(active):
        injection.after(result)


AGREE_S = 2.0
"""How long the members of a failed communicator try to agree on who failed before giving up."""


def _learn_failed(comm: MPI.Comm) -> tuple[int, ...]:
    """Return the ranks of the job's world that failed, as the members of `comm` can learn them.

    A rank that only saw a peer's revocation knows of no failure; a fault-tolerant agreement
    among the members makes every one of them meet the failure, after which it is known. Each
    rank gives up after AGREE_S (a member may be elsewhere), so this never hangs.
    """
    try:
        comm.Ack_failed()
        wait_for(comm.Iagree(np.ones(1, dtype=np.intc)), AGREE_S)
    except MPI.Exception:
        pass
    comm.Ack_failed()
    group = comm.Get_failed()
    ranks = MPI.Group.Translate_ranks(group, list(range(group.Get_size())), runtime.current().world.Get_group())
    return tuple(sorted(r for r in ranks if r != MPI.UNDEFINED))


def lost(exc: MPI.Exception, comm: MPI.Comm, what: str,
         where: Callable[[int], str] | None = None) -> BaseException:
    """Return the exception to raise for `exc`, an MPI error inside collective `what` on `comm`.

    With real fault tolerance and a failure-class error, the communicator is revoked (so every
    member leaves it) and a DeviceLostError names the failed ranks (world rank, host, device,
    and `where(rank)`, e.g. the mesh coordinate). Anything else is returned unchanged.
    """
    rt = runtime.current()
    if rt is None or not rt.ft.real or exc.Get_error_class() not in FAILURE_CLASSES:
        return exc
    try:
        comm.Revoke()
    except MPI.Exception:
        pass
    failed = _learn_failed(comm)
    names = "; ".join(rt.describe(r) + (f" at {where(r)}" if where else "") for r in failed)
    return DeviceLostError(f"{what} failed: ranks lost ({names or 'not known on this rank'}); "
                           f"MPI said: {exc.Get_error_string()}", failed)
