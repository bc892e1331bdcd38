"""The Slurm batch scripts build the launch command they promise (srun and mpirun are faked)."""

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tessera_mpi.runtime.topology import TOPOLOGY_ENV, read_topology

ROOT = Path(__file__).resolve().parents[2]
SLURM = ROOT / "scripts" / "slurm"
FAKE = '#!/bin/sh\necho "$(basename "$0") $*" > "$FAKE_LOG"\nexit "${FAKE_EXIT:-0}"\n'


def _run(tmp_path, script, *args, env=None):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for name in ("srun", "mpirun"):
        path = bin_dir / name
        path.write_text(FAKE)
        path.chmod(path.stat().st_mode | stat.S_IEXEC)
    python = bin_dir / "python"  # the scripts' `python` is the venv's: here, this interpreter
    python.write_text(f'#!/bin/sh\nexec {sys.executable} "$@"\n')
    python.chmod(python.stat().st_mode | stat.S_IEXEC)
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True, exist_ok=True)
    (venv / "bin" / "activate").write_text("")
    log = tmp_path / "launch.log"
    full = {"PATH": f"{bin_dir}:{os.environ['PATH']}", "FAKE_LOG": str(log), "SLURM_SUBMIT_DIR": str(tmp_path),
            "SLURM_JOB_ID": "77", "SLURM_NTASKS": "72", "SLURM_NTASKS_PER_NODE": "4(x18)",
            "TESSERA_VENV": str(venv), **(env or {})}
    done = subprocess.run(["bash", str(SLURM / script), *args], env=full, capture_output=True, text=True, timeout=30)
    return done, (log.read_text().split() if log.exists() else [])


@pytest.mark.parametrize("script", ["nvl72.sbatch", "generic.sbatch"])
def test_srun_with_pmix_and_the_reports(tmp_path, script):
    done, argv = _run(tmp_path, script, "--tests", "bandwidth")
    assert done.returncode == 0, done.stderr
    assert argv[:2] == ["srun", "--mpi=pmix"]
    suite = argv[argv.index("python"):]
    stem = str(tmp_path / "results" / "tessera-77")
    assert suite[:3] == ["python", "-m", "tessera_mpi.suite"]
    for flag, value in (("--out", stem + ".h5"), ("--junit", stem + ".xml"), ("--json", stem + ".json")):
        assert suite[suite.index(flag) + 1] == value
    assert suite[-2:] == ["--tests", "bandwidth"]
    assert ("--mesh" in suite) == (script == "nvl72.sbatch")


@pytest.mark.parametrize("script", ["nvl72.sbatch", "generic.sbatch"])
def test_fault_tolerance_launches_with_mpirun_ulfm(tmp_path, script):
    done, argv = _run(tmp_path, script, env={"TESSERA_FT": "1"})
    assert done.returncode == 0, done.stderr
    assert argv[:3] == ["mpirun", "--with-ft", "ulfm"] and "ppr:4:node" in argv
    assert argv[argv.index("-n") + 1] == "72"


def test_generic_needs_the_allocation_shape(tmp_path):
    done, argv = _run(tmp_path, "generic.sbatch", env={"SLURM_NTASKS_PER_NODE": ""})
    assert done.returncode == 2 and "give --nodes" in done.stderr and not argv


@pytest.mark.parametrize("script", ["nvl72.sbatch", "generic.sbatch"])
def test_a_launcher_that_aborts_after_complete_results_yields_to_the_suites_verdict(tmp_path, script):
    from tessera_mpi.results import ResultsWriter, table
    (tmp_path / "results").mkdir()
    ranks = table([{"rank": 0, "host": "n1", "local_rank": 0, "local_size": 1, "device": "cpu"}])

    def results(code):
        ResultsWriter(tmp_path / "results" / "tessera-77.h5", ranks=ranks,
                      attrs={"schema_version": "1.3", "tessera_mpi_version": "0.1.0", "created": "2026-12-03T00:00:00Z",
                             "world_size": 1, "mesh_axes": ["dp"], "mesh_shape": [1], "backend": "numpy",
                             "mpi_library_version": "Open MPI v5", "mpi4py_version": "4", "numpy_version": "2",
                             "cuda_aware": False, "command_line": "python -m tessera_mpi.suite", "launcher": "mpirun",
                             "complete": True, "exit_code": code, "checks_selected": []}).write()

    results(0)
    done, _ = _run(tmp_path, script, env={"TESSERA_FT": "1", "FAKE_EXIT": "1"})
    assert done.returncode == 0, done.stdout + done.stderr
    assert "the launcher exited 1 after the results were complete" in done.stdout
    results(1)
    done, _ = _run(tmp_path, script, env={"TESSERA_FT": "1", "FAKE_EXIT": "1"})
    assert done.returncode == 1 and "suite verdict: FAILED" in done.stdout
    (tmp_path / "results" / "tessera-77.h5").unlink()
    done, _ = _run(tmp_path, script, env={"TESSERA_FT": "1", "FAKE_EXIT": "137"})
    assert done.returncode == 137, "no results file: the launcher's code stands"


def _sbatch_option(script, name):
    """The value of `#SBATCH --name=VALUE` in a batch script."""
    for line in (SLURM / script).read_text().splitlines():
        if line.startswith(f"#SBATCH --{name}="):
            return line.split("=", 1)[1]
    raise AssertionError(f"{script} has no #SBATCH --{name}")


def _slurm_block_layout(nodes, tasks_per_node):
    """(node index, SLURM_LOCALID) of each task under Slurm's default block distribution, which
    is also how mpirun --map-by ppr:N:node ranks by slot: consecutive tasks fill a node first."""
    return [divmod(task, tasks_per_node) for task in range(nodes * tasks_per_node)]


def test_nvl72_layout_is_the_emulated_18x4_assignment(tmp_path):
    nodes, per_node = int(_sbatch_option("nvl72.sbatch", "nodes")), int(_sbatch_option("nvl72.sbatch", "ntasks-per-node"))
    assert int(_sbatch_option("nvl72.sbatch", "gpus-per-node")) == per_node, "one rank per GPU"
    topology = read_topology({TOPOLOGY_ENV: f"{nodes}x{per_node}"})
    assert str(topology) == "18x4"
    layout = _slurm_block_layout(nodes, per_node)
    places = [topology.place(rank, device="", machine="") for rank in range(topology.size)]
    assert len(layout) == len(places) == 72
    # The same host blocks: the emulated host of every rank is its node's, in node order.
    assert [topology.host_name(node) for node, _ in layout] == [p.host for p in places]
    assert [local for _, local in layout] == [p.local_rank for p in places] == [p.slot for p in places]
    # The launch keeps that layout: srun's default block distribution, mpirun filling 4 slots per node.
    _, srun = _run(tmp_path, "nvl72.sbatch")
    assert not any(a.startswith(("--distribution", "-m")) for a in srun[:srun.index("python")]), srun
    suite = srun[srun.index("python"):]
    assert suite[suite.index("--mesh") + 1] == "6x6x2" and 6 * 6 * 2 == topology.size
    _, mpirun = _run(tmp_path, "nvl72.sbatch", env={"TESSERA_FT": "1"})
    assert mpirun[mpirun.index("--map-by") + 1] == f"ppr:{per_node}:node" and "--rank-by" not in mpirun
