"""Layouts of a tensor over a mesh (`ShardSpec`, `Replicate`) and the one rule for uneven shards."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Union

from ..errors import LayoutError

if TYPE_CHECKING:
    from .mesh import Mesh

DIM_NAMES = {"row": 0, "col": 1}
"""Names accepted in ShardSpec.partition for the first two tensor dimensions."""


def shard_bounds(length: int, parts: int, index: int) -> tuple[int, int]:
    """Return the [start, stop) of shard `index` when `length` elements are split into `parts`.

    The rule is torch.chunk's: every shard has ceil(length / parts) elements except the trailing
    ones, which are smaller or empty. 1000 rows over 6 ranks: 167 rows on ranks 0-4, 165 on
    rank 5. 5 rows over 6 ranks: 1 row on ranks 0-4, none on rank 5.
    """
    if parts < 1 or not 0 <= index < parts:
        raise ValueError(f"shard index {index} is not in range({parts})")
    chunk = -(-length // parts)
    start = min(index * chunk, length)
    return start, min(start + chunk, length)


def volume(box: Sequence[tuple[int, int]]) -> int:
    """Return the number of elements in a box of [start, stop) bounds."""
    return math.prod(max(0, stop - start) for start, stop in box)


@dataclass(frozen=True)
class Replicate:
    """Every rank of the mesh holds the whole tensor."""

    def is_shard(self) -> bool:
        return False

    def is_replicate(self) -> bool:
        return True

    def __str__(self) -> str:
        return "Replicate()"


def _as_tuple(value: object, what: str) -> tuple:
    if isinstance(value, (str, int)):
        return (value,)
    if isinstance(value, Sequence):
        return tuple(value)
    raise TypeError(f"ShardSpec {what} must be a name or a sequence of names, got {value!r}")


@dataclass(frozen=True)
class ShardSpec:
    """Tensor dimension `partition[i]` is split over mesh axis `mesh_axes[i]`.

    Dimensions are named "row" (0), "col" (1) or given as integers. A dimension named twice is
    split over both axes: by the first named, then each block again by the next. Mesh axes not
    named hold replicas. `ShardSpec(partition=("row", "col"), mesh_axes=("tp", "pp"))` on a tp x pp x dp
    mesh gives every (tp, pp) position one block, repeated over dp.
    """

    partition: tuple[str | int, ...]
    mesh_axes: tuple[str, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "partition", _as_tuple(self.partition, "partition"))
        object.__setattr__(self, "mesh_axes", _as_tuple(self.mesh_axes, "mesh_axes"))
        self._check()

    def _check(self) -> None:
        for entry in self.partition:
            if isinstance(entry, bool) or not isinstance(entry, (str, int)):
                raise TypeError(f"ShardSpec partition entries are 'row', 'col' or ints, got {entry!r}")
            if isinstance(entry, str) and entry not in DIM_NAMES:
                raise LayoutError(
                    f"ShardSpec partition entry {entry!r} is not a dimension; use 'row', 'col' or an int"
                )
            if isinstance(entry, int) and entry < 0:
                raise LayoutError(f"ShardSpec partition dimension {entry} is negative")
        for axis in self.mesh_axes:
            if not isinstance(axis, str) or not axis:
                raise TypeError(f"ShardSpec mesh_axes entries are axis names, got {axis!r}")
        if len(self.partition) != len(self.mesh_axes):
            raise LayoutError(
                f"ShardSpec has {len(self.partition)} partition entries {self.partition} but "
                f"{len(self.mesh_axes)} mesh axes {self.mesh_axes}; give one mesh axis per entry"
            )
        if not self.partition:
            raise LayoutError("ShardSpec needs at least one (dimension, mesh axis) pair; use Replicate()")
        if len(set(self.mesh_axes)) != len(self.mesh_axes):
            raise LayoutError(f"ShardSpec names a mesh axis twice: {self.mesh_axes}")

    def is_shard(self) -> bool:
        return True

    def is_replicate(self) -> bool:
        return False

    def dims(self) -> tuple[int, ...]:
        """Return the tensor dimension of each partition entry."""
        return tuple(DIM_NAMES[e] if isinstance(e, str) else e for e in self.partition)

    def __str__(self) -> str:
        pairs = ", ".join(f"{p}->{a}" for p, a in zip(self.partition, self.mesh_axes))
        return f"ShardSpec({pairs})"


Layout = Union[ShardSpec, Replicate]


@dataclass(frozen=True)
class Placed:
    """A layout resolved against one mesh and one global shape."""

    global_shape: tuple[int, ...]
    dim_axes: tuple[tuple[int, ...], ...]
    """For each tensor dimension, the mesh axis indices that split it, outer first."""
    replica_axes: tuple[int, ...]
    """Mesh axis indices over which the tensor is repeated."""
    mesh_shape: tuple[int, ...]

    def box(self, coords: Sequence[int]) -> tuple[tuple[int, int], ...]:
        """Return the [start, stop) per dimension held at mesh coordinates `coords`.

        A dimension split over several axes is split by the outer axis first, and each of those
        blocks again by the next axis (as PyTorch applies placements), so gathering the inner
        axes gives back exactly the outer axis' block, even when the splits are uneven.
        """
        bounds = []
        for length, axes in zip(self.global_shape, self.dim_axes):
            start, stop = 0, length
            for a in axes:
                lo, hi = shard_bounds(stop - start, self.mesh_shape[a], coords[a])
                start, stop = start + lo, start + hi
            bounds.append((start, stop))
        return tuple(bounds)

    def replica_key(self, coords: Sequence[int]) -> tuple[int, ...]:
        """Return the coordinates that tell apart the copies of the whole tensor."""
        return tuple(coords[a] for a in self.replica_axes)

    @property
    def shard_count(self) -> int:
        """Number of distinct shards (blocks) in one copy of the tensor."""
        return math.prod(self.mesh_shape[a] for axes in self.dim_axes for a in axes)


def place(layout: Layout, mesh: Mesh, global_shape: Sequence[int]) -> Placed:
    """Resolve `layout` for a tensor of `global_shape` on `mesh`; raise LayoutError or AxisError."""
    shape = tuple(int(s) for s in global_shape)
    dim_axes: list[list[int]] = [[] for _ in shape]
    if isinstance(layout, ShardSpec):
        for dim, axis in zip(layout.dims(), layout.mesh_axes):
            if dim >= len(shape):
                raise LayoutError(
                    f"{layout} splits dimension {dim} but the tensor of shape {shape} has "
                    f"{len(shape)} dimension{'s' if len(shape) != 1 else ''}"
                )
            dim_axes[dim].append(mesh.axis_index(axis))
    elif not isinstance(layout, Replicate):
        raise TypeError(f"layout must be dist.ShardSpec(...) or dist.Replicate(), got {layout!r}")
    used = {a for axes in dim_axes for a in axes}
    return Placed(
        global_shape=shape,
        dim_axes=tuple(tuple(axes) for axes in dim_axes),
        replica_axes=tuple(a for a in range(mesh.ndim) if a not in used),
        mesh_shape=mesh.shape,
    )
