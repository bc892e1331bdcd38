"""Data parallelism over the dp axis: one contiguous gradient buffer, all-reduced once per step,
and the proof that every replica then holds the same bits."""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np

from ..dist.mesh import Mesh
from .model import BlockParams
from .plan import Grid
from .traffic import Traffic


class FlatShard:
    """A rank's parameters or gradients in one contiguous buffer, with views per block.

    One buffer makes the dp all-reduce a single call (as bucketed data parallelism does) and
    the update a single operation, and gives the bytes the replicas compare.
    """

    def __init__(self, blocks: list[BlockParams], *, xp: Any, dtype: Any) -> None:
        sizes = [a.size for p in blocks for a in p.arrays()]
        self.xp = xp
        self.flat = xp.zeros(sum(sizes), dtype=np.dtype(dtype))
        self.blocks = self._views(self.flat, blocks)
        for mine, given in zip(self.blocks, blocks):
            for dst, src in zip(mine.arrays(), given.arrays()):
                dst[...] = xp.asarray(src, dtype=self.flat.dtype)

    @staticmethod
    def _views(flat: Any, like: list[BlockParams]) -> list[BlockParams]:
        views, at = [], 0
        for p in like:
            arrays = []
            for a in p.arrays():
                arrays.append(flat[at:at + a.size].reshape(a.shape))
                at += a.size
            views.append(BlockParams(*arrays))
        return views

    def host_blocks(self, to_host: Any) -> list[BlockParams]:
        """Return a host copy of the blocks (`to_host` is the backend's)."""
        return self._views(np.array(to_host(self.flat), copy=True), self.blocks)

    def zero(self) -> None:
        self.flat[...] = 0


def reduce_gradients(traffic: Traffic, grads: FlatShard) -> None:
    """Replace `grads` by their sum over the dp replicas. Collective over the dp group."""
    grads.flat[...] = traffic.all_reduce(grads.flat, axis="dp")


def digest(a: np.ndarray) -> str:
    """Return the SHA-256 of a host array's bytes."""
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()


def replica_digests(mesh: Mesh, host_flat: np.ndarray, *, grid: Grid) -> list[str]:
    """Return every dp replica's digest of its parameter bytes, in dp order. Collective over
    the dp group (local when the mesh has no dp axis)."""
    mine = digest(host_flat)
    if "dp" not in grid.present:
        return [mine]
    return mesh.comm_for("dp").allgather(mine)
