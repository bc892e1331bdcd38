"""What a results file says about where it came from: versions, MPI, launcher, command, commit."""

from __future__ import annotations

import shlex
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import mpi4py
import numpy as np
from mpi4py import MPI

from .._version import __version__
from ..dist.mesh import Mesh
from ..runtime import Runtime
from .schema import SCHEMA_VERSION
from .table import table


def git_commit() -> str | None:
    """Return the commit of the tessera_mpi source tree, when it is a git checkout."""
    source = Path(__file__).resolve().parent
    try:
        done = subprocess.run(
            ["git", "-C", str(source), "rev-parse", "HEAD"],
            capture_output=True, text=True, timeout=5, check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    commit = done.stdout.strip()
    if done.returncode != 0 or not commit:
        return None
    dirty = subprocess.run(
        ["git", "-C", str(source), "status", "--porcelain", "--untracked-files=no"],
        capture_output=True, text=True, timeout=5, check=False,
    )
    return commit + ("-dirty" if dirty.stdout.strip() else "")


def root_attrs(rt: Runtime, mesh: Mesh, created: datetime) -> dict[str, Any]:
    """Return the root attributes of a results file (call on the writing rank only)."""
    attrs: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "tessera_mpi_version": __version__,
        "created": created.isoformat(timespec="seconds").replace("+00:00", "Z"),
        "world_size": rt.size,
        "mesh_axes": list(mesh.axes),
        "mesh_shape": np.array(mesh.shape, dtype=np.int64),
        "mpi_library_version": MPI.Get_library_version().replace("\x00", "").strip(),
        "mpi4py_version": mpi4py.__version__,
        "numpy_version": np.__version__,
        "backend": rt.backend.name,
        "backend_reason": rt.backend.reason,
        "buffers": rt.staging.path,
        "cuda_aware": bool(rt.cuda_aware),
        "cuda_aware_source": rt.cuda_aware_source,
        "command_line": shlex.join(getattr(sys, "orig_argv", sys.argv)),
        "launcher": rt.launch.describe(),
        "oversubscribed": bool(rt.oversubscribed),
        "python_version": sys.version.split()[0],
    }
    commit = git_commit()
    if commit:
        attrs["git_commit"] = commit
    if rt.placement.topology:
        attrs["topology"] = rt.placement.topology
    for key in ("slurm_job_id", "slurm_step_id", "slurm_nodelist", "slurm_partition", "slurm_cluster"):
        value = getattr(rt.launch, key)
        if value:
            attrs[key] = value
    return attrs


def ranks_table(mesh: Mesh, identities: list[dict[str, Any]] | None = None) -> np.ndarray:
    """Return the /ranks table: rank, host, local rank and size, device, tray and slot (-1 where
    unknown), mesh coordinates, and with `identities` (by world rank, hardware.GpuIdentity.row)
    each rank's GPU identity."""
    return table([
        {
            "rank": mesh.world_rank(r),
            "host": p.host,
            "local_rank": p.local_rank,
            "local_size": p.local_size,
            "device": p.device,
            "tray": -1 if p.tray is None else p.tray,
            "slot": -1 if p.slot is None else p.slot,
            "coords": np.array(mesh.coords_of(r), dtype=np.int32),
            **(identities[mesh.world_rank(r)] if identities is not None else {}),
        }
        for r, p in enumerate(mesh.placements)
    ])
