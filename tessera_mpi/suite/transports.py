"""Which transports the fabric checks measure over: `--transport mpi|nccl|both`, agreed with
what this job can run (NCCL needs device buffers: CuPy with NCCL, or the emulated backend)."""

from __future__ import annotations

from dataclasses import replace

from ..comm import nccl
from ..errors import UsageError
from ..runtime import Runtime
from .options import SuiteOptions


def resolve(rt: Runtime, options: SuiteOptions) -> SuiteOptions:
    """Return the options the checks run with: --transport nccl without NCCL raises UsageError
    (the same message on every rank); --transport both without NCCL runs MPI only, and
    `transport_note` says why.

    Collective over the world: every rank agrees on whether NCCL is usable, naming the first
    rank that cannot use it.
    """
    if options.transport == "mpi":
        return options
    reasons = rt.world.allgather(nccl.unavailable(rt.backend))
    failing = [r for r, reason in enumerate(reasons) if reason]
    if not failing:
        return options
    where = "every rank" if len(failing) == len(reasons) else \
        f"rank {failing[0]}" + (f" and {len(failing) - 1} others" if len(failing) > 1 else "")
    why = f"NCCL is unavailable on {where}: {reasons[failing[0]]}"
    if options.transport == "nccl":
        raise UsageError(f"--transport nccl: {why}; use --transport mpi, or both to run MPI and say so")
    return replace(options, transport="mpi", transport_note=f"--transport both ran MPI only: {why}")


def chosen(options: SuiteOptions) -> tuple[str, ...]:
    """The transports to measure over, in the order each measurement runs them."""
    return ("mpi", "nccl") if options.transport == "both" else (options.transport,)
