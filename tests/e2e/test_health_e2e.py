"""GPU health end to end with the emulated backend (emulated NVML): an uncorrectable ECC error on
rank 5 fails `health` naming rank 5 and its serial; CRC errors on one link during `bandwidth`
appear in that check's result and fail `health_end`; a clean run passes; the self-test's health
rows are caught. At 8 and 72 ranks."""

import json
import re

import pytest
from conftest import SCRIPTS, mpirun

from tessera_mpi.results import read_results

EMULATED = {"TESSERA_BACKEND": "emulated"}
ECC = {"health": {"ecc_error": 5}}
CRC = {"bandwidth": {"link_errors": {"rank": 3, "link": 2, "count": 4112}}}


def _text(value):
    return value.decode() if isinstance(value, bytes) else str(value)


def _serial(run, rank):
    row = next(r for r in run.ranks if int(r["rank"]) == rank)
    return _text(row["gpu_serial"])


def _scenario(n, plans, tests, out, timeout, env=EMULATED):
    return mpirun(n, str(SCRIPTS / "health_scenario.py"), json.dumps(plans), "--quick", "--tests", tests,
                  "--out", str(out), timeout=timeout, env=env)


# At 72 ranks the self-test's planted ECC error and link going down are caught and named, with
# the GPU's serial, in the one 72-rank self-test launch (test_topology_e2e.py).
@pytest.mark.parametrize("n", [8, 18])
def test_an_uncorrectable_ecc_error_and_crc_errors_are_named(tmp_path, n):
    out = tmp_path / f"faulty{n}.h5"
    done = _scenario(n, {**ECC, **CRC}, "health,bandwidth,health_end", out, timeout=300)
    assert done.returncode == 1, done.stdout[-4000:] + done.stderr[-3000:]
    run = read_results(out)
    serial5, serial3 = _serial(run, 5), _serial(run, 3)
    assert len(serial5) == 13 and serial5 != serial3
    health = run.checks["health"]
    assert health.status == "failed" and health.attrs["culprits"] == ["rank 5"]
    assert health.headline.startswith("sanity: rank 5 (") and f"GPU serial {serial5}" in health.headline
    assert "uncorrectable ECC errors (volatile) during the suite" in health.headline
    # The CRC errors struck inside bandwidth: that check's result carries them; it still passes.
    bandwidth = run.checks["bandwidth"]
    line = f"rank 3 GPU serial {serial3} NVLink 2: 4,112 CRC errors"
    assert bandwidth.status == "passed" and line in bandwidth.attrs["hardware_changes"]
    assert line in bandwidth.headline
    moved = [(int(r["rank"]), int(r["link"]), _text(r["counter"]), r["before"], r["after"]) for r in run.health["bandwidth"]]
    assert moved == [(3, 2, "nvlink_crc", 0.0, 4112.0)]
    end = run.checks["health_end"]
    assert end.status == "failed" and set(end.attrs["culprits"]) == {"rank 3", "rank 5"}
    assert "NVLink 2: 4,112 CRC errors in" in end.message and "(--max-link-error-rate 100)" in end.message
    # Every counter of every GPU at the end, against the suite's start.
    table = run.health["health_end"]
    assert {int(r) for r in table["rank"]} == set(range(n))
    ecc = [r for r in table if int(r["rank"]) == 5 and _text(r["counter"]) == "ecc_uncorrectable_volatile"]
    assert [(e["before"], e["after"]) for e in ecc] == [(0.0, 1.0)]


def test_a_link_down_from_the_start_and_replays_beyond_the_rate_are_named(tmp_path):
    """Rank 6's NVLink 4 is down before the first snapshot (its 7 twins have it up); rank 2's
    NVLink 9 replays during `mesh`, far beyond 1 per minute; rank 1's single CRC error is below
    the rate. `health` names rank 6 and its link; `health_end` ranks 6 and 2."""
    out = tmp_path / "links.h5"
    plans = {"at_start": {"link_down": [{"rank": 6, "link": 4}]},
             "mesh": {"link_errors": [{"rank": 2, "link": 9, "count": 40, "kind": "replay"},
                                      {"rank": 1, "link": 0, "count": 1}]}}
    # A device per rank: ranks sharing one would set no bandwidth expectation at all.
    done = _scenario(8, plans, "health,mesh,health_end", out, timeout=200,
                     env={**EMULATED, "TESSERA_EMULATED_DEVICES": "8"})
    assert done.returncode == 1, done.stdout[-4000:] + done.stderr[-3000:]
    run = read_results(out)
    health, end = run.checks["health"], run.checks["health_end"]
    assert health.status == "failed" and health.attrs["culprits"] == ["rank 6"]
    serial6 = _serial(run, 6)
    assert f"GPU serial {serial6}" in health.headline
    assert ("NVLink 4 is down and should be up (up at the suite's start on at least half of the job's 7 other "
            "Emulated GB200 GPUs)") in health.headline
    assert _text(health.attrs["expected_links"]).startswith("18: up at the suite's start")
    # The bandwidth NVML's links would carry: rank 6's 17 links bound it; emulated, so in words only.
    assert health.attrs["expected_busbw_GBps"] == 0.0
    assert _text(health.attrs["expectation_source"]).startswith(
        "none: emulated NVML: NVLink 5 x 17 active links (of 18; all to NVSwitches) would expect 850 GB/s")
    assert end.status == "failed" and set(end.attrs["culprits"]) == {"rank 2", "rank 6"}
    assert "NVLink 9: 40 replay errors in" in end.message and "(--max-link-replay-rate 1)" in end.message
    assert "rank 1 " not in end.message and "CRC" not in end.message


def _clean(done, out, n):
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-3000:]
    assert "GPU telemetry: emulated NVML" in done.stdout
    run = read_results(out)
    assert all(run.checks[c].status == "passed" for c in ("health", "mesh", "health_end"))
    assert list(run.checks)[0] == "health" and list(run.checks)[-1] == "health_end"
    assert {_text(s) for s in run.ranks["identity_source"]} == {"emulated"}
    assert len(run.health["mesh"]) == 0 and len(run.health["health"]) == n * 93
    assert run.checks["health"].attrs["counters_read"] == n * 93
    # health_end reads the GPUs still in the job (the default suite's faults check drops ranks),
    # each row numbered as the job started: its rank's /ranks row holds the GPU it read.
    end = run.health["health_end"]
    ranks = {int(r) for r in end["rank"]}
    assert len(ranks) == run.attrs.get("final_world_size", n)
    lost = {int(r) for label in run.attrs.get("lost_ranks", []) for r in re.findall(r"\(rank (\d+) at start\)", _text(label))}
    assert ranks == set(range(n)) - lost, (sorted(ranks), sorted(lost))
    assert all(_text(g) == _text(run.ranks["gpu_serial"][int(r)]) for r, g in zip(end["rank"], end["gpu"]))


def test_a_clean_run_passes_and_stores_identities(tmp_path):
    out = tmp_path / "clean8.h5"
    done = mpirun(8, "-m", "tessera_mpi.suite", "--quick", "--tests", "health,mesh,health_end", "--out", str(out),
                  timeout=300, env=EMULATED)
    _clean(done, out, 8)


@pytest.mark.slow
def test_the_default_suite_at_72_ranks_runs_health_first_and_last_and_passes(nvl72_run):
    """The 72-rank clean case reads the session's one emulated-NVL72 run of the default suite."""
    _clean(nvl72_run.done, nvl72_run.out, 72)


def test_without_nvml_health_is_skipped_with_the_reason(tmp_path):
    out = tmp_path / "host.h5"
    done = mpirun(2, "-m", "tessera_mpi.suite", "--quick", "--tests", "health,mesh,health_end", "--out", str(out),
                  timeout=120, env={"TESSERA_BACKEND": "numpy"})
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-3000:]
    run = read_results(out)
    health = run.checks["health"]
    assert health.status == "skipped" and "no NVML: the numpy backend" in health.message
    assert run.health == {}


def test_a_rank_without_nvml_fails_health_and_leaves_no_one_waiting(tmp_path):
    """NVML missing on rank 1 only: health names it and the others go on (it used to leave the
    other ranks waiting in the count of counters read until the check's timeout, which now ends
    the run as a failed test: mpirun's 100 s is far below --timeout's 300)."""
    out = tmp_path / "partial.h5"
    done = _scenario(3, {"at_start": {"no_nvml": [1]}}, "health,mesh", out, timeout=100)
    assert done.returncode == 1, done.stdout[-4000:] + done.stderr[-3000:]
    run = read_results(out)
    health = run.checks["health"]
    assert health.status == "failed" and health.attrs["culprits"] == ["rank 1"]
    assert "cannot read the GPU's counters (no NVML: planted by health_scenario (no_nvml)) while 2 other ranks can" \
        in health.message
    assert run.checks["mesh"].status == "passed"


def test_counter_faults_are_refused_off_the_emulated_backend(tmp_path):
    done = _scenario(2, {"mesh": {"ecc_error": 1}}, "mesh", tmp_path / "refused.h5", timeout=120,
                     env={"TESSERA_BACKEND": "numpy"})
    assert done.returncode == 1, done.stdout[-3000:]
    record = read_results(tmp_path / "refused.h5").checks["mesh"]
    assert record.status == "error" and "needs TESSERA_BACKEND=emulated" in record.message


def test_self_test_catches_the_planted_health_defects(tmp_path):
    out = tmp_path / "self.h5"
    done = mpirun(8, "-m", "tessera_mpi.suite", "--self-test", "--quick", "--tests", "health,mesh,bandwidth,health_end",
                  "--out", str(out), timeout=300, env=EMULATED)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-3000:]
    rows = {_text(r["check"]): r for r in read_results(out).tables["selftest"]}
    for name in ("health", "health_end"):
        assert _text(rows[name]["verdict"]) == "caught" and _text(rows[name]["named"]) == "rank 7", rows[name]
