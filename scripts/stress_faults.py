#!/usr/bin/env python3
"""Run each fault scenario many times and count hangs, failures and launcher aborts (not part of CI).

    python scripts/stress_faults.py [--ranks 8] [--runs 20] [--modes real,simulated]
        [--scenarios drop-one,drop-zero,hang,corrupt,suite-quick,guide-3.5,suite-faults]
        [--timeout 120] [--lock /work/.heavy.lock] [--arm NAME=TREE ...] [--trace] [--log runs.jsonl]
    python scripts/stress_faults.py --summarize runs.jsonl

Each run is `mpirun [--with-ft ulfm] --oversubscribe -n RANKS python PROGRAM` with a timeout: a
run that outlives it is a hang (the target is none). The runs go round-robin (run 1 of every
scenario, mode and arm, then run 2, ...), so that a slow or noisy stretch of the machine hits
every series alike. The programs:

- drop-one, drop-zero, hang, corrupt: tests/e2e/scripts/fault_scenario.py SCENARIO. Drop and
  corrupt pass when they exit 0 with ok=True; hang when it ends (non-zero) with the diagnosis.
- suite-quick: `python -m tessera_mpi.suite --quick` (every check); passes when it exits 0.
- guide-3.5: examples/guide_3_5_failure_injection.py as written (drop 5, then one more
  all-reduce on the survivors), alternating with copies that drop rank 0 and ranks 5 and 40
  (--drops). Survivors that recovered: those that printed "Caught simulated GPU failure",
  and rank 0's post-recovery sum must be RANKS minus the number dropped.
- suite-faults: `python -m tessera_mpi.suite --tests faults`; recovered when the check PASSED
  with every scenario ("real faults: N/N scenarios").

A run whose survivors all recovered but whose mpirun exited non-zero is counted "launcher":
the launcher, not the framework, failed the job (issue 21: prterun's "SIGPIPE detected -
aborting"). The table also counts the launcher's SIGPIPE/abort lines and its PMIx
"write failed" lines. --trace records, with `perf` (root), how many SIGPIPEs prterun got and
how many of its socket writes failed in each run: prterun aborts after ten SIGPIPEs, so these
counts show how close each run came to an abort, which a handful of runs' exit codes cannot.
--lock takes that file's lock (flock) around each run, not around the series, so that other
users of a shared machine interleave; a run's time and timeout start once it holds the lock.
--arm NAME=TREE runs the programs from another checkout (its tessera_mpi first on PYTHONPATH),
to compare code side by side: e.g. `--arm before=/tmp/old --arm after=.`.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from tessera_mpi.util.procs import find_mpirun, kill_session

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = Path("tests") / "e2e" / "scripts" / "fault_scenario.py"
GUIDE = Path("examples") / "guide_3_5_failure_injection.py"
KINDS = ("ok", "failed", "launcher", "hang", "stuck", "start")
"""ok; failed: the framework failed (not every survivor recovered, or wrong result); launcher:
every survivor recovered, mpirun exited non-zero; hang: ranks alive at the timeout; stuck: every
rank had left, mpirun had not; start: mpirun failed before any rank ran."""
LAUNCHER_LINES = {
    "sigpipe": re.compile(r"SIGPIPE detected - aborting"),
    "abort": re.compile(r"abort is already in progress"),
    "pmix": re.compile(r"pmix_ptl_base: send_msg: write failed"),
    "epoll": re.compile(r"Epoll \w+\(\d+\) on fd \d+ failed"),
}


@contextmanager
def held(lock: str | None) -> Iterator[None]:
    """Hold `lock` (a file, exclusively, with flock) for the body; nothing if None."""
    if lock is None:
        yield
        return
    with open(lock, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def guide_copy(tree: Path, drops: tuple[int, ...], ranks: int, workdir: Path) -> Path:
    """The 3.5 example of `tree`, as written when it drops rank 5 of 72; else a copy that drops
    `drops` and expects RANKS - len(drops) from the survivors' all-reduce."""
    source = tree / GUIDE
    if drops == (5,) and ranks == 72:
        return source
    text = source.read_text()
    for old, new in (("drop_device=5", f"drop_device={list(drops)}"),
                     ("[71.0]", f"[{ranks - len(drops):.1f}]"), ("range(72)", f"range({ranks})")):
        assert old in text, f"{source} no longer contains {old!r}: update guide_copy"
        text = text.replace(old, new)
    path = workdir / f"guide_3_5_drop_{'_'.join(map(str, drops))}_{ranks}.py"
    path.write_text(text)
    return path


def program(scenario: str, tree: Path, drops: tuple[int, ...], ranks: int, workdir: Path) -> list[str]:
    if scenario == "suite-quick":
        return ["-m", "tessera_mpi.suite", "--quick", "--out", str(workdir / "quick.h5")]
    if scenario == "suite-faults":
        return ["-m", "tessera_mpi.suite", "--tests", "faults", "--out", str(workdir / "faults.h5")]
    if scenario == "guide-3.5":
        return [str(guide_copy(tree, drops, ranks, workdir))]
    return [str(tree / SCRIPT), scenario]


def judge(scenario: str, code: int, out: str, ranks: int, drops: tuple[int, ...]) -> tuple[bool, str]:
    """Whether the survivors recovered (what the framework is responsible for), and how many."""
    if scenario == "hang":
        return "never reached collective" in out, ""
    if scenario == "suite-quick":
        return "PASSED:" in out, ""
    if scenario == "suite-faults":
        counts = re.search(r"faults: (\d+)/(\d+) scenarios", out)
        ok = "faults        PASSED" in out and counts is not None and counts[1] == counts[2]
        return ok, f"{counts[1]}/{counts[2]}" if counts else "-"
    if scenario == "guide-3.5":
        survivors = ranks - len(drops)
        caught = out.count("Caught simulated GPU failure")
        summed = f"all-reduce of ones = {survivors}" in out
        return caught == survivors and summed, f"{caught}/{survivors}"
    return "ok=True" in out, ""


def perf_wrapper(trace: Path | None) -> list[str]:
    if trace is None:
        return []
    return ["perf", "record", "-q", "-a", "-o", str(trace),
            "-e", "signal:signal_generate", "--filter", "sig == 13",
            "-e", "syscalls:sys_exit_write", "--filter", "ret < 0",
            "-e", "syscalls:sys_exit_writev", "--filter", "ret < 0", "--"]


def traced_counts(trace: Path) -> dict[str, int]:
    """prterun's SIGPIPEs and failed socket writes in a `perf record` of one run."""
    text = subprocess.run(["perf", "script", "-i", str(trace)], capture_output=True, text=True,
                          timeout=120).stdout
    counts = {"traced_sigpipe": 0, "traced_failed_writes": 0}
    for line in text.splitlines():
        fields = line.split()
        if not fields or not fields[0].startswith("prte"):
            continue
        if "signal_generate" in line:
            counts["traced_sigpipe"] += 1
        elif "sys_exit_write" in line:
            counts["traced_failed_writes"] += 1
    return counts


def once(mpirun: str, *, ranks: int, mode: str, scenario: str, arm: str, tree: Path,
         drops: tuple[int, ...], timeout: float, lock: str | None, trace: bool) -> dict:
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    env["PYTHONPATH"] = os.pathsep.join([str(tree), *filter(None, [os.environ.get("PYTHONPATH")])])
    ft = ["--with-ft", "ulfm"] if mode == "real" else []
    workdir = Path(tempfile.mkdtemp(prefix="stress_faults."))
    record = workdir / "perf.data" if trace else None
    command = [*perf_wrapper(record), mpirun, *ft, "--oversubscribe", "-n", str(ranks), sys.executable,
               *program(scenario, tree, drops, ranks, workdir)]
    run = {"scenario": scenario, "mode": mode, "arm": arm, "drops": list(drops) if scenario == "guide-3.5" else None}
    with held(lock):
        start = time.monotonic()
        proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                env=env, cwd=tree, start_new_session=True)
        try:
            out, _ = proc.communicate(timeout=timeout)
            kind = None
        except subprocess.TimeoutExpired:
            # What each process was doing when the run was declared hung: the first clue to why.
            tree_ps = subprocess.run(["ps", "-o", "pid,pgid,stat,wchan:20,etime,args", "-s", str(proc.pid)],
                                     capture_output=True, text=True, timeout=10).stdout
            # Open MPI's launcher was seen stuck after every rank had left: tell that apart from
            # ranks that did not end (the framework's failure).
            alive = [line for line in tree_ps.splitlines()[1:]
                     if line.split()[0] != str(proc.pid) and " Z " not in line and "mpirun" not in line
                     and "prterun" not in line and "perf record" not in line]
            kind = "hang" if alive else "stuck"
            kill_session(proc.pid)
            out, _ = proc.communicate()
            out = f"{tree_ps}\n{out}"
        run["seconds"] = round(time.monotonic() - start, 1)
    run["exit"] = proc.returncode if kind is None else None
    recovered, survivors = judge(scenario, proc.returncode, out, ranks, drops)
    run["survivors"] = survivors
    if kind is None:
        if recovered:
            kind = "ok" if proc.returncode == 0 or scenario == "hang" else "launcher"
        else:
            kind = "start" if "RESULT" not in out and "tessera_mpi" not in out and "Caught" not in out else "failed"
    if scenario == "hang" and kind == "ok" and proc.returncode == 0:
        kind = "failed"  # a hang must end the job non-zero
    run["kind"] = kind
    run.update({name: len(pattern.findall(out)) for name, pattern in LAUNCHER_LINES.items()})
    if record is not None and record.exists():
        run.update(traced_counts(record))
    if kind != "ok":
        print(f"--- {kind} (exit {run['exit']}): {' '.join(command)}\n{out[-3000:]}\n---", flush=True)
    shutil.rmtree(workdir, ignore_errors=True)
    return run


def table(runs: list[dict], traced: bool) -> str:
    head = (f"{'scenario':<13}{'mode':<10}{'arm':<9}{'runs':>5}{'exit 0':>7}{'ok':>4}{'launcher':>9}{'failed':>7}"
            f"{'hang':>5}{'stuck':>6}{'start':>6}{'SIGPIPE':>8}{'pmix≥1':>7}{'pmix':>6}")
    if traced:
        head += f"{'tr.SIGPIPE':>11}{'tr.fail.wr':>11}"
    lines = [head + f"{'median s':>9}{'max s':>7}"]
    series: dict[tuple, list[dict]] = {}
    for run in runs:
        series.setdefault((run["scenario"], run["mode"], run["arm"]), []).append(run)
    for (scenario, mode, arm), rs in series.items():
        n = {k: sum(r["kind"] == k for r in rs) for k in KINDS}
        times = sorted(r["seconds"] for r in rs)
        line = (f"{scenario:<13}{mode:<10}{arm:<9}{len(rs):>5}{sum(r['exit'] == 0 for r in rs):>7}{n['ok']:>4}"
                f"{n['launcher']:>9}{n['failed']:>7}{n['hang']:>5}{n['stuck']:>6}{n['start']:>6}"
                f"{sum(r['sigpipe'] > 0 for r in rs):>8}{sum(r['pmix'] > 0 for r in rs):>7}{sum(r['pmix'] for r in rs):>6}")
        if traced:
            sig = [r.get("traced_sigpipe", 0) for r in rs]
            wr = [r.get("traced_failed_writes", 0) for r in rs]
            line += f"{f'{sum(sig)} (≤{max(sig)})':>11}{f'{sum(wr)} (≤{max(wr)})':>11}"
        lines.append(line + f"{times[len(times) // 2]:>9.1f}{times[-1]:>7.1f}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ranks", type=int, default=8)
    parser.add_argument("--runs", type=int, default=20, help="runs per scenario, mode and arm")
    parser.add_argument("--runs-of", action="append", default=[], metavar="SCENARIO=N",
                        help="a different number of runs for one scenario (e.g. suite-faults=20)")
    parser.add_argument("--modes", default="real,simulated")
    parser.add_argument("--scenarios", default="drop-one,drop-zero,hang,corrupt")
    parser.add_argument("--drops", default="5;0;5,40", help="guide-3.5: the ranks each run drops, in turn")
    parser.add_argument("--timeout", type=float, default=120)
    parser.add_argument("--lock", help="a file to flock around each run (a shared machine's lock)")
    parser.add_argument("--arm", action="append", default=[], metavar="NAME=TREE",
                        help="run the programs from checkout TREE (repeatable; default: this one)")
    parser.add_argument("--trace", action="store_true", help="count prterun's SIGPIPEs and failed writes with perf")
    parser.add_argument("--log", help="append one JSON line per run to this file")
    parser.add_argument("--summarize", metavar="LOG", help="print the table of a --log file's runs and stop")
    args = parser.parse_args()
    if args.summarize:
        runs = [json.loads(line) for line in Path(args.summarize).read_text().splitlines() if line.strip()]
        print(KINDS_HELP)
        print(table(runs, any("traced_sigpipe" in r for r in runs)))
        return
    mpirun = find_mpirun() or sys.exit("no mpirun found")
    if args.trace and shutil.which("perf") is None:
        sys.exit("--trace needs perf")
    arms = [(name, Path(tree).resolve()) for name, _, tree in (a.partition("=") for a in args.arm)] or [("here", ROOT)]
    drops = [tuple(int(r) for r in d.split(",")) for d in args.drops.split(";")]
    scenarios = args.scenarios.split(",")
    wanted = {s: args.runs for s in scenarios} | {s: int(n) for s, _, n in (r.partition("=") for r in args.runs_of)}
    print(f"runs per scenario, mode and arm: {wanted}, at {args.ranks} ranks, timeout {args.timeout:g} s; "
          f"arms: {', '.join(f'{n}={t}' for n, t in arms)}", flush=True)
    runs: list[dict] = []
    for i in range(max(wanted.values())):
        for scenario in scenarios:
            if i >= wanted[scenario]:
                continue
            for mode in args.modes.split(","):
                for arm, tree in arms:
                    run = once(mpirun, ranks=args.ranks, mode=mode, scenario=scenario, arm=arm, tree=tree,
                               drops=drops[i % len(drops)], timeout=args.timeout, lock=args.lock, trace=args.trace)
                    runs.append(run)
                    print(json.dumps(run), flush=True)
                    if args.log:
                        with open(args.log, "a") as log:
                            log.write(json.dumps(run) + "\n")
    print(KINDS_HELP)
    print(table(runs, args.trace), flush=True)


KINDS_HELP = """\
ok: every survivor recovered and mpirun exited 0; launcher: every survivor recovered, mpirun exited
non-zero; failed: not every survivor recovered (the framework failed); hang: ranks still running at
the timeout; stuck: every rank had left, mpirun had not; start: mpirun failed before any rank ran.
SIGPIPE: runs with prterun's "SIGPIPE detected - aborting"; pmix≥1 / pmix: runs with / number of
"pmix_ptl_base: send_msg: write failed" lines; tr.*: traced by perf, total (most in one run)."""


if __name__ == "__main__":
    main()
