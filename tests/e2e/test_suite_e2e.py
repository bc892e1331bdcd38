"""The suite launched by mpirun: 72 ranks end to end, exit codes, and the results file."""

import numpy as np
import pytest
from conftest import unproduced_samples, ROOT, mpirun

from tessera_mpi.results import read_results
from tessera_mpi.results.cli import run as results_cli
from tessera_mpi.results.schema import ROOT_ATTRS


@pytest.mark.slow
def test_mesh_and_sharding_at_72_ranks(tmp_path, capsys):
    out = tmp_path / "run72.h5"
    done = mpirun(72, "-m", "tessera_mpi.suite", "--tests", "mesh,sharding", "--out", str(out), timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("tessera_mpi ") and "72 ranks on 1 host" in lines[0] and "mesh 6x6x2 (tp,pp,dp)" in lines[0]
    assert any(line.split()[:2] == ["mesh", "PASSED"] for line in lines)
    assert any(line.split()[:2] == ["sharding", "PASSED"] for line in lines)
    assert "PASSED: 2 passed, 0 failed, 0 error, 0 skipped" in done.stdout
    assert done.stdout.count("sharding      PASSED") == 1, "rank 0 alone prints"
    assert not unproduced_samples(ROOT / "README.md", done.stdout), "README's quick-start sample is stale"

    run = read_results(out)
    assert set(ROOT_ATTRS) <= set(run.attrs)
    assert run.attrs["world_size"] == 72 and run.attrs["mesh_shape"] == [6, 6, 2]
    assert run.attrs["mesh_axes"] == ["tp", "pp", "dp"] and run.attrs["backend"] == "numpy"
    assert run.attrs["cuda_aware"] is False or run.attrs["cuda_aware"] == 0
    assert "tessera_mpi.suite" in run.attrs["command_line"] and run.attrs["created"].endswith("Z")
    assert len(run.ranks) == 72 and list(run.ranks["rank"]) == list(range(72))
    assert [list(c) for c in run.ranks["coords"][[0, 1, 2, 71]]] == [[0, 0, 0], [0, 0, 1], [0, 1, 0], [5, 5, 1]]
    mesh, sharding = run.checks["mesh"], run.checks["sharding"]
    assert mesh.status == sharding.status == "passed" and mesh.duration_s > 0
    groups = mesh.datasets["groups"]
    assert len(groups) == 7 and np.array_equal(groups["allreduce_sum"], groups["expected_size"])
    assert sorted(groups["size"].tolist()) == [2, 6, 6, 12, 12, 36, 72]
    cases = sharding.datasets["cases"]
    assert cases["valid"].all() and cases["case"][0].decode() == "guide-3.2"
    assert "caught on rank 71" in sharding.headline
    assert results_cli([str(out)]) == 0
    assert "mesh 6x6x2 (tp,pp,dp)" in capsys.readouterr().out


@pytest.mark.slow
def test_guide_3_2_as_written_at_72_ranks():
    done = mpirun(72, str(ROOT / "examples" / "guide_3_2_mesh_layout.py"), timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.slow
def test_bad_mesh_exits_2_on_every_rank_at_72(tmp_path):
    done = mpirun(72, "-m", "tessera_mpi.suite", "--mesh", "7x7", "--out", str(tmp_path), timeout=120)
    assert done.returncode == 2
    text = done.stdout + done.stderr
    assert text.count("configuration error: Mesh shape 7x7 has 49 positions but 72 devices") == 1, text
    assert list(tmp_path.iterdir()) == [], "no results file for a run that never started"


def test_usage_error_is_printed_once(tmp_path):
    done = mpirun(4, "-m", "tessera_mpi.suite", "--tests", "mesh,nope", timeout=120)
    assert done.returncode == 2
    assert done.stderr.count("unknown check(s) nope") == 1, done.stderr
    assert done.stderr.count("usage:") == 1


def test_list_prints_once():
    done = mpirun(4, "-m", "tessera_mpi.suite", "--list", timeout=120)
    assert done.returncode == 0 and done.stdout.count("sharding") == 1, done.stdout


def test_emulated_device_backend(tmp_path):
    out = tmp_path / "emu.h5"
    done = mpirun(4, "-m", "tessera_mpi.suite", "--out", str(out), timeout=120,
                  env={"TESSERA_BACKEND": "emulated"})
    assert done.returncode == 0, done.stdout + done.stderr
    assert "backend emulated, CUDA-aware MPI no" in done.stdout
    run = read_results(out)
    assert run.attrs["backend"] == "emulated"
    assert [d.decode() for d in run.ranks["device"]] == [f"emulated:{r}" for r in range(4)]


def test_out_folder_gets_a_timestamped_file(tmp_path):
    done = mpirun(2, "-m", "tessera_mpi.suite", "--tests", "mesh", "--out", f"{tmp_path}/", timeout=120)
    assert done.returncode == 0, done.stderr
    files = list(tmp_path.iterdir())
    assert len(files) == 1 and files[0].name.startswith("tessera-") and files[0].name.endswith("Z.h5")
