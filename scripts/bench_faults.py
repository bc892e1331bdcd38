#!/usr/bin/env python3
"""Time from a device loss to the rebuilt mesh, per fault scenario, over several suite runs.

    python scripts/bench_faults.py [--ranks 72] [--runs 3] [--mode real|simulated]

Runs `mpirun [--with-ft ulfm] -n RANKS python -m tessera_mpi.suite --tests faults` RUNS times
(each with a timeout) and reads each run's /checks/faults/scenarios table (rank 0's view):
detection is from the start of the work to the error, recovery from the error to the rebuilt
mesh. Target (issue 5): loss to rebuilt mesh under 1 s at 72 ranks on this machine.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from tessera_mpi.util.procs import find_mpirun
from tessera_mpi.results import read_results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ranks", type=int, default=72)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--mode", default="real", choices=["real", "simulated"])
    parser.add_argument("--timeout", type=float, default=600)
    args = parser.parse_args()
    mpirun = find_mpirun() or sys.exit("no mpirun found")
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    ft = ["--with-ft", "ulfm"] if args.mode == "real" else []
    totals: dict[str, list[tuple[float, float]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.runs):
            out = Path(tmp) / f"run{i}.h5"
            done = subprocess.run([mpirun, *ft, "--oversubscribe", "-n", str(args.ranks), sys.executable, "-m",
                                   "tessera_mpi.suite", "--tests", "faults", "--out", str(out)],
                                  capture_output=True, text=True, timeout=args.timeout, env=env, check=False)
            if done.returncode != 0:
                sys.exit(f"run {i} failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
            for row in read_results(out).checks["faults"].datasets["scenarios"]:
                name = row["scenario"].decode()
                if name.startswith("drop"):
                    totals.setdefault(name, []).append((float(row["detection_ms"]), float(row["recovery_ms"])))
    print(f"{args.ranks} ranks, {args.mode} faults, {args.runs} runs of --tests faults (rank 0's view, ms)")
    print(f"{'scenario':<22}{'detect med':>11}{'recover med':>12}{'total med':>10}{'total max':>10}")
    for name, values in totals.items():
        total = [d + r for d, r in values]
        print(f"{name:<22}{statistics.median(d for d, _ in values):>11.0f}{statistics.median(r for _, r in values):>12.0f}"
              f"{statistics.median(total):>10.0f}{max(total):>10.0f}")


if __name__ == "__main__":
    main()
