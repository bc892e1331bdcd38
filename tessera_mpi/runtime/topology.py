"""Hosts and trays: the emulated topology (TESSERA_EMULATED_TOPOLOGY=HOSTSxDEVICES) and where
host boundaries fall in rank order.

An emulated topology gives the ranks of one machine the identities of a rack's hosts, so that
host-aware code (the node-local split, placement tables, host blocks, failure reports) runs
with many hosts where there is one: only the identity is emulated, communication stays real
MPI. It is honoured with the emulated backend only; a real run never takes a fake identity.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ..errors import ConfigError
from ..util.text import plural
from .device import Placement

TOPOLOGY_ENV = "TESSERA_EMULATED_TOPOLOGY"
HOST_PREFIX = "emul-n"
_FORM = re.compile(r"\s*(\d+)\s*[xX]\s*(\d+)\s*")


@dataclass(frozen=True)
class Topology:
    """HOSTS hosts of DEVICES devices each, one rank per device, assigned in blocks.

    Rank r is on host r // DEVICES (named emul-n01, emul-n02, ... in that order; tray r // DEVICES
    + 1) with local rank, device ordinal and slot r % DEVICES: ranks 0-3 on emul-n01, 4-7 on
    emul-n02 for 18x4, as Slurm's default block distribution and `mpirun --map-by ppr:4:node`
    place them on a rack.
    """

    hosts: int
    devices: int

    def __post_init__(self) -> None:
        if self.hosts < 1 or self.devices < 1:
            raise ConfigError(f"{TOPOLOGY_ENV}={self} needs at least one host and one device per host, e.g. 18x4")

    def __str__(self) -> str:
        return f"{self.hosts}x{self.devices}"

    @property
    def label(self) -> str:
        """What results and headers say wherever they name hosts: "emulated topology 18x4"."""
        return f"emulated topology {self}"

    @property
    def size(self) -> int:
        """The ranks the topology holds: one per device."""
        return self.hosts * self.devices

    def host_name(self, index: int) -> str:
        """Return the name of host `index` (from 0): emul-n01, ..., emul-n18 (three digits past 99)."""
        return f"{HOST_PREFIX}{index + 1:0{max(2, len(str(self.hosts)))}d}"

    def fit(self, ranks: int) -> None:
        """Raise ConfigError unless a job of `ranks` ranks fills the topology exactly."""
        if ranks == self.size:
            return
        hint = f"{ranks // self.devices}x{self.devices}" if ranks % self.devices == 0 else f"{ranks}x1"
        raise ConfigError(f"{TOPOLOGY_ENV}={self} holds {self.size} ranks ({self.hosts} hosts x {self.devices} "
                          f"devices) but the job has {ranks}; launch {self.size} ranks or set a topology of "
                          f"{ranks}, e.g. {hint}")

    def local_rank(self, rank: int) -> int:
        """Return job rank `rank`'s local rank on its host, which is also its device ordinal and slot."""
        if not 0 <= rank < self.size:
            raise ValueError(f"rank {rank} is outside the {self} topology (ranks 0-{self.size - 1})")
        return rank % self.devices

    def place(self, rank: int, *, device: str, machine: str) -> Placement:
        """Return the placement of job rank `rank`: its emulated host, tray, slot and local rank.

        `device` is the label the backend bound for the rank's local rank; `machine` is the
        real host the process runs on (where its pid lives)."""
        local = self.local_rank(rank)
        index = rank // self.devices
        return Placement(host=self.host_name(index), local_rank=local, local_size=self.devices, device=device,
                         tray=index + 1, slot=local, machine=machine, topology=self.label)


def read_topology(env: Mapping[str, str] | None = None) -> Topology | None:
    """Return the topology TESSERA_EMULATED_TOPOLOGY names, or None when it is unset or empty.

    Raises ConfigError for a value that is not HOSTSxDEVICES with positive numbers."""
    value = (os.environ if env is None else env).get(TOPOLOGY_ENV, "")
    if not value.strip():
        return None
    match = _FORM.fullmatch(value)
    if match is None:
        raise ConfigError(f"{TOPOLOGY_ENV}={value!r} is not HOSTSxDEVICES; give e.g. 18x4 (18 hosts of 4 devices)")
    return Topology(int(match.group(1)), int(match.group(2)))


def emulated_topology(ranks: int, *, backend: str, env: Mapping[str, str] | None = None) -> Topology | None:
    """Return the topology a job of `ranks` ranks on `backend` runs under, or None for the real one.

    Raises ConfigError for a malformed value, a backend other than the emulated one (a real
    device never takes a fake identity), or a rank count that does not fill the topology. No
    communication: every rank reads the same environment and reaches the same verdict.
    """
    topology = read_topology(env)
    if topology is None:
        return None
    if backend != "emulated":
        raise ConfigError(f"{TOPOLOGY_ENV}={topology} is honoured only with TESSERA_BACKEND=emulated (this run's "
                          f"backend is {backend}); set TESSERA_BACKEND=emulated or unset {TOPOLOGY_ENV}")
    topology.fit(ranks)
    return topology


@dataclass(frozen=True)
class HostBlock:
    """A run of consecutive ranks on one host: where a rank-by-rank heatmap draws its boundaries."""

    host: str
    first: int
    last: int

    @property
    def ranks(self) -> range:
        return range(self.first, self.last + 1)


def host_blocks(hosts: Sequence[str]) -> list[HostBlock]:
    """Return the blocks of consecutive ranks on one host, in rank order, from each rank's host.

    A host whose ranks are not consecutive (a cyclic distribution) appears once per run."""
    blocks: list[HostBlock] = []
    for rank, host in enumerate(hosts):
        if blocks and blocks[-1].host == host:
            blocks[-1] = HostBlock(host, blocks[-1].first, rank)
        else:
            blocks.append(HostBlock(host, rank, rank))
    return blocks


def hosts_phrase(placements: Sequence[Placement]) -> str:
    """Return "18 hosts (emulated topology 18x4)", or "1 host" when the topology is real."""
    text = plural(len({p.host for p in placements}), "host")
    labels = sorted({p.topology for p in placements if p.topology})
    return f"{text} ({', '.join(labels)})" if labels else text
