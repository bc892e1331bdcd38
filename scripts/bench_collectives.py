#!/usr/bin/env python3
"""op.all_reduce against raw mpi4py Allreduce, and the deterministic sum against the native sum.

All variants run in one job on the same buffers, interleaved round by round so machine noise
hits them alike; the table reports the median over rounds of IMB's t_max and the ratios.

    mpirun -n 8 python scripts/bench_collectives.py [--sizes 8,65536,4194304,67108864] [--dtype float32]
        [--algorithms gather,alltoall,digits]

Targets (issue 3): wrapper <= 1.10x raw at >= 64 KiB and <= 1.5x at 8 B. Issue 14: det/native
<= 1.5x at >= 4 MiB and <= 1.2x at >= 64 MiB (float32, float64), <= 5x at 8 B - 4 KiB (8
ranks); float16 and bfloat16 within 1.5x of a native float32 sum of the same element count.
Columns: out/raw is the wrapper on the same preallocated buffers as raw, op/raw includes
allocating a fresh result, det/op compares deterministic and native sums, both into the same
preallocated buffer. For float16 and bfloat16, which MPI cannot sum, the native variants sum
float32 buffers of the same element count (sizes are the deterministic buffer's bytes).
--algorithms adds one column per forced algorithm (det out= with algorithm=...), over op out=.
--lean times only raw, op out= and det out= on one input and one output buffer (64 MiB at 72
ranks: three buffers of 64 MiB per rank with the sum's scratch, where the full set needs six).
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
from mpi4py import MPI

from tessera_mpi import dist, op
from tessera_mpi.fabric.timing import iterations_for, time_loop
from tessera_mpi.reduction.formats import bfloat16


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="8,65536,4194304,67108864", help="buffer sizes in bytes")
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64", "float16", "bfloat16"])
    parser.add_argument("--algorithms", default="", help="forced algorithms to time beside auto")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=0.5, help="time budget per variant per round")
    parser.add_argument("--lean", action="store_true",
                        help="only raw, op out= and det out=, on one input and one output buffer (for sizes "
                             "whose full set of buffers does not fit the machine, e.g. 64 MiB at 72 ranks)")
    args = parser.parse_args()
    comm = MPI.COMM_WORLD
    mesh = dist.Mesh(axes=["dp"])
    dtype = bfloat16() if args.dtype == "bfloat16" else np.dtype(args.dtype)
    native_dtype = dtype if dtype.itemsize >= 4 else np.dtype(np.float32)
    forced = [a for a in args.algorithms.split(",") if a]
    rows = []
    for nbytes in (int(s) for s in args.sizes.split(",")):
        count = max(1, nbytes // dtype.itemsize)
        rng = np.random.default_rng(comm.rank)
        data = rng.standard_normal(count, dtype=native_dtype)  # no float64 temporary
        x = dist.tensor(data, mesh=mesh)
        y = dist.tensor(np.empty_like(data), mesh=mesh)
        recv = y.local
        same = np.dtype(dtype) == native_dtype and args.lean
        xd = x if same else dist.tensor(data.astype(dtype), mesh=mesh)
        yd = y if same else dist.tensor(np.empty_like(xd.local), mesh=mesh)
        variants = {
            "raw": lambda: comm.Allreduce(data, recv, op=MPI.SUM),
            "op_out": lambda: op.all_reduce(x, "sum", out=y, check=False),
            "op": lambda: op.all_reduce(x, "sum", check=False),
            "op_checked": lambda: op.all_reduce(x, "sum"),
            "det_out": lambda: op.all_reduce(xd, "sum", deterministic=True, out=yd, check=False),
            "det": lambda: op.all_reduce(xd, "sum", deterministic=True, check=False),
        }
        if args.lean:
            variants = {k: variants[k] for k in ("raw", "op_out", "det_out")}
        for algorithm in forced:
            variants[f"det_{algorithm}"] = (lambda a=algorithm: op.all_reduce(
                xd, "sum", deterministic=True, algorithm=a, out=yd, check=False))
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
        print(f"{comm.size} ranks, {args.dtype} (native variants: {native_dtype.name}), median over "
              f"{args.rounds} interleaved rounds of t_max (us)")
        print("raw: comm.Allreduce into a preallocated buffer; op out=: op.all_reduce(x, out=y, "
              "check=False) on the same buffers; op: a new result each call; +check: with the "
              "metadata agreement; det: deterministic=True")
        columns = [("raw", "raw"), ("op out=", "op_out"), ("op", "op"), ("op+check", "op_checked"),
                   ("det out=", "det_out"), ("det", "det")]
        ratios = [("out/raw", "op_out", "raw"), ("op/raw", "op", "raw"), ("det/op", "det_out", "op_out")]
        present = rows[0][2] if rows else {}
        columns = [c for c in columns if c[1] in present]
        ratios = [r for r in ratios if r[1] in present and r[2] in present]
        print(f"{'bytes':>10}" + "".join(f" {label:>10}" for label, _ in columns)
              + "".join(f" {label:>8}" for label, _, _ in ratios) + "".join(f" {a + '/op':>12}" for a in forced))
        for nbytes, _, med in rows:
            print(f"{nbytes:>10}" + "".join(f" {med[key] * 1e6:>10.1f}" for _, key in columns)
                  + "".join(f" {med[a] / med[b]:>8.2f}" for _, a, b in ratios)
                  + "".join(f" {med['det_' + a] / med['op_out']:>12.2f}" for a in forced))


if __name__ == "__main__":
    main()
