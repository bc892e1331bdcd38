"""Check `bandwidth`: a size sweep of six collectives, in and out of place, every size verified
element by element, bus bandwidth judged against the expected link bandwidth."""

from __future__ import annotations

from ...comm import native
from ...fabric.collectives import SWEPT, TABLE
from ...fabric.expectations import Expectation, expectation
from ...results import table
from ...fabric.sweep import Measurement, distinct, measure, memory_cap, sizes, transport_label
from .. import transports
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
    """Measure every (collective, size, in_place) of `plan` on each chosen transport, the
    transports interleaved at each size (so drift hits both alike); a wrong element fails the
    check. Each collective's list holds every transport's measurements (`Measurement.transport`)."""
    rt = ctx.runtime
    groups = [ctx.mesh.group(None, transport=t)[1] for t in transports.chosen(ctx.options)]
    progress = Progress(f"bandwidth{label}", len(plan) * len(groups), enabled=ctx.is_root)
    results: dict[str, list[Measurement]] = {c: [] for c in SWEPT}
    for collective, size, in_place in plan:
        for group in groups:
            m = measure(collective, group, rt, size_bytes=size, in_place=in_place, budget_s=budget)
            results[collective].append(m)
            wrong = m.wrong_by_rank[group.rank]
            over = "" if len(groups) == 1 else f" over {m.transport}"
            if wrong:
                ctx.fail(f"{collective} {human_bytes(m.size_bytes)} {'in place' if in_place else 'out of place'}"
                         f"{over}{label}: {wrong} of its elements wrong on this rank")
            progress.step(f"{collective} {human_bytes(m.size_bytes)}{' in place' if in_place else ''}{over}")
    progress.close()
    return results


def over(measurements: list[Measurement], transport: str) -> list[Measurement]:
    """The measurements of one transport (by its label)."""
    return [m for m in measurements if m.transport == transport]


def side_by_side(collective: str, measurements: list[Measurement], labels: list[str], *, at: int) -> str:
    """"all_reduce 4 GiB: NCCL 841.00 GB/s, MPI 312.00 GB/s": each transport's best busbw at
    size `at` (the judged transport's peak), NCCL first; nccl-tests' sizes and bus factors on both."""
    def shown(label: str) -> str:
        return label.upper().replace("(EMULATED)", "(emulated)")

    best = {label: max((m.busbw_gbps for m in over(measurements, label) if m.size_bytes == at), default=0.0)
            for label in labels}
    return f"{collective} {human_bytes(at)}: " + ", ".join(f"{shown(label)} {best[label]:.2f} GB/s"
                                                          for label in reversed(labels))


@register("bandwidth", help="size sweep of 6 collectives, verified at every size, busbw vs the expected link bandwidth",
          selftests=(SelfTest("a wrong element on one rank", lambda rt, o, clean: {"corrupt_device": rt.size - 1},
                              lambda n: Culprit.rank(n - 1)),
                     SelfTest("one straggler rank",
                              lambda rt, o, clean: {"delay_ms": PLANTED_DELAY_MS, "ranks": [rt.size - 1]},
                              lambda n: Culprit.rank(n - 1))))
def check_bandwidth(ctx: CheckContext) -> None:
    """Under --under-load the sweep runs twice, with the load and with it paused: the tables
    without a suffix are the loaded ones (what the check ran under), the `_unloaded` ones the
    fabric alone, which is what the expectation judges; the headline puts them side by side.

    With --transport both every size runs over MPI and over NCCL, interleaved: each table holds
    both transports' rows (its `transport` column), the headline puts their busbw side by side,
    and the expectation and the straggler judge NCCL's, the path training collectives take
    (MPI's when MPI runs alone)."""
    mesh = ctx.mesh
    comm = mesh.comm
    low, high, factor = sweep_sizes(ctx)
    nominal = sizes(low, high, factor)
    budget = ctx.sized(full=0.2, small=0.05, quick=0.02)
    expect, unexpected = expectation(mesh.placements, given_gbps=ctx.options.expect_busbw)
    plan = [(c, size, in_place) for c in SWEPT for size in distinct(c, nominal, comm.size, 4)
            for in_place in TABLE[c].variants]
    labels = [transport_label(mesh.group(None, transport=t)[1]) for t in transports.chosen(ctx.options)]
    judged_by = labels[-1]
    results = run_sweep(ctx, plan, budget, label="")
    unloaded: dict[str, list[Measurement]] | None = None
    if ctx.load is not None:
        with ctx.load.paused():
            unloaded = run_sweep(ctx, plan, budget, label=" without load")
    everything = [m for ms in (unloaded or results).values() for m in over(ms, judged_by)]
    culprit = judge_straggler(ctx, everything) if ctx.judge_timing else None
    if expect is None:
        ctx.skip_judging(unexpected)
    summary = []
    for collective, measurements in results.items():
        best = peak(over(measurements, judged_by))
        judged = over(unloaded[collective], judged_by) if unloaded is not None else over(measurements, judged_by)
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
        peaks = {label: peak(over(measurements, label)) for label in labels}
        each = {f"peak_busbw_GBps_{label.split()[0]}": m.busbw_gbps for label, m in peaks.items()} \
            if len(labels) > 1 else {}
        ctx.save(collective, table([m.row() for m in measurements]),
                 peak_busbw_GBps=best.busbw_gbps, peak_size_bytes=best.size_bytes,
                 judged=collective in JUDGED and expect is not None and unloaded is None,
                 under_load=unloaded is not None, transport=judged_by, **each)
        if len(labels) > 1:
            summary.append(side_by_side(collective, measurements, labels, at=best.size_bytes)
                           + (f" ({share} of expected)" if share else ""))
            if unloaded is not None:
                ctx.save(collective + UNLOADED, table([m.row() for m in unloaded[collective]]),
                         peak_busbw_GBps=alone.busbw_gbps, peak_size_bytes=alone.size_bytes,
                         judged=collective in JUDGED and expect is not None, under_load=False, transport=judged_by)
            continue
        if unloaded is None:
            summary.append(f"{collective} {best.busbw_gbps:.2f}" + (f" ({share})" if share else ""))
            continue
        ctx.save(collective + UNLOADED, table([m.row() for m in judged]),
                 peak_busbw_GBps=alone.busbw_gbps, peak_size_bytes=alone.size_bytes,
                 judged=collective in JUDGED and expect is not None, under_load=False, transport=judged_by)
        ratio = best.busbw_gbps / alone.busbw_gbps if alone.busbw_gbps > 0 else 0.0
        summary.append(f"{collective} {alone.busbw_gbps:.2f} / {best.busbw_gbps:.2f} ({ratio:.0%})"
                       + (f" [{share} of expected]" if share else ""))
    emulated = any("emulated" in label for label in labels)
    ctx.attrs.update(
        expected_busbw_GBps=expect.busbw_gbps if expect else 0.0,
        expectation_source=expect.source if expect else f"none: {unexpected}",
        min_efficiency=ctx.options.min_efficiency, sizes=f"{low}:{high}:{factor}",
        clock=results["all_reduce"][0].timing.clock, under_load=unloaded is not None,
        loop=",".join(sorted({m.timing.loop for ms in results.values() for m in ms})),
        loop_fallback=native.reason(), buffers=ctx.runtime.staging.path, transports=",".join(labels),
        judged_transport=judged_by, transport_note=ctx.options.transport_note,
    )
    verdict = (f"vs {expect.busbw_gbps:g} GB/s expected ({expect.source})" if expect
               else f"not judged: {unexpected}")
    late = ""
    if culprit is not None:
        ctx.attrs["straggler_rank"] = culprit.ranks[0]
        late = f"; straggler: {culprit}"
    if len(labels) > 1:
        figures = "peak busbw side by side" + (" (under load)" if unloaded is not None else "")
    else:
        figures = ("peak busbw GB/s without load / under load (share kept)" if unloaded is not None
                   else "peak busbw GB/s") + ("" if judged_by == "mpi" else f" over {judged_by}")
    notes = "".join(f"; {n}" for n in (
        "emulated NCCL is MPI under NCCL's calling conventions, not a measurement of NCCL" if emulated else "",
        ctx.options.transport_note) if n)
    ctx.headline = (f"{figures}: {', '.join(summary)}; {len(plan)} sizes x variants verified"
                    f"{' twice' if unloaded is not None else ''}"
                    f"{f' on each of {len(labels)} transports' if len(labels) > 1 else ''}; {verdict}{late}{notes}")
