"""One rank per device: the node-local rank, CUDA_VISIBLE_DEVICES, and where each rank lives."""

from __future__ import annotations

import os
import socket
from collections.abc import Sequence
from dataclasses import dataclass

from mpi4py import MPI

from ..hardware.nvlink import NvLinkInfo


@dataclass(frozen=True)
class Placement:
    """Where one rank runs: its host, its rank among the ranks of that host, and its device."""

    host: str
    local_rank: int
    local_size: int
    device: str
    """"cpu", "emulated:N" or "cuda:N <name> <PCI bus id>"; N counts the visible devices."""
    pid: int = 0
    """The rank's process id on its machine (to end a hung rank's process when the job must end)."""
    tray: int | None = None
    """The rack's compute tray holding the device (from 1), None when unknown."""
    slot: int | None = None
    """The device's slot in its tray (from 0), None when unknown."""
    machine: str = ""
    """The host the process really runs on, where `pid` lives; differs from `host` only under
    an emulated topology ("" when not recorded: then `host`)."""
    topology: str = ""
    """"emulated topology 18x4" when the host, tray, slot and local rank are emulated, else ""."""
    gpu: str = ""
    """The GPU as a technician finds it, where NVML (or its emulation) says: "tray 10 slot 2 GPU
    serial 1654322012345 (module 3)" (hardware.GpuIdentity); "" without one."""
    nvlink: NvLinkInfo | None = None
    """The GPU's NVLinks as NVML (or its emulation) reported them at start-up: what the fabric
    checks' expected bandwidth comes from (fabric/expectations.py); None without NVML."""

    def __str__(self) -> str:
        gpu = f", {self.gpu}" if self.gpu else ""
        return f"host {self.host}, local rank {self.local_rank}, device {self.device}{gpu}"

    @property
    def process_host(self) -> str:
        """The machine whose processes and memory this rank shares (its real host)."""
        return self.machine or self.host


def node_comm(comm: MPI.Intracomm, placement: Placement | None = None) -> MPI.Intracomm:
    """Return a communicator of the ranks of `comm` on this rank's node.

    Collective over `comm`, with placements of the same kind (all emulated or none) on every
    rank. The node is the shared-memory split, which is authoritative (launcher variables such
    as OMPI_COMM_WORLD_LOCAL_RANK are not available under every launcher); under an emulated
    topology it is the ranks of this rank's emulated host (tray), so that the node-local split
    behaves as on the rack it emulates, after a loss as well.
    """
    if placement is not None and placement.topology and placement.tray is not None:
        return comm.Split(placement.tray, key=comm.rank)
    return comm.Split_type(MPI.COMM_TYPE_SHARED, key=comm.rank)


def sharing_machine(me: Placement, placements: Sequence[Placement]) -> int:
    """Return how many of `placements` run on `me`'s machine (its CPUs and memory are shared by that many)."""
    return sum(p.process_host == me.process_host for p in placements)


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
