"""Failure injection with recovery: device loss, hangs, slow ranks, silent data corruption.

`fault.inject(...)` is the guide's section 3.5 API; `fault.mode()` says whether failures are
real (ULFM) or simulated in this job.
"""

from .. import runtime
from ..errors import CorruptionError, DeviceLostError, FaultPlanError
from .inject import Injection, inject
from .plan import PLANTS, FaultPlan


def mode() -> str:
    """Return "real" (ULFM) or "simulated" for this job (starts the runtime: collective)."""
    return runtime.start().ft.mode


__all__ = ["PLANTS", "CorruptionError", "DeviceLostError", "FaultPlan", "FaultPlanError", "Injection", "inject", "mode"]
