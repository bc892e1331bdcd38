"""Check `bisection`: every rank exchanges with its counterpart across a cut of the job, all at
once, for the rank-order halves and for a random split; aggregate bandwidth vs expectation."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from mpi4py import MPI

from ...fabric.expectations import expectation
from ...fabric.p2p import exchange_window
from ...runtime.device import Placement
from ...fabric.sweep import transport_label
from ...results import table
from .. import transports
from ..context import CheckContext
from ...util.text import human_bytes
from ..registry import SelfTest, register
from ..verdict import Culprit, Reference
from .links import WINDOW, pair_buffers, planted_delay_ms

REPEATS = 3
SEED = 20261201


def splits(n: int) -> dict[str, list[int]]:
    """Return, per split, each rank's counterpart (-1 for the odd rank out)."""
    half = n // 2
    halves = [-1] * n
    for i in range(half):
        halves[i], halves[i + half] = i + half, i
    order = np.random.default_rng(SEED).permutation(n).tolist()
    shuffled = [-1] * n
    for j in range(half):
        a, b = order[2 * j], order[2 * j + 1]
        shuffled[a], shuffled[b] = b, a
    return {"halves": halves, "random": shuffled}


def across_hosts(placements: Sequence[Placement], counterpart: list[int]) -> int:
    """Return how many pairs of a split have their two ranks on different hosts."""
    return sum(1 for a, b in enumerate(counterpart) if a < b and placements[a].host != placements[b].host)


def judge_split(ctx: CheckContext, name: str, per_rank: np.ndarray, counterpart: list[int], *,
                aggregate: float, wanted: float, pairs: int) -> None:
    """Judge one cut: its slowest pair against --slow-link-fraction x the cut's median pair (a
    slow pair is named), and, with an expectation, the aggregate against --min-efficiency of it
    (a shortfall of the whole cut is global)."""
    fraction, source = ctx.relative("--slow-link-fraction", ctx.options.slow_link_fraction)
    world = ctx.mesh.world_rank
    median = float(np.nanmedian(per_rank))
    slowest = int(np.nanargmin(per_rank))
    reference = Reference(f"{name} split slowest pair", "GB/s", f"{source} x this cut's median pair {median:.4g} GB/s",
                          target=median, lower=fraction * median)
    pair = Culprit.pair(world(slowest), world(counterpart[slowest]))
    hosts = f"hosts {ctx.mesh.placement(slowest).host} and {ctx.mesh.placement(counterpart[slowest]).host}"
    ctx.judge(reference, float(per_rank[slowest]), culprit=pair,
              message=f"{name} split: {reference.shortfall(float(per_rank[slowest]))}; the slow pair is {pair} ({hosts})")
    if wanted:
        efficiency = ctx.options.min_efficiency
        ctx.judge(Reference(f"{name} split aggregate", "GB/s", f"--min-efficiency {efficiency:g} x {pairs} pairs x 2 "
                            f"directions x the expected busbw", target=wanted, lower=efficiency * wanted), aggregate,
                  message=f"{name} split: aggregate {aggregate:.4g} GB/s is below {efficiency:g} x the expected "
                          f"{wanted:g} GB/s (global: the whole cut)")


@register("bisection", help="all ranks exchange across a cut at once (halves, random split); aggregate GB/s",
          selftests=(SelfTest("a slow pair",
                              lambda rt, o, clean: {"delay_ms": planted_delay_ms(clean, "exchange_ms"), "ranks": [0]},
                              lambda n: Culprit.pair(0, n // 2)),))
def check_bisection(ctx: CheckContext) -> None:
    """With --transport both each cut runs over MPI, then over NCCL; the `splits` table has a row
    per cut and transport (its `transport` column) and the judged transport is NCCL's."""
    mesh, rt = ctx.mesh, ctx.runtime
    chosen = transports.chosen(ctx.options)
    groups = {t: mesh.group(None, transport=t)[1] for t in chosen}
    group = groups["mpi" if "mpi" in groups else chosen[0]]
    comm, n, me = group.comm, group.size, group.rank
    if n < 2:
        ctx.skip("one rank has no counterpart")
    buffers = pair_buffers(ctx)
    expect, unexpected = expectation(mesh.placements, given_gbps=ctx.options.expect_busbw)
    pairs = n // 2
    rows = []
    for name, counterpart in splits(n).items():
        peer = counterpart[me]
        for t, moving in groups.items():
            label = transport_label(moving)
            best, wrong = np.inf, 0
            for _ in range(REPEATS):
                comm.Barrier()
                if peer >= 0:
                    seconds, bad = exchange_window(moving, rt, buffers, peer)
                    best, wrong = min(best, seconds), wrong + bad
            if wrong:
                ctx.fail(f"{name} split: {wrong} wrong elements received from rank {peer}"
                         + ("" if len(groups) == 1 else f" over {label}"),
                         culprit=Culprit.link(mesh.world_rank(peer), mesh.world_rank(me)))
            mine = 2 * buffers.nbytes * WINDOW / best / 1e9 if peer >= 0 else np.nan
            per_rank = np.array(comm.allgather(mine))
            t_max = comm.allreduce(best if peer >= 0 else 0.0, op=MPI.MAX)
            crossing = 2 * pairs * buffers.nbytes * WINDOW
            aggregate = crossing / t_max / 1e9
            wanted = 2 * pairs * expect.busbw_gbps if expect else 0.0
            slowest = int(np.nanargmin(per_rank))
            if ctx.judge_timing and t == chosen[-1]:
                judge_split(ctx, name, per_rank, counterpart, aggregate=aggregate, wanted=wanted, pairs=pairs)
            rows.append({"transport": label, "split": name, "pairs": pairs,
                         "pairs_across_hosts": across_hosts(mesh.placements, counterpart),
                         "bytes_per_rank": buffers.nbytes * WINDOW,
                         "t_max_us": t_max * 1e6, "aggregate_GBps": aggregate,
                         "per_rank_min_GBps": float(np.nanmin(per_rank)),
                         "per_rank_median_GBps": float(np.nanmedian(per_rank)),
                         "slowest_rank": slowest, "expected_GBps": wanted})
    if not ctx.judge_timing:
        ctx.skip_judging(ctx.timing_not_judged)
    ctx.save("splits", table(rows), description="one row per cut and transport; per-rank figures count both directions")
    labels = [transport_label(g) for g in groups.values()]
    judged_rows = [r for r in rows if r["transport"] == labels[-1]]
    # The typical exchange, both directions of one rank's window: what a planted delay must exceed.
    exchange_ms = 2 * buffers.nbytes * WINDOW / (judged_rows[0]["per_rank_median_GBps"] * 1e9) * 1e3
    ctx.attrs.update(expectation_source=expect.source if expect else f"none: {unexpected}", exchange_ms=exchange_ms,
                     loop=buffers.loop, buffers=ctx.runtime.staging.path, transports=",".join(labels),
                     judged_transport=labels[-1], transport_note=ctx.options.transport_note)
    halves, random = judged_rows
    judged = f" vs {halves['expected_GBps']:g} expected" if expect else f" (aggregate not judged: {unexpected})"
    over = "" if labels == ["mpi"] else f" over {labels[-1]}"
    side = ""
    if len(labels) > 1:
        side = "; halves side by side: " + ", ".join(
            f"{r['transport'].upper().replace('(EMULATED)', '(emulated)')} {r['aggregate_GBps']:.2f} GB/s"
            for r in reversed(rows) if r["split"] == "halves")
    notes = "".join(f"; {x}" for x in (
        "emulated NCCL is MPI under NCCL's calling conventions, not a measurement of NCCL"
        if any("emulated" in label for label in labels) else "", ctx.options.transport_note) if x)
    ctx.headline = (f"{pairs} pairs x {human_bytes(buffers.nbytes)} x {WINDOW}: aggregate {halves['aggregate_GBps']:.2f} "
                    f"GB/s across the halves, {random['aggregate_GBps']:.2f} GB/s across a random cut{over}{judged}; "
                    f"slowest rank {halves['slowest_rank']} (host {mesh.placement(halves['slowest_rank']).host}); "
                    f"{halves['pairs_across_hosts']} and {random['pairs_across_hosts']} pairs cross hosts{side}{notes}")
