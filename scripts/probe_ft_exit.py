#!/usr/bin/env python3
"""Does `mpirun --with-ft ulfm` end, and end well, when its ranks leave this way? (not part of CI)

    python scripts/probe_ft_exit.py [--ranks 8] [--runs 30] [--variants all-exit-1,...]
        [--lock /work/.heavy.lock]

Each run launches this file under `mpirun --with-ft ulfm --oversubscribe -n RANKS` with a
variant; the ranks leave as the variant says. A run counts as a launcher hang if mpirun outlives
--timeout; the table also counts mpirun's non-zero exits where every rank meant 0, its
"SIGPIPE detected - aborting" and its PMIx "write failed" lines (issue 21). Variants ending in
-pmix finalize PMIx (tessera_mpi.runtime.pmix) before os._exit, as tessera_mpi's survivors do.
--lock takes that file's lock around each run. The figures that decided how tessera_mpi ends a
fault-tolerant job are in docs/performance.md and docs/ulfm.md.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from stress_faults import LAUNCHER_LINES, held  # this directory's sibling

from tessera_mpi.util.procs import find_mpirun, kill_session

VARIANTS = {
    "all-exit-1": "all ranks os._exit(1) at once, no failure",
    "all-finalize-1": "all ranks sys.exit(1) through MPI_Finalize",
    "kill-others-exit-1": "rank 4 killed, the others os._exit(1) together",
    "kill-others-exit-0": "rank 4 killed, the others os._exit(0)",
    "kill-one-speaker": "rank 4 killed, rank 0 os._exit(1), the others os._exit(0)",
    "all-exit-1-staggered": "all ranks os._exit(1), 50 ms apart by rank",
    "kill-others-exit-0-pmix": "rank 4 killed, the others finalize PMIx, os._exit(0)",
    "all-exit-1-pmix": "all ranks finalize PMIx, os._exit(1) at once, no failure",
}
MEANT_ZERO = {"kill-others-exit-0", "kill-others-exit-0-pmix"}
"""Variants where every rank left with 0: a non-zero mpirun is the launcher's doing."""
VICTIM = 4


def rank_main(variant: str) -> None:
    """What every rank does under mpirun."""
    from mpi4py import MPI

    goodbye = variant.endswith("-pmix")
    variant = variant.removesuffix("-pmix")
    if goodbye:
        # The module alone, by its path: importing the tessera_mpi package would cost each of
        # 72 ranks a second of CPU and change the timing under study.
        path = Path(__file__).resolve().parents[1] / "tessera_mpi" / "runtime" / "pmix.py"
        loader = importlib.util.spec_from_file_location("tessera_pmix", path)
        pmix = importlib.util.module_from_spec(loader)
        loader.loader.exec_module(pmix)

    def out(code: int) -> None:
        if goodbye:
            pmix.finalize()
        os._exit(code)

    world = MPI.COMM_WORLD
    pids = world.allgather(os.getpid())
    if variant.startswith("kill") and world.rank == VICTIM:
        while True:  # a live process that never reaches MPI again
            time.sleep(0.01)
    time.sleep(0.5)
    if variant.startswith("kill") and world.rank == 0:
        os.kill(pids[VICTIM], signal.SIGKILL)
    if variant == "all-finalize-1":
        sys.exit(1)
    if variant == "all-exit-1-staggered":
        time.sleep(0.05 * world.rank)
        out(1)
    if variant == "kill-others-exit-0":
        time.sleep(1.0)
        out(0)
    if variant == "kill-one-speaker":
        time.sleep(1.0 if world.rank == 0 else 2.0)
        out(1 if world.rank == 0 else 0)
    time.sleep(1.0 if variant.startswith("kill") else 0.2)
    out(1)


def launch(mpirun: str, ranks: int, variant: str, timeout: float, lock: str | None) -> dict:
    """One run: whether mpirun hung, its exit code and its launcher lines."""
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    command = [mpirun, "--with-ft", "ulfm", "--oversubscribe", "-n", str(ranks), sys.executable, __file__,
               "--rank", variant]
    with held(lock):
        proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                                start_new_session=True)
        try:
            out, _ = proc.communicate(timeout=timeout)
            hung = False
        except subprocess.TimeoutExpired:
            kill_session(proc.pid)
            out, _ = proc.communicate()
            hung = True
    return {"hung": hung, "exit": None if hung else proc.returncode,
            **{name: len(pattern.findall(out)) for name, pattern in LAUNCHER_LINES.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ranks", type=int, default=8)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--timeout", type=float, default=15.0)
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--lock", help="a file to flock around each run (a shared machine's lock)")
    parser.add_argument("--rank", metavar="VARIANT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.rank:
        rank_main(args.rank)
        return
    mpirun = find_mpirun() or sys.exit("no mpirun found")
    print(f"mpirun --with-ft ulfm -n {args.ranks}, {args.runs} runs per variant (alternating), "
          f"hang = alive after {args.timeout:g} s")
    variants = args.variants.split(",")
    runs: dict[str, list[dict]] = {v: [] for v in variants}
    for _ in range(args.runs):
        for variant in variants:
            runs[variant].append(launch(mpirun, args.ranks, variant, args.timeout, args.lock))
            print(json.dumps({"variant": variant, **runs[variant][-1]}), flush=True)
    print(f"{'how the ranks left':<58}{'hung':>5}{'exit≠0':>7}{'launcher≠0':>11}{'SIGPIPE':>8}{'pmix≥1':>7}{'pmix':>6}")
    for variant, rs in runs.items():
        nonzero = sum(r["exit"] not in (0, None) for r in rs)
        print(f"{VARIANTS[variant]:<58}{sum(r['hung'] for r in rs):>5}{nonzero:>7}"
              f"{nonzero if variant in MEANT_ZERO else 0:>11}{sum(r['sigpipe'] > 0 for r in rs):>8}"
              f"{sum(r['pmix'] > 0 for r in rs):>7}{sum(r['pmix'] for r in rs):>6}", flush=True)


if __name__ == "__main__":
    main()
