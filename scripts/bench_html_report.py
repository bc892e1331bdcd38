#!/usr/bin/env python3
"""Time and size of the HTML report of a run, as a person gets it from the command line.

    python scripts/bench_html_report.py RESULTS.h5 [--baseline GOOD.h5] [--repeat 3]

Each repetition is a fresh `python -m tessera_mpi.results report` process (imports, reading the
file, drawing every figure, writing the page), timed by wall clock and by the CPU time the
process used (on a shared machine the wall time also counts other processes' turns). Prints
each repetition, then the median and the largest report size against the targets (10 s, 5 MiB).
Then, in this process, what the suite's writing rank pays to rewrite the page after a check
(`--html`): reading the file and drawing the page with every earlier check's section cached.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET_S = 10.0
TARGET_BYTES = 5 << 20


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("results", help="results file (.h5)")
    parser.add_argument("--baseline", help="a baseline results file (the report then draws it too)")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    walls, cpus, sizes = [], [], []
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "report.html"
        command = [sys.executable, "-m", "tessera_mpi.results", "report", args.results, "-o", str(out)]
        if args.baseline:
            command[5:5] = ["--baseline", args.baseline]
        for i in range(args.repeat):
            before_cpu, start = _cpu(), time.perf_counter()
            subprocess.run(command, check=True, stdout=subprocess.DEVNULL, env=dict(os.environ))
            walls.append(time.perf_counter() - start)
            cpus.append(_cpu() - before_cpu)
            sizes.append(out.stat().st_size)
            print(f"run {i + 1}: wall {walls[-1]:.2f} s, cpu {cpus[-1]:.2f} s, {sizes[-1] / 2**20:.2f} MiB")
    wall, cpu, size = statistics.median(walls), statistics.median(cpus), max(sizes)
    print(f"median wall {wall:.2f} s (target < {TARGET_S:g} s), median cpu {cpu:.2f} s, "
          f"largest {size / 2**20:.2f} MiB (target < {TARGET_BYTES / 2**20:g} MiB)")
    from tessera_mpi.results import read_results
    from tessera_mpi.results.html import run_report

    cache: dict = {}
    start = time.perf_counter()
    run_report(read_results(args.results), cache=cache)
    cold = time.perf_counter() - start
    rewrites = []
    for _ in range(args.repeat):
        start = time.perf_counter()
        run_report(read_results(args.results), cache=cache)
        rewrites.append(time.perf_counter() - start)
    print(f"in process: first page {cold:.2f} s; a rewrite with every check cached (the suite after each "
          f"check, before the new check's figures) median {statistics.median(rewrites):.3f} s")
    print("PASS" if wall < TARGET_S and size < TARGET_BYTES else "MISS")
    return 0


if __name__ == "__main__":
    sys.exit(main())
