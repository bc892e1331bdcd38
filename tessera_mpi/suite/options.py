"""The suite's command line: flags, their validation, and usage errors (exit code 2)."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, NoReturn

from mpi4py import MPI

from ..errors import UsageError

DEFAULT_AXES = {1: ("dp",), 2: ("tp", "dp"), 3: ("tp", "pp", "dp")}
"""Axis names used when --axes is not given, by the number of mesh dimensions."""
DEFAULT_TIMEOUT_S = 300.0


@dataclass(frozen=True)
class SuiteOptions:
    """The parsed command line."""

    tests: tuple[str, ...]
    """Checks to run, in order; empty means all."""
    mesh_shape: tuple[int, ...] | None
    axes: tuple[str, ...] | None
    out: Path | None
    quick: bool
    timeout_s: float
    list_checks: bool
    # Fabric checks (bandwidth, links, bisection, soak).
    sizes: tuple[int, int, int] | None = None
    """--sizes MIN:MAX:FACTOR in bytes, or None for the size class's default sweep."""
    expect_busbw: float | None = None
    min_efficiency: float = 0.8
    duration_s: float = 0.0
    link_peers: int | None = None
    slow_link_fraction: float = 0.5
    spares: int = 0
    """Ranks held back from the suite's mesh to replace failed members (--spares K)."""
    under_load: bool = False
    """Run every check beside a background all-reduce stream (tessera_mpi.load)."""
    repeat: int = 1
    """Run the whole selection this many times."""
    # Reports and baselines (for CI and Slurm jobs).
    junit: Path | None = None
    """--junit FILE: JUnit XML, one test case per check."""
    json: Path | None = None
    """--json FILE: a JSON summary of the run."""
    html: Path | None = None
    """--html FILE: the self-contained HTML report a person reads."""
    baseline: Path | None = None
    """--baseline FILE: compare the run with this earlier results file at the end."""
    self_test: bool = False
    """--self-test: run every selected check clean and with its planted defects."""
    min_trend: float = 0.8
    """soak: the last quarter's busbw must keep this share of the first quarter's."""
    max_uncorrectable: int = 0
    """health: uncorrectable ECC errors a GPU may gain during the suite (--max-uncorrectable)."""
    max_link_error_rate: float = 100.0
    """health: CRC errors per second one NVLink may gain (--max-link-error-rate; DCGM's limit)."""
    max_link_replay_rate: float = 1.0
    """health: replay (and recovery) errors per minute one NVLink may gain (--max-link-replay-rate)."""
    transport: str = "mpi"
    """--transport mpi|nccl|both: what the fabric checks measure over (suite/transports.py)."""
    transport_note: str = ""
    """Why --transport both ran MPI only (set once the job agreed that NCCL is unavailable)."""


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser that prints on rank 0 only and raises UsageError instead of exiting."""

    def _print_message(self, message: str, file: IO[str] | None = None) -> None:
        if MPI.COMM_WORLD.rank == 0:
            super()._print_message(message, file)

    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def parse_shape(text: str) -> tuple[int, ...]:
    """Parse "6x6x2" into (6, 6, 2); raise UsageError for anything else."""
    parts = text.lower().split("x")
    if not all(p.strip().isdigit() for p in parts) or any(int(p) < 1 for p in parts):
        raise UsageError(f"--mesh {text!r} is not a shape like 6x6x2 (positive sizes joined by x)")
    return tuple(int(p) for p in parts)


_UNITS = {"": 1, "B": 1, "K": 1 << 10, "KB": 1 << 10, "KIB": 1 << 10, "M": 1 << 20, "MB": 1 << 20,
          "MIB": 1 << 20, "G": 1 << 30, "GB": 1 << 30, "GIB": 1 << 30}


def parse_bytes(text: str) -> int:
    """Parse "8", "64K", "4MiB", "1G" (binary units) into bytes; raise UsageError."""
    stripped = text.strip().upper()
    digits = stripped.rstrip("ABCDEFGHIJKLMNOPQRSTUVWXYZ")
    unit = stripped[len(digits):]
    if not digits.isdigit() or unit not in _UNITS or int(digits) < 1:
        raise UsageError(f"{text!r} is not a size such as 8, 64K, 4MiB or 1G")
    return int(digits) * _UNITS[unit]


def parse_sizes(text: str) -> tuple[int, int, int]:
    """Parse --sizes MIN:MAX[:FACTOR] into bytes (factor default 2); raise UsageError."""
    parts = text.split(":")
    if len(parts) not in (2, 3):
        raise UsageError(f"--sizes {text!r} is not MIN:MAX[:FACTOR], e.g. 8:1G or 1K:64M:4")
    try:
        low, high = parse_bytes(parts[0]), parse_bytes(parts[1])
    except UsageError as exc:
        raise UsageError(f"--sizes {text!r}: {exc} (sizes are positive byte counts)") from exc
    factor = parts[2].strip() if len(parts) == 3 else "2"
    if not factor.isdigit() or int(factor) < 2:
        raise UsageError(f"--sizes factor {factor!r} must be an integer of at least 2")
    if high < low:
        raise UsageError(f"--sizes {text!r}: MAX is below MIN")
    return low, high, int(factor)


def _positive(value: float, flag: str, *, at_most: float | None = None) -> float:
    if not value > 0 or (at_most is not None and value > at_most):
        limit = f" and at most {at_most:g}" if at_most is not None else ""
        raise UsageError(f"{flag} must be above 0{limit}, got {value:g}")
    return value


def _names(text: str, flag: str) -> tuple[str, ...]:
    names = tuple(n.strip() for n in text.split(","))
    if not all(names):
        raise UsageError(f"{flag} {text!r} has an empty name; give names separated by commas")
    return names


def build_parser(check_help: dict[str, str]) -> argparse.ArgumentParser:
    """Return the suite's argument parser; `check_help` maps check names to descriptions."""
    listing = "\n".join(f"  {name:<12} {text}" for name, text in check_help.items())
    parser = _Parser(
        prog="python -m tessera_mpi.suite",
        description="Rack-scale QA checks, one MPI rank per GPU. Launch with mpirun or srun.",
        epilog=f"checks:\n{listing}\n\nexit codes: 0 all passed, 1 a check failed or the job "
               "was ended by an error or timeout, 2 usage or configuration error",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--list", action="store_true", dest="list_checks", help="list the checks and exit")
    parser.add_argument("--tests", metavar="A,B", help="comma-separated checks to run (default: all)")
    parser.add_argument("--mesh", metavar="SHAPE", help="mesh shape such as 6x6x2 (default: most balanced 3-axis shape)")
    parser.add_argument("--axes", metavar="A,B,C", help="mesh axis names (default: tp,pp,dp for 3 axes)")
    parser.add_argument("--out", metavar="PATH", help="results file, or a folder for it (default: results/)")
    parser.add_argument("--quick", action="store_true", help="smaller sizes, for smoke tests")
    parser.add_argument("--timeout", metavar="SECONDS", type=float, default=DEFAULT_TIMEOUT_S,
                        help=f"end the job if one check runs longer (default {DEFAULT_TIMEOUT_S:g})")
    fabric = parser.add_argument_group("fabric checks (bandwidth, links, bisection, soak)")
    fabric.add_argument("--sizes", metavar="MIN:MAX[:FACTOR]",
                        help="sweep sizes in bytes, e.g. 8:1G or 1K:64M:4 (default: 8:1G:2 on real "
                             "hardware, less when oversubscribed or with --quick)")
    fabric.add_argument("--expect-busbw", metavar="GBPS", type=float,
                        help="expected bus bandwidth in GB/s (default: from the built-in GPU table)")
    fabric.add_argument("--min-efficiency", metavar="F", type=float, default=0.8,
                        help="fail below this fraction of the expected bandwidth (default 0.8)")
    fabric.add_argument("--duration", metavar="SECONDS", type=float, default=0.0,
                        help="soak: repeat an all-reduce this long and record bandwidth over time")
    fabric.add_argument("--link-peers", metavar="K", type=int,
                        help="links: test each rank against K peers (default: all up to 128 ranks, else 16)")
    fabric.add_argument("--slow-link-fraction", metavar="F", type=float, default=0.5,
                        help="links: a link below this fraction of the median is slow (default 0.5)")
    fabric.add_argument("--min-trend", metavar="F", type=float, default=0.8,
                        help="soak: fail when the last quarter keeps less than this share of the first "
                             "quarter's busbw, or the fitted line falls that far (default 0.8)")
    fabric.add_argument("--transport", choices=("mpi", "nccl", "both"), default="mpi",
                        help="bandwidth, links, bisection, soak: measure over MPI, NCCL, or both side by "
                             "side, interleaved (default mpi)")
    health = parser.add_argument_group("health (GPU counters through NVML)")
    health.add_argument("--max-uncorrectable", metavar="N", type=int, default=0,
                        help="fail when a GPU gains more uncorrectable ECC errors during the suite (default 0)")
    health.add_argument("--max-link-error-rate", metavar="PER_S", type=float, default=100.0,
                        help="fail when one NVLink gains more CRC errors per second (default 100, DCGM's limit)")
    health.add_argument("--max-link-replay-rate", metavar="PER_MIN", type=float, default=1.0,
                        help="fail when one NVLink gains more replay errors, or more recovery errors, per minute "
                             "(default 1, DCGM's one error in its one-minute window)")
    parser.add_argument("--self-test", action="store_true",
                        help="run every selected check twice, clean and with its planted defect, and fail "
                             "unless every clean run passes and every planted defect fails its check, "
                             "naming the planted culprit")
    parser.add_argument("--spares", metavar="K", type=int, default=0,
                        help="hold K ranks back from the mesh to replace failed members (default 0)")
    parser.add_argument("--under-load", action="store_true",
                        help="run the checks beside a continuous background all-reduce (production load)")
    parser.add_argument("--repeat", metavar="N", type=int, default=1,
                        help="run the selection N times and report each repetition (default 1)")
    reports = parser.add_argument_group("reports and baselines")
    reports.add_argument("--junit", metavar="FILE",
                         help="write JUnit XML (one test case per check), rewritten after every check")
    reports.add_argument("--json", metavar="FILE", help="write a JSON summary, rewritten after every check")
    reports.add_argument("--html", metavar="FILE",
                         help="write the HTML report (rack map, checks, figures; opens offline), rewritten "
                              "after every check")
    reports.add_argument("--baseline", metavar="FILE",
                         help="compare with this earlier results file at the end; a regression fails the run")
    return parser


def _joined(parser: argparse.ArgumentParser, argv: Sequence[str]) -> list[str]:
    """Return `argv` with each value that looks like an option (`--sizes -5:10`) joined to its
    flag (`--sizes=-5:10`), so that the flag's own check gives the real reason instead of
    argparse's "expected one argument"."""
    takes_value = {o for action in parser._actions if action.nargs is None and action.option_strings
                   for o in action.option_strings}
    known = set(parser._option_string_actions)
    out: list[str] = []
    items = list(argv)
    i = 0
    while i < len(items):
        item = items[i]
        if item in takes_value and i + 1 < len(items) and items[i + 1].startswith("-") \
                and items[i + 1].split("=", 1)[0] not in known:
            out.append(f"{item}={items[i + 1]}")
            i += 2
            continue
        out.append(item)
        i += 1
    return out


def _same_files(named: dict[str, Path | None]) -> None:
    """Raise UsageError if two of the named output or input files are one file (relative
    paths, `..` and symlinks resolved)."""
    seen: dict[str, str] = {}
    for flag, path in named.items():
        if path is None or path.is_dir() or str(path).endswith("/"):
            continue
        real = os.path.realpath(path)
        if real in seen:
            raise UsageError(f"{seen[real]} and {flag} name the same file {real}; give each its own")
        seen[real] = flag


def parse_options(argv: Sequence[str] | None, check_help: dict[str, str]) -> SuiteOptions:
    """Parse `argv` (default sys.argv[1:]); raise UsageError. No communication."""
    parser = build_parser(check_help)
    args = parser.parse_args(_joined(parser, sys.argv[1:] if argv is None else argv))
    tests: tuple[str, ...] = ()
    if args.tests is not None:
        tests = _names(args.tests, "--tests")
        twice = sorted({t for t in tests if tests.count(t) > 1})
        if twice:
            raise UsageError(f"--tests names {', '.join(twice)} more than once; name each check once "
                             "(--repeat N runs the selection N times)")
        unknown = [t for t in tests if t not in check_help]
        if unknown:
            raise UsageError(
                f"--tests names unknown check(s) {', '.join(unknown)}; known: {', '.join(check_help)}"
            )
    shape = parse_shape(args.mesh) if args.mesh is not None else None
    axes = _names(args.axes, "--axes") if args.axes is not None else None
    ndim = len(shape) if shape else len(axes) if axes else 3
    if axes is None and ndim not in DEFAULT_AXES:
        raise UsageError(f"--mesh {args.mesh} has {ndim} axes; name them with --axes")
    if axes is not None and shape is not None and len(axes) != len(shape):
        raise UsageError(f"--axes names {len(axes)} axes but --mesh {args.mesh} has {len(shape)}")
    if not args.timeout > 0:
        raise UsageError(f"--timeout must be a positive number of seconds, got {args.timeout:g}")
    if args.expect_busbw is not None:
        _positive(args.expect_busbw, "--expect-busbw")
    _positive(args.min_efficiency, "--min-efficiency", at_most=1.0)
    _positive(args.slow_link_fraction, "--slow-link-fraction", at_most=1.0)
    _positive(args.min_trend, "--min-trend", at_most=1.0)
    if args.duration < 0:
        raise UsageError(f"--duration must be 0 or more seconds, got {args.duration:g}")
    if args.link_peers is not None and args.link_peers < 1:
        raise UsageError(f"--link-peers must be at least 1, got {args.link_peers}")
    if args.max_uncorrectable < 0:
        raise UsageError(f"--max-uncorrectable must be 0 or more, got {args.max_uncorrectable}")
    _positive(args.max_link_error_rate, "--max-link-error-rate")
    _positive(args.max_link_replay_rate, "--max-link-replay-rate")
    if args.spares < 0:
        raise UsageError(f"--spares must be 0 or more, got {args.spares}")
    if args.repeat < 1:
        raise UsageError(f"--repeat must be at least 1, got {args.repeat}")
    files = {flag: Path(value) for flag, value in (("--junit", args.junit), ("--json", args.json),
                                                   ("--html", args.html)) if value is not None}
    for flag, path in files.items():
        if path.is_dir() or str(path).endswith("/"):
            raise UsageError(f"{flag} {path} is a folder; give a file name")
    _same_files({"--out": Path(args.out) if args.out is not None else None, **files,
                 "--baseline": Path(args.baseline) if args.baseline is not None else None})
    return SuiteOptions(
        tests=tests,
        mesh_shape=shape,
        axes=axes if axes is not None else DEFAULT_AXES[ndim],
        out=Path(args.out) if args.out is not None else None,
        quick=args.quick,
        timeout_s=args.timeout,
        list_checks=args.list_checks,
        sizes=parse_sizes(args.sizes) if args.sizes is not None else None,
        expect_busbw=args.expect_busbw,
        min_efficiency=args.min_efficiency,
        duration_s=args.duration,
        link_peers=args.link_peers,
        slow_link_fraction=args.slow_link_fraction,
        spares=args.spares,
        under_load=args.under_load,
        repeat=args.repeat,
        junit=files.get("--junit"),
        json=files.get("--json"),
        html=files.get("--html"),
        baseline=Path(args.baseline) if args.baseline is not None else None,
        self_test=args.self_test,
        min_trend=args.min_trend,
        max_uncorrectable=args.max_uncorrectable,
        max_link_error_rate=args.max_link_error_rate,
        max_link_replay_rate=args.max_link_replay_rate,
        transport=args.transport,
    )
