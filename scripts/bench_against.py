#!/usr/bin/env python3
"""Run a benchmark script on this checkout and on an earlier revision, alternately, in the
same conditions: the way to show that a change did not slow something down.

    scripts/bench_against.py --rev HEAD~3 --ranks 8 --runs 3 -- scripts/bench_collectives.py --sizes 8,4194304

The earlier revision is checked out once into a temporary git worktree; each run launches
`mpirun -n RANKS python SCRIPT ARGS` with that tree first on PYTHONPATH (the script is the
revision's own copy), then the same for this checkout, RUNS times, and prints every output
under a heading. Compare the ratios each script prints, run by run: the machine is shared.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from tessera_mpi.util.procs import find_mpirun

ROOT = Path(__file__).resolve().parents[1]


def mpirun() -> str:
    return find_mpirun() or sys.exit("bench_against: no mpirun found (install the local-mpi extra or load the site MPI)")


def run(tree: Path, ranks: int, script: str, args: list[str], timeout: float) -> str:
    env = dict(os.environ, PYTHONPATH=str(tree), OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    command = [mpirun(), "--oversubscribe", "-n", str(ranks), sys.executable, str(tree / script), *args]
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env, cwd=tree)
    if done.returncode != 0:
        return f"(exit {done.returncode})\n{done.stdout}\n{done.stderr[-2000:]}"
    return done.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rev", required=True, help="the earlier git revision to compare with")
    parser.add_argument("--ranks", type=int, default=8)
    parser.add_argument("--runs", type=int, default=3, help="alternating runs of each tree")
    parser.add_argument("--timeout", type=float, default=900, help="seconds per run")
    parser.add_argument("script", help="benchmark script, relative to the repository root")
    parser.add_argument("args", nargs=argparse.REMAINDER, help="its arguments (after --)")
    options = parser.parse_args()
    args = options.args[1:] if options.args[:1] == ["--"] else options.args
    with tempfile.TemporaryDirectory(prefix="bench-against-") as tmp:
        old = Path(tmp) / "old"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "-q", str(old), options.rev], check=True)
        try:
            for number in range(1, options.runs + 1):
                for label, tree in ((options.rev, old), ("this checkout", ROOT)):
                    print(f"=== run {number}: {label} ===", flush=True)
                    print(run(tree, options.ranks, options.script, args, options.timeout), flush=True)
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(old)], check=False)


if __name__ == "__main__":
    main()
