"""The process-wide runtime: communicators, placement, array backend and CUDA-awareness of one job."""

from __future__ import annotations

import os
from dataclasses import dataclass

from mpi4py import MPI

from ..agree import agree
from ..errors import ConfigError
from .backend import ArrayBackend, select_backend
from .crash import install_excepthook
from .cuda_aware import detect_cuda_aware
from .device import Placement, device_ordinal, hostname, node_comm
from .launcher import LaunchInfo, detect_launcher
from .transfer import Staging


@dataclass(frozen=True)
class Runtime:
    """Everything a rank knows about the job it runs in, fixed at start-up."""

    world: MPI.Intracomm
    control: MPI.Intracomm
    """A private duplicate of `world` for the framework's own agreements."""
    error_comm: MPI.Intracomm
    """A second duplicate, used only while handling an uncaught exception."""
    node: MPI.Intracomm
    """The ranks of `world` on this node (shared memory)."""
    launch: LaunchInfo
    placement: Placement
    backend: ArrayBackend
    cuda_aware: bool
    cuda_aware_source: str
    staging: Staging
    oversubscribed: bool
    """True on every rank when some node runs more ranks than it has CPUs (a laptop or CI
    running 72 ranks): checks then use small default sizes."""

    @property
    def rank(self) -> int:
        return self.world.rank

    @property
    def size(self) -> int:
        return self.world.size


_current: Runtime | None = None


def current() -> Runtime | None:
    """Return the runtime if `start` has run in this process, else None (no communication)."""
    return _current


def _bind_backend(backend_name: str | None, local_rank: int) -> tuple[ArrayBackend, str]:
    backend = select_backend(backend_name)
    ordinal = device_ordinal(local_rank, backend.device_count())
    return backend, backend.bind(ordinal)


def start(*, backend_name: str | None = None) -> Runtime:
    """Start the runtime on MPI_COMM_WORLD, or return the one already started.

    Collective over MPI_COMM_WORLD the first time. A configuration error on any rank (a
    backend that cannot start, say) raises the same ConfigError on every rank, naming the
    ranks where it happened.
    """
    global _current
    if _current is not None:
        return _current
    world = MPI.COMM_WORLD
    install_excepthook()
    node = node_comm(world)
    error = ""
    try:
        backend, device = _bind_backend(backend_name, node.rank)
        cuda_aware, source = (
            detect_cuda_aware(MPI.get_vendor()[0]) if backend.is_device else (False, "host buffers")
        )
    except ConfigError as exc:
        error = str(exc)
    verdict = agree(world, not error, error)
    if not verdict.ok:
        raise ConfigError(f"the runtime cannot start on {verdict.summary()}")
    crowded = node.size > (os.cpu_count() or 1)
    oversubscribed = bool(world.allreduce(int(crowded), op=MPI.MAX))
    placement = Placement(
        host=hostname(), local_rank=node.rank, local_size=node.size, device=device
    )
    _current = Runtime(
        world=world,
        control=world.Dup(),
        error_comm=world.Dup(),
        node=node,
        launch=detect_launcher(os.environ),
        placement=placement,
        backend=backend,
        cuda_aware=cuda_aware,
        cuda_aware_source=source,
        staging=Staging(backend, cuda_aware=cuda_aware),
        oversubscribed=oversubscribed,
    )
    return _current
