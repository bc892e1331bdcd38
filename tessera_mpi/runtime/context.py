"""The process-wide runtime: communicators, placement, array backend and CUDA-awareness of one job.

After a failure the runtime is rebuilt on the survivors' communicator (`rebuild`): every
communicator is made anew, every registered mesh rebuilt, and registered listeners (the suite's
results writer) told, in the same order on every survivor.
"""

from __future__ import annotations

import atexit
import os
import sys
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from mpi4py import MPI

from .waits import wait_for
from .agree import agree
from ..errors import ConfigError
from .backend import ArrayBackend, select_backend
from .crash import exit_now, grace_seconds, install_excepthook, leave_if_leaving
from .sentinel import sentinel, timeout_from_env
from .tracker import tracker
from .watchdog import ROLL_CALL_GRACE_S, end_hung_job
from .cuda_aware import detect_cuda_aware
from .device import Placement, device_ordinal, hostname, node_comm, sharing_machine
from .topology import TOPOLOGY_ENV, emulated_topology
from .ft import FaultTolerance, detect
from .launcher import LaunchInfo, detect_launcher
from .transfer import Staging
from ..hardware.telemetry import open_for as open_telemetry
from . import state


@dataclass(frozen=True)
class Runtime:
    """Everything a rank knows about the job it runs in, fixed at start-up."""

    world: MPI.Intracomm
    control: MPI.Intracomm
    """A private duplicate of `world` for the framework's own agreements."""
    error_comm: MPI.Intracomm
    """A second duplicate, used only while handling an uncaught exception."""
    watch: MPI.Intracomm
    """A third duplicate, for roll calls from watchdog threads."""
    ending: MPI.Intracomm
    """A fourth duplicate, where a rank that finished the program waits for the others."""
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
    placements: tuple[Placement, ...]
    """Where every rank of `world` lives, by rank."""
    ft: FaultTolerance
    generation: int = 0
    """How many times the runtime was rebuilt after failures."""
    lost: tuple[tuple[str, Placement], ...] = ()
    """(label, placement at start-up) of every rank lost so far, labelled by its rank at the time
    and its rank at start-up."""
    origin: tuple[int, ...] = ()
    """The rank each rank of `world` had when the job started, by rank of `world` (the identity
    until a loss): a shrink renumbers the survivors, the results file's /ranks table does not."""
    started: tuple[Placement, ...] = ()
    """Where every rank of the job lived when it started, by its rank then. A rebuild renumbers
    local ranks with the ranks; these keep the identity a culprit is to be named by."""

    def describe(self, rank: int) -> str:
        """Return "rank 5 (host n07, local rank 1, device cuda:1 ...)" for a rank of `world`; after
        a shrink renumbered it, "rank 5 (rank 6 at start; host ...)" with the start-up placement
        (a rebuild renumbers local ranks too: the part to pull is the one the job started on)."""
        start = self.at_start(rank)
        if start == rank or not self.started:
            return f"rank {rank} ({self.placements[rank]})"
        return f"rank {rank} (rank {start} at start; {self.started[start]})"

    def at_start(self, rank: int) -> int:
        """Return the rank that rank `rank` of `world` had when the job started (local)."""
        return self.origin[rank] if self.origin else rank

    @property
    def renumbered(self) -> bool:
        """Whether a shrink renumbered `world`: some rank's rank differs from its rank at start."""
        return bool(self.origin) and self.origin != tuple(range(len(self.origin)))

    def describe_started(self, rank: int) -> str:
        """Return "rank 6 (host emul-n02, local rank 2, ..., tray 2 slot 2 GPU serial ...)" for
        rank `rank` of the job's world as it started (a rank since lost included)."""
        return f"rank {rank} ({self.started[rank]})"

    @property
    def rank(self) -> int:
        return self.world.rank

    @property
    def size(self) -> int:
        return self.world.size




@dataclass
class _Registry:
    """What a rebuild must revisit, in creation order (the same on every rank)."""

    meshes: list[tuple[int | None, weakref.ref]] = field(default_factory=list)
    """(serial, mesh): world meshes are numbered in creation order, the same on every rank."""
    serial: int = 0
    listeners: list[Callable[[Runtime, Runtime], None]] = field(default_factory=list)
    real_failures: bool = False
    simulated_drops: bool = False
    shutdown: MPI.Intracomm | None = None
    """A duplicate of the original world, never rebuilt: where parked ranks and survivors meet last."""


_registry = _Registry()


def current() -> Runtime | None:
    """Return the runtime if `start` has run in this process, else None (no communication)."""
    return state.runtime


def _place(backend_name: str | None, rank: int, *, size: int, node_rank: int) -> tuple[ArrayBackend, Placement]:
    """Choose the backend, bind this rank's device and say where the rank is (no communication).

    The host and node-local rank are the real ones, or those of the emulated topology when
    TESSERA_EMULATED_TOPOLOGY is set (the one place that decides which host, local rank and
    device a rank has); the local rank picks the device. Raises ConfigError."""
    backend = select_backend(backend_name)
    topology = emulated_topology(size, backend=backend.name)
    local = topology.local_rank(rank) if topology else node_rank
    device = backend.bind(device_ordinal(local, backend.device_count()))
    if topology is not None:
        return backend, topology.place(rank, device=device, machine=hostname())
    return backend, Placement(host=hostname(), local_rank=local, local_size=1, device=device, machine=hostname())


def _assemble(world: MPI.Intracomm, placement: Placement, *, origin: int,
              started: tuple[Placement, ...] | None = None, **fixed: Any) -> Runtime:
    """Make the runtime's communicators over `world` (collective over it). `origin` is this
    rank's rank when the job started; `started` the job's placements then (None: these are)."""
    node = node_comm(world, placement)
    local = replace(placement, local_rank=node.rank, local_size=node.size, pid=os.getpid())
    # Gathered, not derived from the lost ranks: nothing here depends on a shrink keeping order.
    rows = world.allgather((local, origin))
    placements = tuple(p for p, _ in rows)
    # The real machine's CPUs, whatever hosts are emulated on it.
    crowded = sharing_machine(local, placements) > (os.cpu_count() or 1)
    return Runtime(
        world=world,
        control=world.Dup(),
        error_comm=world.Dup(),
        watch=world.Dup(),
        ending=world.Dup(),
        node=node,
        placement=local,
        oversubscribed=bool(world.allreduce(int(crowded), op=MPI.MAX)),
        placements=placements,
        origin=tuple(o for _, o in rows),
        started=placements if started is None else started,
        **fixed,
    )


def start(*, backend_name: str | None = None) -> Runtime:
    """Start the runtime on MPI_COMM_WORLD, or return the one already started.

    Collective over MPI_COMM_WORLD the first time. A configuration error on any rank (a
    backend that cannot start, say) raises the same ConfigError on every rank, naming the
    ranks where it happened.
    """
    if state.runtime is not None:
        return state.runtime
    world = MPI.COMM_WORLD
    install_excepthook()
    node = node_comm(world)
    error = ""
    try:
        backend, placement = _place(backend_name, world.rank, size=world.size, node_rank=node.rank)
        cuda_aware, source = (
            detect_cuda_aware(MPI.get_vendor()[0]) if backend.is_device else (False, "host buffers")
        )
        ft = detect()
        timeout_s = timeout_from_env()
    except ConfigError as exc:
        error = str(exc)
    verdict = agree(world, not error, error)
    if not verdict.ok:
        raise ConfigError(f"the runtime cannot start on {verdict.summary()}")
    node.Free()
    # The node split below must be of one kind on every rank: an environment that differs
    # between ranks would otherwise mismatch the collectives.
    topologies = sorted(set(world.allgather(placement.topology)))
    if len(topologies) > 1:
        raise ConfigError(f"{TOPOLOGY_ENV} differs between ranks ({' / '.join(t or 'unset' for t in topologies)}); "
                          "give every rank the same environment")
    _registry.shutdown = world.Dup()
    # The GPU's identity goes into the placement, so that every failure message names the part.
    ordinal = device_ordinal(placement.local_rank, backend.device_count())
    tel = open_telemetry(backend.name, host=placement.host, ordinal=ordinal, device_label=placement.device,
                         tray=placement.tray)
    placement = replace(placement, gpu=str(tel.identity), nvlink=tel.nvlink_info())
    state.runtime = _assemble(
        world, placement, origin=world.rank, launch=detect_launcher(os.environ), backend=backend, cuda_aware=cuda_aware,
        cuda_aware_source=source, staging=Staging(backend, direct=cuda_aware), ft=ft,
    )
    atexit.register(_at_exit)
    _record_sys_exit()
    if world.size > 1:
        sentinel.start(timeout_s)
    return state.runtime


def set_collective_timeout(seconds: float) -> None:
    """Bound every collective of this rank by `seconds` from now on (the suite's --timeout);
    local. User scripts get TESSERA_COLLECTIVE_TIMEOUT, default 300 s."""
    sentinel.timeout_s = seconds


def _record_sys_exit() -> None:
    """Make sys.exit(code) remember its code: after a real failure the exit is os._exit, which
    would otherwise lose it. (A bare `raise SystemExit(code)` is not seen.)"""
    original = sys.exit

    def exit(code: object = 0) -> None:
        record_exit_code(code if isinstance(code, int) else (1 if code else 0))
        original(code)

    sys.exit = exit


def register_mesh(mesh: Any, *, on_world: bool) -> None:
    """Remember `mesh` so that a rebuild after a failure rebuilds it too (weakly held).

    A mesh built on the job's world is built by every rank in the same order, so its serial
    number names it on every rank; a mesh on another communicator gets none (it is lost in a
    rebuild, locally: its members are not every survivor).
    """
    serial = None
    if on_world:
        _registry.serial += 1
        serial = _registry.serial
    _registry.meshes.append((serial, weakref.ref(mesh)))


def live_meshes() -> list[Any]:
    """Return the registered meshes still in use on this rank (no communication)."""
    return [m for _, ref in _registry.meshes if (m := ref()) is not None]


def on_rebuild(listener: Callable[[Runtime, Runtime], None]) -> None:
    """Call `listener(old, new)` on every survivor after each rebuild, after the meshes."""
    _registry.listeners.append(listener)


def rebuild(world: MPI.Intracomm, lost: tuple[int, ...], *, real: bool) -> Runtime:
    """Rebuild the runtime on `world`, the survivors, after the loss of old-world ranks `lost`.

    Collective over `world`: every survivor must call it. The communicators of the failed
    world are dropped, not freed (freeing a communicator with a dead member can hang).
    """
    old = state.runtime
    assert old is not None
    _registry.real_failures |= real
    _registry.simulated_drops |= not real
    me = old.placement
    new = state.runtime = _assemble(
        world, me, origin=old.origin[old.rank], started=old.started, launch=old.launch, backend=old.backend,
        cuda_aware=old.cuda_aware, cuda_aware_source=old.cuda_aware_source, staging=old.staging, ft=old.ft,
        generation=old.generation + 1,
        lost=old.lost + tuple((f"rank {r} of {old.size} (rank {old.origin[r]} at start)", old.started[old.origin[r]])
                              for r in lost),
    )
    alive = [(serial, m) for serial, ref in _registry.meshes if (m := ref()) is not None]
    _registry.meshes = [(serial, weakref.ref(m)) for serial, m in alive]
    # Rebuilding a mesh is collective, and whether a mesh is still in use is each rank's own
    # affair (a rank may have dropped its last reference, or never had a sub-communicator's
    # mesh): rebuild only the world meshes every survivor still uses, lose the others locally.
    mine = [serial for serial, _ in alive if serial is not None]
    common = set(mine).intersection(*map(set, world.allgather(mine)))
    for serial, mesh in alive:
        if serial in common:
            mesh._rebuild(old, new, lost)
        else:
            mesh._lose(new, "lost: not every survivor still used it" if serial is not None
                       else "lost: it was built on a communicator other than the job's world")
    for listener in _registry.listeners:
        listener(old, new)
    return new


def shutdown_comm() -> MPI.Intracomm:
    """Return the duplicate of the original world on which everyone, parked or not, meets last."""
    assert _registry.shutdown is not None
    return _registry.shutdown


record_exit_code = state.record_exit_code


def finish(code: int) -> int:
    """End this rank's part of the job with `code` (call on every rank).

    After a real failure, MPI_Finalize can hang (seen in 12 of 49 runs), so survivors flush
    and leave with os._exit. With fault tolerance on, a non-zero code is carried by one rank
    (see crash.exit_now): the ranks first agree on the highest code, within the error grace.
    After simulated drops, first release the parked ranks. Otherwise return `code` for a
    normal exit.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    rt = state.runtime
    if rt is not None and rt.ft.real and (_registry.real_failures or code):
        agreed = _highest(rt.control, code, grace_seconds())
        if agreed is None:
            exit_now(code)
        exit_now(agreed, speaker=rt.control.rank == 0)
    if _registry.simulated_drops:
        _registry.simulated_drops = False
        request = shutdown_comm().Ibarrier()
        while not request.Test():
            time.sleep(0.01)
    return code


def _highest(comm: MPI.Intracomm, code: int, grace: float) -> int | None:
    """Return the highest `code` over `comm`, or None if not every rank gave one within `grace`."""
    mine, highest = np.array([code], dtype=np.int32), np.zeros(1, dtype=np.int32)
    try:
        if not wait_for(comm.Iallreduce(mine, highest, op=MPI.MAX), grace):
            return None
    except MPI.Exception:
        return None
    return int(highest[0])


def _depart() -> None:
    """This rank finished the program: say so to roll calls and wait for the others, bounded.

    A rank that leaves while others wait in a collective it never called would otherwise leave
    them waiting for ever (or hang in MPI_Finalize): here it keeps answering roll calls as
    "finished the program", so the report the others' collective timeout produces names it.
    If the others have not all finished within the collective timeout (plus a roll call's
    grace, so that a collective timeout on the waiting ranks reports first), this rank ends
    the job with that report. Skipped after real failures (the survivors agree on the exit code
    instead, see `finish`)."""
    rt = state.runtime
    if rt is None or rt.size == 1 or not sentinel.running or _registry.real_failures:
        sentinel.stop()
        return
    tracker.finished = True
    tracker.current = ""
    try:
        done = wait_for(rt.ending.Ibarrier(), sentinel.timeout_s + ROLL_CALL_GRACE_S + 1.0)
    except MPI.Exception:
        done = True  # a member failed: the fault-tolerant paths below take over
    if not done:
        end_hung_job(f"not every rank finished the program within {sentinel.timeout_s:g} s of this rank "
                     "(the collective timeout); ending the job")
    sentinel.stop()


def _at_exit() -> None:
    # Scripts that never call finish (the guide's examples) still must not enter a Finalize
    # that can hang after a real failure, nor while the job is being ended.
    leave_if_leaving()
    _depart()
    leave_if_leaving()
    fault_tolerant = state.runtime is not None and state.runtime.ft.real
    if _registry.real_failures or _registry.simulated_drops or (fault_tolerant and state.exit_code):
        finish(state.exit_code)
