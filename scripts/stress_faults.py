#!/usr/bin/env python3
"""Run each fault scenario many times and count hangs and failures (not part of CI).

    python scripts/stress_faults.py [--ranks 8] [--runs 20] [--modes real,simulated]
        [--scenarios drop-one,drop-zero,hang,corrupt,suite-quick] [--timeout 120]

Each run is `mpirun [--with-ft ulfm] -n RANKS python tests/e2e/scripts/fault_scenario.py SCENARIO`
with a timeout: a run that outlives it is a hang (the target is none). For drop and corrupt a run
passes when it exits 0; for hang, when it ends (non-zero) with the roll call's diagnosis.
`suite-quick` runs the whole suite instead (`python -m tessera_mpi.suite --quick`, every check,
the faults check included) and passes when it exits 0.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

from tessera_mpi.util.procs import find_mpirun, kill_session

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "tests" / "e2e" / "scripts" / "fault_scenario.py"


def once(mpirun: str, ranks: int, mode: str, scenario: str, timeout: float) -> tuple[str, float]:
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    ft = ["--with-ft", "ulfm"] if mode == "real" else []
    program = ["-m", "tessera_mpi.suite", "--quick", "--out", "/tmp/"] if scenario == "suite-quick" \
        else [str(SCRIPT), scenario]
    command = [mpirun, *ft, "--oversubscribe", "-n", str(ranks), sys.executable, *program]
    start = time.monotonic()
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                            start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        # What each process was doing when the run was declared hung: the first clue to why.
        tree = subprocess.run(["ps", "-o", "pid,pgid,stat,wchan:20,etime,args", "-s", str(proc.pid)],
                              capture_output=True, text=True, timeout=10).stdout
        # Open MPI's launcher was seen stuck after every rank had left: tell that apart from ranks
        # that did not end (the framework's failure).
        alive = [line for line in tree.splitlines()[1:] if line.split()[0] != str(proc.pid) and " Z " not in line]
        kind = "hang" if alive else "launcher"
        kill_session(proc.pid)
        out, _ = proc.communicate()
        print(f"--- {kind}: {' '.join(command)}\n{tree}--- its output:\n{out[-3000:]}\n---", flush=True)
        return kind, time.monotonic() - start
    took = time.monotonic() - start
    if scenario == "hang":
        ok = proc.returncode != 0 and "never reached collective" in out
    elif scenario == "suite-quick":
        ok = proc.returncode == 0 and "PASSED:" in out
    else:
        ok = proc.returncode == 0 and "ok=True" in out
    kind = "ok" if ok else "failed"
    if not ok and "RESULT" not in out and "tessera_mpi" not in out:
        kind = "start"  # mpirun failed before any rank ran (seen: "PMIx server's listener thread failed")
    if not ok:
        print(f"--- {kind} (exit {proc.returncode}): {' '.join(command)}\n{out[-3000:]}\n---", flush=True)
    return kind, took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ranks", type=int, default=8)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--modes", default="real,simulated")
    parser.add_argument("--scenarios", default="drop-one,drop-zero,hang,corrupt")
    parser.add_argument("--timeout", type=float, default=120)
    args = parser.parse_args()
    mpirun = find_mpirun() or sys.exit("no mpirun found")
    print(f"{args.runs} runs per scenario and mode at {args.ranks} ranks, timeout {args.timeout:g} s")
    print("hangs: ranks still running at the timeout; launcher: every rank had left, mpirun had not;\n"
          "no start: mpirun failed before any rank ran")
    print(f"{'scenario':<12}{'mode':<11}{'ok':>4}{'failed':>8}{'hangs':>7}{'launcher':>10}{'no start':>10}{'median s':>10}{'max s':>7}")
    for scenario in args.scenarios.split(","):
        for mode in args.modes.split(","):
            results = [once(mpirun, args.ranks, mode, scenario, args.timeout) for _ in range(args.runs)]
            times = sorted(t for _, t in results)
            counts = {k: sum(1 for r, _ in results if r == k) for k in ("ok", "failed", "hang", "launcher", "start")}
            print(f"{scenario:<12}{mode:<11}{counts['ok']:>4}{counts['failed']:>8}{counts['hang']:>7}{counts['launcher']:>10}{counts['start']:>10}"
                  f"{times[len(times) // 2]:>10.1f}{times[-1]:>7.1f}", flush=True)


if __name__ == "__main__":
    main()
