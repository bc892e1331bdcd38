"""Whether the MPI library can read and write GPU memory directly (CUDA-aware MPI)."""

from __future__ import annotations

import ctypes
import os

from ..errors import ConfigError

CUDA_AWARE_ENV = "TESSERA_CUDA_AWARE"
FORCE_ENV = "TESSERA_CUDA_AWARE_FORCE"


def _loaded_libmpi() -> str | None:
    """Return the path of the libmpi this process has loaded (mpi4py loads it privately)."""
    try:
        with open("/proc/self/maps") as maps:
            for line in maps:
                path = line.split()[-1]
                if "/libmpi" in path and ".so" in path:
                    return path
    except OSError:
        pass
    return None


def _open_mpi_query() -> bool | None:
    """Ask Open MPI's MPIX_Query_cuda_support(); None when the symbol is not there."""
    path = _loaded_libmpi()
    if path is None:
        return None
    try:
        query = getattr(ctypes.CDLL(path), "MPIX_Query_cuda_support")
    except (OSError, AttributeError):
        return None
    query.restype = ctypes.c_int
    return bool(query())


def detect_cuda_aware(vendor: str) -> tuple[bool, str]:
    """Return (cuda_aware, how it was decided) for the MPI library of this process.

    TESSERA_CUDA_AWARE=0/1 overrides, except that TESSERA_CUDA_AWARE=1 is refused (ConfigError)
    when the library itself reports no CUDA support: an MPI built without CUDA given device
    pointers crashes the job. TESSERA_CUDA_AWARE_FORCE=1 as well overrides that refusal (an MPI
    whose query is wrong). Otherwise Open MPI is asked directly; MVAPICH2 and Cray MPICH
    announce it through their own variables; anything else is treated as not CUDA-aware, which
    is always correct because buffers are then staged through the host.
    """
    answer = _open_mpi_query() if vendor == "Open MPI" else None
    forced = os.environ.get(CUDA_AWARE_ENV)
    if forced is not None:
        if forced.strip() not in ("0", "1"):
            raise ConfigError(f"{CUDA_AWARE_ENV} must be 0 or 1, got {forced!r}")
        if forced.strip() == "0":
            return False, f"{CUDA_AWARE_ENV}=0"
        if answer is False:
            if os.environ.get(FORCE_ENV, "").strip() != "1":
                raise ConfigError(
                    f"{CUDA_AWARE_ENV}=1 but this {vendor} reports no CUDA support (MPIX_Query_cuda_support "
                    f"is 0), and handing it device pointers crashes the job; unset {CUDA_AWARE_ENV} to "
                    f"stage buffers through host memory, or set {FORCE_ENV}=1 as well if the query is wrong")
            return True, f"{CUDA_AWARE_ENV}=1 {FORCE_ENV}=1 (the library reports no CUDA support)"
        return True, f"{CUDA_AWARE_ENV}=1"
    if answer is not None:
        return answer, "MPIX_Query_cuda_support"
    if os.environ.get("MV2_USE_CUDA") == "1":
        return True, "MV2_USE_CUDA=1"
    if os.environ.get("MPICH_GPU_SUPPORT_ENABLED") == "1":
        return True, "MPICH_GPU_SUPPORT_ENABLED=1"
    return False, f"no CUDA support reported by {vendor}"
