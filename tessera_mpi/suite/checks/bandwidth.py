"""Check `bandwidth`: a size sweep of six collectives, in and out of place, every size verified
element by element, bus bandwidth judged against the expected link bandwidth."""

from __future__ import annotations

from ...comm import native
from ...fabric.collectives import SWEPT, TABLE
from ...fabric.expectations import Expectation, expectation
from ...results import table
from ...fabric.sweep import Measurement, distinct, measure, memory_cap, sizes
from ..context import CheckContext
from ...util.text import human_bytes
from ..progress import Progress
from ..registry import SelfTest, register
from ..verdict import Culprit, Reference

JUDGED = ("all_reduce", "all_gather", "reduce_scatter")
"""Collectives held to the expectation. The achievable fraction of link bandwidth for
broadcast, all-to-all and send/recv depends more on topology and MPI algorithm, so they are
reported against it but not judged."""
PEAK_SHARE = 4
"""The peak bandwidth of a collective is taken over the largest 1/PEAK_SHARE of its sizes."""
STRAGGLER_SPREAD = 0.5
"""A measurement points at a straggler when the ranks' time inside MPI spreads by this share."""


def straggler(measurements: list[Measurement]) -> tuple[int, int] | None:
    """Return (rank, count) when one rank waited least in most of the unbalanced measurements:
    it arrives last at the collectives (a slow device, a delayed link), so the others wait for it."""
    unbalanced = [m.waits_least for m in measurements if m.wait_spread > STRAGGLER_SPREAD]
    if len(unbalanced) < max(3, len(measurements) // 4):
        return None
    rank = max(set(unbalanced), key=unbalanced.count)
    count = unbalanced.count(rank)
    return (rank, count) if 2 * count > len(unbalanced) else None


def sweep_sizes(ctx: CheckContext) -> tuple[int, int, int]:
    """Return (min, max, factor): --sizes, else the size class's default, capped by memory."""
    low, high, factor = ctx.options.sizes or ctx.sized(
        full=(8, 1 << 30, 2), small=(8, 1 << 20, 4), quick=(8, 1 << 16, 8))
    cap = memory_cap(ctx.runtime, ctx.mesh.comm)
    return low, max(low, min(high, cap)), factor


def peak(measurements: list[Measurement]) -> Measurement:
    """Return the best-bandwidth measurement among the largest sizes."""
    by_size = sorted({m.size_bytes for m in measurements})
    large = set(by_size[-max(1, len(by_size) // PEAK_SHARE):])
    return max((m for m in measurements if m.size_bytes in large), key=lambda m: m.busbw_gbps)


def expected_busbw(ctx: CheckContext, name: str, expect: Expectation) -> Reference:
    """The reference a judged collective's peak busbw must reach: --min-efficiency x the expectation."""
    fraction = ctx.options.min_efficiency
    return Reference(f"{name} peak busbw", "GB/s", f"--min-efficiency {fraction:g} x {expect.busbw_gbps:g} GB/s "
                     f"expected, {expect.source}", target=expect.busbw_gbps, lower=fraction * expect.busbw_gbps)


PLANTED_DELAY_MS = 20.0
"""The self-test's straggler starts every collective this late: far beyond scheduling noise."""
STRAGGLER_SHARE = 0.25
"""A healthy fabric has no rank arriving last in more than this share of the measurements."""


def judge_straggler(ctx: CheckContext, measurements: list[Measurement]) -> Culprit | None:
    """Judge whether one rank arrives last at most collectives; return it as the culprit if so."""
    slow = straggler(measurements)
    rank = None if slow is None else ctx.mesh.world_rank(slow[0])
    share = 0.0 if slow is None else slow[1] / len(measurements)
    culprit = None if rank is None else Culprit.rank(rank)
    reference = Reference("share of measurements one rank arrived last at", "", f"a straggler leads more than "
                          f"{STRAGGLER_SHARE:g} of the sizes (time inside MPI; it waits least)", upper=STRAGGLER_SHARE)
    message = "" if slow is None else (f"straggler: {ctx.mesh.describe(slow[0])} arrived last (waited least "
                                       f"inside MPI) in {slow[1]} of {len(measurements)} measurements")
    ctx.judge(reference, share, culprit=culprit, message=message)
    return culprit


UNLOADED = "_unloaded"
"""Suffix of the tables measured with the background load paused (under --under-load only)."""


def run_sweep(ctx: CheckContext, plan: list[tuple[str, int, bool]], budget: float, *,
              label: str) -> dict[str, list[Measurement]]:
    """Measure every (collective, size, in_place) of `plan`; a wrong element fails the check."""
    (_, group), rt = ctx.mesh.group(None), ctx.runtime
    progress = Progress(f"bandwidth{label}", len(plan), enabled=ctx.is_root)
    results: dict[str, list[Measurement]] = {c: [] for c in SWEPT}
    for collective, size, in_place in plan:
        m = measure(collective, group, rt, size_bytes=size, in_place=in_place, budget_s=budget)
        results[collective].append(m)
        wrong = m.wrong_by_rank[group.rank]
        if wrong:
            ctx.fail(f"{collective} {human_bytes(m.size_bytes)} {'in place' if in_place else 'out of place'}"
                     f"{label}: {wrong} of its elements wrong on this rank")
        progress.step(f"{collective} {human_bytes(m.size_bytes)}{' in place' if in_place else ''}")
    progress.close()
    return results


@register("bandwidth", help="size sweep of 6 collectives, verified at every size, busbw vs the expected link bandwidth",
          selftests=(SelfTest("a wrong element on one rank", lambda rt, o, clean: {"corrupt_device": rt.size - 1},
                              lambda n: Culprit.rank(n - 1)),
                     SelfTest("one straggler rank",
                              lambda rt, o, clean: {"delay_ms": PLANTED_DELAY_MS, "ranks": [rt.size - 1]},
                              lambda n: Culprit.rank(n - 1))))
def check_bandwidth(ctx: CheckContext) -> None:
    """Under --under-load the sweep runs twice, with the load and with it paused: the tables
    without a suffix are the loaded ones (what the check ran under), the `_unloaded` ones the
    fabric alone, which is what the expectation judges; the headline puts them side by side."""
    mesh = ctx.mesh
    comm = mesh.comm
    low, high, factor = sweep_sizes(ctx)
    nominal = sizes(low, high, factor)
    budget = ctx.sized(full=0.2, small=0.05, quick=0.02)
    expect, unexpected = expectation(mesh.placements, given_gbps=ctx.options.expect_busbw)
    plan = [(c, size, in_place) for c in SWEPT for size in distinct(c, nominal, comm.size, 4)
            for in_place in TABLE[c].variants]
    results = run_sweep(ctx, plan, budget, label="")
    unloaded: dict[str, list[Measurement]] | None = None
    if ctx.load is not None:
        with ctx.load.paused():
            unloaded = run_sweep(ctx, plan, budget, label=" without load")
    everything = [m for ms in (unloaded or results).values() for m in ms]
    culprit = judge_straggler(ctx, everything) if ctx.judge_timing else None
    if expect is None:
        ctx.skip_judging(unexpected)
    summary = []
    for collective, measurements in results.items():
        best = peak(measurements)
        judged = unloaded[collective] if unloaded is not None else measurements
        alone = peak(judged)
        share = f"{alone.busbw_gbps / expect.busbw_gbps:.0%}" if expect else ""
        # An expectation is judged wherever there is one: the built-in table names no device that
        # ranks share, and --expect-busbw is an explicit request.
        if expect is not None and collective in JUDGED:
            where = f"; {culprit} arrives last" if culprit else "; global: no rank stands out as a straggler"
            ctx.judge(expected_busbw(ctx, collective, expect), alone.busbw_gbps, culprit=culprit,
                      message=f"{collective} peak busbw {alone.busbw_gbps:.1f} GB/s at {human_bytes(alone.size_bytes)} "
                              f"is {share} of the expected {expect.busbw_gbps:g} GB/s ({expect.source}); below "
                              f"--min-efficiency {ctx.options.min_efficiency:g}{where}")
        ctx.save(collective, table([m.row() for m in measurements]),
                 peak_busbw_GBps=best.busbw_gbps, peak_size_bytes=best.size_bytes,
                 judged=collective in JUDGED and expect is not None and unloaded is None,
                 under_load=unloaded is not None)
        if unloaded is None:
            summary.append(f"{collective} {best.busbw_gbps:.2f}" + (f" ({share})" if share else ""))
            continue
        ctx.save(collective + UNLOADED, table([m.row() for m in judged]),
                 peak_busbw_GBps=alone.busbw_gbps, peak_size_bytes=alone.size_bytes,
                 judged=collective in JUDGED and expect is not None, under_load=False)
        ratio = best.busbw_gbps / alone.busbw_gbps if alone.busbw_gbps > 0 else 0.0
        summary.append(f"{collective} {alone.busbw_gbps:.2f} / {best.busbw_gbps:.2f} ({ratio:.0%})"
                       + (f" [{share} of expected]" if share else ""))
    ctx.attrs.update(
        expected_busbw_GBps=expect.busbw_gbps if expect else 0.0,
        expectation_source=expect.source if expect else f"none: {unexpected}",
        min_efficiency=ctx.options.min_efficiency, sizes=f"{low}:{high}:{factor}",
        clock=results["all_reduce"][0].timing.clock, under_load=unloaded is not None,
        loop=",".join(sorted({m.timing.loop for ms in results.values() for m in ms})),
        loop_fallback=native.reason(), buffers=ctx.runtime.staging.path,
    )
    verdict = (f"vs {expect.busbw_gbps:g} GB/s expected ({expect.source})" if expect
               else f"not judged: {unexpected}")
    late = ""
    if culprit is not None:
        ctx.attrs["straggler_rank"] = culprit.ranks[0]
        late = f"; straggler: {culprit}"
    figures = ("peak busbw GB/s without load / under load (share kept)" if unloaded is not None
               else "peak busbw GB/s")
    ctx.headline = (f"{figures}: {', '.join(summary)}; {len(plan)} sizes x variants verified"
                    f"{' twice' if unloaded is not None else ''}; {verdict}{late}")
