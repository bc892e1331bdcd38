"""`Mesh`: named axes over the ranks of a job, on an MPI Cartesian communicator."""

from __future__ import annotations

import math
import weakref
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from mpi4py import MPI

from .. import runtime
from ..comm.call import Group
from ..errors import AxisError, MeshSpecError, NotInMeshError
from ..runtime.agree import agree_equal
from ..runtime.device import Placement
from ..util.text import shape_str


def _factorizations(n: int, ndim: int, largest: int) -> Iterable[tuple[int, ...]]:
    """Yield every non-increasing tuple of `ndim` factors of `n`, each at most `largest`."""
    if ndim == 1:
        if n <= largest:
            yield (n,)
        return
    for first in range(min(n, largest), 0, -1):
        if n % first == 0:
            for rest in _factorizations(n // first, ndim - 1, first):
                yield (first, *rest)


@lru_cache(maxsize=64)
def default_shape(n: int, ndim: int) -> tuple[int, ...]:
    """Return the mesh shape used when `shape` is omitted: the most balanced one, outer axes first.

    Among the ways to write n as d1 x d2 x ... with d1 >= d2 >= ..., take the one with the smallest
    d1; among those, the largest d2, then the largest d3, and so on. This keeps the largest axis
    as small as possible and the outer axes equal where the factors allow, leaving the smallest
    axis last: 72 over three axes gives 6x6x2, over two 9x8, 8 over three 2x2x2, 30 over three
    5x3x2.
    """
    if n < 1 or ndim < 1:
        raise MeshSpecError(f"cannot shape {n} devices into {ndim} axes")
    best = min(_factorizations(n, ndim, n), key=lambda dims: (dims[0], [-d for d in dims[1:]]))
    return best


def _normalize_axes(axes: object) -> tuple[str, ...]:
    if isinstance(axes, str):
        axes = (axes,)
    if not isinstance(axes, Sequence):
        raise TypeError(f"Mesh axes must be a sequence of axis names, got {axes!r}")
    for name in axes:
        if not isinstance(name, str):
            raise TypeError(f"Mesh axis names must be str, got {name!r} in {list(axes)!r}")
    names = tuple(axes)
    if not names:
        raise MeshSpecError("Mesh needs at least one axis, e.g. axes=['dp']")
    if any(not n.strip() for n in names):
        raise MeshSpecError(f"Mesh axis names must not be empty: {list(names)!r}")
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise MeshSpecError(f"Mesh axis names must be distinct; {duplicates} given more than once in {list(names)!r}")
    return names


def _normalize_devices(devices: object, world_size: int) -> tuple[int, ...]:
    if devices is None:
        return tuple(range(world_size))
    if not isinstance(devices, Iterable) or isinstance(devices, (str, bytes)):
        raise TypeError(f"Mesh devices must be an iterable of ranks, e.g. range(72), got {devices!r}")
    ranks = []
    for d in devices:
        if isinstance(d, bool) or not hasattr(d, "__index__"):
            raise TypeError(f"Mesh devices must be integer ranks, got {d!r}")
        ranks.append(int(d.__index__()))
    if not ranks:
        raise MeshSpecError("Mesh devices is empty; give at least one rank")
    outside = sorted({r for r in ranks if not 0 <= r < world_size})
    if outside:
        raise MeshSpecError(
            f"Mesh devices {outside[:8]}{'...' if len(outside) > 8 else ''} are outside the job's "
            f"{world_size} ranks (0-{world_size - 1}); launch more ranks or use devices=range({world_size})"
        )
    repeated = sorted({r for r in ranks if ranks.count(r) > 1})
    if repeated:
        raise MeshSpecError(f"Mesh devices must be distinct; ranks {repeated[:8]} are given more than once")
    return tuple(ranks)


def _normalize_shape(shape: object, names: tuple[str, ...], count: int) -> tuple[int, ...]:
    if shape is None:
        return default_shape(count, len(names))
    if isinstance(shape, int) and not isinstance(shape, bool):
        shape = (shape,)
    if not isinstance(shape, Sequence) or any(
        isinstance(s, bool) or not isinstance(s, int) for s in shape
    ):
        raise TypeError(f"Mesh shape must be a sequence of ints, e.g. (6, 6, 2), got {shape!r}")
    dims = tuple(shape)
    if len(dims) != len(names):
        raise MeshSpecError(
            f"Mesh shape {shape_str(dims)} has {len(dims)} sizes but there are {len(names)} axes "
            f"{list(names)}; give one size per axis"
        )
    if any(d < 1 for d in dims):
        raise MeshSpecError(f"Mesh shape {dims} has a size below 1; every axis needs at least one device")
    if math.prod(dims) != count:
        raise MeshSpecError(
            f"Mesh shape {shape_str(dims)} has {math.prod(dims)} positions but {count} devices were "
            f"given; the product of the sizes must equal the device count "
            f"(for {count} devices over {len(names)} axes, e.g. {shape_str(default_shape(count, len(names)))})"
        )
    return dims


def check_mesh_args(
    axes: object, devices: object, shape: object, world_size: int, spares: object = 0
) -> tuple[tuple[str, ...], tuple[int, ...], tuple[int, ...]]:
    """Validate and normalize Mesh arguments without communication; raise MeshSpecError or TypeError.

    The last `spares` devices are held back as spares; the shape covers the others.
    """
    names = _normalize_axes(axes)
    ranks = _normalize_devices(devices, world_size)
    if isinstance(spares, bool) or not isinstance(spares, int):
        raise TypeError(f"Mesh spares must be an int, got {spares!r}")
    if not 0 <= spares < len(ranks):
        raise MeshSpecError(f"Mesh spares={spares} must be at least 0 and leave at least one of the "
                            f"{len(ranks)} devices in the mesh")
    return names, ranks, _normalize_shape(shape, names, len(ranks) - spares)


DATA_PARALLEL_AXIS = "dp"
"""The axis whose replica is dropped when a member fails and no spare is left."""


@dataclass(frozen=True)
class Repair:
    """How a mesh continues after losing devices: its new shape, members and spares."""

    shape: tuple[int, ...]
    members: tuple[int, ...]
    spares: tuple[int, ...]
    note: str


def plan_repair(
    axes: tuple[str, ...], shape: tuple[int, ...], members: tuple[int, ...], spares: tuple[int, ...],
    lost: set[int],
) -> Repair:
    """Return how a mesh of `members` (row-major positions) and `spares` survives losing `lost`.

    Spares take the positions of lost members, in order. Without enough spares, a 1-D mesh
    shrinks, and a mesh with a "dp" axis drops every data-parallel replica that held a lost
    member (its healthy ranks become spares). Otherwise the mesh is lost (no members).
    """
    alive_spares = [r for r in spares if r not in lost]
    holes = [i for i, r in enumerate(members) if r in lost]
    if not holes:
        return Repair(shape, members, tuple(alive_spares), "no member lost")
    if len(holes) <= len(alive_spares):
        filled = list(members)
        moves = []
        for i in holes:
            filled[i] = alive_spares.pop(0)
            moves.append(f"spare {filled[i]} took the place of {members[i]}")
        return Repair(shape, tuple(filled), tuple(alive_spares), "; ".join(moves))
    if len(axes) == 1:
        kept = tuple(r for r in members if r not in lost)
        return Repair((len(kept),), kept, tuple(alive_spares), f"shrank from {len(members)} to {len(kept)}")
    if DATA_PARALLEL_AXIS in axes:
        a = axes.index(DATA_PARALLEL_AXIS)
        grid = np.array(members).reshape(shape)
        lost_replicas = sorted({int(np.argwhere(grid == members[i])[0][a]) for i in holes})
        keep = [c for c in range(shape[a]) if c not in lost_replicas]
        if keep:
            kept = np.take(grid, keep, axis=a)
            new_shape = tuple(len(keep) if d == a else n for d, n in enumerate(shape))
            idle = [int(r) for r in np.take(grid, lost_replicas, axis=a).reshape(-1) if int(r) not in lost]
            return Repair(new_shape, tuple(int(r) for r in kept.reshape(-1)), tuple(alive_spares + idle),
                          f"dropped data-parallel replica(s) {lost_replicas}: {shape_str(shape)} -> "
                          f"{shape_str(new_shape)}")
    return Repair(shape, (), tuple(alive_spares), "lost: no spare left and no data-parallel axis to shrink")


class Mesh:
    """Named axes over a set of ranks: one device per rank, one Cartesian position per device.

    Constructing a Mesh is collective over `comm` (default: the job's world): every rank must
    construct it with the same arguments, or it raises DivergenceError on every rank. Invalid
    arguments raise MeshSpecError (a ValueError) or TypeError on every rank before any
    communication. `devices[i]` is the rank placed at row-major position i, so the last axis
    varies fastest: with the default rank order, ranks next to each other on the last axis are
    on the same node. Ranks of `comm` not in `devices` get a Mesh with `is_member` False; any
    operation that needs membership raises NotInMeshError on them.
    """

    def __init__(
        self,
        axes: Sequence[str],
        devices: Iterable[int] | None = None,
        *,
        shape: Sequence[int] | None = None,
        comm: MPI.Intracomm | None = None,
        spares: int = 0,
    ) -> None:
        rt = runtime.start()
        parent = rt.world if comm is None else comm
        names, ranks, dims = check_mesh_args(axes, devices, shape, parent.size, spares)
        agree_equal(parent, (names, ranks, dims, spares), what="the Mesh arguments (axes, devices, shape, spares)")
        self.epoch = 0
        """Incremented at every rebuild after a failure; tensors compare it with theirs."""
        self.note = ""
        """What the last rebuild did to this mesh."""
        self._on_world = comm is None or comm == rt.world
        self._build(rt, parent, names, dims, ranks[: len(ranks) - spares], ranks[len(ranks) - spares:])
        runtime.register_mesh(self, on_world=self._on_world)

    def _build(
        self, rt: runtime.Runtime, parent: MPI.Intracomm, names: tuple[str, ...], dims: tuple[int, ...],
        members: tuple[int, ...], spares: tuple[int, ...],
    ) -> None:
        """Make the Cartesian communicator and its groups (collective over `parent`)."""
        self.runtime = rt
        self.parent = parent
        self.axes = names
        self.shape = dims
        self.devices = members
        self.spares = spares
        """Ranks of `parent` held back to replace failed members."""
        self.is_member = parent.rank in members
        everyone = parent.allgather(rt.placement)
        self.placements: tuple[Placement, ...] = tuple(everyone[r] for r in members)
        group = parent.Split(
            0 if self.is_member else MPI.UNDEFINED,
            key=members.index(parent.rank) if self.is_member else 0,
        )
        self._comms: dict[tuple[int, ...], MPI.Cartcomm] = {}
        self._groups: dict[object, tuple[tuple[int, ...], Group]] = {}
        self._cart: MPI.Cartcomm | None = None
        if self.is_member:
            self._cart = group.Create_cart(list(dims), periods=[True] * len(dims), reorder=False)
            group.Free()
            self._comms[tuple(range(len(dims)))] = self._cart
            for index in range(len(dims)):
                self.comm_for(names[index])

    def _rebuild(self, old: runtime.Runtime, new: runtime.Runtime, lost: tuple[int, ...]) -> None:
        """Continue on the survivors after old-world ranks `lost` failed (collective over them)."""
        self.epoch += 1
        repair = plan_repair(self.axes, self.shape, self.devices, self.spares, set(lost))
        survivors = [r for r in range(old.size) if r not in set(lost)]
        renumber = {r: i for i, r in enumerate(survivors)}
        members = tuple(renumber[r] for r in repair.members)
        spares = tuple(renumber[r] for r in repair.spares)
        self._build(new, new.world, self.axes, repair.shape, members, spares)
        self.note = repair.note

    def _lose(self, new: runtime.Runtime, note: str) -> None:
        """Stop being a mesh of anyone after a rebuild (local: no communication)."""
        self.epoch += 1
        self.runtime, self.parent, self.note = new, new.world, note
        self.devices, self.spares, self.placements = (), (), ()
        self.is_member, self._cart, self._comms, self._groups = False, None, {}, {}

    @property
    def ndim(self) -> int:
        return len(self.axes)

    @property
    def size(self) -> int:
        return len(self.devices)

    def _require_member(self, what: str) -> None:
        if not self.is_member:
            why = f" ({self.note})" if self.note.startswith("lost") else ""
            raise NotInMeshError(
                f"rank {self.parent.rank} is not one of this mesh's {self.size} devices{why}, so it "
                f"cannot {what}; guard mesh work with `if mesh.is_member:`"
            )

    @property
    def comm(self) -> MPI.Cartcomm:
        """The Cartesian communicator of the whole mesh (rank = mesh rank)."""
        self._require_member("use the mesh communicator")
        assert self._cart is not None
        return self._cart

    @property
    def rank(self) -> int:
        """This rank's position in the mesh (row-major)."""
        return self.comm.rank

    @property
    def coords(self) -> tuple[int, ...]:
        """This rank's mesh coordinates, one per axis."""
        return self.coords_of(self.rank)

    def axis_index(self, axis: str) -> int:
        """Return the position of `axis` in `axes`; raise AxisError for an unknown name."""
        try:
            return self.axes.index(axis)
        except ValueError:
            raise AxisError(f"the mesh has no axis {axis!r}; its axes are {list(self.axes)}") from None

    def axis_size(self, axis: str) -> int:
        """Return the number of devices along `axis`."""
        return self.shape[self.axis_index(axis)]

    def _axis_indices(self, axes: str | Sequence[str]) -> tuple[int, ...]:
        names = (axes,) if isinstance(axes, str) else tuple(axes)
        if not names:
            raise AxisError("name at least one mesh axis")
        indices = sorted({self.axis_index(a) for a in names})
        if len(indices) != len(names):
            raise AxisError(f"mesh axes {list(names)} name an axis twice")
        return tuple(indices)

    def coords_of(self, rank: int) -> tuple[int, ...]:
        """Return the mesh coordinates of mesh rank `rank` (row-major, last axis fastest)."""
        if not 0 <= rank < self.size:
            raise ValueError(f"mesh rank {rank} is not in range({self.size})")
        coords = []
        for dim in reversed(self.shape):
            rank, c = divmod(rank, dim)
            coords.append(c)
        return tuple(reversed(coords))

    def rank_of(self, coords: Sequence[int]) -> int:
        """Return the mesh rank at `coords`."""
        if len(coords) != self.ndim or any(not 0 <= c < d for c, d in zip(coords, self.shape)):
            raise ValueError(f"coordinates {tuple(coords)} are not in a {shape_str(self.shape)} mesh")
        rank = 0
        for c, dim in zip(coords, self.shape):
            rank = rank * dim + c
        return rank

    def world_rank(self, rank: int) -> int:
        """Return the rank in the parent communicator of mesh rank `rank`."""
        return self.devices[rank]

    def placement(self, rank: int) -> Placement:
        """Return the host, local rank and device of mesh rank `rank` (no communication)."""
        return self.placements[rank]

    def where(self, world_rank: int) -> str:
        """Return where rank `world_rank` of the parent sits: "tp=0,pp=1,dp=1", "spare" or "not in the mesh"."""
        if world_rank in self.devices:
            coords = self.coords_of(self.devices.index(world_rank))
            return ",".join(f"{a}={c}" for a, c in zip(self.axes, coords))
        return "spare" if world_rank in self.spares else "not in the mesh"

    def describe(self, rank: int) -> str:
        """Return e.g. "rank 37 (tp=3,pp=0,dp=1; host n07, local rank 1, device cuda:1 ...)"."""
        where = ",".join(f"{a}={c}" for a, c in zip(self.axes, self.coords_of(rank)))
        world = self.devices[rank]
        label = f"rank {rank}" if world == rank else f"mesh rank {rank} (job rank {world})"
        rt = self.runtime
        start = rt.at_start(world) if self._on_world and rt.started else world
        if start != world:
            # A shrink renumbered the job: name the part as the job started (local ranks moved too).
            return f"{label} ({where}; rank {start} at start; {rt.started[start]})"
        return f"{label} ({where}; {self.placements[rank]})"

    def comm_for(self, axes: str | Sequence[str]) -> MPI.Cartcomm:
        """Return the communicator of this rank's group along `axes` (one axis or several).

        Collective over the mesh the first time a given group is asked for (it is then cached):
        every member must ask for it, in the same order as the other members. Ranks in the
        returned communicator are ordered row-major over the named axes, in mesh order.
        """
        self._require_member("use mesh sub-communicators")
        key = self._axis_indices(axes)
        if key not in self._comms:
            remain = [i in key for i in range(self.ndim)]
            self._comms[key] = self.comm.Sub(remain)
        return self._comms[key]

    def group(self, axes: str | Sequence[str] | None, *, transport: str = "mpi") -> tuple[tuple[int, ...], Group]:
        """Return (axis indices, call-path group) of this rank's group along `axes` (None: all)
        over `transport` ("mpi" or "nccl": see `Group.of`).

        Like `comm_for`, collective the first time; then a dictionary lookup, which keeps the
        per-call cost of collectives small. Failures name ranks by their mesh coordinate.
        """
        named = axes if axes is None or isinstance(axes, str) else tuple(axes)
        key = named if transport == "mpi" else (named, transport)
        found = self._groups.get(key)
        if found is None:
            indices = tuple(range(self.ndim)) if axes is None else self._axis_indices(axes)
            comm = self.comm_for([self.axes[i] for i in indices])
            found = self._groups[key] = (indices, Group.of(comm, where=self._where_weakly(), transport=transport))
        return found

    def _where_weakly(self) -> Callable[[int], str]:
        """`where`, without keeping the mesh alive: the runtime holds meshes weakly so that a
        rebuild after a failure revisits only meshes still in use, and the mesh's groups hold
        this function."""
        ref = weakref.ref(self)

        def where(rank: int) -> str:
            mesh = ref()
            return mesh.where(rank) if mesh is not None else "a mesh no longer in use"

        return where

    def group_ranks(self, axes: str | Sequence[str], rank: int) -> tuple[int, ...]:
        """Return the mesh ranks in `rank`'s group along `axes`, in the group communicator's order."""
        key = self._axis_indices(axes)
        base = list(self.coords_of(rank))
        sizes = [self.shape[a] for a in key]
        members = []
        for flat in range(math.prod(sizes)):
            coords = list(base)
            for a, size in zip(reversed(key), reversed(sizes)):
                flat, coords[a] = divmod(flat, size)
            members.append(self.rank_of(coords))
        return tuple(members)

    def __getitem__(self, axes: str | Sequence[str]) -> Mesh:
        """Return the sub-mesh of this rank's group along `axes` (collective over the mesh)."""
        key = self._axis_indices(axes)
        comm = self.comm_for([self.axes[a] for a in key])
        sub = Mesh.__new__(Mesh)
        sub.runtime = self.runtime
        sub.parent = self.parent
        sub.axes = tuple(self.axes[a] for a in key)
        sub.shape = tuple(self.shape[a] for a in key)
        members = self.group_ranks(sub.axes, self.rank)
        sub.devices = tuple(self.devices[r] for r in members)
        sub.placements = tuple(self.placements[r] for r in members)
        sub.is_member = True
        sub._cart = comm
        sub._comms = {tuple(range(len(key))): comm}
        sub._groups = {}
        sub.spares = ()
        sub.epoch = self.epoch
        sub.note = ""
        sub._on_world = False
        return sub

    def __repr__(self) -> str:
        if not self.devices:
            return f"Mesh(axes={list(self.axes)!r}, devices=[], shape={self.shape!r})"
        devices = self.devices
        shown = (
            f"range({devices[0]}, {devices[-1] + 1})"
            if devices == tuple(range(devices[0], devices[-1] + 1))
            else repr(list(devices))
        )
        return f"Mesh(axes={list(self.axes)!r}, devices={shown}, shape={self.shape!r})"

    def __str__(self) -> str:
        return f"{shape_str(self.shape)} mesh ({','.join(self.axes)}) over {self.size} devices"
