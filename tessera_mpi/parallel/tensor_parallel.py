"""Megatron-style tensor parallelism of one MLP block over the tp axis.

The first linear layer is column-parallel (each tp rank holds a block of w1's columns and of
b1), the second row-parallel (the matching rows of w2); b2 is whole on every rank. Megatron's
two conjugate operators carry the communication:

- f, before the block: identity in the forward pass (the input is the same on every tp rank),
  all-reduce of d loss / d x over tp in the backward pass;
- g, after the second layer: all-reduce of the partial outputs over tp in the forward pass,
  identity in the backward pass (d loss / d y is the same on every tp rank).

One all-reduce each way per block and micro-batch; every tp rank of a group must run the same
blocks on the same micro-batches in the same order (collective over the tp group).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .model import BlockCache, BlockParams, block_backward, block_output, block_partial
from .traffic import Traffic


@dataclass
class ForwardResult:
    """A block's output on this rank, with what its backward pass and the check need."""

    y: Any
    partial: Any
    """This rank's contribution before g's all-reduce."""
    cache: BlockCache


class TensorParallelBlock:
    """This tp rank's shard of one block: forward and backward with the f/g collectives."""

    def __init__(self, params: BlockParams, traffic: Traffic) -> None:
        self.params = params
        self.traffic = traffic
        self.xp = traffic.mesh.runtime.backend.xp

    def forward(self, x: Any) -> ForwardResult:
        """Return the block's output for input `x` (the same on every tp rank of the group)."""
        partial, cache = block_partial(self.params, x, xp=self.xp)
        summed = self.traffic.all_reduce(partial, axis="tp")
        return ForwardResult(y=block_output(x, summed, b2=self.params.b2), partial=partial, cache=cache)

    def backward(self, result: ForwardResult, dy: Any) -> tuple[Any, BlockParams]:
        """Return (d loss / d x, this shard's gradients) for output gradient `dy`."""
        dx_part, grads = block_backward(self.params, result.cache, dy=dy, xp=self.xp)
        return dy + self.traffic.all_reduce(dx_part, axis="tp"), grads
