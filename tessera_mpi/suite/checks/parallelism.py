"""Check `parallelism`: training steps of an MLP stack with tensor parallelism over tp, a 1F1B
pipeline over pp and data parallelism over dp, every rank's numbers against a single-process
float64 reference of the same model, seed and batch, and the dp replicas' bits compared."""

from __future__ import annotations

import numpy as np
from mpi4py import MPI

from ...util.text import plural
from ...parallel import Grid, Plan, PlanError, Validation, validate
from ...parallel.phases import PHASES
from ...parallel.pipeline import in_flight, one_f_one_b
from ...parallel.plan import AXES
from ...parallel.verify import OWN_QUANTITIES, QUANTITIES, TOLERANCES
from ...results import table
from ...fabric.timing import summarize
from ..context import CheckContext
from ..registry import SelfTest, register
from ..verdict import Culprit

SEED = 20261201
LR = 0.1
"""Moves the weights by up to a few percent a step, so a wrong gradient shows in the weights."""


def plan_for(ctx: CheckContext, grid: Grid) -> Plan:
    """Return the sizes for this run: real ones on real hardware, small when oversubscribed."""
    return Plan(
        grid,
        d_model=ctx.sized(full=256, small=32, quick=16),
        ff_per_shard=ctx.sized(full=256, small=16, quick=8),
        blocks_per_stage=ctx.sized(full=2, small=1, quick=1),
        micro_batches=ctx.sized(full=8, small=4, quick=2),
        micro_batch_size=ctx.sized(full=16, small=4, quick=2),
    )


def _error_rows(ctx: CheckContext, v: Validation) -> list[dict]:
    """Gather every rank's errors to rank 0; one row per step and quantity (rank 0 only)."""
    mesh = ctx.mesh
    everyone = np.empty((mesh.size, *v.errors.shape)) if ctx.is_root else None
    mesh.comm.Gather(np.ascontiguousarray(v.errors), everyone, root=0)
    if everyone is None:
        return []
    rows = []
    for step in range(v.errors.shape[0]):
        for q, quantity in enumerate(QUANTITIES):
            column = everyone[:, step, q]
            measured = np.flatnonzero(~np.isnan(column))
            worst = int(measured[np.argmax(column[measured])])
            rows.append({"step": step, "quantity": quantity, "tolerance": TOLERANCES[quantity],
                         "max_rel_err": float(column[worst]), "worst_rank": worst,
                         "ranks_over": int((column[measured] > TOLERANCES[quantity]).sum())})
    return rows


def _phase_rows(ctx: CheckContext, v: Validation) -> list[dict]:
    """Seconds per step of each phase over the ranks (IMB conventions; collective)."""
    series = [("step", v.step_seconds)] + [(p, np.array([s[p] for s in v.seconds])) for p in PHASES]
    rows = []
    for name, times in series:
        t = summarize(ctx.mesh.comm, times)
        rows.append({"phase": name, "t_max": t.t_max, "t_avg": t.t_avg, "t_min": t.t_min,
                     "p50": t.p50, "p99": t.p99})
    return rows


def _traffic_rows(ctx: CheckContext, v: Validation) -> list[dict]:
    """Calls and payload bytes per axis, summed over ranks and steps (collective)."""
    steps = len(v.traffic)
    mine = np.array([[sum(t[a].calls for t in v.traffic), sum(t[a].bytes for t in v.traffic)] for a in AXES],
                    dtype=np.int64)
    total, peak = np.empty_like(mine), np.empty_like(mine)
    ctx.mesh.comm.Allreduce(mine, total, op=MPI.SUM)
    ctx.mesh.comm.Allreduce(mine, peak, op=MPI.MAX)
    grid = v.plan.grid
    return [{"axis": a, "group_size": grid.size(a), "calls": int(total[i, 0]), "bytes": int(total[i, 1]),
             "bytes_per_step": int(total[i, 1]) // steps, "max_rank_bytes_per_step": int(peak[i, 1]) // steps}
            for i, a in enumerate(AXES)]


def _culprits(ctx: CheckContext, v: Validation) -> list[Culprit]:
    """Return the ranks where the job first went wrong in their own work (collective): at the
    earliest failing step, those whose shard output is wrong, else those whose own gradient is;
    global when neither tells (every later error follows from the first)."""
    everyone = ctx.mesh.comm.allgather((v.first_step, v.first_bad))
    failing = [step for step, _ in everyone if step >= 0]
    if not failing:
        return []
    first = min(failing)
    for quantity in OWN_QUANTITIES:
        ranks = [r for r, (step, bad) in enumerate(everyone) if step == first and quantity in bad]
        if ranks:
            return [Culprit.rank(ctx.mesh.world_rank(r)) for r in ranks]
    return [Culprit.whole()]


def run_parallelism(ctx: CheckContext) -> None:
    """The check's body."""
    mesh = ctx.mesh
    try:
        grid = Grid.of(mesh)
    except PlanError as exc:
        ctx.skip(str(exc))
    plan = plan_for(ctx, grid)
    steps = ctx.sized(full=5, small=3, quick=2)
    v = validate(mesh, plan, steps=steps, seed=SEED, lr=LR)
    culprits = _culprits(ctx, v)
    for failure in v.failures:
        ctx.fail(failure, culprit=culprits)
    identical = np.empty(steps, dtype=np.int8)
    mesh.comm.Allreduce(v.replicas_identical.astype(np.int8), identical, op=MPI.MIN)
    errors = _error_rows(ctx, v)
    phases = _phase_rows(ctx, v)
    traffic = _traffic_rows(ctx, v)
    spec = plan.model(seed=SEED, lr=LR)
    ctx.attrs.update(schedule="1f1b", steps=steps, tp=grid.tp, pp=grid.pp, dp=grid.dp, d_model=plan.d_model,
                     d_ff=spec.d_ff, blocks=spec.blocks, micro_batches=plan.micro_batches,
                     micro_batch_size=plan.micro_batch_size, lr=LR, seed=SEED, deterministic=True)
    if not ctx.is_root:
        return
    loss_err = [abs(a - b) / abs(b) for a, b in zip(v.losses, v.reference_losses)]
    ctx.save("steps", table([{"step": k, "loss": float(v.losses[k]), "reference_loss": float(v.reference_losses[k]),
                              "loss_rel_err": float(loss_err[k]), "replicas_identical": bool(identical[k])}
                             for k in range(steps)]),
             description="per step: the distributed and the reference loss, and whether the dp replicas held "
                         "the same bits")
    ctx.save("errors", table(errors), description="per step and quantity: the largest relative error over the ranks")
    ctx.save("phases", table(phases), units="s",
             description="seconds per step by phase (exclusive), over ranks: t_max is the max of the per-rank means")
    ctx.save("traffic", table(traffic), units="bytes",
             description="calls and payload bytes per mesh axis, summed over ranks and steps")
    programs = [one_f_one_b(grid.pp, plan.micro_batches, stage=s) for s in range(grid.pp)]
    ctx.save("schedule", table([{"stage": s, "actions": len(p), "max_in_flight": in_flight(p)}
                                for s, p in enumerate(programs)]),
             description="the 1F1B program of each pipeline stage")
    worst = max(errors, key=lambda r: r["max_rel_err"] / r["tolerance"])
    over = max(r["ranks_over"] for r in errors)
    agreement = ("all ranks within tolerance of the float64 reference" if over == 0
                 else f"off the float64 reference on up to {plural(over, 'rank')} per step")
    ctx.headline = (f"{steps} steps on tp={grid.tp} x pp={grid.pp} x dp={grid.dp} (1F1B, "
                    f"{plan.micro_batches} micro-batches): loss {v.losses[0]:.4f} -> {v.losses[-1]:.4f}, "
                    f"{agreement} (worst: {worst['quantity']} {worst['max_rel_err']:.1e} vs "
                    f"{worst['tolerance']:.0e}); dp replicas {'bitwise identical' if identical.all() else 'DIFFER'}")


@register("parallelism", help="tp/pp/dp training steps of an MLP stack against a single-process reference",
          selftests=(SelfTest("a wrong shard",
                              lambda rt, o, clean: {"plant": "parallel.wrong_shard", "ranks": [rt.size - 1]},
                              lambda n: Culprit.rank(n - 1)),
                     SelfTest("a dropped micro-batch",
                              lambda rt, o, clean: {"plant": "parallel.drop_micro_batch", "ranks": [rt.size - 1]},
                              lambda n: Culprit.rank(n - 1))))
def check_parallelism(ctx: CheckContext) -> None:
    run_parallelism(ctx)
