"""Whether this job has real fault tolerance (ULFM) or only the simulated kind.

Real: Open MPI built with ULFM, started with `mpirun --with-ft ulfm` (which sets
OMPI_MCA_mpi_ft_enable=1), and an mpi4py exposing Revoke/Shrink/Agree. Anything else runs the
cooperative simulation, which exercises the same detection and recovery paths without killing
a process. TESSERA_FT=real|simulated|auto overrides the choice (real must be possible).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

import numpy as np
from mpi4py import MPI

from ..errors import ConfigError
from .waits import wait_for

FT_ENV = "TESSERA_FT"


@dataclass(frozen=True)
class FaultTolerance:
    """The fault-tolerance mode of the job and why."""

    mode: str
    """"real" (ULFM: failed processes really die, survivors revoke and shrink) or "simulated"."""
    reason: str

    @property
    def real(self) -> bool:
        return self.mode == "real"

    def describe(self) -> str:
        return f"{self.mode} ({self.reason})"


def _real_possible() -> tuple[bool, str]:
    if not all(hasattr(MPI.Comm, name) for name in ("Revoke", "Shrink", "Agree", "Get_failed", "Ack_failed")):
        return False, "this mpi4py has no ULFM calls"
    if not hasattr(MPI, "ERR_PROC_FAILED"):
        return False, "this MPI defines no ULFM error classes"
    vendor = MPI.get_vendor()[0]
    if vendor != "Open MPI":
        return False, f"{vendor}'s fault tolerance is not usable from mpi4py"
    if os.environ.get("OMPI_MCA_mpi_ft_enable", "").strip().lower() not in ("1", "true", "yes"):
        return False, "Open MPI started without --with-ft ulfm"
    return True, "ULFM, Open MPI started with --with-ft ulfm"


def detect() -> FaultTolerance:
    """Return the fault-tolerance mode (local; the runtime agrees on it across ranks)."""
    forced = os.environ.get(FT_ENV, "auto").strip().lower()
    if forced not in ("auto", "real", "simulated"):
        raise ConfigError(f"{FT_ENV}={forced!r}; choose auto, real or simulated")
    possible, reason = _real_possible()
    if forced == "simulated":
        return FaultTolerance("simulated", f"{FT_ENV}=simulated")
    if forced == "real" and not possible:
        raise ConfigError(f"{FT_ENV}=real but {reason}")
    return FaultTolerance("real", reason) if possible else FaultTolerance("simulated", reason)


def learn_failed(comm: MPI.Comm, world: MPI.Intracomm) -> tuple[int, ...]:
    """Return the ranks of `world` that failed, as the members of `comm` can learn them.

    A rank that only saw a peer's revocation knows of no failure; a fault-tolerant agreement
    among the members makes every one of them meet the failure, after which it is known. An
    agreement raises, at every member alike, when some member had not acknowledged a failure
    it met (a second victim that died while the first was being handled): the members then
    acknowledge and agree again, until one agreement succeeds, so that every member names the
    same failures. Each rank gives up after agree_seconds(world.size) (a member may be
    elsewhere), so this never hangs. `Agree` with an unacknowledged failure raises and loses
    its value, so failures are acknowledged first and the non-blocking form is used.
    """
    deadline = time.monotonic() + agree_seconds(world.size)
    while True:
        try:
            comm.Ack_failed()
            # Done when it succeeds (every member had acknowledged every failure it met) or
            # when the time is up (a member is elsewhere: name what this rank knows).
            wait_for(comm.Iagree(np.ones(1, dtype=np.intc)), max(0.0, deadline - time.monotonic()))
            break
        except MPI.Exception:
            pass  # the same at every member: acknowledge what the agreement met, agree again
        if time.monotonic() >= deadline:
            break
    comm.Ack_failed()
    group = comm.Get_failed()
    ranks = MPI.Group.Translate_ranks(group, list(range(group.Get_size())), world.Get_group())
    return tuple(sorted(r for r in ranks if r != MPI.UNDEFINED))


AGREE_S = 2.0
"""How long the members of a failed communicator try to agree on who failed before giving up..."""
AGREE_S_PER_RANK = 0.04
"""...and this much longer per rank of the job: 144 ranks oversubscribed on 2 cores took more
than 2 s to agree, and one survivor then named one of two victims."""


def agree_seconds(size: int) -> float:
    """How long a rank of a job of `size` ranks waits for the agreement on who failed (local)."""
    return AGREE_S + AGREE_S_PER_RANK * size


FAILURE_CLASSES = tuple(
    getattr(MPI, name) for name in ("ERR_PROC_FAILED", "ERR_PROC_FAILED_PENDING", "ERR_REVOKED") if hasattr(MPI, name)
)
"""MPI error classes that mean a process failed (or a peer revoked the communicator for that)."""
