#!/usr/bin/env python3
"""Does the bandwidth check measure the truth? Its all-reduce timings against a bare loop.

In one job, on the same sizes and iteration counts, interleaved round by round: the suite's
sweep engine (tessera_mpi.fabric.sweep.measure, exactly what the `bandwidth` check reports) and a bare
mpi4py loop (barrier, one warm-up, back-to-back Allreduce timed with MPI.Wtime, per-rank mean,
max over ranks). Agreement target: within 15% at >= 4 KiB, within 2 us + 15% below.

    mpirun -n 8 python scripts/bench_vs_raw.py [--sizes 8:4M:4] [--rounds 5]
"""

from __future__ import annotations

import argparse
import statistics

import numpy as np
from mpi4py import MPI

from tessera_mpi import runtime
from tessera_mpi.fabric import sweep
from tessera_mpi.suite.options import parse_sizes


def bare(comm: MPI.Intracomm, count: int, iterations: int) -> float:
    send = np.ones(count, dtype=np.float32)
    recv = np.empty_like(send)
    comm.Allreduce(send, recv, op=MPI.SUM)
    comm.Barrier()
    start = MPI.Wtime()
    for _ in range(iterations):
        comm.Allreduce(send, recv, op=MPI.SUM)
    mean = (MPI.Wtime() - start) / iterations
    return comm.allreduce(mean, op=MPI.MAX)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="8:4M:4")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--budget", type=float, default=0.2, help="seconds per measurement")
    args = parser.parse_args()
    rt = runtime.start()
    comm = rt.world
    rows = []
    for size in sweep.sizes(*parse_sizes(args.sizes)):
        suite_t, bare_t = [], []
        for _ in range(args.rounds):
            m = sweep.measure("all_reduce", comm, rt, size_bytes=size, budget_s=args.budget)
            suite_t.append(m.timing.t_max)
            bare_t.append(bare(comm, m.count, m.timing.iterations))
        s, b = statistics.median(suite_t), statistics.median(bare_t)
        allowed = 0.15 * b + (2e-6 if size < 4096 else 0.0)
        rows.append((size, m.timing.iterations, s, b, abs(s - b) <= allowed))
    if comm.rank == 0:
        print(f"{comm.size} ranks, all_reduce float32, median of {args.rounds} interleaved rounds of t_max")
        print(f"{'bytes':>10}{'iters':>7}{'suite us':>11}{'bare us':>11}{'ratio':>8}  within target")
        for size, iters, s, b, ok in rows:
            print(f"{size:>10}{iters:>7}{s * 1e6:>11.2f}{b * 1e6:>11.2f}{s / b:>8.3f}  {'yes' if ok else 'NO'}")
        print(f"{sum(ok for *_, ok in rows)} of {len(rows)} sizes within 15% (plus 2 us below 4 KiB)")


if __name__ == "__main__":
    main()
