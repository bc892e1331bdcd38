"""The communication of a training step along tp, pp and dp: `op` calls, timed and counted.

Volume is payload bytes: for an all-reduce the buffer each rank contributes, for a send the
message, counted once by its sender. An axis of size 1 (or absent from the mesh) has nothing
to exchange and is neither called nor counted.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import op
from ..dist.layout import Placed, Replicate, place
from ..dist.mesh import Mesh
from ..dist.dtensor import DistTensor
from .phases import PhaseClock
from .plan import AXES, Grid


@dataclass
class AxisCount:
    """Calls and payload bytes along one axis."""

    calls: int = 0
    bytes: int = 0


class Traffic:
    """All-reduces over tp and dp and sends/receives along pp for one rank of a training step.

    Arrays travel as Replicate DistTensors whose global shape is the local shape: the layout
    says only that every rank of the group holds an array of that shape; what each holds is
    its own contribution. Reductions are deterministic (the correctly rounded sum): the same
    bits on every rank of a group, so tp replicas of an activation and dp replicas of a
    gradient cannot drift apart.
    """

    def __init__(self, mesh: Mesh, grid: Grid, *, clock: PhaseClock) -> None:
        self.mesh = mesh
        self.grid = grid
        self.clock = clock
        self.counts = {a: AxisCount() for a in AXES}
        self._placed: dict[tuple[int, ...], Placed] = {}

    def _wrap(self, a: Any) -> DistTensor:
        shape = tuple(a.shape)
        placed = self._placed.get(shape)
        if placed is None:
            placed = self._placed[shape] = place(Replicate(), self.mesh, shape)
        return DistTensor(a, mesh=self.mesh, layout=Replicate(), placed=placed,
                          box=tuple((0, s) for s in shape), patterned=False)

    def _count(self, axis: str, nbytes: int) -> None:
        self.counts[axis].calls += 1
        self.counts[axis].bytes += int(nbytes)

    def all_reduce(self, a: Any, *, axis: str) -> Any:
        """Return the sum of `a` over this rank's `axis` group (tp or dp). Collective over the group."""
        if self.grid.size(axis) == 1:
            return a
        with self.clock.phase(f"{axis}_comm"):
            summed = op.all_reduce(self._wrap(a), "sum", axis=axis, deterministic=True)
        self._count(axis, a.nbytes)
        return summed.local

    def send(self, a: Any, *, dest: int, tag: int) -> None:
        """Send `a` to pipeline stage `dest` (same tp and dp coordinates); blocking."""
        with self.clock.phase("pp_comm"):
            op.send(self._wrap(a), axis="pp", dest=dest, tag=tag)
        self._count("pp", a.nbytes)

    def recv(self, shape: tuple[int, ...], dtype: Any, *, source: int, tag: int) -> Any:
        """Receive the array that pipeline stage `source` sends with the same tag; blocking."""
        like = self._wrap(self.mesh.runtime.backend.xp.empty(shape, dtype=np.dtype(dtype)))
        with self.clock.phase("pp_comm"):
            return op.recv(like, axis="pp", source=source, tag=tag).local

    def take(self) -> dict[str, AxisCount]:
        """Return the counts so far and start again from zero."""
        taken, self.counts = self.counts, {a: AxisCount() for a in AXES}
        return taken
