"""Training steps on the mesh, each judged against the single-process reference on every rank."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from mpi4py import MPI

from ..dist.mesh import Mesh
from .plan import Plan
from .reference import Reference
from .traffic import AxisCount
from .trainer import Trainer
from .verify import QUANTITIES, TOLERANCES, over_tolerance, step_errors


@dataclass(frozen=True)
class Validation:
    """One rank's view of a validated training run."""

    plan: Plan
    errors: np.ndarray
    """(steps, len(QUANTITIES)): this rank's error per step and quantity (NaN: not applicable)."""
    failures: tuple[str, ...]
    """What this rank found wrong; empty when everything agreed."""
    first_step: int
    """The first step at which this rank's numbers left the tolerances (-1: none did)."""
    first_bad: tuple[str, ...]
    """The quantities over tolerance at that step (see verify.QUANTITIES)."""
    losses: np.ndarray
    """The distributed run's loss per step (the sum of the last stage's shares; every rank)."""
    reference_losses: np.ndarray
    replicas_identical: np.ndarray
    """Per step: whether every dp replica of this rank's shard held the same bits."""
    step_seconds: np.ndarray
    """Per step: this rank's wall time of the training step (MPI.Wtime)."""
    seconds: tuple[dict[str, float], ...]
    """Per step: this rank's exclusive seconds per phase (see phases.PHASES)."""
    traffic: tuple[dict[str, AxisCount], ...]
    """Per step: this rank's calls and payload bytes per axis."""


def _describe(step: int, errors: dict[str, float], bad: list[str]) -> str:
    parts = ", ".join(f"{q} (rel err {errors[q]:.1e} > {TOLERANCES[q]:.0e})" for q in bad)
    return f"step {step}: {parts} differ from the single-process reference"


def validate(mesh: Mesh, plan: Plan, *, steps: int, seed: int, lr: float) -> Validation:
    """Train `steps` steps on the mesh and compare each with the reference, on every rank.

    Collective over the mesh. A rank reports only the first step where its numbers leave the
    tolerances (what follows from a wrong step is wrong too), and the first step whose dp
    replicas of its shard hold different bits.
    """
    reference = Reference(plan, seed=seed, lr=lr)
    trainer = Trainer(mesh, plan, seed=seed, lr=lr)
    coords = (trainer.tp, trainer.stage, trainer.replica)
    errors = np.full((steps, len(QUANTITIES)), np.nan)
    shares = np.zeros(steps)
    reference_losses = np.zeros(steps)
    identical = np.zeros(steps, dtype=bool)
    step_seconds = np.zeros(steps)
    failures: list[str] = []
    first_step, first_bad = -1, ()
    seconds, traffic = [], []
    for k in range(steps):
        start = MPI.Wtime()
        record = trainer.step(k)
        step_seconds[k] = MPI.Wtime() - start
        expected = reference.step(k)
        found = step_errors(record, expected, plan=plan, coords=coords)
        errors[k] = [found[q] for q in QUANTITIES]
        bad = over_tolerance(found)
        if bad and not any(f.startswith("step ") for f in failures):
            failures.append(_describe(k, found, bad))
            first_step, first_bad = k, tuple(bad)
        identical[k] = len(set(record.digests)) == 1
        if not identical[k] and not any(f.startswith("dp replicas") for f in failures):
            failures.append(f"dp replicas hold different weights after step {k}: "
                            f"{len(set(record.digests))} distinct digests over {len(record.digests)} replicas")
        if record.losses is not None and trainer.tp == 0:
            shares[k] = record.losses.sum()
        reference_losses[k] = expected.loss
        seconds.append(record.seconds)
        traffic.append(record.traffic)
    losses = np.empty(steps)
    mesh.comm.Allreduce(shares, losses, op=MPI.SUM)
    return Validation(plan=plan, errors=errors, failures=tuple(failures), first_step=first_step,
                      first_bad=first_bad, losses=losses,
                      reference_losses=reference_losses, replicas_identical=identical, step_seconds=step_seconds,
                      seconds=tuple(seconds),
                      traffic=tuple(traffic))
