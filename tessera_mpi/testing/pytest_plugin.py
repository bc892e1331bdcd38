"""pytest plugin for rack tests written by users: run them with `mpirun -n N python -m pytest --with-mpi`.

Fixtures (every rank gets its own, built collectively):
  tessera_mesh     the device mesh (--tessera-mesh SHAPE and --tessera-axes, default 1-D "dp")
  tessera_comm     its communicator
  tessera_results  a recorder: save(name, array, **attrs), attrs[...], headline; each test that
                   uses it becomes a /checks/<test> group of an HDF5 results file (rank 0 writes
                   it, atomically after every test) with the test's agreed status
Assertions: tessera_mpi.testing.assert_all(condition, message, mesh=...) fails the test on every
rank, naming the failing ranks. Under --with-mpi every test runs under a watchdog
(--tessera-timeout, default 300 s) that turns a hang into a diagnosed end of the job.

Registered through the `pytest11` entry point; MPI is touched only by tests that use the
fixtures or run under --with-mpi, so installing tessera_mpi never changes other test suites.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pytest

DEFAULT_TIMEOUT_S = 300.0
_REPORT_KEY = pytest.StashKey[dict]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("tessera_mpi", "tessera_mpi rack tests")
    group.addoption("--tessera-mesh", metavar="SHAPE", help="mesh shape for tessera_mesh, e.g. 6x6x2 (default: 1-D)")
    group.addoption("--tessera-axes", metavar="A,B,C", help="mesh axis names (default: dp / tp,dp / tp,pp,dp)")
    group.addoption("--tessera-results", metavar="PATH",
                    help="results file for tessera_results (default: results/pytest-<UTC time>.h5)")
    group.addoption("--tessera-timeout", metavar="SECONDS", type=float, default=DEFAULT_TIMEOUT_S,
                    help=f"under --with-mpi, end the job if one test runs longer (default {DEFAULT_TIMEOUT_S:g})")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    item.stash.setdefault(_REPORT_KEY, {})[report.when] = report


def _under_mpi(config: pytest.Config) -> bool:
    try:
        return bool(config.getoption("with_mpi"))
    except ValueError:  # pytest-mpi not installed
        return False


@pytest.fixture(autouse=True)
def _tessera_hang_guard(request: pytest.FixtureRequest) -> Iterator[None]:
    """End the whole job, naming the test and where every rank is, if a test hangs."""
    if not _under_mpi(request.config):
        yield
        return
    from ..runtime import Watchdog

    capture = request.config.pluginmanager.getplugin("capturemanager")

    def end_job() -> None:
        # pytest captures file descriptor 2 during a test: the diagnosis must reach the terminal.
        if capture is not None:
            capture.suspend_global_capture(in_=False)
        dog.end_job()

    dog = Watchdog(request.config.getoption("tessera_timeout"), f"test {request.node.nodeid}", on_timeout=end_job)
    with dog:
        yield


@pytest.fixture(scope="session")
def tessera_mesh(request: pytest.FixtureRequest) -> Any:
    """The job's device mesh (collective: built on every rank at first use)."""
    from ..dist.mesh import Mesh
    from ..suite.options import DEFAULT_AXES, UsageError, parse_shape

    text, names = request.config.getoption("tessera_mesh"), request.config.getoption("tessera_axes")
    try:
        shape = parse_shape(text) if text else None
    except UsageError as exc:
        raise pytest.UsageError(f"--tessera-mesh: {exc}") from None
    axes = tuple(a.strip() for a in names.split(",")) if names else DEFAULT_AXES.get(len(shape) if shape else 1)
    if axes is None:
        raise pytest.UsageError(f"--tessera-mesh {text} has {len(shape)} axes; name them with --tessera-axes")
    return Mesh(list(axes), shape=shape)


@pytest.fixture(scope="session")
def tessera_comm(tessera_mesh: Any) -> Any:
    """The mesh's communicator (an mpi4py Intracomm)."""
    return tessera_mesh.comm


@dataclass
class Recorder:
    """What one test records; see tessera_results."""

    datasets: dict[str, Any] = field(default_factory=dict)
    attrs: dict[str, Any] = field(default_factory=dict)
    headline: str = ""
    to_host: Callable[[Any], np.ndarray] = np.asarray
    """The array backend's `to_host`: `data` may be a device array, which np.asarray refuses."""

    def save(self, name: str, data: Any, **attrs: Any) -> None:
        """Store `data` (host or device array) as /checks/<test>/<name> (only rank 0's saves are written)."""
        from ..results import Dataset

        self.datasets[name] = Dataset(self.to_host(data), attrs)


class _ResultsFile:
    """The session's results file, created on first use (collective), written by rank 0."""

    def __init__(self, config: pytest.Config, mesh: Any) -> None:
        from ..results import ResultsWriter
        from ..results.provenance import ranks_table, root_attrs

        self.mesh = mesh
        self.writer = None
        if mesh.runtime.rank == 0:
            created = datetime.now(timezone.utc)
            given = config.getoption("tessera_results")
            path = Path(given) if given else Path("results") / f"pytest-{created.strftime('%Y%m%dT%H%M%SZ')}.h5"
            attrs = dict(root_attrs(mesh.runtime, mesh, created), pytest_args=" ".join(config.invocation_params.args))
            self.writer = ResultsWriter(path, attrs=attrs, ranks=ranks_table(mesh))


_FILE_KEY = pytest.StashKey[_ResultsFile]()


def _failure_text(call: pytest.TestReport | None) -> str:
    """The failed test's exception line, e.g. "AssertionError: assert 3 == 4"."""
    if call is None:
        return "did not run"
    crash = getattr(call.longrepr, "reprcrash", None)
    return crash.message if crash is not None else str(call.longrepr).strip().splitlines()[-1]


@pytest.fixture
def tessera_results(request: pytest.FixtureRequest, tessera_mesh: Any) -> Iterator[Recorder]:
    """Record figures of this test into the session's results file (collective at teardown:
    the ranks agree on the test's status, so a failure on one rank is a failure of the test)."""
    import time

    from ..runtime.agree import agree
    from ..results import CheckRecord

    config = request.config
    if _FILE_KEY not in config.stash:
        config.stash[_FILE_KEY] = _ResultsFile(config, tessera_mesh)
    results = config.stash[_FILE_KEY]
    recorder, start = Recorder(to_host=tessera_mesh.runtime.backend.to_host), time.perf_counter()
    yield recorder
    reports = request.node.stash.get(_REPORT_KEY, {})
    call = reports.get("call")
    ok = call is not None and call.passed
    message = "" if ok else _failure_text(call)
    verdict = agree(tessera_mesh.comm, ok, message)
    if results.writer is not None:
        # HDF5 group names cannot hold "/": name the test by its module and its name.
        name = f"{Path(request.node.path).stem}::{request.node.name}"
        results.writer.add(CheckRecord(
            name=name, status="passed" if verdict.ok else "failed", duration_s=time.perf_counter() - start,
            message="" if verdict.ok else f"failed on {verdict.summary(tessera_mesh.describe)}",
            headline=recorder.headline or ("passed" if verdict.ok else "failed"),
            datasets=recorder.datasets,
            attrs={**recorder.attrs, "failing_ranks": np.array(verdict.failing, dtype=np.int64)},
        ))
