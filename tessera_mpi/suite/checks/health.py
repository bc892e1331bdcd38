"""Checks `health` and `health_end`: every GPU's counters through NVML (or its emulation), at the
suite's start and at its end, judged from the first snapshot to now (hardware/rules.py)."""

from __future__ import annotations

from ...fabric.expectations import expectation
from ...hardware.rules import Limits, expected_links, judge, links_up
from ...hardware.telemetry import telemetry
from ...util.text import rank_ranges
from ..context import CheckContext
from ..registry import SelfTest, register
from ..verdict import Culprit


def gpu_line(ctx: CheckContext, rank: int) -> str:
    """"rank 37 (tp=0,pp=0,dp=1) host gb200-n10 tray 10 slot 2 GPU serial 1654322012345 (module 3)"."""
    mesh = ctx.mesh
    where = ",".join(f"{a}={c}" for a, c in zip(mesh.axes, mesh.coords_of(rank)))
    placement = mesh.placements[rank]
    gpu = f" {placement.gpu}" if placement.gpu else f" device {placement.device}"
    return f"rank {mesh.world_rank(rank)} ({where}) host {placement.host}{gpu}"


def _health(ctx: CheckContext) -> None:
    """Collective: every rank says whether it reads its GPU, its product and the links it had up
    at the suite's start (the call where planted faults strike), then judges its own GPU from the
    suite's first snapshot to now, against the links its product (or its twins) should have up."""
    tel = telemetry()
    _, group = ctx.mesh.group(None)
    mine = (tel.reason if not tel.available else "", tel.identity.product, links_up(tel.baseline), tel.label())
    with group.call("health: who reads a GPU, its product and links"):
        gathered = group.comm.allgather(mine)
    everyone = [reason for reason, *_ in gathered]
    if all(everyone):
        reasons = sorted(set(everyone))
        ctx.skip(reasons[0] if len(reasons) == 1 else "; ".join(reasons))
    me = ctx.mesh.rank
    now = tel.snapshot() if tel.available else None
    # Every rank counts, those without a GPU to read too: none may leave the others waiting here.
    with group.call("health: counters read"):
        read = group.comm.allreduce(len(now.values) if now is not None else 0)
    if now is None:
        ctx.fail(f"{gpu_line(ctx, me)}: cannot read the GPU's counters ({tel.reason}) while "
                 f"{everyone.count('')} other ranks can")
        return
    assert tel.baseline is not None
    for problem in now.problems:
        ctx.fail(f"{gpu_line(ctx, me)}: reading the GPU: {problem}")
    limits = Limits(max_uncorrectable=ctx.options.max_uncorrectable,
                    max_link_error_rate=ctx.options.max_link_error_rate,
                    max_link_replay_rate=ctx.options.max_link_replay_rate)
    # Twins are compared by what they had up at the start: a link lost later is judged as lost.
    expected = expected_links(group.comm.rank, [g[1] for g in gathered], [g[2] for g in gathered],
                              [g[3] for g in gathered])
    problems = judge(tel.baseline, now, limits=limits, throttled=tuple(tel.throttled), expected=expected)
    if problems:
        # One finding per GPU, naming it once: the part to pull, then everything wrong with it.
        ctx.fail(f"{gpu_line(ctx, me)}: {'; '.join(p.text for p in problems)}",
                 culprit=Culprit.rank(ctx.mesh.world_rank(me)))
    missing = sorted(set(now.unsupported))
    ctx.attrs.update(source=tel.source, counters_read=read, unsupported=", ".join(missing) or "none",
                     seconds_since_start=now.taken_at - tel.baseline.taken_at,
                     expected_links=f"{len(expected.links)}: {expected.source}" if expected else
                     "none: a product the table does not name, and no other GPU of it in the job")
    # What the fabric checks will expect of these GPUs, and from where: the hardware's own view.
    expect, unexpected = expectation(ctx.mesh.placements, given_gbps=ctx.options.expect_busbw)
    ctx.attrs.update(expected_busbw_GBps=expect.busbw_gbps if expect else 0.0,
                     expectation_source=expect.source if expect else f"none: {unexpected}")
    unread = [r for r, reason in enumerate(everyone) if reason]
    note = f"; ranks {rank_ranges(unread)} read none" if unread else ""
    # Ranks sharing a GPU read it each: the headline counts GPUs (by serial), not ranks.
    gpus = len({label for reason, _, _, label in gathered if not reason})
    shared = f" by {everyone.count('')} ranks" if gpus != everyone.count("") else ""
    ctx.headline = (f"{read} counters read on {gpus} GPU{'s' if gpus != 1 else ''}{shared} ({tel.source}), judged "
                    f"from the suite's start{note}")


PLANTED_LINK = 3
"""The emulated NVLink the self-test of health_end takes down."""


@register("health", help="GPU health through NVML: ECC, row remaps, NVLink state and errors, throttling, XIDs",
          selftests=(SelfTest("an uncorrectable ECC error on one GPU", lambda rt, o, clean: {"ecc_error": rt.size - 1},
                              lambda n: Culprit.rank(n - 1), optional=True),))
def check_health(ctx: CheckContext) -> None:
    _health(ctx)


def register_end() -> None:
    """Register `health_end`, the same judgement at the suite's end (imported last)."""

    @register("health_end", help="health again at the end: counters that grew during the suite, throttled fabric "
                                 "checks", selftests=(SelfTest(
                  "an NVLink going down", lambda rt, o, clean: {"link_down": {"rank": rt.size - 1, "link": PLANTED_LINK}},
                  lambda n: Culprit.rank(n - 1), optional=True),))
    def check_health_end(ctx: CheckContext) -> None:
        _health(ctx)
