"""Which launcher started this process (mpirun, srun, Hydra, none) and the Slurm job it belongs to."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class LaunchInfo:
    """How this rank was started; read from the environment, no communication."""

    launcher: str
    """One of "mpirun" (Open MPI/PRRTE), "srun" (Slurm), "hydra" (MPICH mpiexec), "singleton"."""
    env_rank: int | None
    """The rank the launcher announced, if it announced one."""
    env_local_rank: int | None
    """The node-local rank the launcher announced, if it announced one."""
    slurm_job_id: str | None = None
    slurm_step_id: str | None = None
    slurm_nodelist: str | None = None
    slurm_partition: str | None = None
    slurm_cluster: str | None = None

    def describe(self) -> str:
        """Return e.g. "srun (Slurm job 1234 step 0 on gpu[01-18])"."""
        if self.slurm_job_id is None:
            return self.launcher
        step = f" step {self.slurm_step_id}" if self.slurm_step_id is not None else ""
        nodes = f" on {self.slurm_nodelist}" if self.slurm_nodelist else ""
        return f"{self.launcher} (Slurm job {self.slurm_job_id}{step}{nodes})"


def _int(env: Mapping[str, str], *names: str) -> int | None:
    for name in names:
        value = env.get(name)
        if value is not None and value.strip().isdigit():
            return int(value)
    return None


def detect_launcher(env: Mapping[str, str] | None = None) -> LaunchInfo:
    """Read the launcher from environment variables (`env` defaults to os.environ)."""
    env = os.environ if env is None else env
    # mpirun inside a Slurm allocation still exports SLURM_JOB_ID, so Open MPI's own
    # markers decide first; SLURM_PROCID alone means srun started the ranks itself.
    if "PRTE_LAUNCHED" in env or "OMPI_COMM_WORLD_SIZE" in env:
        launcher = "mpirun"
        rank = _int(env, "OMPI_COMM_WORLD_RANK", "PMIX_RANK")
        local = _int(env, "OMPI_COMM_WORLD_LOCAL_RANK")
    elif "SLURM_PROCID" in env and "SLURM_STEP_ID" in env:
        launcher = "srun"
        rank = _int(env, "SLURM_PROCID")
        local = _int(env, "SLURM_LOCALID")
    elif "PMI_RANK" in env or "HYDI_CONTROL_FD" in env:
        launcher = "hydra"
        rank = _int(env, "PMI_RANK")
        local = _int(env, "MPI_LOCALRANKID")
    else:
        launcher = "singleton"
        rank = local = None
    return LaunchInfo(
        launcher=launcher,
        env_rank=rank,
        env_local_rank=local,
        slurm_job_id=env.get("SLURM_JOB_ID"),
        slurm_step_id=env.get("SLURM_STEP_ID"),
        slurm_nodelist=env.get("SLURM_JOB_NODELIST") or env.get("SLURM_NODELIST"),
        slurm_partition=env.get("SLURM_JOB_PARTITION"),
        slurm_cluster=env.get("SLURM_CLUSTER_NAME"),
    )
