"""One rank's part of a training step: its tp shard of its pp stage's blocks, on its dp
replica's micro-batches, run on the 1F1B schedule, then the dp gradient sum and the update."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..comm import hooks
from ..dist.mesh import Mesh
from .data_parallel import FlatShard, reduce_gradients, replica_digests
from .model import BlockParams, init_block, loss_and_grad, make_batch
from .phases import PhaseClock
from .pipeline import check_schedule, one_f_one_b, run_program
from .plan import Plan
from .tensor_parallel import ForwardResult, TensorParallelBlock
from .traffic import AxisCount, Traffic

DTYPE = np.float32
"""The precision of the distributed run; the reference runs in float64."""


@dataclass(frozen=True)
class StepRecord:
    """What one rank did in one step, as host float64 copies for verification."""

    step: int
    block_inputs: list[list[np.ndarray]]
    """[micro-batch][block of the stage]: the input each block received."""
    partials: list[list[np.ndarray]]
    """[micro-batch][block of the stage]: this tp shard's contribution before the tp sum."""
    outputs: list[np.ndarray]
    """[micro-batch]: the stage's output."""
    losses: np.ndarray | None
    """Each micro-batch's loss share, on the last stage only."""
    local_grads: list[BlockParams]
    """This shard's gradients over this replica's micro-batches, before the dp sum."""
    params_after: list[BlockParams]
    digests: list[str]
    """SHA-256 of the parameter bytes of every dp replica of this shard, in dp order."""
    seconds: dict[str, float]
    traffic: dict[str, AxisCount]


def _tag(micro_batch: int, gradient: bool) -> int:
    return 2 * micro_batch + int(gradient)


class Trainer:
    """This rank's shard of the model and its training step. Collective over the mesh: every
    rank constructs one with the same plan and calls `step` with the same step numbers."""

    def __init__(self, mesh: Mesh, plan: Plan, *, seed: int, lr: float) -> None:
        self.mesh = mesh
        self.plan = plan
        self.spec = plan.model(seed=seed, lr=lr)
        self.backend = mesh.runtime.backend
        self.tp, self.stage, self.replica = plan.grid.coords(mesh, mesh.rank)
        # Planted defects (fault.inject(plant=...)): what a wrong shard or a lost message would do.
        self.drops_micro_batch = hooks.planted("parallel.drop_micro_batch")
        stages = plan.grid.pp
        programs = [one_f_one_b(stages, plan.micro_batches, stage=s) for s in range(stages)]
        check_schedule(programs, plan.micro_batches)
        self.program = programs[self.stage]
        self.clock = PhaseClock(self.backend.synchronize)
        self.traffic = Traffic(mesh, plan.grid, clock=self.clock)
        initial = {b: init_block(self.spec, b) for b in plan.stage_blocks(self.stage)}
        offset = 1 if hooks.planted("parallel.wrong_shard") else 0
        xp = self.backend.xp
        shard = plan.shard(initial, tp=self.tp, stage=self.stage, column_offset=offset)
        self.params = FlatShard(shard, xp=xp, dtype=DTYPE)
        self.grads = FlatShard(self.params.blocks, xp=xp, dtype=DTYPE)
        self.blocks = [TensorParallelBlock(p, self.traffic) for p in self.params.blocks]

    @property
    def is_first(self) -> bool:
        return self.stage == 0

    @property
    def is_last(self) -> bool:
        return self.stage == self.plan.grid.pp - 1

    def _host(self, a: Any) -> np.ndarray:
        return np.array(self.backend.to_host(a), dtype=np.float64)

    def _dropped(self, step: int, micro_batch: int) -> bool:
        """Whether this rank loses the weight gradients of this micro-batch (a planted defect: its
        messages still flow, so the job runs on, as after a lost gradient contribution)."""
        return self.drops_micro_batch and (step, micro_batch) == (0, 0)

    def step(self, step: int) -> StepRecord:
        """Run training step `step` on every rank; return this rank's record of it."""
        st = _Step(self.plan, step, *make_batch(self.spec, step, samples=self.plan.samples), last=self.is_last)
        self.grads.zero()
        run_program(self.program, {
            "recv_activation": lambda m: self._recv(st, m, gradient=False),
            "forward": lambda m: self._forward(st, m),
            "send_activation": lambda m: self._send(st, m, gradient=False),
            "recv_gradient": lambda m: self._recv(st, m, gradient=True),
            "backward": lambda m: self._backward(st, m),
            "send_gradient": lambda m: self._send(st, m, gradient=True),
        })
        with self.clock.phase("record"):
            local_grads = self.grads.host_blocks(self.backend.to_host)
        reduce_gradients(self.traffic, self.grads)
        with self.clock.phase("optimizer"):
            self.params.flat -= self.spec.lr * self.grads.flat
        with self.clock.phase("record"):
            after = self.params.host_blocks(self.backend.to_host)
            digests = replica_digests(self.mesh, np.asarray(self.backend.to_host(self.params.flat)),
                                      grid=self.plan.grid)
        return StepRecord(step=step, block_inputs=st.block_inputs, partials=st.partials, outputs=st.outputs,
                          losses=st.losses, local_grads=local_grads, params_after=after, digests=digests,
                          seconds=self.clock.take(), traffic=self.traffic.take())

    def _rows(self, m: int) -> slice:
        return self.plan.micro_batch(self.replica, m)

    def _recv(self, st: _Step, m: int, *, gradient: bool) -> None:
        """Receive micro-batch m's activation from the stage before, or its gradient from the one after."""
        source = self.stage + 1 if gradient else self.stage - 1
        received = self.traffic.recv(st.shape, DTYPE, source=source, tag=_tag(m, gradient))
        (st.gradients if gradient else st.inbox)[m] = received

    def _send(self, st: _Step, m: int, *, gradient: bool) -> None:
        """Send micro-batch m's activation to the next stage, or its gradient to the one before."""
        self.traffic.send(st.outbox.pop(m), dest=self.stage - 1 if gradient else self.stage + 1,
                          tag=_tag(m, gradient))

    def _forward(self, st: _Step, m: int) -> None:
        with self.clock.phase("forward"):
            x = st.inbox.pop(m) if not self.is_first else self.backend.from_host(st.inputs[self._rows(m)].astype(DTYPE))
            results = []
            for block in self.blocks:
                results.append(block.forward(x))
                x = results[-1].y
            st.forwards[m] = results
            if self.is_last:
                targets = self.backend.from_host(st.targets[self._rows(m)].astype(DTYPE))
                loss, st.gradients[m] = loss_and_grad(x, targets, samples=self.plan.samples)
            else:
                st.outbox[m] = x
        with self.clock.phase("record"):
            st.block_inputs[m] = [self._host(r.cache.x) for r in results]
            st.partials[m] = [self._host(r.partial) for r in results]
            st.outputs[m] = self._host(x)
            if st.losses is not None:
                st.losses[m] = float(self._host(loss))

    def _backward(self, st: _Step, m: int) -> None:
        with self.clock.phase("backward"):
            dy = st.gradients.pop(m)
            for block, result, total in reversed(list(zip(self.blocks, st.forwards.pop(m), self.grads.blocks))):
                dy, grads = block.backward(result, dy)
                if not self._dropped(st.step, m):
                    for t, g in zip(total.arrays(), grads.arrays()):
                        t += g
            if not self.is_first:
                st.outbox[m] = dy


class _Step:
    """What one rank holds during one training step, micro-batch by micro-batch."""

    def __init__(self, plan: Plan, step: int, inputs: np.ndarray, targets: np.ndarray, *, last: bool) -> None:
        self.step = step
        self.shape = (plan.micro_batch_size, plan.d_model)
        self.inputs, self.targets = inputs, targets
        self.inbox: dict[int, Any] = {}
        """Activations received from the stage before."""
        self.outbox: dict[int, Any] = {}
        """Activations or gradients waiting to be sent."""
        self.gradients: dict[int, Any] = {}
        """d loss / d output of this stage, per micro-batch."""
        self.forwards: dict[int, list[ForwardResult]] = {}
        self.block_inputs: list[list[np.ndarray]] = [[] for _ in range(plan.micro_batches)]
        self.partials: list[list[np.ndarray]] = [[] for _ in range(plan.micro_batches)]
        self.outputs: list[np.ndarray] = [np.empty(0)] * plan.micro_batches
        self.losses = np.zeros(plan.micro_batches) if last else None
