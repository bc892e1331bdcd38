"""Check `sharding`: the guide's 3.2 example, uneven, replicated and fully sharded layouts, user
data, and two planted faults that the audit must catch and attribute to the right rank."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ... import dist, fault
from ...dist.layout import Layout
from ...dist.mesh import Mesh
from ...results import table
from ..context import CheckContext
from ..registry import SelfTest, register
from ..verdict import Culprit


@dataclass(frozen=True)
class Case:
    """One tensor to build and audit."""

    name: str
    shape_or_data: Any
    layout: Layout
    dtype: Any = None


def cases(mesh: Mesh, *, quick: bool) -> list[Case]:
    """Return the layouts the check audits on `mesh`."""
    axes, shape = mesh.axes, mesh.shape
    outer = ("row", "col")[: min(2, mesh.ndim)]
    guide = dist.ShardSpec(partition=outer, mesh_axes=axes[: len(outer)])
    scale = 4 if quick else 1
    return [
        Case("guide-3.2", (1_000, 1_000), guide),
        Case("uneven", (1_001 // scale, 997 // scale), guide),
        Case("fewer-rows-than-shards", (max(1, shape[0] - 1), 3), guide),
        Case("replicated", (257 // scale, 33), dist.Replicate()),
        Case("fully-sharded", (1_000 // scale, 16),
             dist.ShardSpec(partition=("row",) * mesh.ndim, mesh_axes=axes)),
        Case("dim-per-axis", tuple(2 * s + 1 for s in shape),
             dist.ShardSpec(partition=tuple(range(mesh.ndim)), mesh_axes=axes)),
        Case("user-data", np.arange(48 * 60, dtype=np.float64).reshape(48, 60),
             dist.ShardSpec(partition=("col",) if mesh.ndim == 1 else ("col", "row"),
                            mesh_axes=axes[-1:] if mesh.ndim == 1 else (axes[-1], axes[0]))),
        Case("int32", (300 // scale, 7), dist.ShardSpec(partition=("row",), mesh_axes=axes[:1]), np.int32),
    ]


def _planted(ctx: CheckContext, guide: Case) -> list[str]:
    """Plant each defect on the last rank; fail unless the audit names that rank. Returns what was caught."""
    mesh = ctx.mesh
    victim = mesh.size - 1
    caught = []
    plants = (("bit flip", "content", "dist.bit_flip"), ("misplaced shard", "box", "dist.misplaced_shard"))
    for what, rule, plant in plants:
        with fault.inject(plant=plant, ranks=[mesh.world_rank(victim)]):
            t = dist.tensor(guide.shape_or_data, mesh=mesh, layout=guide.layout)
        report = t.sharding_report()
        named = [p.ranks for p in report.problems if p.rule == rule]
        if report.ok or named != [(victim,)]:
            # The audit itself is broken: no part of the rack is to blame.
            ctx.fail(f"the audit missed a planted {what} on rank {victim}: {report}", culprit=Culprit.whole())
        else:
            caught.append(what)
    return caught


@register("sharding", help="the guide's 3.2 example, uneven/replicated/fully sharded layouts, planted faults",
          selftests=(SelfTest("a bit flip in a shard",
                              lambda rt, o, clean: {"plant": "dist.bit_flip", "ranks": [rt.size - 1]},
                              lambda n: Culprit.rank(n - 1)),
                     SelfTest("a misplaced shard",
                              lambda rt, o, clean: {"plant": "dist.misplaced_shard", "ranks": [rt.size - 1]},
                              lambda n: Culprit.rank(n - 1))))
def check_sharding(ctx: CheckContext) -> None:
    mesh = ctx.mesh
    all_cases = cases(mesh, quick=ctx.options.quick)
    rows = []
    for case in all_cases:
        t = dist.tensor(case.shape_or_data, mesh=mesh, layout=case.layout, dtype=case.dtype)
        if isinstance(case.shape_or_data, np.ndarray):
            if not np.array_equal(t.numpy(), case.shape_or_data[t.index]):
                ctx.fail(f"{case.name}: this rank's shard is not data{t.index}")
        report = t.sharding_report()
        if not report.ok:
            # Replicas that disagree with no majority only say which ranks are suspect; another
            # rule (the content against the pattern) may name the one that is wrong.
            decided = [p for p in report.problems if p.decided] or list(report.problems)
            ctx.fail(f"{case.name} ({case.layout}): " + "; ".join(map(str, report.problems)),
                     culprit=sorted({Culprit.rank(mesh.world_rank(r)) for p in decided for r in p.ranks}))
        rows.append({
            "case": case.name,
            "global_shape": "x".join(map(str, t.global_shape)),
            "dtype": str(t.dtype),
            "layout": str(case.layout),
            "shards": report.shards,
            "copies": report.copies,
            "valid": report.ok,
            "problems": "; ".join(map(str, report.problems)),
        })
    caught = _planted(ctx, all_cases[0])
    ctx.save("cases", table(rows), description="one row per audited layout")
    valid = sum(r["valid"] for r in rows)
    ctx.headline = (f"{valid}/{len(rows)} layouts valid; planted {' and '.join(caught) or 'faults'} "
                    f"{'caught' if len(caught) == 2 else 'NOT all caught'} on rank {mesh.size - 1}")
