"""`python -m tessera_mpi.results FILE...` summarizes files; `... compare BASE NEW` compares two."""

from __future__ import annotations

import argparse
import sys
from collections import Counter

from ..util.text import plural
from .compare import DEFAULT_NOISE_FLOOR, compare_runs
from .reader import ResultsFileError, RunResults, read_results


def format_run(run: RunResults) -> str:
    """Return the summary that `python -m tessera_mpi.results FILE` prints."""
    a = run.attrs
    hosts = Counter(h.decode() if isinstance(h, bytes) else h for h in run.ranks["host"])
    shape = "x".join(str(s) for s in a.get("mesh_shape", []))
    axes = ",".join(a.get("mesh_axes", []))
    mpi = str(a.get("mpi_library_version", "")).splitlines()
    topology = f" ({a['topology']})" if a.get("topology") else ""
    lines = [
        f"{run.path}",
        f"  created {a.get('created')} by tessera_mpi {a.get('tessera_mpi_version')} "
        f"(schema {a.get('schema_version')}, git {a.get('git_commit') or 'unknown'})",
        f"  {a.get('world_size')} ranks on {plural(len(hosts), 'host')}{topology}, mesh {shape} ({axes}), "
        f"backend {a.get('backend')}, CUDA-aware MPI {'yes' if a.get('cuda_aware') else 'no'}",
        f"  MPI: {mpi[0] if mpi else '?'}",
        f"  launcher: {a.get('launcher')}",
        f"  command: {a.get('command_line')}",
        "",
        f"  {'check':<14}{'status':<9}{'duration':>10}  headline",
    ]
    counts: Counter[str] = Counter()
    for check in run.checks.values():
        counts[check.status] += 1
        lines.append(f"  {check.name:<14}{check.status:<9}{check.duration_s:>9.2f}s  {check.headline}")
        if check.status != "passed" and check.message:
            lines.extend(f"      {line}" for line in check.message.splitlines())
        for key, data in check.datasets.items():
            lines.append(f"      /checks/{check.name}/{key}: {data.dtype.names or data.dtype} {data.shape}")
    lines.append("")
    tally = ", ".join(f"{counts[s]} {s}" for s in ("passed", "failed", "error", "skipped"))
    missing = incomplete(run)
    if missing is not None:
        lines.append(f"  INCOMPLETE: {missing}; {tally}")
    else:
        lines.append("  " + tally)
    return "\n".join(lines)


def incomplete(run: RunResults) -> str | None:
    """Return why `run` is incomplete ("ended during links, 4 of 9 selected checks recorded"),
    or None for a run that ended (or a file from before `complete` was recorded)."""
    if "complete" not in run.attrs or bool(run.attrs["complete"]):
        return None
    selected = [str(s) for s in run.attrs.get("checks_selected", [])]
    absent = [name for name in selected if name not in run.checks]
    during = f"ended during {absent[0]}" if absent else "ended before its summary"
    return f"{during}, {len(selected) - len(absent)} of {len(selected)} selected checks recorded"


def _summary(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m tessera_mpi.results",
                                     description="Print a readable summary of tessera_mpi results files. "
                                                 "Use `compare BASE NEW` to compare two runs.")
    parser.add_argument("files", nargs="+", metavar="FILE", help="results file (.h5)")
    args = parser.parse_args(argv)
    code = 0
    for path in args.files:
        try:
            print(format_run(read_results(path)))
        except ResultsFileError as exc:
            print(f"tessera_mpi.results: error: {exc}", file=sys.stderr)
            code = 2
    return code


def _compare(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m tessera_mpi.results compare",
                                     description="Compare two runs: check status changes, bus bandwidth "
                                                 "size by size (changes within the runs' own spread are "
                                                 "noise) and whether their digests show identical bits. "
                                                 "Exit 1 on a regression, 2 for an unreadable file.")
    parser.add_argument("base", help="the earlier (reference) results file")
    parser.add_argument("new", help="the results file to judge")
    parser.add_argument("--noise-floor", type=float, default=DEFAULT_NOISE_FLOOR, metavar="FRACTION",
                        help="bandwidth changes below this share are always noise (default %(default)s)")
    args = parser.parse_args(argv)
    if not 0 <= args.noise_floor < 1:
        parser.error(f"--noise-floor must be in [0, 1), got {args.noise_floor}")
    try:
        base, new = read_results(args.base), read_results(args.new)
    except ResultsFileError as exc:
        print(f"tessera_mpi.results compare: error: {exc}", file=sys.stderr)
        return 2
    comparison = compare_runs(base, new, noise_floor=args.noise_floor)
    print(f"base {base.path}\nnew  {new.path}")
    print("\n".join(comparison.lines))
    print("no regression" if comparison.ok else f"{len(comparison.regressions)} regression(s)")
    return 0 if comparison.ok else 1


def run(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit code (1 for a regression in compare, 2 for unreadable files)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] == "compare":
        return _compare(argv[1:])
    return _summary(argv)
