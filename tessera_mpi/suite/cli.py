"""`python -m tessera_mpi.suite`: parse, set up the mesh and results file, run, exit 0/1/2."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path

from mpi4py import MPI

from .. import runtime
from ..util.text import plural, shape_str
from .._version import __version__
from ..runtime.agree import agree
from ..errors import ConfigError, DivergenceError
from ..fabric.load import MESSAGE_BYTES, BackgroundLoad
from ..dist.mesh import Mesh
from ..results import ResultsWriter
from ..results.reader import ResultsFileError
from ..results.provenance import ranks_table, root_attrs
from ..hardware.telemetry import describe_source, telemetry
from . import console, transports
from .options import SuiteOptions, UsageError, build_parser, parse_options
from .checks import registered
from .reports import Reports
from .repetition import combine
from .runner import Session, run_checks
from .selftest import SelfTestRow

EXIT_PASSED, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
DEFAULT_RESULTS_DIR = Path("results")


def _say(text: str) -> None:
    """Print `text` to stderr on rank 0 only (every rank has the same text)."""
    if MPI.COMM_WORLD.rank == 0:
        print(text, file=sys.stderr, flush=True)


def results_path(out: Path | None, created: datetime) -> Path:
    """Return the results file for `--out` (a file, a folder, or None for results/)."""
    name = f"tessera-{created.strftime('%Y%m%dT%H%M%SZ')}.h5"
    if out is None:
        base = DEFAULT_RESULTS_DIR / name
    elif out.is_dir() or str(out).endswith("/"):
        base = out / name
    else:
        return out
    path, n = base, 1
    while path.exists():
        path, n = base.with_name(f"{base.stem}-{n}{base.suffix}"), n + 1
    return path


def _open_results(rt: runtime.Runtime, mesh: Mesh, options: SuiteOptions,
                  selected: Sequence[str]) -> ResultsWriter | None:
    """Create the results file on rank 0 (collective); raise ConfigError everywhere if it cannot be."""
    writer, error = None, ""
    identities = rt.control.gather(telemetry().identity.row(), root=0)
    if rt.rank == 0:
        created = datetime.now(timezone.utc)
        path = results_path(options.out, created)
        try:
            # `complete` stays False until the run ends: a file left by a killed run says so.
            attrs = dict(root_attrs(rt, mesh, created), under_load=options.under_load, repeat=options.repeat,
                         checks_selected=list(selected), complete=False)
            writer = ResultsWriter(path, attrs=attrs, ranks=ranks_table(mesh, identities))
            writer.write()
        except OSError as exc:
            error = f"cannot write the results file {path}: {exc}"
    verdict = agree(rt.control, not error, error)
    if not verdict.ok:
        raise ConfigError(verdict.messages[0])
    return writer


def _results_path(rt: runtime.Runtime, writer: ResultsWriter | None) -> str:
    """Return the results file's path on every rank (collective): a new rank 0 may take it over."""
    return rt.control.bcast(str(writer.path) if writer is not None else "", root=0)


def _load(rt: runtime.Runtime, mesh: Mesh, options: SuiteOptions) -> BackgroundLoad | None:
    """Create the --under-load stream (collective), sized like the checks' workloads."""
    if not options.under_load:
        return None
    size = "quick" if options.quick else "small" if rt.oversubscribed else "full"
    return BackgroundLoad(mesh, message_bytes=MESSAGE_BYTES[size])


def _header(rt: runtime.Runtime, mesh: Mesh, names: Sequence[str], writer: ResultsWriter,
            options: SuiteOptions, load: BackgroundLoad | None) -> list[str]:
    hosts = len({p.host for p in mesh.placements})
    mpi = MPI.Get_library_version().splitlines()[0].split(",")[0]
    machines = sorted({p.process_host for p in mesh.placements})
    emulated = [f"  {rt.placement.topology}: hosts, trays, local ranks and devices are emulated on "
                f"{plural(len(machines), 'machine')} ({', '.join(machines)}); communication is real MPI"
                ] if rt.placement.topology else []
    runs = [f"  repeat: the selection runs {options.repeat} times"] if options.repeat > 1 else []
    if load is not None:
        runs.append(f"  under load: a continuous all-reduce of {load.message_bytes} bytes per rank over the "
                    "mesh, on its own communicator, runs beside every check")
    return [
        f"tessera_mpi {__version__}: {plural(rt.size, 'rank')} on {plural(hosts, 'host')} "
        f"({rt.launch.describe()}), mesh {shape_str(mesh.shape)} ({','.join(mesh.axes)})",
        *emulated,
        f"  backend {rt.backend.name}, CUDA-aware MPI {'yes' if rt.cuda_aware else 'no'} "
        f"({rt.cuda_aware_source}), {mpi}",
        f"  GPU telemetry: {describe_source(telemetry())}",
        f"  fault tolerance: {rt.ft.describe()}"
        + (f"; {plural(len(mesh.spares), 'spare rank')} held back" if mesh.spares else ""),
        f"  checks: {', '.join(names)}",
        *runs,
        f"  results: {writer.path}",
        *([f"  reports: {', '.join(str(p) for p in (options.junit, options.json, options.html) if p is not None)}"]
          if options.junit or options.json or options.html else []),
        *([f"  baseline: {options.baseline}"] if options.baseline else []),
        "",
    ]


def run(argv: Sequence[str] | None = None) -> int:
    """Run the suite on every rank and return the exit code (0 passed, 1 failed, 2 usage)."""
    code = _run(argv)[0]
    # After real failures the survivors leave from the runtime's exit hook with the code recorded
    # (MPI_Finalize can hang). A script's `sys.exit(run())` looks sys.exit up before the runtime
    # starts and wraps it to record the code, so the code is recorded here: else it is lost (0).
    runtime.record_exit_code(code)
    return code


def selftest(argv: Sequence[str] = ()) -> list[SelfTestRow]:
    """Run the suite's self-test with these flags (e.g. ["--tests", "bandwidth,links", "--quick"])
    and return its rows, the same on every rank: each planted defect, whether the check caught
    it and whom it blamed. Collective over the job's world, like `run`.

    Raises UsageError for bad flags (after printing them once, as the command line does).
    """
    code, session = _run(["--self-test", *argv])
    if session is None:
        raise UsageError(f"the self-test could not start (exit code {code}); see the message above")
    return list(session.selftest)


def _run(argv: Sequence[str] | None) -> tuple[int, Session | None]:
    """Run the suite; return (the exit code, the session, or None when it never started)."""
    checks = registered()
    try:
        options = parse_options(argv, {name: c.help for name, c in checks.items()})
    except UsageError as exc:
        if MPI.COMM_WORLD.rank == 0:
            build_parser({}).print_usage(sys.stderr)
        _say(f"python -m tessera_mpi.suite: error: {exc}")
        return EXIT_USAGE, None
    if options.list_checks:
        if MPI.COMM_WORLD.rank == 0:
            for name, check in checks.items():
                print(f"{name:<14}{check.help}")
        return EXIT_PASSED, None
    selected = [checks[name] for name in (options.tests or tuple(checks))]
    if options.duration_s and "soak" not in [c.name for c in selected]:
        _say("python -m tessera_mpi.suite: warning: --duration sets how long the soak check runs, "
             "and soak is not selected: it has no effect")
    start = MPI.Wtime()
    reports = Reports(options, started=start)
    try:
        rt = runtime.start()
        runtime.set_collective_timeout(options.timeout_s)
        options = transports.resolve(rt, options)
        with runtime.Watchdog(options.timeout_s, "suite set-up"):
            mesh = Mesh(options.axes, shape=options.mesh_shape, spares=options.spares)
            load = _load(rt, mesh, options)
            reports.validate()
            writer = _open_results(rt, mesh, options, [c.name for c in selected])
            path = _results_path(rt, writer)
    except UsageError as exc:
        _say(f"python -m tessera_mpi.suite: error: {exc}")
        return EXIT_USAGE, None
    except (ConfigError, DivergenceError) as exc:
        _say(f"python -m tessera_mpi.suite: configuration error: {exc}")
        return EXIT_USAGE, None
    if writer is not None:
        console.header(_header(rt, mesh, [c.name for c in selected], writer, options, load))
        reports.write(writer, complete=False)
    session = Session(mesh=mesh, options=options, results_path=path, writer=writer, load=load, reports=reports)
    history = run_checks(selected, session)
    if load is not None:
        load.close()
    records = [combine(h) for h in history]
    ok = all(r.status in ("passed", "skipped") for r in records)
    if options.self_test:
        # Under --self-test the verdict is the self-test's: clean runs pass, planted ones are caught.
        ok = bool(session.selftest) and all(row.ok for row in session.selftest)
    with runtime.Watchdog(options.timeout_s, "the end of the suite (baseline comparison and reports)"):
        regressions = _finish(session, history, elapsed_s=MPI.Wtime() - start, ok=ok)
    return (EXIT_PASSED if ok and not regressions else EXIT_FAILED), session


def _finish(session: Session, history: list, *, elapsed_s: float, ok: bool) -> int:
    """Compare with the baseline and write the summary and reports (collective); return the
    number of baseline regressions, the same on every rank."""
    options, writer = session.options, session.writer
    comparison, problem = None, ""
    if writer is not None:
        # Every check has run: the file is complete (its exit code follows below).
        writer.attrs["complete"] = True
        writer.write()
        if options.baseline is not None:
            try:
                comparison = session.reports.compare(writer)
            except (OSError, ResultsFileError) as exc:
                problem = f"the comparison with --baseline {options.baseline} failed: {exc}"
        if options.repeat > 1:
            console.repetitions(history)
        if comparison is not None:
            console.baseline(str(options.baseline), comparison.lines, comparison.regressions)
        if problem:
            console.note(problem)
        regressions = len(comparison.regressions) if comparison is not None else int(bool(problem))
        # The file's records, not this rank's: after rank 0 was lost, this rank took the file
        # over, and its own records of earlier checks hold its local durations and headlines.
        console.summary(list(writer.checks), elapsed_s=elapsed_s, results_path=str(writer.path),
                        regressions=regressions)
        if options.self_test:
            console.selftest(session.selftest)
        if runtime.current().ft.mode == "simulated" and any(c.name == "faults" for c in writer.checks):
            console.note(f"fault tolerance was simulated ({runtime.current().ft.reason}): no process was "
                         "killed; run the packaged Open MPI with mpirun --with-ft ulfm for real failures")
        code = EXIT_PASSED if ok and not regressions else EXIT_FAILED
        writer.attrs.update(complete=True, exit_code=code)
        try:
            writer.write()
            session.reports.write(writer, complete=True, exit_code=code, comparison=comparison)
        except OSError as exc:
            console.note(f"cannot write the report files: {exc}")
            regressions += 1
    else:
        regressions = 0
    # The writing rank is rank 0 of the (possibly rebuilt) runtime.
    return runtime.current().control.bcast(regressions, root=0)
