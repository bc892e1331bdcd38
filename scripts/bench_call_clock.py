#!/usr/bin/env python3
"""What recording the time in MPI calls costs per call (issue 18): the call path of this tree
against the call path of an earlier commit (default: the one before the clock reads were
added), side by side in one process, alternating round by round.

Three loops, each N calls on a one-rank group (COMM_SELF): an empty `with group.call(...)`
(the call path's steps alone), a bound call's `run()` on a transport call that does nothing
(the timed loops' per-iteration cost), and an 8-byte MPI all-reduce through the call path (a
real, tiny call). The median of the rounds' ns per call is printed for each side and the
difference.

    python scripts/bench_call_clock.py [--before 8b22189] [--calls 200000] [--rounds 7]
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType

import numpy as np
from mpi4py import MPI

from tessera_mpi import runtime
from tessera_mpi.comm import call as now
from tessera_mpi.comm.transport import MpiTransport

ROOT = Path(__file__).resolve().parents[1]


def call_module_at(rev: str) -> ModuleType:
    """Load comm/call.py as it was at `rev`, as a sibling module of the package's own."""
    source = subprocess.run(["git", "show", f"{rev}:tessera_mpi/comm/call.py"], cwd=ROOT, check=True,
                            capture_output=True, text=True, timeout=60).stdout
    spec = importlib.util.spec_from_loader("tessera_mpi.comm._call_before", loader=None)
    module = importlib.util.module_from_spec(spec)
    module.__package__ = "tessera_mpi.comm"
    sys.modules[spec.name] = module
    exec(compile(source, f"{rev}:tessera_mpi/comm/call.py", "exec"), module.__dict__)
    return module


class Idle(MpiTransport):
    """MPI on COMM_SELF whose bound calls do nothing: the call path's cost alone."""

    def bind(self, collective, send, recv, **kwargs):
        return lambda: None


def loops(module: ModuleType, rt: runtime.Runtime, calls: int) -> dict[str, float]:
    """Return ns per call of each loop through `module`'s call path."""
    group = module.Group(comm=MPI.COMM_SELF, transport=Idle(MPI.COMM_SELF), staging=rt.staging, members=(0,))
    real = module.Group(comm=MPI.COMM_SELF, transport=MpiTransport(MPI.COMM_SELF), staging=rt.staging, members=(0,))
    x, y = np.ones(1), np.empty(1)
    out = {}
    start = time.perf_counter()
    for _ in range(calls):
        with group.call("empty"):
            pass
    out["empty call"] = (time.perf_counter() - start) / calls * 1e9
    run, _ = group.bind("bound", "all_reduce", x, y)
    start = time.perf_counter()
    for _ in range(calls):
        run()
    out["bound run()"] = (time.perf_counter() - start) / calls * 1e9
    n = calls // 4
    start = time.perf_counter()
    for _ in range(n):
        with real.call("all_reduce", x.nbytes, x.dtype) as c:
            c.all_reduce(x, y)
    out["8 B all-reduce"] = (time.perf_counter() - start) / n * 1e9
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--before", default="8b22189", help="the commit whose call path is compared")
    parser.add_argument("--calls", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    rt = runtime.start()
    before = call_module_at(args.before)
    sides = {"before": before, "now": now}
    results: dict[str, dict[str, list[float]]] = {s: {} for s in sides}
    loops(now, rt, args.calls // 10)  # warm both up once
    loops(before, rt, args.calls // 10)
    for round_ in range(args.rounds):
        order = list(sides) if round_ % 2 == 0 else list(sides)[::-1]
        for side in order:
            for name, ns in loops(sides[side], rt, args.calls).items():
                results[side].setdefault(name, []).append(ns)
    print(f"ns per call, median of {args.rounds} alternating rounds of {args.calls} calls "
          f"(before = {args.before}, now = this tree)")
    print(f"{'loop':<16}{'before':>10}{'now':>10}{'now-before':>12}{'ratio':>8}")
    for name in results["now"]:
        b, n = statistics.median(results["before"][name]), statistics.median(results["now"][name])
        print(f"{name:<16}{b:>10.1f}{n:>10.1f}{n - b:>12.1f}{n / b:>8.3f}")


if __name__ == "__main__":
    main()
