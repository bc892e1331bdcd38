"""The Slurm batch scripts build the launch command they promise (srun and mpirun are faked)."""

import os
import stat
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SLURM = ROOT / "scripts" / "slurm"
FAKE = '#!/bin/sh\necho "$(basename "$0") $*" > "$FAKE_LOG"\n'


def _run(tmp_path, script, *args, env=None):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for name in ("srun", "mpirun"):
        path = bin_dir / name
        path.write_text(FAKE)
        path.chmod(path.stat().st_mode | stat.S_IEXEC)
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
