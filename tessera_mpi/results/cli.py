"""`python -m tessera_mpi.results FILE...` summarizes files; `... compare BASE NEW` compares two;
`... report RUN` and `... history DIR_OR_FILES` write the HTML pages a person reads;
`... verdict RUN [--launcher-exit N]` exits with the suite's own verdict (what a CI should read)."""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

from ..util.atomic import write_text
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
                                                 "Use `compare BASE NEW` to compare two runs, `report RUN -o "
                                                 "FILE.html` for a report, `history DIR -o FILE.html` for a history, "
                                                 "`verdict RUN --launcher-exit N` to exit with the suite's own verdict.")
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


def _report(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m tessera_mpi.results report",
                                     description="Write one self-contained HTML report of a run (no network "
                                                 "needed to open it): verdict, provenance, rack map, checks "
                                                 "and their figures. Exit 2 for an unreadable file.")
    parser.add_argument("run", help="the results file (.h5)")
    parser.add_argument("--baseline", metavar="GOOD.h5", help="an earlier good run to compare with and draw beside")
    parser.add_argument("--history", metavar="DIR", help="a folder of earlier results files: add this rack's trend")
    parser.add_argument("-o", "--out", required=True, metavar="report.html", help="the HTML file to write")
    args = parser.parse_args(argv)
    from .html import load_runs, run_report  # the report's modules (and matplotlib) only when asked for
    try:
        run = read_results(args.run)
        baseline = read_results(args.baseline) if args.baseline else None
    except ResultsFileError as exc:
        print(f"tessera_mpi.results report: error: {exc}", file=sys.stderr)
        return 2
    comparison = compare_runs(baseline, run) if baseline is not None else None
    history, problems = load_runs([args.history]) if args.history else ([], [])
    for problem in problems:
        print(f"tessera_mpi.results report: skipped {problem}", file=sys.stderr)
    write_text(Path(args.out), run_report(run, baseline=baseline, comparison=comparison, history=history))
    print(args.out)
    return 0


def _history(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m tessera_mpi.results history",
                                     description="Write an HTML page lining up every run of the same rack (same "
                                                 "world size and hosts) over time: status per check and the trend "
                                                 "of the headline figures, regressed runs marked.")
    parser.add_argument("paths", nargs="+", metavar="DIR_OR_FILE", help="results files, or folders of them")
    parser.add_argument("-o", "--out", default="history.html", metavar="history.html",
                        help="the HTML file to write (default %(default)s)")
    args = parser.parse_args(argv)
    from .html import history_report, load_runs
    runs, problems = load_runs(args.paths)
    for problem in problems:
        print(f"tessera_mpi.results history: skipped {problem}", file=sys.stderr)
    if not runs:
        print("tessera_mpi.results history: error: no results file could be read", file=sys.stderr)
        return 2
    write_text(Path(args.out), history_report(runs, problems=problems))
    print(args.out)
    return 0


def judge(run: RunResults, *, launcher_exit: int | None = None) -> tuple[int, str]:
    """Return (exit code, one line) of the suite's own verdict in `run`, the authority over the
    launcher's exit code: the launcher can abort after every rank finished (issue 21: real-ULFM
    jobs whose mpirun hits SIGPIPE after a clean recovery), or exit 0 while a killed rank hides
    (platform notes). A file that is not complete vouches for nothing: exit 1, or the launcher's."""
    missing = incomplete(run)
    recorded = run.attrs.get("exit_code")
    launcher = "" if launcher_exit is None else f"; the launcher exited {launcher_exit}"
    if missing is not None or recorded is None:
        why = missing or "the file records no exit code (written before schema 1.3, or the run never ended)"
        code = launcher_exit if launcher_exit else 1
        return code, f"no verdict: INCOMPLETE ({why}){launcher}; exit {code}"
    code = int(recorded)
    counts = Counter(check.status for check in run.checks.values())
    tally = ", ".join(f"{counts[s]} {s}" for s in ("passed", "failed", "error", "skipped") if counts[s])
    word = "PASSED" if code == 0 else "FAILED"
    line = f"suite verdict: {word} ({tally}), results complete, suite exit {code}"
    if launcher_exit is not None and launcher_exit != code:
        line += (f"; the launcher exited {launcher_exit} after the results were complete: the suite's "
                 f"verdict stands (see docs/slurm.md, 'Reading the exit code')")
    return code, line


def _verdict(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m tessera_mpi.results verdict",
                                     description="Print the suite's own verdict recorded in a results file and "
                                                 "exit with the suite's exit code (0 passed, 1 failed); a file "
                                                 "that is incomplete exits 1 (or the launcher's code). Give "
                                                 "--launcher-exit $? so that a launcher that aborted after the "
                                                 "results were complete is named, not believed.")
    parser.add_argument("run", help="the results file (.h5) the suite wrote (--out)")
    parser.add_argument("--launcher-exit", type=int, metavar="CODE", help="mpirun's or srun's exit code")
    args = parser.parse_args(argv)
    try:
        results = read_results(args.run)
    except ResultsFileError as exc:
        print(f"tessera_mpi.results verdict: error: {exc}", file=sys.stderr)
        return 2 if not args.launcher_exit else args.launcher_exit
    code, line = judge(results, launcher_exit=args.launcher_exit)
    print(line)
    return code


def run(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit code (1 for a regression in compare, 2 for unreadable files)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    commands = {"compare": _compare, "report": _report, "history": _history, "verdict": _verdict}
    if argv and argv[0] in commands:
        return commands[argv[0]](argv[1:])
    return _summary(argv)
