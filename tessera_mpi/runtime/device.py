"""One rank per device: the node-local rank, CUDA_VISIBLE_DEVICES, and where each rank lives."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass

from mpi4py import MPI


@dataclass(frozen=True)
class Placement:
    """Where one rank runs: its host, its rank among the ranks of that host, and its device."""

    host: str
    local_rank: int
    local_size: int
    device: str
    """"cpu", "emulated:N" or "cuda:N <name> <PCI bus id>"; N counts the visible devices."""
    pid: int = 0
    """The rank's process id on its host (to end a hung rank's process when the job must end)."""
    gpu: str = ""
    """The GPU as a technician finds it, where NVML (or its emulation) says: "tray 10 slot 2 GPU
    serial 1654322012345 (module 3)" (hardware.GpuIdentity); "" without one."""

    def __str__(self) -> str:
        gpu = f", {self.gpu}" if self.gpu else ""
        return f"host {self.host}, local rank {self.local_rank}, device {self.device}{gpu}"


def node_comm(comm: MPI.Intracomm) -> MPI.Intracomm:
    """Return a communicator of the ranks of `comm` that share this node's memory.

    Collective over `comm`. The shared-memory split is authoritative; launcher variables
    such as OMPI_COMM_WORLD_LOCAL_RANK are not available under every launcher.
    """
    return comm.Split_type(MPI.COMM_TYPE_SHARED, key=comm.rank)


def visible_devices(env: dict[str, str] | None = None) -> list[str] | None:
    """Return the CUDA_VISIBLE_DEVICES entries, or None when the variable is unset (all devices)."""
    value = (os.environ if env is None else env).get("CUDA_VISIBLE_DEVICES")
    if value is None:
        return None
    return [token.strip() for token in value.split(",") if token.strip()]


def device_ordinal(local_rank: int, count: int) -> int | None:
    """Return the device ordinal for a node-local rank, or None when the node has no device.

    Ordinals count the devices this process can see, which CUDA_VISIBLE_DEVICES has already
    renumbered from 0. With more ranks than devices on a node, ranks share devices round-robin;
    with one visible device (srun --gpus-per-task=1), every rank uses ordinal 0.
    """
    if count <= 0:
        return None
    return local_rank % count


def hostname() -> str:
    """Return this host's name as reports should show it."""
    return socket.gethostname()
