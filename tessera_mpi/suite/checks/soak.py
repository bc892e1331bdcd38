"""Check `soak`: repeat an all-reduce for --duration seconds and record bandwidth over time, to
catch throttling and instability; every window verified."""

from __future__ import annotations

import numpy as np
from mpi4py import MPI

from ...fabric.busbw import busbw_gbps, per_rank_count, size_of
from ...results import table
from ...fabric.sweep import kernel, memory_cap, verify
from ...fabric.timing import time_loop
from ..context import CheckContext
from ...util.text import human_bytes
from ..progress import Progress
from ..registry import register

WINDOWS = 100
"""Aim for this many points on the timeline."""


@register("soak", help="an all-reduce repeated for --duration seconds; bandwidth over time, every window verified")
def check_soak(ctx: CheckContext) -> None:
    duration = ctx.options.duration_s
    if duration <= 0:
        ctx.skip("pass --duration SECONDS to soak the fabric")
    mesh, rt = ctx.mesh, ctx.runtime
    _, group = mesh.group(None)
    comm = group.comm
    size = min(ctx.sized(full=1 << 28, small=1 << 20, quick=1 << 16), memory_cap(rt, comm))
    count = per_rank_count("all_reduce", size, comm.size, 4)
    size = size_of("all_reduce", count, comm.size, 4)
    k = kernel("all_reduce", group, rt, count=count, dtype=np.float32, in_place=False)
    window = max(0.2, duration / WINDOWS)
    comm.Barrier()
    once_start = MPI.Wtime()
    k.run()
    once = comm.allreduce(MPI.Wtime() - once_start, op=MPI.MAX)
    iterations = max(1, int(window / max(once, 1e-7)))
    rows, wrong = [], 0
    start = MPI.Wtime()
    progress = Progress("soak", int(duration / window) + 1, enabled=ctx.is_root)
    while True:
        # Rank 0's clock decides for everyone, so all ranks run the same number of windows.
        elapsed = comm.bcast(MPI.Wtime() - start, root=0)
        if elapsed >= duration:
            break
        bad = verify(k, group, rt.backend.xp)
        wrong += bad[comm.rank]
        timing = time_loop(comm, k.run, iterations=iterations, warmup=0, clock=rt.backend.clock())
        rows.append({"t_s": elapsed, "iters": iterations, "time_us_max": timing.t_max * 1e6,
                     "busbw_GBps": busbw_gbps("all_reduce", size, timing.t_max, comm.size), "wrong": sum(bad)})
        progress.step(f"{elapsed:.0f} s")
    progress.close()
    if wrong:
        ctx.fail(f"{wrong} wrong elements during the soak")
    busbw = np.array([r["busbw_GBps"] for r in rows])
    median = float(np.median(busbw))
    quarter = max(1, len(busbw) // 4)
    trend = float(np.median(busbw[-quarter:]) / np.median(busbw[:quarter]))
    fraction = ctx.options.min_efficiency
    dips = int((busbw < fraction * median).sum())
    judged = not rt.oversubscribed
    if judged and dips:
        ctx.fail(f"{dips} of {len(rows)} windows fell below {fraction:g} x the median {median:.2f} GB/s "
                 f"(lowest {busbw.min():.2f} GB/s at t={rows[int(busbw.argmin())]['t_s']:.1f} s)")
    ctx.save("timeline", table(rows), description="one row per window: start time, busbw, wrong elements")
    ctx.attrs.update(size_bytes=size, window_s=window, median_GBps=median, trend=trend, judged=judged,
                     min_efficiency=fraction)
    note = "" if judged else "; not judged: oversubscribed machine"
    ctx.headline = (f"{len(rows)} windows over {duration:g} s at {human_bytes(size)}: busbw median {median:.2f} GB/s, "
                    f"min {busbw.min():.2f}, max {busbw.max():.2f}, last/first quarter {trend:.2f}; "
                    f"{dips} dips below {fraction:g} x median{note}")
