"""`DistTensor`: one rank's shard of a global tensor laid out over a mesh, and `dist.tensor`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ..comm import hooks
from ..errors import NotInMeshError, StaleTensorError
from .layout import Layout, Placed, Replicate, place
from .mesh import Mesh
from .fill import fill_pattern

if TYPE_CHECKING:
    from .audit import ShardingReport

DEFAULT_DTYPE = np.float32


class DistTensor:
    """This rank's shard of a global tensor, held on the array backend.

    `box` is the [start, stop) per dimension of the global index space that `local` holds;
    `index` is the same as slices. Made by `dist.tensor`; operations on it that communicate say so.
    """

    def __init__(
        self,
        local: Any,
        *,
        mesh: Mesh,
        layout: Layout,
        placed: Placed,
        box: tuple[tuple[int, int], ...],
        patterned: bool,
    ) -> None:
        self.local = local
        self.mesh = mesh
        self.layout = layout
        self.placed = placed
        self.box = box
        self.patterned = patterned
        """True when the values are the global-index pattern, so content can be verified."""
        self.epoch = mesh.epoch
        """The mesh epoch this tensor's placement was computed for."""

    def refresh(self) -> None:
        """Follow a rebuild of the mesh: keep the block if it still is this rank's, else raise.

        Replicated tensors, and shards over axes the rebuild did not change, stay valid;
        StaleTensorError otherwise (the data of lost devices is gone: re-create the tensor).
        """
        mesh = self.mesh
        if not mesh.is_member:
            raise NotInMeshError(f"rank {mesh.parent.rank} left {mesh} when it was rebuilt ({mesh.note})")
        placed = place(self.layout, mesh, self.global_shape)
        box = placed.box(mesh.coords)
        if box != self.box or tuple(self.local.shape) != tuple(b - a for a, b in box):
            raise StaleTensorError(
                f"this rank's block {self.box} of a {self.layout} tensor is not its block after the mesh "
                f"was rebuilt ({mesh.note}); re-create the tensor on the rebuilt mesh")
        self.placed, self.epoch = placed, mesh.epoch

    @property
    def global_shape(self) -> tuple[int, ...]:
        return self.placed.global_shape

    @property
    def shape(self) -> tuple[int, ...]:
        """The global shape (as for an undistributed array)."""
        return self.placed.global_shape

    @property
    def local_shape(self) -> tuple[int, ...]:
        return tuple(self.local.shape)

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(self.local.dtype)

    @property
    def ndim(self) -> int:
        return len(self.global_shape)

    @property
    def index(self) -> tuple[slice, ...]:
        """This shard's place in the global tensor, as slices."""
        return tuple(slice(start, stop) for start, stop in self.box)

    def numpy(self) -> np.ndarray:
        """Return a host (NumPy) copy of this rank's shard."""
        return np.array(self.mesh.runtime.backend.to_host(self.local), copy=True)

    def with_local(self, local: Any) -> DistTensor:
        """Return a tensor with the same layout and placement holding `local` instead."""
        return DistTensor(
            local, mesh=self.mesh, layout=self.layout, placed=self.placed, box=self.box, patterned=False
        )

    def sharding_report(self) -> ShardingReport:
        """Audit the layout across the mesh; the same report on every rank. Collective over the mesh."""
        from .audit import audit

        return audit(self)

    def sharding_valid(self) -> bool:
        """Return whether the shards tile the tensor, replicas agree and shapes match the layout.

        Collective over the mesh: every member must call it. The answer is the same on every
        rank; `sharding_report()` says what is wrong and where.
        """
        return self.sharding_report().ok

    def __repr__(self) -> str:
        return (
            f"DistTensor(global_shape={self.global_shape}, dtype={self.dtype}, layout={self.layout}, "
            f"index={self.box}, local_shape={self.local_shape})"
        )


def _planted(backend: Any, local: Any, box: tuple[tuple[int, int], ...]) -> tuple[Any, tuple[tuple[int, int], ...]]:
    """Apply the defects planted on this rank (fault.inject(plant=...)) to a new block: a flipped
    lowest bit in its first element, or a block recorded one row further than the data it holds."""
    if hooks.planted("dist.bit_flip") and local.size:
        host = np.array(backend.to_host(local), copy=True)
        host.reshape(-1).view(np.uint8)[0] ^= 1
        backend.copy_into(local, host)
    if hooks.planted("dist.misplaced_shard") and box:
        (start, stop), *rest = box
        box = ((start + 1, stop + 1), *rest)
    return local, box


def _is_shape(value: object) -> bool:
    return isinstance(value, tuple) and all(
        isinstance(s, (int, np.integer)) and not isinstance(s, bool) for s in value
    )


def tensor(
    shape_or_data: Sequence[int] | Any,
    *,
    mesh: Mesh,
    layout: Layout | None = None,
    dtype: Any = None,
) -> DistTensor:
    """Return this rank's shard of a tensor laid out over `mesh` (default layout: Replicate()).

    A tuple of ints is a global shape: the tensor is filled with the global-index pattern (see
    tessera_mpi.pattern), default dtype float32. Anything else (a list, a NumPy or CuPy array,
    a number) is the global data, which every rank passes identically and of which each keeps
    its shard. Uneven splits follow `layout.shard_bounds`. No communication; raises LayoutError
    or AxisError when the layout does not fit, NotInMeshError on ranks outside the mesh.
    """
    if not isinstance(mesh, Mesh):
        raise TypeError(f"dist.tensor needs mesh=dist.Mesh(...), got {mesh!r}")
    if not mesh.is_member:
        raise NotInMeshError(
            f"rank {mesh.parent.rank} is not in {mesh} and holds no shard; "
            "create tensors only where mesh.is_member is True"
        )
    layout = Replicate() if layout is None else layout
    backend = mesh.runtime.backend
    if _is_shape(shape_or_data):
        shape = tuple(int(s) for s in shape_or_data)
        if any(s < 0 for s in shape):
            raise ValueError(f"tensor shape {shape} has a negative size")
        placed = place(layout, mesh, shape)
        box = placed.box(mesh.coords)
        local = fill_pattern(backend.xp, box, shape, np.dtype(dtype or DEFAULT_DTYPE))
        if hooks.active:
            local, box = _planted(backend, local, box)
        return DistTensor(local, mesh=mesh, layout=layout, placed=placed, box=box, patterned=True)
    on_device = hasattr(shape_or_data, "__cuda_array_interface__")
    data = backend.asarray(shape_or_data, dtype) if on_device else np.asarray(shape_or_data, dtype)
    placed = place(layout, mesh, data.shape)
    box = placed.box(mesh.coords)
    block = data[tuple(slice(a, b) for a, b in box)]
    xp = backend.xp if on_device else np
    local = xp.ascontiguousarray(block).copy() if on_device else backend.from_host(np.array(block))
    return DistTensor(local, mesh=mesh, layout=layout, placed=placed, box=box, patterned=False)
