"""The single-process reference: the whole model trained on the whole global batch in float64.

It cuts the batch into the same micro-batches as the distributed run, so it can say what every
rank should have seen: each stage's output per micro-batch, each micro-batch's loss share, each
replica's gradient before the data-parallel sum, and the weights after every step. It uses no
communication, so nothing it computes depends on the fabric under test.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .model import (BlockParams, block_backward, block_output, block_partial, init_block, loss_and_grad,
                    make_batch, sgd)
from .plan import Plan


def _zeros_like(p: BlockParams) -> BlockParams:
    return BlockParams(*(np.zeros_like(a) for a in p.arrays()))


def _add(total: BlockParams, g: BlockParams) -> None:
    for t, a in zip(total.arrays(), g.arrays()):
        t += a


@dataclass(frozen=True)
class ReferenceStep:
    """What one training step should produce, everywhere."""

    step: int
    params_before: list[BlockParams]
    outputs: np.ndarray
    """(stages, replicas, micro_batches, micro_batch_size, d_model): each stage's output."""
    losses: np.ndarray
    """(replicas, micro_batches): each micro-batch's share of the loss."""
    replica_grads: list[list[BlockParams]]
    """Per replica, the gradient of its micro-batches (before the data-parallel sum)."""
    params_after: list[BlockParams]

    @property
    def loss(self) -> float:
        return float(self.losses.sum())


class Reference:
    """The model of `plan` with seed and learning rate, trained one step at a time in float64."""

    def __init__(self, plan: Plan, *, seed: int, lr: float) -> None:
        self.plan = plan
        self.spec = plan.model(seed=seed, lr=lr)
        self.params = [init_block(self.spec, b) for b in range(self.spec.blocks)]

    def step(self, step: int) -> ReferenceStep:
        """Run training step `step` and return what it produced."""
        plan, spec = self.plan, self.spec
        grid = plan.grid
        inputs, targets = make_batch(spec, step, samples=plan.samples)
        outputs = np.empty((grid.pp, grid.dp, plan.micro_batches, plan.micro_batch_size, spec.d_model))
        losses = np.empty((grid.dp, plan.micro_batches))
        replica_grads = [[_zeros_like(p) for p in self.params] for _ in range(grid.dp)]
        last_of_stage = {plan.stage_blocks(s)[-1]: s for s in range(grid.pp)}
        for replica in range(grid.dp):
            for micro in range(plan.micro_batches):
                rows = plan.micro_batch(replica, micro)
                x = inputs[rows]
                caches = []
                for b, p in enumerate(self.params):
                    partial, cache = block_partial(p, x, xp=np)
                    x = block_output(x, partial, b2=p.b2)
                    caches.append(cache)
                    if b in last_of_stage:
                        outputs[last_of_stage[b], replica, micro] = x
                losses[replica, micro], dy = loss_and_grad(x, targets[rows], samples=plan.samples)
                for b in reversed(range(len(self.params))):
                    dx_part, grads = block_backward(self.params[b], caches[b], dy=dy, xp=np)
                    _add(replica_grads[replica][b], grads)
                    dy = dy + dx_part
        before = self.params
        total = [_zeros_like(p) for p in before]
        for grads in replica_grads:
            for t, g in zip(total, grads):
                _add(t, g)
        self.params = [sgd(p, g, lr=spec.lr) for p, g in zip(before, total)]
        return ReferenceStep(step=step, params_before=before, outputs=outputs, losses=losses,
                             replica_grads=replica_grads, params_after=self.params)
