#!/usr/bin/env python3
"""The sweep against a C benchmark loop built with the same MPI (scripts/c_reference/).

Measures, alternately and in the same conditions (same rank count, sizes, budget and
iteration rule), the C loop of scripts/c_reference/mpi_loop.c and the sweep engine that the
`bandwidth` check uses (`tessera_mpi.fabric.sweep.measure`), and prints per size the median
over rounds of t_max (IMB's headline: max over ranks of the per-rank mean) and sweep / C.

Two ways to alternate:
- `--mode interleaved` (default): one job; for each round and size the C loop (the library
  build of mpi_loop.c, called through ctypes on the job's communicator), the sweep with its
  compiled loop and the sweep forced to Python run back to back, in rotating order. All of
  them meet the same moment of a shared machine, which separate jobs do not.
- `--mode jobs`: each round runs the C program and the sweep as separate mpirun jobs, in
  alternating order (the C program starts MPI itself, with MPI_Init).

Targets (issue 19), at 2 ranks (one per core): sweep / C at most 1.15 at >= 8 KiB, at most
1 us + 15% below, within 5% at >= 256 KiB. With more ranks than cores, the same plus a noise
allowance: the C loop's own spread between rounds at that size (interquartile range /
median), the distance its own runs already move.

    python scripts/bench_vs_c.py [--ranks 2] [--op allreduce|sendrecv] [--sizes 4K:2M:2]
                                 [--rounds 5] [--mode interleaved|jobs]
"""

from __future__ import annotations

import argparse
import ctypes
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BUILD = ROOT / "scripts" / "c_reference" / "build"
COLLECTIVE = {"allreduce": "all_reduce", "sendrecv": "sendrecv"}
SIDES = ("C", "sweep compiled", "sweep python")


def line(side: str, op: str, size: int, iterations: int, t_max: float, t_avg: float, t_min: float) -> str:
    return f"{side.replace(' ', '_')} {op} {size} {iterations} {t_max * 1e6:.4f} {t_avg * 1e6:.4f} {t_min * 1e6:.4f}"


def sweep_job(args: argparse.Namespace, sizes: list[int], *, with_c: bool) -> None:
    """Inside mpirun: measure each size (and round, interleaved with the C loop when `with_c`)."""
    from tessera_mpi import runtime
    from tessera_mpi.fabric import sweep

    rt = runtime.start()
    comm = rt.world
    c_loop = ctypes.CDLL(str(BUILD / "libmpi_loop.so")) if with_c else None
    if c_loop is not None:
        c_loop.mpi_loop_measure.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_long, ctypes.c_double,
                                            ctypes.c_long, ctypes.c_void_p]
        c_loop.mpi_loop_measure.restype = ctypes.c_long
    from mpi4py import MPI

    sides = SIDES if with_c else ("sweep " + args.loop,)
    for number in range(args.rounds if with_c else 1):
        for size in sizes:
            order = sides[number % len(sides):] + sides[:number % len(sides)]
            for side in order:
                if side == "C":
                    out = (ctypes.c_double * 4)()
                    got = c_loop.mpi_loop_measure(args.op == "allreduce", MPI._addressof(comm), size, args.budget,
                                                  args.max_iterations, out)
                    text = line(side, args.op, got, int(out[0]), out[1], out[2], out[3])
                else:
                    loop = "auto" if side.endswith(("compiled", "auto")) else "python"
                    m = sweep.measure(COLLECTIVE[args.op], comm, rt, size_bytes=size, budget_s=args.budget,
                                      max_iterations=args.max_iterations, loop=loop)
                    t = m.timing
                    text = line(f"sweep {t.loop}", args.op, m.size_bytes, t.iterations, t.t_max, t.t_avg, t.t_min)
                if comm.rank == 0:
                    print(text, flush=True)


def mpirun(args: argparse.Namespace, command: list[str]) -> list[list[str]]:
    """Run one job; return its result lines split into fields."""
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    done = subprocess.run([str(ROOT / ".venv" / "bin" / "mpirun"), "--oversubscribe", "-n", str(args.ranks),
                           *command], env=env, capture_output=True, text=True, timeout=args.timeout, check=False)
    if done.returncode:
        sys.exit(f"job failed ({done.returncode}): {' '.join(command)}\n{done.stdout}\n{done.stderr}")
    rows = []
    for fields in (text.split() for text in done.stdout.splitlines()):
        if len(fields) == 6 and fields[0] == args.op:  # the C program's lines
            rows.append(["C", *fields])
        elif len(fields) == 7 and fields[1] == args.op:
            rows.append(fields)
    return rows


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


def report(args: argparse.Namespace, rows: list[list[str]]) -> None:
    times: dict[str, dict[int, list[float]]] = {}
    for side, _, size, _, t_max, *_ in rows:
        times.setdefault(side.replace("_", " "), {}).setdefault(int(size), []).append(float(t_max))
    cores = os.cpu_count() or 1
    print(f"{args.ranks} ranks on {cores} cores, {args.op} float32, t_max, median of {args.rounds} rounds, "
          f"mode {args.mode}")
    sweeps = [s for s in SIDES[1:] if s in times]
    print(f"{'bytes':>9}{'C us':>9}{'C IQR':>7}" + "".join(f"{s[6:] + ' us':>13}{'/ C':>6}" for s in sweeps)
          + f"{'target':>14}  met")
    met = 0
    for size in sorted(times["C"]):
        c_runs = times["C"][size]
        c_us = statistics.median(c_runs)
        q = statistics.quantiles(c_runs, n=4, method="inclusive") if len(c_runs) > 1 else [c_us] * 3
        spread = (q[2] - q[0]) / c_us
        limit, rule = target(args.ranks, cores, size, c_us, spread)
        text = f"{size:>9}{c_us:>9.2f}{spread:>7.0%}"
        for s in sweeps:
            s_us = statistics.median(times[s][size])
            text += f"{s_us:>13.2f}{s_us / c_us:>6.2f}"
        ok = statistics.median(times[sweeps[0]][size]) <= limit
        met += ok
        print(f"{text}{rule:>14}  {'yes' if ok else 'NO'}")
    print(f"{met} of {len(times['C'])} sizes within target ({sweeps[0]})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ranks", type=int, default=2)
    parser.add_argument("--op", choices=sorted(COLLECTIVE), default="allreduce")
    parser.add_argument("--sizes", default="4K:2M:2", help="MIN:MAX[:FACTOR] in bytes (K, M suffixes)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--mode", choices=("interleaved", "jobs"), default="interleaved")
    parser.add_argument("--budget", type=float, default=0.2, help="seconds per measurement, as the sweep's")
    parser.add_argument("--max-iterations", type=int, default=1000)
    parser.add_argument("--timeout", type=float, default=500.0, help="seconds per job")
    parser.add_argument("--job", choices=("interleaved", "compiled", "python"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    from tessera_mpi.fabric.sweep import sizes as sweep_sizes
    from tessera_mpi.suite.options import parse_sizes

    sizes = sweep_sizes(*parse_sizes(args.sizes))
    if args.job:
        args.loop = args.job
        sweep_job(args, sizes, with_c=args.job == "interleaved")
        return
    # Rebuilt every time (under a second): the binaries never lag their source.
    subprocess.run([str(ROOT / "scripts" / "c_reference" / "build.sh")], check=True, stdout=subprocess.DEVNULL)
    python = str(ROOT / ".venv" / "bin" / "python")
    me = [python, str(Path(__file__).resolve()), "--op", args.op, "--sizes", args.sizes, "--rounds",
          str(args.rounds), "--budget", str(args.budget), "--max-iterations", str(args.max_iterations)]
    if args.mode == "interleaved":
        rows = mpirun(args, [*me, "--job", "interleaved"])
    else:
        jobs = {"C": [str(BUILD / "mpi_loop"), args.op, str(args.budget), str(args.max_iterations),
                      *map(str, sizes)],
                "compiled": [*me, "--job", "compiled"], "python": [*me, "--job", "python"]}
        rows = []
        names = list(jobs)
        for number in range(args.rounds):
            for name in names[number % 3:] + names[:number % 3]:
                rows += mpirun(args, jobs[name])
    report(args, rows)


if __name__ == "__main__":
    main()
