"""Check `soak`: repeat an all-reduce for --duration seconds and record bandwidth over time, to
catch throttling (a steady fall) and instability (dips); every window verified."""

from __future__ import annotations

import numpy as np
from mpi4py import MPI

from ...fabric.busbw import busbw_gbps, per_rank_count, size_of
from ...fabric.sweep import Kernel, kernel, memory_cap, transport_label, verify
from ...fabric.timing import time_loop
from ...results import table
from ...util.text import human_bytes
from .. import transports
from ..context import CheckContext
from ..progress import Progress
from ..registry import SelfTest, register
from ..verdict import Culprit, Reference

PLANTED_SPEED = 0.25
"""The self-test's throttled rank slows to this share of its speed over the first half of the soak."""
WINDOWS = 100
"""Aim for this many points on the timeline."""
MIN_WINDOW_S = 0.2
WARMUP_CALLS = 3
CALIBRATION_CALLS = 5
HOLD = 0.2
"""Windows are kept within this share of their target length by re-calibrating after each."""
STRAGGLER_SPREAD = 0.5
"""Over the last quarter, one rank waiting this much less inside MPI than another is a straggler."""


def _calibrate(k: Kernel, comm: MPI.Intracomm, window: float, clock: object) -> int:
    """Return iterations per window from the slowest rank's time per call, after warming up for
    about one window (the first windows of a cold fabric, caches and allocator run slow)."""
    timing = time_loop(comm, k.run, iterations=CALIBRATION_CALLS, warmup=WARMUP_CALLS, clock=clock)
    warm = max(1, int(window / max(timing.t_max, 1e-7)))
    timing = time_loop(comm, k.run, iterations=warm, warmup=0, clock=clock)
    return max(1, int(window / max(timing.t_max, 1e-7)))


def _trend(t: np.ndarray, busbw: np.ndarray) -> tuple[float, float]:
    """Return (median of the last quarter / median of the first, fitted line's end / start)."""
    quarter = max(1, len(busbw) // 4)
    first = float(np.median(busbw[:quarter]))
    ratio = float(np.median(busbw[-quarter:]) / first) if first > 0 else 0.0
    if len(busbw) < 3:
        return ratio, ratio
    slope, intercept = np.polyfit(t, busbw, 1)
    start, end = intercept + slope * t[0], intercept + slope * t[-1]
    return ratio, float(end / start) if start > 0 else 0.0


def dips(busbw: np.ndarray, fraction: float) -> tuple[int, float]:
    """Return (windows below `fraction` x the median, the median)."""
    median = float(np.median(busbw))
    return int((busbw < fraction * median).sum()), median


def judge_trend(ctx: CheckContext, rows: list[dict], waited: np.ndarray) -> None:
    """Judge the trend (last vs first quarter, and the fitted line) against --min-trend; a
    throttling rank (the one that waits least inside MPI in the last quarter) is the culprit of
    a fall, else it is global. Medians of quarters: robust to single slow windows."""
    t = np.array([r["t_s"] for r in rows])
    busbw = np.array([r["busbw_GBps"] for r in rows])
    ratio, fitted = _trend(t, busbw)
    least, source = ctx.relative("--min-trend", ctx.options.min_trend)
    late = waited[-max(1, len(waited) // 4):].sum(axis=0)
    spread = float((late.max() - late.min()) / max(late.max(), 1e-12))
    culprit = Culprit.rank(ctx.mesh.world_rank(int(late.argmin()))) if spread > STRAGGLER_SPREAD else None
    where = f"; {culprit} waits least inside MPI (it slows the others)" if culprit else "; global: no rank stands out"
    trend = Reference("last/first quarter busbw", "", source, target=1.0, lower=least)
    ctx.judge(trend, ratio, culprit=culprit, message=f"throttling: busbw fell to {ratio:.2f} of the first quarter's "
              f"over the soak (below {least:g}, {source}){where}")
    line = Reference("fitted busbw end/start", "", source, target=1.0, lower=least)
    ctx.judge(line, fitted, culprit=culprit, message=f"throttling: the fitted busbw line falls to {fitted:.2f} of its "
              f"start (below {least:g}, {source}){where}")


def judge_dips(ctx: CheckContext, rows: list[dict]) -> None:
    """Judge single windows against --min-efficiency x the median (instability): a dip is not a
    trend, and says so."""
    busbw = np.array([r["busbw_GBps"] for r in rows])
    fraction = ctx.options.min_efficiency
    count, median = dips(busbw, fraction)
    lowest = int(busbw.argmin())
    ctx.judge(Reference("windows below --min-efficiency x the median", "windows",
                        f"--min-efficiency {fraction:g} x this soak's median {median:.4g} GB/s", upper=0),
              count, message=f"{count} dip{'s' if count != 1 else ''}: {count} of {len(rows)} windows fell below "
              f"{fraction:g} x the median {median:.4g} GB/s (lowest {busbw[lowest]:.4g} GB/s at "
              f"t={rows[lowest]['t_s']:.1f} s)")


@register("soak", help="an all-reduce repeated for --duration seconds; bandwidth over time, every window verified",
          selftests=(SelfTest("gradual throttling of one rank to a quarter of its speed",
                              lambda rt, o, clean: {"throttle": PLANTED_SPEED, "throttle_s": o.duration_s / 2,
                                             "ranks": [rt.size - 1]},
                              lambda n: Culprit.rank(n - 1), needs_duration=True),))
def check_soak(ctx: CheckContext) -> None:
    """With --transport both each window runs over MPI, then over NCCL: the timeline has a row per
    window and transport (its `transport` column); the trend and dips judge NCCL's rows."""
    duration = ctx.options.duration_s
    if duration <= 0:
        ctx.skip("pass --duration SECONDS to soak the fabric")
    mesh, rt = ctx.mesh, ctx.runtime
    chosen = transports.chosen(ctx.options)
    groups = [mesh.group(None, transport=t)[1] for t in chosen]
    comm = groups[0].comm
    size = min(ctx.sized(full=1 << 28, small=1 << 20, quick=1 << 16), memory_cap(rt, comm))
    count = per_rank_count("all_reduce", size, comm.size, 4)
    size = size_of("all_reduce", count, comm.size, 4)
    target = max(MIN_WINDOW_S, duration / WINDOWS)
    kernels = [kernel("all_reduce", g, rt, count=count, dtype=np.float32, in_place=False) for g in groups]
    iterations = [_calibrate(k, comm, target, rt.backend.clock()) for k in kernels]
    labels = [transport_label(g) for g in groups]
    rows, wrong, waited = [], 0, []
    start = MPI.Wtime()
    progress = Progress("soak", int(duration / (target * len(groups))) + 1, enabled=ctx.is_root)
    while True:
        # Rank 0's clock decides for everyone, so all ranks run the same number of windows.
        elapsed = comm.bcast(MPI.Wtime() - start, root=0)
        if elapsed >= duration and rows:
            break
        for i, (group, k, label) in enumerate(zip(groups, kernels, labels)):
            bad = verify(k, group, rt.backend.xp)
            wrong += bad[comm.rank]
            k.call.seconds = 0.0
            timing = time_loop(comm, k.run, iterations=iterations[i], warmup=0, clock=rt.backend.clock())
            if label == labels[-1]:
                waited.append(comm.allgather(k.call.seconds))
            window = timing.t_max * iterations[i]
            rows.append({"transport": label, "t_s": elapsed, "iters": iterations[i], "window_s": window,
                         "time_us_max": timing.t_max * 1e6,
                         "busbw_GBps": busbw_gbps("all_reduce", size, timing.t_max, comm.size), "wrong": sum(bad)})
            # Hold the window near its target whatever the fabric does: the same count on every rank.
            if abs(window - target) > HOLD * target:
                iterations[i] = max(1, int(round(iterations[i] * target / max(window, 1e-9))))
        progress.step(f"{elapsed:.0f} s")
    progress.close()
    if wrong:
        ctx.fail(f"{wrong} wrong elements during the soak")
    judged_rows = [r for r in rows if r["transport"] == labels[-1]]
    # Scheduling noise on an oversubscribed machine makes single windows dip as deep as real
    # instability, so dips are judged on real hardware only; the trend, a comparison of
    # medians, is judged under --self-test too.
    if ctx.judge_timing:
        judge_trend(ctx, judged_rows, np.array(waited))
    if ctx.judge_timing and not rt.oversubscribed:
        judge_dips(ctx, judged_rows)
    elif rt.oversubscribed:
        ctx.skip_judging("oversubscribed machine: timings measure CPU scheduling" +
                         ("; the trend is judged, single-window dips are not" if ctx.judge_timing else ""))
    else:
        ctx.skip_judging(ctx.timing_not_judged)
    busbw = np.array([r["busbw_GBps"] for r in judged_rows])
    dipped, median = dips(busbw, ctx.options.min_efficiency)
    ratio, fitted = _trend(np.array([r["t_s"] for r in judged_rows]), busbw)
    window_s = float(np.median([r["window_s"] for r in judged_rows]))
    ctx.save("timeline", table(rows), description="one row per window and transport: start time, its measured "
             "length, busbw, wrong elements")
    ctx.attrs.update(size_bytes=size, window_s=window_s, target_window_s=target, median_GBps=float(np.median(busbw)),
                     trend=ratio, fitted_trend=fitted, judged=ctx.judge_timing,
                     min_efficiency=ctx.options.min_efficiency,
                     min_trend=ctx.options.min_trend, transports=",".join(labels), judged_transport=labels[-1],
                     transport_note=ctx.options.transport_note)
    note = "" if ctx.judge_timing else f"; not judged: {ctx.timing_not_judged}"
    ctx.attrs["dips"] = dipped
    over = "" if labels == ["mpi"] else f" over {labels[-1]}"
    side = ""
    if len(labels) > 1:
        side = "; median side by side: " + ", ".join(
            f"{label.upper().replace('(EMULATED)', '(emulated)')} "
            f"{float(np.median([r['busbw_GBps'] for r in rows if r['transport'] == label])):.2f} GB/s"
            for label in reversed(labels))
    notes = "".join(f"; {x}" for x in (
        "emulated NCCL is MPI under NCCL's calling conventions, not a measurement of NCCL"
        if any("emulated" in label for label in labels) else "", ctx.options.transport_note) if x)
    ctx.headline = (f"{len(judged_rows)} windows of {window_s:.2f} s over {duration:g} s at {human_bytes(size)}{over}: "
                    f"busbw median {median:.2f} GB/s, min {busbw.min():.2f}, max {busbw.max():.2f}; last/first quarter "
                    f"{ratio:.2f}, fitted line end/start {fitted:.2f}; {dipped} dips below "
                    f"{ctx.options.min_efficiency:g} x median{note}{side}{notes}")
