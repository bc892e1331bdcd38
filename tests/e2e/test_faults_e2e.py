"""Fault injection end to end, with real failures (ULFM) and simulated ones, at 8 and 72 ranks."""

import re

import pytest
from conftest import FT, ROOT, SCRIPTS, mpirun

from tessera_mpi.results import read_results

SCENARIO = str(SCRIPTS / "fault_scenario.py")


@pytest.mark.parametrize("mode", ["real", "simulated"])
@pytest.mark.parametrize("scenario", ["drop-one", "drop-zero", "corrupt"])
def test_scenarios_at_8_ranks(mode, scenario):
    done = mpirun(8, SCENARIO, scenario, timeout=180, launcher=FT[mode])
    assert done.returncode == 0, done.stdout + done.stderr
    result = [line for line in done.stdout.splitlines() if line.startswith("RESULT")]
    assert len(result) == 1 and "ok=True" in result[0], done.stdout
    if scenario != "corrupt":
        victim = {"drop-one": 6, "drop-zero": 0}[scenario]
        assert f"mode={mode} failed=({victim},) size=7" in result[0]
        assert f"ranks lost (rank {victim} (host " in result[0], "the error names the lost rank and its host"
    else:
        assert "named=(7,)" in result[0]


@pytest.mark.parametrize("mode", ["real", "simulated"])
def test_a_hang_is_diagnosed_once_and_ends_the_job(mode):
    done = mpirun(8, SCENARIO, "hang", timeout=180, launcher=FT[mode])
    assert done.returncode != 0
    text = done.stdout + done.stderr
    assert text.count("a roll call of 8 ranks got 7 answers") == 1, text
    assert "ranks 4 did not answer (hung or dead)" in text
    # Call #1 is the all-reduce's argument check, which rank 4 passed before it stopped.
    assert "ranks 0-3,5-7 wait in collective #2: in all_reduce #2" in text
    assert "ranks 4 never reached collective #2" in text
    assert "RESULT" not in text, "the block must not complete while a rank hangs"


def _faults_check(run):
    check = run.checks["faults"]
    rows = {r["scenario"].decode(): r for r in check.datasets["scenarios"]}
    return check, rows


def test_faults_check_at_8_ranks_simulated(tmp_path):
    out = tmp_path / "faults8.h5"
    done = mpirun(8, "-m", "tessera_mpi.suite", "--tests", "mesh,faults", "--out", str(out), timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "fault tolerance: simulated (Open MPI started without --with-ft ulfm)" in done.stdout
    run = read_results(out)
    assert list(run.checks) == ["mesh", "faults"] and run.checks["mesh"].status == "passed"
    check, rows = _faults_check(run)
    assert check.status == "passed" and check.attrs["mode"] == "simulated"
    assert check.attrs["nccl_after_recovery"].startswith("not exercised: NCCL is unavailable: the numpy backend")
    assert {"hang", "delay", "corruption-verify", "corruption-sweep", "drop-one (guide 3.5)", "drop-two",
            "drop-rank-0"} <= set(rows)
    assert all(r["detected"] and r["verified"] for r in rows.values())
    assert check.attrs["start_ranks"] == 8 and run.attrs["final_world_size"] == check.attrs["end_ranks"]
    assert any("rank 0 of 5" in label for label in run.attrs["lost_ranks"])
    # The new rank 0 prints the summary from the file it took over: the mesh check's headline
    # and duration as rank 0 recorded them, not its own.
    summary = done.stdout.split("check         status")[-1]
    mesh = run.checks["mesh"]
    assert f"{mesh.duration_s:>8.2f} s  {mesh.headline}" in summary, summary


def test_a_culprit_after_a_shrink_is_named_as_the_job_started(tmp_path):
    """8 ranks on an emulated 2x4, real ULFM, drop-two's loss planted unobserved. drop-one
    loses rank 5; drop-two's victims are ranks 1 and 5 of the 7 survivors, and that rank 5 was
    rank 6 (emul-n02, local rank 2, slot 2), now local rank 1 of emul-n02. The failure must
    name rank 6 and the GPU in emul-n02's slot 2, as /ranks holds it. The check after it,
    `after-shrink`, fails on the last rank of the shrunk world: its record and the rack map
    must name that rank as the launcher numbered it, with its start-up host, slot and serial."""
    out = tmp_path / "unobserved.h5"
    done = mpirun(8, str(SCRIPTS / "faults_unobserved.py"), "--tests", "faults,after-shrink", "--quick",
                  "--out", str(out), timeout=300, launcher=FT["real"],
                  env={"TESSERA_BACKEND": "emulated", "TESSERA_EMULATED_TOPOLOGY": "2x4"})
    text = done.stdout + done.stderr
    assert done.returncode == 1, text
    run = read_results(out)
    check, rows = _faults_check(run)
    assert check.status == "failed" and check.attrs["mode"] == "real", text
    hosts, serials = [h.decode() for h in run.ranks["host"]], [s.decode() for s in run.ranks["gpu_serial"]]
    assert (hosts[6], int(run.ranks["slot"][6]), int(run.ranks["local_rank"][6])) == ("emul-n02", 2, 2)
    assert [str(c) for c in check.attrs["culprits"]] == ["rank 1", "rank 6"], check.attrs["culprits"]
    assert rows["drop-two"]["victims"].decode() == "1,6" and not rows["drop-two"]["detected"]
    assert rows["drop-two"]["hosts"].decode() == "emul-n01 local rank 1, emul-n02 local rank 2"
    assert rows["drop-one (guide 3.5)"]["victims"].decode() == "5" and rows["drop-one (guide 3.5)"]["detected"]
    named = re.search(r"drop-two: the fault on rank 1 \(host emul-n01, local rank 1, device emulated:1, tray 1 slot 1 "
                      r"GPU serial (\d+) \(module 2\)\), rank 6 \(host emul-n02, local rank 2, device emulated:2, "
                      r"tray 2 slot 2 GPU serial (\d+) \(module 3\)\) was not detected", check.message)
    assert named is not None and named.groups() == (serials[1], serials[6]), check.message
    # Each lost rank is recorded as numbered when lost and as the job started, with its start-up placement.
    assert any(label.startswith("rank 5 of 7 (rank 6 at start): host emul-n02, local rank 2, device emulated:2, "
                                "tray 2 slot 2") for label in map(str, run.attrs["lost_ranks"])), run.attrs["lost_ranks"]
    _a_later_check_names_the_rank_as_started(run, check, hosts, serials)


def _a_later_check_names_the_rank_as_started(run, faults_check, hosts, serials):
    """The record of the check that ran on the shrunk world, and the faults check's failing
    ranks, numbered as the job started; the launcher's rank is the independent truth."""
    from tessera_mpi.results.html.rackmap import rack_map

    later = run.checks["after-shrink"]
    size = faults_check.attrs["end_ranks"]
    assert later.status == "failed" and size == run.attrs["final_world_size"] < 8, later.message
    start = int(re.search(r"planted on launcher rank (\d+)", later.headline).group(1))
    now = size - 1
    assert start != now, "the planted rank's number must have changed across the shrink"
    local, tray, slot = (int(run.ranks[k][start]) for k in ("local_rank", "tray", "slot"))
    where = (f"host {hosts[start]}, local rank {local}, device emulated:{local}, tray {tray} slot {slot} "
             f"GPU serial {serials[start]}")
    assert [str(c) for c in later.attrs["culprits"]] == [f"rank {start}"], later.attrs["culprits"]
    assert [int(r) for r in later.attrs["failing_ranks"]] == [start]
    assert later.message.startswith(f"failed on rank {start} (rank {now} of the {size} survivors; {where}"), later.message
    # The check's own message, through Runtime.describe: its rank now, and the part as started.
    assert f"rank {now} (rank {start} at start; {where}" in later.headline, later.headline
    # Every survivor failed the faults check: numbered as started, none of the lost ranks.
    failing = {int(r) for r in faults_check.attrs["failing_ranks"]}
    assert len(failing) == size and start in failing and not failing & {0, 1, 5, 6}, failing
    cells = {int(r): (state, title) for state, r, title in
             re.findall(r'<div class="cell state-(\w+)" data-rank="(\d+)" data-state="\w+" title="([^"]*)"', rack_map(run))}
    assert len(cells) == 8 and cells[start][0] == "failed"
    assert [r for r, (_, title) in cells.items() if "after-shrink: failed" in title] == [start], cells
    assert f"host {hosts[start]}" in cells[start][1] and cells[5][0] == "lost", cells


@pytest.mark.slow
def test_faults_check_at_72_ranks_with_ulfm(tmp_path):
    out = tmp_path / "faults72.h5"
    done = mpirun(72, "-m", "tessera_mpi.suite", "--tests", "faults", "--out", str(out), timeout=400,
                  launcher=FT["real"])
    assert done.returncode == 0, done.stdout + done.stderr
    assert "faults        PASSED" in done.stdout and "real faults: 10/10 scenarios" in done.stdout
    check, rows = _faults_check(read_results(out))
    assert check.attrs["mode"] == "real" and check.attrs["end_ranks"] == 65
    # The file on disk was rewritten by the new rank 0: its generation is the one after the loss.
    assert rows["drop-rank-0"]["verified"]
    assert re.search(r"written in generation (\d+) \(now \1\)", rows["drop-rank-0"]["detail"].decode())
    assert re.search(r"rank 36 never reached collective #\d+", rows["hang"]["detail"].decode())
    assert "spare 66 took the place of 1" in rows["drop-with-spare"]["detail"].decode()
    assert "dropped data-parallel replica(s) [1]" in rows["drop-replica"]["detail"].decode()


@pytest.mark.slow
def test_guide_3_5_as_written_at_72_ranks_simulated():
    done = mpirun(72, str(ROOT / "examples" / "guide_3_5_failure_injection.py"), timeout=400)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("Caught simulated GPU failure: all_reduce failed: ranks lost (rank 5 (host ") == 72
    assert "recovered (simulated fault tolerance): 71 mesh (dp) over 71 devices, all-reduce of ones = 71" in done.stdout


@pytest.mark.slow
def test_hang_at_72_ranks_with_ulfm():
    done = mpirun(72, SCENARIO, "hang", timeout=300, launcher=FT["real"])
    assert done.returncode != 0
    text = done.stdout + done.stderr
    assert text.count("a roll call of 72 ranks got 71 answers") == 1, text[-3000:]
    assert "ranks 36 did not answer (hung or dead)" in text


@pytest.mark.parametrize("n", [1, 2, 3])
def test_faults_check_at_small_world_sizes_runs_or_skips_with_a_reason(n, tmp_path):
    out = tmp_path / f"small{n}.h5"
    # At 3 ranks on the emulated backend, so that the recovery rebuilds an (emulated) NCCL communicator.
    done = mpirun(n, "-m", "tessera_mpi.suite", "--tests", "faults", "--quick", "--out", str(out), timeout=180,
                  env={"TESSERA_BACKEND": "emulated"} if n == 3 else None)
    assert done.returncode == 0, done.stdout + done.stderr
    check = read_results(out).checks["faults"]
    if n == 1:
        assert check.status == "skipped" and "at least two ranks" in check.message
        return
    assert check.status == "passed", check.message
    skipped = [str(s) for s in check.attrs["skipped_scenarios"]]
    assert all("(needs " in s for s in skipped) and f"skipped for too few ranks: {skipped[0]}" in check.headline
    assert ("corruption-verify (needs 3 ranks" in skipped[0]) == (n == 2)
    if n == 3:
        assert check.attrs["nccl_rebuilt"] and "; NCCL communicators rebuilt from the shrunk MPI group" in check.headline
        assert check.attrs["nccl_after_recovery"] == (
            "NCCL communicators are rebuilt from the shrunk MPI group: the one over 3 ranks was aborted, a new one "
            "over 2 ranks all-reduced ones to 2 (expected 2); 2/2 ranks observed it")


def test_a_rank_that_said_goodbye_to_pmix_may_leave_without_mpi_finalize():
    """Fault-tolerant survivors leave with os._exit after finalizing only PMIx (issue 21: without
    it prterun aborted 72-rank jobs on SIGPIPE). Plain mpirun shows whether the launcher saw the
    goodbye: a rank that leaves without it fails the job; with it, the job ends 0."""
    script = str(SCRIPTS / "leave_after_pmix_finalize.py")
    control = mpirun(2, script, "none", timeout=60)
    assert control.returncode != 0, "the launcher did not notice ranks leaving unfinalized: the test proves nothing"
    done = mpirun(2, script, "pmix", timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    assert sorted(done.stdout.split("\n")[:2]) == ["rank 0: finalized", "rank 1: finalized"], done.stdout
