"""Print what the GPU check runs on: this checkout, Python and its packages, driver, CUDA runtime,
CuPy, NCCL, NVML, the backend probe and the MPI library's CUDA support. One process; no GPU
needed (it says what is missing)."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import subprocess
import sys
from pathlib import Path


def line(name: str, value: object) -> None:
    print(f"{name:28s}{value}")


def main() -> None:
    from mpi4py import MPI

    from tessera_mpi.errors import ConfigError
    from tessera_mpi.runtime.backend import select_backend
    from tessera_mpi.runtime.cuda_aware import detect_cuda_aware

    try:
        smi = subprocess.run(["nvidia-smi", "--query-gpu=index,name,pci.bus_id,memory.total,driver_version",
                              "--format=csv,noheader"], capture_output=True, text=True, timeout=30)
        gpus = smi.stdout.strip().splitlines() if smi.returncode == 0 else [f"nvidia-smi failed: {smi.stderr.strip()}"]
    except (OSError, subprocess.TimeoutExpired) as exc:
        gpus = [f"no nvidia-smi ({exc})"]
    for g in gpus:
        line("GPU (nvidia-smi)", g)
    import tessera_mpi

    line("host", f"{platform.node()} ({platform.platform()})")
    line("tessera_mpi", f"{tessera_mpi.__version__} at {Path(tessera_mpi.__file__).parent.parent}, commit {_commit()}")
    line("Python", f"{platform.python_version()} ({sys.executable})")
    for name in ("numpy", "mpi4py", "h5py", "nvidia-ml-py"):
        try:
            line(name, importlib.metadata.version(name))
        except importlib.metadata.PackageNotFoundError:
            line(name, "not installed")
    line("CUDA_VISIBLE_DEVICES", os.environ.get("CUDA_VISIBLE_DEVICES", "(unset: all)"))
    try:
        import cupy

        line("CuPy", cupy.__version__)
        rt = cupy.cuda.runtime
        for what, get in (("CUDA driver API version", rt.driverGetVersion),
                          ("CUDA runtime version", rt.runtimeGetVersion)):
            try:
                line(what, get())
            except Exception as exc:  # CUDA's own error classes
                line(what, f"unavailable: {exc}")
        try:
            from cupy.cuda import nccl

            # CuPy's nccl module imports without the NCCL runtime and says so in `available`.
            line("NCCL (CuPy)", nccl.get_version() if nccl.available else
                 "unavailable: cupy.cuda.nccl.available is False (no NCCL runtime: nvidia-nccl-cu12 or -cu13)")
        except Exception as exc:  # CUDA errors
            line("NCCL (CuPy)", f"unavailable: {exc}")
    except ImportError as exc:
        line("CuPy", f"not installed ({exc})")
    _nvml()
    backend = os.environ.get("TESSERA_BACKEND", "auto")
    try:
        chosen = select_backend(backend)
        line(f"backend ({backend})", f"{chosen.name}: {chosen.reason}")
    except ConfigError as exc:
        line(f"backend ({backend})", f"refused: {exc}")
    line("MPI library", MPI.Get_library_version().splitlines()[0].strip())
    try:
        aware, source = detect_cuda_aware(MPI.get_vendor()[0])
        line("MPI CUDA support", f"{'yes' if aware else 'no'} ({source}): device buffers "
                                 f"{'go to MPI directly' if aware else 'are staged through pinned host memory'}")
    except ConfigError as exc:
        line("MPI CUDA support", f"refused: {exc}")
    line("MPI thread level", f"{MPI.Query_thread()} (THREAD_MULTIPLE is {MPI.THREAD_MULTIPLE})")


def _commit() -> str:
    """The checkout's git commit, where it is one (a copied tree may not be)."""
    try:
        got = subprocess.run(["git", "-C", str(Path(__file__).parent), "describe", "--always", "--dirty"],
                             capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"unknown ({exc})"
    return got.stdout.strip() if got.returncode == 0 else "unknown (not a git checkout)"


def _nvml() -> None:
    """NVML as the health check reads it (hardware/nvml.py): the driver it reports, or why not."""
    try:
        import pynvml  # type: ignore[import-not-found]
    except ImportError as exc:
        line("NVML", f"no pynvml ({exc}): health and GPU identities fall back; pip install nvidia-ml-py")
        return
    try:
        pynvml.nvmlInit()
        try:
            driver = pynvml.nvmlSystemGetDriverVersion()
            count = pynvml.nvmlDeviceGetCount()
        finally:
            pynvml.nvmlShutdown()
        line("NVML", f"driver {driver.decode() if isinstance(driver, bytes) else driver}, {count} GPU(s)")
    except Exception as exc:  # pynvml.NVMLError and its subclasses
        line("NVML", f"unavailable: {exc}")


if __name__ == "__main__":
    main()
