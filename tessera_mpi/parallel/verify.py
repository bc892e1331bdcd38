"""Judging one rank's step against the reference: errors per quantity, and their tolerances.

Every error is a max-norm relative error, max|got - ref| / max|ref|, per array (each weight
matrix, bias, micro-batch activation), and the largest over the arrays compared. The distributed
run computes in float32 from exactly the reference's float32 initial weights and data, so the
errors are float32 rounding (unit roundoff 6e-8) grown through a few matrix products, sums and
updates; each tolerance leaves a wide margin above what healthy runs show (docs/performance.md)
and stays far below what one wrong shard or one lost micro-batch does. They assume IEEE float32
matrix products (NumPy's, and CuPy's by default; TF32 tensor-core products would not pass).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .model import BlockParams, block_partial
from .plan import Plan
from .reference import ReferenceStep
from .trainer import StepRecord

TOLERANCES: dict[str, float] = {
    "shard": 1e-4,
    "activation": 1e-5,
    "loss": 1e-5,
    "gradient": 1e-4,
    "weights": 1e-6,
}
"""Largest relative error accepted per quantity (float32 against the float64 reference).

shard: this tp rank's contribution, recomputed from the input it received and the reference's
weights for its shard (so a fault upstream does not show here: it points at the rank itself;
its error grows with d_model, the length of its sums, reaching 1.1e-6 at the full sizes);
activation: each stage output; loss: each micro-batch's loss share (last stage); gradient: the
shard's gradient over its replica's micro-batches, before the dp sum (cancellation in sums of
many terms makes it the least accurate); weights: the shard after the update (the update is
about a percent of the weights, so 1e-6 of the weights is 1e-4 of the update)."""
QUANTITIES: tuple[str, ...] = tuple(TOLERANCES)
OWN_QUANTITIES: tuple[str, ...] = ("shard", "gradient")
"""Quantities that point at the rank itself when they are the first to go wrong in the job:
its shard's output recomputed from the inputs it received (wrong only through its own
weights), then its gradient before the dp sum (wrong through its own accumulation when every
input it received was still right). Later errors follow from the first."""


def rel_err(got: np.ndarray, ref: np.ndarray) -> float:
    """Return max|got - ref| / max|ref| (0 when both are zero, inf when only ref is)."""
    got, ref = np.asarray(got, dtype=np.float64), np.asarray(ref, dtype=np.float64)
    if got.shape != ref.shape:
        return float("inf")
    if got.size == 0:
        return 0.0
    diff = float(np.max(np.abs(got - ref)))
    scale = float(np.max(np.abs(ref)))
    if scale == 0.0:
        return 0.0 if diff == 0.0 else float("inf")
    return diff / scale


def _blocks_err(got: Sequence[BlockParams], ref: Sequence[BlockParams]) -> float:
    return max(rel_err(g, r) for gp, rp in zip(got, ref) for g, r in zip(gp.arrays(), rp.arrays()))


def step_errors(record: StepRecord, ref: ReferenceStep, *, plan: Plan,
                coords: tuple[int, int, int]) -> dict[str, float]:
    """Return this rank's error per quantity in one step (NaN where it does not apply: the loss
    off the last stage). `coords` are the rank's (tp, pp, dp) coordinates. Local."""
    tp, stage, replica = coords
    shard_before = plan.shard(ref.params_before, tp=tp, stage=stage)
    shard = max(rel_err(partial, block_partial(p, x, xp=np)[0])
                for inputs, partials in zip(record.block_inputs, record.partials)
                for x, partial, p in zip(inputs, partials, shard_before))
    activation = max(rel_err(out, ref.outputs[stage, replica, m]) for m, out in enumerate(record.outputs))
    loss = float("nan") if record.losses is None else rel_err(record.losses, ref.losses[replica])
    return {
        "shard": shard,
        "activation": activation,
        "loss": loss,
        "gradient": _blocks_err(record.local_grads, plan.shard(ref.replica_grads[replica], tp=tp, stage=stage)),
        "weights": _blocks_err(record.params_after, plan.shard(ref.params_after, tp=tp, stage=stage)),
    }


def over_tolerance(errors: dict[str, float]) -> list[str]:
    """Return the quantities whose error exceeds its tolerance (NaN never does)."""
    return [q for q in QUANTITIES if errors[q] > TOLERANCES[q]]
