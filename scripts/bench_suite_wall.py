#!/usr/bin/env python3
"""Wall time of a suite run at N ranks, side by side with a bare mpi4py start-up.

The bare job (import mpi4py and numpy, one Allreduce) is what any MPI Python program pays to
start; the ratio says what the suite adds. Runs alternate so machine noise hits both alike.

    python scripts/bench_suite_wall.py [--ranks 72] [--repeats 3] [--tests mesh,sharding] [-- SUITE FLAGS]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from tessera_mpi.util.procs import find_mpirun

BARE = "from mpi4py import MPI; import numpy as np; MPI.COMM_WORLD.allreduce(1)"


def timed(command: list[str], timeout: float) -> float:
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env, check=False)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"command failed ({done.returncode}): {' '.join(command)}\n{done.stdout}\n{done.stderr}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ranks", type=int, default=72)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=300)
    parser.add_argument("--tests", default="mesh,sharding")
    parser.add_argument("suite_flags", nargs="*", help="more suite flags, after --")
    args = parser.parse_args()
    mpirun = find_mpirun() or sys.exit("no mpirun found")
    launch = [mpirun, "--oversubscribe", "-n", str(args.ranks), sys.executable]
    suite, bare = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.repeats):
            bare.append(timed(launch + ["-c", BARE], args.timeout))
            suite.append(timed(launch + ["-m", "tessera_mpi.suite", "--tests", args.tests, *args.suite_flags,
                                         "--out", f"{tmp}/run{i}.h5"], args.timeout))
    print(f"{args.ranks} ranks, {args.repeats} alternating runs, {os.cpu_count()} cores")
    label = " ".join(["suite --tests", args.tests, *args.suite_flags])
    print(f"{'job':<34}{'min s':>8}{'median s':>10}{'max s':>8}" if len(label) <= 34 else f"suite: {label}")
    for name, times in (("bare mpi4py start-up + Allreduce", bare), (label[:34], suite)):
        print(f"{name:<34}{min(times):>8.1f}{statistics.median(times):>10.1f}{max(times):>8.1f}")
    print(f"ratio suite / bare (medians): {statistics.median(suite) / statistics.median(bare):.2f}")


if __name__ == "__main__":
    main()
