"""Whether this job has real fault tolerance (ULFM) or only the simulated kind.

Real: Open MPI built with ULFM, started with `mpirun --with-ft ulfm` (which sets
OMPI_MCA_mpi_ft_enable=1), and an mpi4py exposing Revoke/Shrink/Agree. Anything else runs the
cooperative simulation, which exercises the same detection and recovery paths without killing
a process. TESSERA_FT=real|simulated|auto overrides the choice (real must be possible).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from mpi4py import MPI

from ..errors import ConfigError

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


FAILURE_CLASSES = tuple(
    getattr(MPI, name) for name in ("ERR_PROC_FAILED", "ERR_PROC_FAILED_PENDING", "ERR_REVOKED") if hasattr(MPI, name)
)
"""MPI error classes that mean a process failed (or a peer revoked the communicator for that)."""
