"""Deterministic reductions end to end: the guide's 3.3 example at 72 ranks, and identical bits
across runs and across array backends, as `results compare` reports them."""

import pytest
from conftest import ROOT, mpirun

from tessera_mpi.results import read_results
from tessera_mpi.results.cli import run as results_cli


@pytest.mark.slow
def test_guide_3_3_as_written_at_72_ranks():
    done = mpirun(72, str(ROOT / "examples" / "guide_3_3_deterministic_all_reduce.py"), timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr


def test_same_bits_across_runs_and_backends(tmp_path, capsys):
    files = {}
    for name, backend in (("numpy", "numpy"), ("again", "numpy"), ("emulated", "emulated")):
        files[name] = tmp_path / f"{name}.h5"
        done = mpirun(6, "-m", "tessera_mpi.suite", "--tests", "determinism", "--mesh", "3x2",
                      "--out", str(files[name]), timeout=300, env={"TESSERA_BACKEND": backend})
        assert done.returncode == 0, done.stdout + done.stderr
    check = read_results(files["numpy"]).checks["determinism"]
    assert check.status == "passed" and "adversarial sums exact" in check.headline
    digests = check.datasets["digests"]
    assert len({d.decode() for d in digests["algorithm"]}) == 3
    assert {"adversarial-float16", "adversarial-bfloat16"} <= {d.decode() for d in digests["case"]}
    random = [r for r in digests if r["case"].decode() == "random-float32"]
    assert len({r["sha256"] for r in random}) == 1, "one digest over permutations, repeats, algorithms"
    assert check.attrs["native_distinct_float32"] >= 1
    assert len(check.datasets["native"]) == 8
    capsys.readouterr()
    assert results_cli(["compare", str(files["numpy"]), str(files["again"])]) == 0
    assert results_cli(["compare", str(files["numpy"]), str(files["emulated"])]) == 0
    out = capsys.readouterr().out
    assert out.count("identical bits: all") == 2, out
