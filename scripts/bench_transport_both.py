#!/usr/bin/env python3
"""The cost of `--transport both` against an MPI-only sweep: the bandwidth check's plan
(--quick sizes, every swept collective and variant), run alternately MPI only and MPI + NCCL
interleaved, in one job. The issue's target: both costs at most 2.2x MPI only (it runs twice).

    TESSERA_BACKEND=emulated mpirun -n 8 python scripts/bench_transport_both.py --runs 5

On the emulated backend NCCL is MPI under NCCL's calling conventions: the ratio measures the
framework's cost of the second transport, not NCCL. Prints each run's seconds and the ratio
of the medians (max over ranks of each sweep's wall time).
"""

from __future__ import annotations

import argparse
import statistics

from mpi4py import MPI

from tessera_mpi import runtime
from tessera_mpi.dist.mesh import Mesh
from tessera_mpi.fabric.collectives import SWEPT, TABLE
from tessera_mpi.fabric.sweep import distinct, measure, sizes


def sweep(mesh: Mesh, rt: runtime.Runtime, plan: list[tuple[str, int, bool]], transports: tuple[str, ...],
          budget: float) -> float:
    """Seconds of one sweep, as the bandwidth check runs it (max over ranks)."""
    groups = [mesh.group(None, transport=t)[1] for t in transports]
    mesh.comm.Barrier()
    start = MPI.Wtime()
    for collective, size, in_place in plan:
        for group in groups:
            m = measure(collective, group, rt, size_bytes=size, in_place=in_place, budget_s=budget)
            assert m.wrong == 0, (collective, size, in_place, m.transport)
    return float(mesh.comm.allreduce(MPI.Wtime() - start, op=MPI.MAX))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--budget", type=float, default=0.02, help="seconds per measurement (--quick's)")
    args = parser.parse_args()
    rt = runtime.start()
    mesh = Mesh(("dp",))
    plan = [(c, size, in_place) for c in SWEPT for size in distinct(c, sizes(8, 1 << 16, 8), mesh.comm.size, 4)
            for in_place in TABLE[c].variants]
    # Warm-up: the first NCCL call bootstraps its communicator; both modes start warm.
    sweep(mesh, rt, plan[:2], ("mpi", "nccl"), args.budget)
    seconds: dict[str, list[float]] = {"mpi": [], "both": []}
    for run in range(args.runs):
        order = ("mpi", "both") if run % 2 == 0 else ("both", "mpi")
        for mode in order:
            seconds[mode].append(sweep(mesh, rt, plan, ("mpi",) if mode == "mpi" else ("mpi", "nccl"), args.budget))
    if mesh.comm.rank == 0:
        print(f"backend {rt.backend.name}, {mesh.comm.size} ranks, {len(plan)} measurements per transport")
        for mode, values in seconds.items():
            print(f"{mode:>5}: " + " ".join(f"{v:.2f}" for v in values) + f"  median {statistics.median(values):.2f} s")
        ratios = [b / m for m, b in zip(seconds["mpi"], seconds["both"])]
        print("run by run both/mpi: " + " ".join(f"{r:.2f}" for r in ratios))
        print(f"both / mpi (medians): {statistics.median(seconds['both']) / statistics.median(seconds['mpi']):.2f}"
              " (target <= 2.2)")


if __name__ == "__main__":
    main()
