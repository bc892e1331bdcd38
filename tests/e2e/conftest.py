"""End-to-end tests: each launches mpirun as a subprocess, always with a timeout."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tessera_mpi.util.procs import find_mpirun, kill_session

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = Path(__file__).resolve().parent / "scripts"
FT = {"real": ("--with-ft", "ulfm"), "simulated": ()}
"""mpirun flags for each fault-tolerance mode."""


def _mpirun() -> str:
    found = find_mpirun()
    if found is None:
        pytest.skip("no mpirun found (install the local-mpi extra or load the site MPI)")
    return found


def mpirun(n: int, *args: str, timeout: float, env: dict[str, str] | None = None,
           cwd: Path | None = None, launcher: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    """Run `mpirun LAUNCHER -n n python ARGS...`; kill the whole process group if it outlives `timeout`."""
    full_env = dict(os.environ)
    full_env.update({"OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1",
                     "PYTHONUNBUFFERED": "1", "TESSERA_ERROR_GRACE": "2"})
    full_env.update(env or {})
    command = [_mpirun(), *launcher, "--oversubscribe", "-n", str(n), sys.executable, *args]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=full_env, cwd=cwd or ROOT, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_session(proc.pid)
        out, err = proc.communicate()
        pytest.fail(f"mpirun -n {n} {' '.join(args)} hung for {timeout} s\nstdout:\n{out}\nstderr:\n{err}")
    return subprocess.CompletedProcess(command, proc.returncode, out, err)


def sample_lines(doc: Path) -> list[str]:
    """The sample output lines of a document: each ```-block after a `<!-- sample -->` marker."""
    blocks = re.findall(r"<!-- sample -->\s*```\n(.*?)```", doc.read_text(), flags=re.S)
    return [line for block in blocks for line in block.splitlines() if line.strip()]


def masked(line: str) -> str:
    """A line with its measured figures masked: numbers (and so the widths of their columns)
    vary from run to run, the rest must not."""
    return re.sub(r"\s+", " ", re.sub(r"\d+(\.\d+)?(e[-+]?\d+)?", "#", line.strip()))


def unproduced_samples(doc: Path, stdout: str) -> list[str]:
    """Return the sample lines of `doc` that no line of `stdout` matches (figures aside)."""
    printed = {masked(line) for line in stdout.splitlines()}
    return [line for line in sample_lines(doc) if masked(line) not in printed]


NVL72 = {"TESSERA_BACKEND": "emulated", "TESSERA_EMULATED_TOPOLOGY": "18x4"}
"""An emulated NVL72: 18 hosts of 4 devices on this one machine (issue 20)."""


@dataclass(frozen=True)
class SuiteRun:
    """One finished suite launch: what it printed, its results file and its HTML report."""

    done: subprocess.CompletedProcess
    out: Path
    report: Path


@pytest.fixture(scope="session")
def nvl72_run(tmp_path_factory) -> SuiteRun:
    """The default suite at 72 ranks on an emulated NVL72, with --html and --transport both,
    launched once per session.

    The topology, health and HTML-report tests each read this one run rather than launching
    72 ranks three times (a 72-rank launch costs 20-30 s of start-up alone on two cores)."""
    where = tmp_path_factory.mktemp("nvl72")
    out, report = where / "nvl72.h5", where / "nvl72.html"
    # --transport both: the fabric checks also run over the emulated NCCL, side by side (issue 17).
    done = mpirun(72, "-m", "tessera_mpi.suite", "--quick", "--transport", "both", "--out", str(out),
                  "--html", str(report), timeout=600, env=NVL72)
    return SuiteRun(done, out, report)
