"""Print what the GPU check runs on: driver, CUDA runtime, CuPy, NCCL, the backend probe and
the MPI library's CUDA support. One process; no GPU needed (it says what is missing)."""

from __future__ import annotations

import os
import subprocess


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

            line("NCCL (CuPy)", nccl.get_version())
        except Exception as exc:  # ImportError without the NCCL runtime, CUDA errors
            line("NCCL (CuPy)", f"unavailable: {exc}")
    except ImportError as exc:
        line("CuPy", f"not installed ({exc})")
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


if __name__ == "__main__":
    main()
