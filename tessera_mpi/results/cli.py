"""`python -m tessera_mpi.results FILE`: a readable summary of a results file."""

from __future__ import annotations

import argparse
import sys
from collections import Counter

from .._text import plural
from .reader import ResultsFileError, RunResults, read_results


def format_run(run: RunResults) -> str:
    """Return the summary that `python -m tessera_mpi.results FILE` prints."""
    a = run.attrs
    hosts = Counter(h.decode() if isinstance(h, bytes) else h for h in run.ranks["host"])
    shape = "x".join(str(s) for s in a.get("mesh_shape", []))
    axes = ",".join(a.get("mesh_axes", []))
    lines = [
        f"{run.path}",
        f"  created {a.get('created')} by tessera_mpi {a.get('tessera_mpi_version')} "
        f"(schema {a.get('schema_version')}, git {a.get('git_commit') or 'unknown'})",
        f"  {a.get('world_size')} ranks on {plural(len(hosts), 'host')}, mesh {shape} ({axes}), "
        f"backend {a.get('backend')}, CUDA-aware MPI {'yes' if a.get('cuda_aware') else 'no'}",
        f"  MPI: {str(a.get('mpi_library_version', '')).splitlines()[0] if a.get('mpi_library_version') else '?'}",
        f"  launcher: {a.get('launcher')}",
        f"  command: {a.get('command_line')}",
        "",
        f"  {'check':<14}{'status':<9}{'duration':>10}  headline",
    ]
    counts: Counter[str] = Counter()
    for check in run.checks.values():
        counts[check.status] += 1
        lines.append(
            f"  {check.name:<14}{check.status:<9}{check.duration_s:>9.2f}s  {check.headline}"
        )
        if check.status != "passed" and check.message:
            lines.extend(f"      {line}" for line in check.message.splitlines())
        for key, data in check.datasets.items():
            lines.append(f"      /checks/{check.name}/{key}: {data.dtype.names or data.dtype} {data.shape}")
    lines.append("")
    lines.append("  " + ", ".join(f"{counts[s]} {s}" for s in ("passed", "failed", "error", "skipped")))
    return "\n".join(lines)


def run(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit code (2 when a file cannot be read)."""
    parser = argparse.ArgumentParser(
        prog="python -m tessera_mpi.results",
        description="Print a readable summary of tessera_mpi results files.",
    )
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
