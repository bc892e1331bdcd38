"""NCCL beside MPI end to end: `--transport both` on the emulated backend (MPI under NCCL's
calling conventions, labelled emulated), `--transport nccl` where there is no NCCL, the
guide's collectives with transport="nccl", and a hung NCCL collective's report."""

import pytest
from conftest import SCRIPTS, mpirun

from tessera_mpi.fabric.collectives import SWEPT
from tessera_mpi.results import read_results
from tessera_mpi.results.compare import compare_runs

EMULATED = {"TESSERA_BACKEND": "emulated"}


def _text(values):
    return [v.decode() if isinstance(v, bytes) else str(v) for v in values]


@pytest.mark.parametrize("ranks", [8])
def test_transport_both_puts_mpi_and_emulated_nccl_side_by_side(tmp_path, ranks):
    out = tmp_path / "both.h5"
    done = mpirun(ranks, "-m", "tessera_mpi.suite", "--tests", "bandwidth,links,bisection,soak", "--quick",
                  "--duration", "2", "--transport", "both", "--out", str(out), timeout=400, env=EMULATED)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "peak busbw side by side: all_reduce " in done.stdout and ": NCCL (emulated) " in done.stdout
    assert "emulated NCCL is MPI under NCCL's calling conventions, not a measurement of NCCL" in done.stdout
    run = read_results(out)
    bandwidth = run.checks["bandwidth"]
    assert bandwidth.attrs["transports"] == "mpi,nccl (emulated)"
    assert bandwidth.attrs["judged_transport"] == "nccl (emulated)"
    for name in SWEPT:
        data = bandwidth.datasets[name]
        transports = _text(data["transport"])
        # Interleaved: every size on MPI, then on NCCL, row by row; every element verified.
        assert transports == ["mpi", "nccl (emulated)"] * (len(data) // 2)
        assert (data["size_bytes"][0::2] == data["size_bytes"][1::2]).all() and (data["wrong"] == 0).all()
        assert (data["busbw_GBps"] > 0).all()
        # Device buffers on NCCL: timed with the (emulated) events, never the compiled host loop.
        assert set(_text(data["loop"][1::2])) == {"python"}
    links = run.checks["links"]
    for suffix in ("", "_nccl"):
        matrix = links.datasets["unidirectional" + suffix]
        assert matrix.shape == (ranks, ranks) and int((matrix > 0).sum()) == ranks * (ranks - 1)
    assert _text(links.datasets["transports"]["transport"]) == ["mpi", "nccl (emulated)"]
    assert "median GB/s side by side: NCCL (emulated) " in done.stdout
    splits = run.checks["bisection"].datasets["splits"]
    assert list(zip(_text(splits["transport"]), _text(splits["split"]))) == [
        ("mpi", "halves"), ("nccl (emulated)", "halves"), ("mpi", "random"), ("nccl (emulated)", "random")]
    timeline = run.checks["soak"].datasets["timeline"]
    assert _text(timeline["transport"]) == ["mpi", "nccl (emulated)"] * (len(timeline) // 2)
    assert len(timeline) >= 4 and (timeline["wrong"] == 0).all()
    assert run.checks["soak"].attrs["judged_transport"] == "nccl (emulated)"
    # A run compared with itself meets every transport's rows with its own.
    assert compare_runs(run, run).ok


@pytest.mark.slow
def test_transport_both_at_72_ranks_in_the_default_suite(nvl72_run):
    """The session's 72-rank default suite on an emulated NVL72 runs with --transport both."""
    done = nvl72_run.done
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-3000:]
    assert "peak busbw side by side: all_reduce " in done.stdout and ": NCCL (emulated) " in done.stdout
    run = read_results(nvl72_run.out)
    bandwidth = run.checks["bandwidth"]
    assert bandwidth.attrs["transports"] == "mpi,nccl (emulated)"
    for name in SWEPT:
        data = bandwidth.datasets[name]
        assert _text(data["transport"]) == ["mpi", "nccl (emulated)"] * (len(data) // 2)
        assert (data["size_bytes"][0::2] == data["size_bytes"][1::2]).all() and (data["wrong"] == 0).all()
    links = run.checks["links"]
    assert _text(links.datasets["transports"]["transport"]) == ["mpi", "nccl (emulated)"]
    mpi, over_nccl = links.datasets["unidirectional"], links.datasets["unidirectional_nccl"]
    assert mpi.shape == over_nccl.shape == (72, 72) and ((mpi > 0) == (over_nccl > 0)).all() and (mpi > 0).any()
    splits = run.checks["bisection"].datasets["splits"]
    assert set(_text(splits["transport"])) == {"mpi", "nccl (emulated)"}


def test_transport_nccl_without_nccl_is_a_usage_error(tmp_path):
    done = mpirun(2, "-m", "tessera_mpi.suite", "--tests", "bandwidth", "--quick", "--transport", "nccl",
                  "--out", str(tmp_path / "none.h5"), timeout=120, env={"TESSERA_BACKEND": "numpy"})
    assert done.returncode == 2, done.stdout + done.stderr
    lines = [line for line in done.stderr.splitlines() if "--transport nccl" in line]
    assert lines == ["python -m tessera_mpi.suite: error: --transport nccl: NCCL is unavailable on every rank: "
                     "the numpy backend keeps buffers in host memory and NCCL moves device memory: run on GPUs "
                     "with CuPy (TESSERA_BACKEND=cupy), or TESSERA_BACKEND=emulated for the emulation; use "
                     "--transport mpi, or both to run MPI and say so"]
    assert not (tmp_path / "none.h5").exists()


def test_transport_both_without_nccl_runs_mpi_and_says_why(tmp_path):
    out = tmp_path / "mpi.h5"
    done = mpirun(2, "-m", "tessera_mpi.suite", "--tests", "bandwidth", "--quick", "--transport", "both",
                  "--out", str(out), timeout=120, env={"TESSERA_BACKEND": "numpy"})
    assert done.returncode == 0, done.stdout + done.stderr
    assert "; --transport both ran MPI only: NCCL is unavailable on every rank: the numpy backend" in done.stdout
    bandwidth = read_results(out).checks["bandwidth"]
    assert bandwidth.attrs["transports"] == "mpi"
    assert set(_text(bandwidth.datasets["all_reduce"]["transport"])) == {"mpi"}


OP_SCRIPT = str(SCRIPTS / "nccl_op.py")


def test_op_collectives_over_emulated_nccl_give_mpis_bits_at_4_ranks():
    done = mpirun(4, OP_SCRIPT, "same", timeout=120, env=EMULATED)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = sorted(line for line in done.stdout.splitlines() if line.startswith("rank "))
    # 12 collectives and 4 algorithms x every format of the correctly rounded sum, each compared;
    # the NCCL communicators of the groups used are live; verify=True named the corrupted rank.
    assert [line.split(" live")[0] for line in lines] == [f"rank {r}: SAME 28" for r in range(4)], done.stdout


def test_a_hung_nccl_collective_is_named_with_its_transport():
    done = mpirun(4, OP_SCRIPT, "hang", timeout=120, env={**EMULATED, "TESSERA_COLLECTIVE_TIMEOUT": "3"})
    text = done.stdout + done.stderr
    assert done.returncode == 1, text
    assert text.count("a roll call of 4 ranks got 4 answers") == 1, text
    assert "nccl (emulated) all_reduce #2 did not finish within 3 s" in text
    assert "ranks 0-2 wait in collective #2: in nccl (emulated) all_reduce #2" in text
    assert "rank 3 never reached collective #2: it is between collectives, after #1" in text
