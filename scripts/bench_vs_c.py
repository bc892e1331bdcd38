#!/usr/bin/env python3
"""The sweep against a C benchmark loop built with the same MPI (scripts/c_reference/).

Runs, alternately and in the same conditions (same rank count, sizes, budget and iteration
rule), the C loop (`scripts/c_reference/build/mpi_loop`) and the sweep engine that the
`bandwidth` check uses (`tessera_mpi.fabric.sweep.measure`), each as its own mpirun job, and
prints, per size, the median over rounds of t_max (IMB's headline: max over ranks of the
per-rank mean) and the ratio sweep / C.

Targets (issue 19), at 2 ranks: sweep / C at most 1.15 at >= 8 KiB, at most 1 us + 15% below,
within 5% at >= 256 KiB. With more ranks than cores the same plus a noise allowance: the C
loop's own spread between rounds at that size (interquartile range / median), the distance its
own runs already move.

    python scripts/bench_vs_c.py [--ranks 2] [--op allreduce|sendrecv] [--sizes 4K:2M:2]
                                 [--rounds 3] [--loop auto|python|both]

`--loop both` runs the sweep twice per round, once with the compiled loop where available and
once forced to the Python loop, to show what the compiled loop buys.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
C_LOOP = ROOT / "scripts" / "c_reference" / "build" / "mpi_loop"
COLLECTIVE = {"allreduce": "all_reduce", "sendrecv": "sendrecv"}


def sweep_job(op: str, sizes: list[int], budget: float, max_iterations: int, loop: str) -> None:
    """Inside mpirun: measure each size with the sweep and print the C loop's line format."""
    from tessera_mpi import runtime
    from tessera_mpi.fabric import sweep

    rt = runtime.start()
    for size in sizes:
        m = sweep.measure(COLLECTIVE[op], rt.world, rt, size_bytes=size, budget_s=budget,
                          max_iterations=max_iterations, loop=loop)
        t = m.timing
        if rt.world.rank == 0:
            print(f"{op} {m.size_bytes} {t.iterations} {t.t_max * 1e6:.4f} {t.t_avg * 1e6:.4f} "
                  f"{t.t_min * 1e6:.4f} {t.loop}", flush=True)


def mpirun(ranks: int, command: list[str], timeout: float) -> list[list[str]]:
    """Run one job; return its result lines split into fields."""
    launcher = ROOT / ".venv" / "bin" / "mpirun"
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    done = subprocess.run([str(launcher), "--oversubscribe", "-n", str(ranks), *command], env=env,
                          capture_output=True, text=True, timeout=timeout, check=False)
    if done.returncode:
        sys.exit(f"job failed ({done.returncode}): {' '.join(command)}\n{done.stdout}\n{done.stderr}")
    return [line.split() for line in done.stdout.splitlines() if line.split()[:1] in (["allreduce"], ["sendrecv"])]


def target(ranks: int, cores: int, size: int, c_us: float, spread: float) -> tuple[float, str]:
    """Return the largest acceptable sweep time (us) at this size and the rule that gives it."""
    noise = spread if ranks > cores else 0.0
    if size >= 256 * 1024:
        limit, rule = c_us * (1.05 + noise), "5%"
    elif size >= 8 * 1024:
        limit, rule = c_us * (1.15 + noise), "15%"
    else:
        limit, rule = c_us * (1.15 + noise) + 1.0, "1us+15%"
    return limit, rule + (f"+{noise:.0%}" if noise else "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ranks", type=int, default=2)
    parser.add_argument("--op", choices=sorted(COLLECTIVE), default="allreduce")
    parser.add_argument("--sizes", default="4K:2M:2", help="MIN:MAX[:FACTOR] in bytes (K, M suffixes)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--budget", type=float, default=0.2, help="seconds per measurement, as the sweep's")
    parser.add_argument("--max-iterations", type=int, default=1000)
    parser.add_argument("--loop", choices=("auto", "python", "both"), default="auto")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds per job")
    parser.add_argument("--sweep-job", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    from tessera_mpi.fabric.sweep import sizes as sweep_sizes
    from tessera_mpi.suite.options import parse_sizes

    sizes = sweep_sizes(*parse_sizes(args.sizes))
    if args.sweep_job:
        sweep_job(args.op, sizes, args.budget, args.max_iterations, args.loop)
        return
    if not C_LOOP.exists():
        subprocess.run([str(ROOT / "scripts" / "c_reference" / "build.sh")], check=True)
    common = [str(args.budget), str(args.max_iterations), *map(str, sizes)]
    jobs = {"C": [str(C_LOOP), args.op, *common]}
    python = str(ROOT / ".venv" / "bin" / "python")
    me = [python, str(Path(__file__).resolve()), "--sweep-job", "--op", args.op, "--sizes", args.sizes,
          "--budget", str(args.budget), "--max-iterations", str(args.max_iterations)]
    loops = ("auto", "python") if args.loop == "both" else (args.loop,)
    for loop in loops:
        jobs[f"sweep {loop}"] = [*me, "--loop", loop]
    times: dict[str, dict[int, list[float]]] = {name: {} for name in jobs}
    flags: dict[str, set[str]] = {name: set() for name in jobs}
    names = list(jobs)
    for number in range(args.rounds):
        # Alternate the order so that neither side always runs first after a quiet spell.
        for name in names if number % 2 == 0 else names[::-1]:
            for fields in mpirun(args.ranks, jobs[name], args.timeout):
                times[name].setdefault(int(fields[1]), []).append(float(fields[3]))
                if len(fields) > 6:
                    flags[name].add(fields[6])
    cores = os.cpu_count() or 1
    print(f"{args.ranks} ranks on {cores} cores, {args.op} float32, t_max, median of {args.rounds} "
          f"alternating runs (C loop: {C_LOOP.relative_to(ROOT)})")
    sweeps = [n for n in names if n != "C"]
    header = f"{'bytes':>9}{'C us':>10}{'C spread':>9}" + "".join(
        f"{n + ' us':>18}{'/ C':>7}" for n in sweeps) + f"  {'target':>12}  met"
    print(header)
    met = 0
    for size in sorted(times["C"]):
        c_runs = times["C"][size]
        c_us = statistics.median(c_runs)
        quartiles = statistics.quantiles(c_runs, n=4, method="inclusive") if len(c_runs) > 1 else [c_us] * 3
        spread = (quartiles[2] - quartiles[0]) / c_us
        limit, rule = target(args.ranks, cores, size, c_us, spread)
        line = f"{size:>9}{c_us:>10.2f}{spread:>9.0%}"
        for n in sweeps:
            s_us = statistics.median(times[n][size])
            line += f"{s_us:>18.2f}{s_us / c_us:>7.2f}"
        first = statistics.median(times[sweeps[0]][size])
        ok = first <= limit
        met += ok
        print(f"{line}  {rule:>12}  {'yes' if ok else 'NO'} ({sweeps[0]})")
    print(f"{met} of {len(times['C'])} sizes within target; sweep loops used: "
          + "; ".join(f"{n}: {','.join(sorted(flags[n])) or '?'}" for n in sweeps))


if __name__ == "__main__":
    main()
