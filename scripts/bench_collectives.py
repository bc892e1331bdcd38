#!/usr/bin/env python3
"""op.all_reduce against raw mpi4py Allreduce, and the deterministic sum against the native sum.

All variants run in one job on the same buffers, interleaved round by round so machine noise
hits them alike; the table reports the median over rounds of IMB's t_max and the ratios.

    mpirun -n 8 python scripts/bench_collectives.py [--sizes 8,65536,4194304,67108864] [--dtype float32]

Targets (issue 3): wrapper <= 1.10x raw at >= 64 KiB and <= 1.5x at 8 B; deterministic sum
<= 2x native at >= 4 MiB. Columns: out/raw is the wrapper on the same preallocated buffers as
raw, op/raw includes allocating a fresh result, det/op compares deterministic and native sums,
both into the same preallocated buffer.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
from mpi4py import MPI

from tessera_mpi import dist, op
from tessera_mpi.fabric.timing import iterations_for, time_loop


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="8,65536,4194304,67108864", help="buffer sizes in bytes")
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=0.5, help="time budget per variant per round")
    args = parser.parse_args()
    comm = MPI.COMM_WORLD
    mesh = dist.Mesh(axes=["dp"])
    dtype = np.dtype(args.dtype)
    rows = []
    for nbytes in (int(s) for s in args.sizes.split(",")):
        count = max(1, nbytes // dtype.itemsize)
        rng = np.random.default_rng(comm.rank)
        data = rng.normal(size=count).astype(dtype)
        x = dist.tensor(data, mesh=mesh)
        y = dist.tensor(np.empty_like(data), mesh=mesh)
        recv = y.local
        variants = {
            "raw": lambda: comm.Allreduce(data, recv, op=MPI.SUM),
            "op_out": lambda: op.all_reduce(x, "sum", out=y, check=False),
            "op": lambda: op.all_reduce(x, "sum", check=False),
            "op_checked": lambda: op.all_reduce(x, "sum"),
            "det_out": lambda: op.all_reduce(x, "sum", deterministic=True, out=y, check=False),
            "det": lambda: op.all_reduce(x, "sum", deterministic=True, check=False),
        }
        # Calibrate one iteration count per variant from a first timed call, capped by bytes.
        budget = {}
        for name, body in variants.items():
            body()
            comm.Barrier()
            start = time.perf_counter()
            body()
            once = comm.allreduce(time.perf_counter() - start, op=MPI.MAX)
            budget[name] = max(3, min(iterations_for(nbytes), int(args.seconds / max(once, 1e-7))))
        results: dict[str, list[float]] = {name: [] for name in variants}
        for _ in range(args.rounds):
            for name, body in variants.items():
                results[name].append(time_loop(comm, body, iterations=budget[name], warmup=1).t_max)
        med = {name: statistics.median(v) for name, v in results.items()}
        rows.append((nbytes, budget, med))
    if comm.rank == 0:
        print(f"{comm.size} ranks, {args.dtype}, median over {args.rounds} interleaved rounds of t_max (us)")
        print("raw: comm.Allreduce into a preallocated buffer; op out=: op.all_reduce(x, out=y, "
              "check=False) on the same buffers; op: a new result each call; +check: with the "
              "metadata agreement; det: deterministic=True")
        print(f"{'bytes':>10} {'raw':>10} {'op out=':>10} {'op':>10} {'op+check':>10} {'det out=':>10} "
              f"{'det':>10} {'out/raw':>8} {'op/raw':>7} {'det/op':>7}")
        for nbytes, _, med in rows:
            us = {k: v * 1e6 for k, v in med.items()}
            print(f"{nbytes:>10} {us['raw']:>10.1f} {us['op_out']:>10.1f} {us['op']:>10.1f} "
                  f"{us['op_checked']:>10.1f} {us['det_out']:>10.1f} {us['det']:>10.1f} "
                  f"{med['op_out'] / med['raw']:>8.2f} {med['op'] / med['raw']:>7.2f} "
                  f"{med['det_out'] / med['op_out']:>7.2f}")


if __name__ == "__main__":
    main()
