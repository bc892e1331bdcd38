"""How the model and the global batch are cut over the tp, pp and dp axes of a mesh."""

from __future__ import annotations

from dataclasses import dataclass

from ..dist.layout import shard_bounds
from ..errors import PlanError
from ..dist.mesh import Mesh
from .model import BlockParams, ModelSpec

AXES = ("tp", "pp", "dp")
"""The parallelism axes, by name; a mesh axis of another name has no role in training."""


@dataclass(frozen=True)
class Grid:
    """The sizes of tp, pp and dp on a mesh (1 for an axis the mesh lacks) and which it has."""

    tp: int
    pp: int
    dp: int
    present: tuple[str, ...]

    @classmethod
    def of(cls, mesh: Mesh) -> Grid:
        """Read the grid off `mesh`; raise PlanError when it has an axis not named tp, pp or dp."""
        others = [a for a in mesh.axes if a not in AXES]
        if others:
            raise PlanError(f"the mesh axes {list(mesh.axes)} include {others}; parallelism maps only "
                            f"axes named {', '.join(AXES)} (name them with --axes)")
        sizes = {a: mesh.axis_size(a) if a in mesh.axes else 1 for a in AXES}
        return cls(**sizes, present=tuple(a for a in AXES if a in mesh.axes))

    def size(self, axis: str) -> int:
        return {"tp": self.tp, "pp": self.pp, "dp": self.dp}[axis]

    def coords(self, mesh: Mesh, rank: int) -> tuple[int, int, int]:
        """Return (tp, pp, dp) coordinates of mesh rank `rank` (0 along an absent axis)."""
        at = dict(zip(mesh.axes, mesh.coords_of(rank)))
        tp, pp, dp = (at.get(a, 0) for a in AXES)
        return tp, pp, dp


@dataclass(frozen=True)
class Plan:
    """The global batch and the model over a grid.

    The model has `blocks_per_stage` blocks per pipeline stage and `ff_per_shard` hidden units
    per tensor-parallel shard, so it grows with the mesh and every shard has the same shape.
    Each step's global batch has `dp * micro_batches * micro_batch_size` samples; replica r
    takes micro-batches r*M .. r*M+M-1 of them, in order.
    """

    grid: Grid
    d_model: int
    ff_per_shard: int
    blocks_per_stage: int
    micro_batches: int
    micro_batch_size: int

    def __post_init__(self) -> None:
        for name in ("d_model", "ff_per_shard", "blocks_per_stage", "micro_batches", "micro_batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise PlanError(f"Plan.{name} must be a positive int, got {value!r}")

    def model(self, *, seed: int, lr: float) -> ModelSpec:
        return ModelSpec(d_model=self.d_model, d_ff=self.grid.tp * self.ff_per_shard,
                         blocks=self.grid.pp * self.blocks_per_stage, seed=seed, lr=lr)

    @property
    def samples(self) -> int:
        """Samples in one step's global batch."""
        return self.grid.dp * self.micro_batches * self.micro_batch_size

    def micro_batch(self, replica: int, micro: int) -> slice:
        """Return the rows of the global batch that make micro-batch `micro` of `replica`."""
        start = (replica * self.micro_batches + micro) * self.micro_batch_size
        return slice(start, start + self.micro_batch_size)

    def stage_blocks(self, stage: int) -> range:
        """Return the indices of the blocks that pipeline stage `stage` holds."""
        return range(stage * self.blocks_per_stage, (stage + 1) * self.blocks_per_stage)

    def shard(self, blocks: list[BlockParams], *, tp: int, stage: int, column_offset: int = 0) -> list[BlockParams]:
        """Return tp shard `tp` of the blocks of `stage`: w1's and b1's columns and w2's rows
        of that shard (torch.chunk rule), b2 whole. `column_offset` moves the w1 columns
        cyclically, which is how a misplaced shard is planted."""
        d_ff = self.grid.tp * self.ff_per_shard
        lo, hi = shard_bounds(d_ff, self.grid.tp, tp)
        shifted = [(c + column_offset) % d_ff for c in range(lo, hi)]
        return [BlockParams(w1=blocks[b].w1[:, shifted], b1=blocks[b].b1[lo:hi],
                            w2=blocks[b].w2[lo:hi, :], b2=blocks[b].b2)
                for b in self.stage_blocks(stage)]
