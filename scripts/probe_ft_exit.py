#!/usr/bin/env python3
"""Does `mpirun --with-ft ulfm` end when its ranks leave this way? (not part of CI)

    python scripts/probe_ft_exit.py [--ranks 8] [--runs 30] [--variants all-exit-1,...]

Each run launches this file under `mpirun --with-ft ulfm -n RANKS` with a variant; the ranks
leave as the variant says and the run counts as a launcher hang if mpirun outlives --timeout.
The figures that decided how tessera_mpi ends a fault-tolerant job are in docs/performance.md.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time

from tessera_mpi.util.procs import find_mpirun, kill_session

VARIANTS = {
    "all-exit-1": "all ranks os._exit(1) at once, no failure",
    "all-finalize-1": "all ranks sys.exit(1) through MPI_Finalize",
    "kill-others-exit-1": "rank 4 killed, the others os._exit(1) together",
    "kill-others-exit-0": "rank 4 killed, the others os._exit(0)",
    "kill-one-speaker": "rank 4 killed, rank 0 os._exit(1), the others os._exit(0)",
    "all-exit-1-staggered": "all ranks os._exit(1), 50 ms apart by rank",
}
VICTIM = 4


def rank_main(variant: str) -> None:
    """What every rank does under mpirun."""
    from mpi4py import MPI

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
        os._exit(1)
    if variant == "kill-others-exit-0":
        time.sleep(1.0)
        os._exit(0)
    if variant == "kill-one-speaker":
        time.sleep(1.0 if world.rank == 0 else 2.0)
        os._exit(1 if world.rank == 0 else 0)
    time.sleep(1.0 if variant.startswith("kill") else 0.2)
    os._exit(1)


def launcher_hangs(mpirun: str, ranks: int, variant: str, timeout: float) -> bool:
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    command = [mpirun, "--with-ft", "ulfm", "--oversubscribe", "-n", str(ranks), sys.executable, __file__,
               "--rank", variant]
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
                            start_new_session=True)
    try:
        proc.wait(timeout=timeout)
        return False
    except subprocess.TimeoutExpired:
        kill_session(proc.pid)
        proc.wait()
        return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ranks", type=int, default=8)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--timeout", type=float, default=15.0)
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--rank", metavar="VARIANT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.rank:
        rank_main(args.rank)
        return
    mpirun = find_mpirun() or sys.exit("no mpirun found")
    print(f"mpirun --with-ft ulfm -n {args.ranks}, {args.runs} runs per variant, hang = alive after {args.timeout:g} s")
    for variant in args.variants.split(","):
        hangs = sum(launcher_hangs(mpirun, args.ranks, variant, args.timeout) for _ in range(args.runs))
        print(f"{VARIANTS[variant]:<62} {hangs} of {args.runs} hung", flush=True)


if __name__ == "__main__":
    main()
