"""An emulated NVL72 on one machine (TESSERA_EMULATED_TOPOLOGY=18x4): the host-aware parts of
the suite see 18 hosts of 4 devices; communication is real MPI. Also the configuration errors."""

import re
import subprocess
import sys
from collections import Counter

import pytest
from conftest import NVL72, ROOT, SCRIPTS, mpirun

from tessera_mpi.results import figures, read_results
from tessera_mpi.results.cli import run as results_cli

HOSTS = [f"emul-n{i:02d}" for i in range(1, 19)]


def _text(values):
    return [v.decode() if isinstance(v, bytes) else v for v in values]


@pytest.mark.parametrize("env, words", [
    (NVL72, "TESSERA_EMULATED_TOPOLOGY=18x4 holds 72 ranks (18 hosts x 4 devices) but the job has 4; "
            "launch 72 ranks or set a topology of 4, e.g. 1x4"),
    ({"TESSERA_BACKEND": "numpy", "TESSERA_EMULATED_TOPOLOGY": "1x4"}, "is honoured only with TESSERA_BACKEND=emulated"),
    ({"TESSERA_BACKEND": "emulated", "TESSERA_EMULATED_TOPOLOGY": "4 trays"}, "is not HOSTSxDEVICES"),
])
def test_a_topology_that_does_not_fit_exits_2_with_one_line(tmp_path, env, words):
    done = mpirun(4, "-m", "tessera_mpi.suite", "--tests", "mesh", "--out", str(tmp_path), timeout=120, env=env)
    text = done.stdout + done.stderr
    assert done.returncode == 2, text
    errors = [line for line in text.splitlines() if "configuration error" in line]
    assert len(errors) == 1 and words in errors[0], text
    assert errors[0].startswith("python -m tessera_mpi.suite: configuration error: the runtime cannot start on ranks 0-3: ")
    assert list(tmp_path.iterdir()) == [], "no results file for a run that never started"


def test_a_failure_names_the_emulated_host(tmp_path):
    out = tmp_path / "f.h5"
    done = mpirun(8, str(SCRIPTS / "planted_check.py"), "fail", "--tests", "mesh,planted", "--out", str(out),
                  timeout=120, env={"TESSERA_BACKEND": "emulated", "TESSERA_EMULATED_TOPOLOGY": "2x4"})
    assert done.returncode == 1, done.stdout + done.stderr
    # The emulated GPU's identity (issue 16) sits on the emulated tray and slot (issue 20).
    assert re.search(r"failed on rank 2 \(tp=0,pp=1,dp=0; host emul-n01, local rank 2, device emulated:2, "
                     r"tray 1 slot 2 GPU serial \d+ \(module 3\)\)", done.stdout), done.stdout
    assert re.search(r"rank 5 \(tp=1,pp=0,dp=1; host emul-n02, local rank 1, device emulated:1, "
                     r"tray 2 slot 1 GPU serial \d+ \(module 2\)\)", done.stdout), done.stdout
    assert "verified on 2 hosts (emulated topology 2x4)" in done.stdout
    run = read_results(out)
    assert _text(run.ranks["host"]) == ["emul-n01"] * 4 + ["emul-n02"] * 4
    assert list(run.ranks["tray"]) == [1] * 4 + [2] * 4 and list(run.ranks["slot"]) == [0, 1, 2, 3] * 2


@pytest.mark.slow
def test_the_default_suite_on_an_emulated_nvl72(nvl72_run, tmp_path, capsys):
    done, out = nvl72_run.done, nvl72_run.out
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-3000:]
    lines = done.stdout.splitlines()
    assert "72 ranks on 18 hosts" in lines[0] and "mesh 6x6x2 (tp,pp,dp)" in lines[0]
    assert lines[1].startswith("  emulated topology 18x4: hosts, trays, local ranks and devices are emulated on 1 machine")
    assert re.search(r"mesh +PASSED .* verified on 18 hosts \(emulated topology 18x4\)", done.stdout), done.stdout
    run = read_results(out)
    assert run.attrs["topology"] == "emulated topology 18x4" and run.attrs["backend"] == "emulated"
    statuses = {name: c.status for name, c in run.checks.items()}
    assert statuses.pop("soak") == "skipped" and set(statuses.values()) == {"passed"}, statuses  # soak needs --duration
    assert "verified on 18 hosts (emulated topology 18x4)" in run.checks["mesh"].headline
    # /ranks: 18 distinct hosts, in blocks, each with local ranks and slots 0-3 and one tray.
    hosts = _text(run.ranks["host"])
    assert sorted(Counter(hosts)) == HOSTS and set(Counter(hosts).values()) == {4}
    for host in HOSTS:
        mine = [i for i, h in enumerate(hosts) if h == host]
        assert [int(run.ranks["local_rank"][i]) for i in mine] == [0, 1, 2, 3]
        assert [int(run.ranks["slot"][i]) for i in mine] == [0, 1, 2, 3]
        assert {int(run.ranks["tray"][i]) for i in mine} == {int(host[-2:])}
    assert hosts[37] == "emul-n10" and int(run.ranks["local_rank"][37]) == 1
    assert [r["host"].decode() for r in run.checks["mesh"].datasets["hosts"]] == HOSTS
    # links: 18 host blocks on the heatmaps, a summary per host and a host x host matrix.
    links = run.checks["links"]
    assert [b.host for b in figures.link_host_blocks(run)] == HOSTS
    assert _text(links.datasets["hosts"]["host"]) == HOSTS and links.datasets["host_matrix"].shape == (18, 18)
    assert (links.datasets["hosts"]["within_GBps"] > 0).all() and (links.datasets["host_matrix"] > 0).all()
    assert "18 hosts (emulated topology 18x4): median" in links.headline
    assert list(run.checks["bisection"].datasets["splits"]["pairs_across_hosts"])[0] == 36
    # faults: every scenario names where its victims were.
    scenarios = run.checks["faults"].datasets["scenarios"]
    assert all(re.fullmatch(r"emul-n\d\d local rank [0-3](, emul-n\d\d local rank [0-3])*", h) for h in _text(scenarios["hosts"]))
    assert _text(scenarios["hosts"])[0] == "emul-n10 local rank 0", "the hang's victim is rank 36"
    assert results_cli([str(out)]) == 0
    assert "72 ranks on 18 hosts (emulated topology 18x4), mesh 6x6x2" in capsys.readouterr().out
    plots = tmp_path / "plots"
    drawn = subprocess.run([sys.executable, str(ROOT / "scripts" / "plot_bandwidth.py"), str(out), "-o", str(plots)],
                           capture_output=True, text=True, timeout=120)
    assert drawn.returncode == 0 and (plots / "links_unidirectional.png").stat().st_size > 10_000, drawn.stderr


@pytest.mark.slow
def test_self_test_at_72_ranks_and_a_slow_rank_on_its_emulated_host(tmp_path):
    """The 72-rank self-test in one launch: mesh, sharding, determinism and health (planted on
    rank 71; health's uncorrectable ECC error is named with the GPU's serial) and the links
    check's planted slow rank 37, reported on emul-n10 local rank 1."""
    out = tmp_path / "self72.h5"
    done = mpirun(72, "-m", "tessera_mpi.suite", "--self-test", "--quick", "--tests",
                  "health,mesh,sharding,determinism,links,health_end", "--link-peers", "8", "--out", str(out),
                  timeout=600, env=NVL72)
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-3000:]
    run = read_results(out)
    rows = {(r["check"].decode(), r["defect"].decode()): r for r in run.tables["selftest"]}
    checks = [check for check, _ in rows]
    assert checks == ["health", "mesh", "sharding", "sharding", "determinism", "links", "health_end"], checks
    assert [r["verdict"].decode() for r in rows.values()] == ["caught"] * 7
    named = {key: r["named"].decode() for key, r in rows.items()}
    assert {n for (check, _), n in named.items() if check != "links"} == {"rank 71"}, named
    serial71 = _text(run.ranks["gpu_serial"])[71]
    ecc = rows[("health", "an uncorrectable ECC error on one GPU")]["detail"].decode()
    assert f"GPU serial {serial71}" in ecc and "uncorrectable ECC" in ecc, ecc
    row = rows[("links", "one slow rank")]
    assert row["named"].decode() == "rank 37", row
    assert re.search(r"rank 37 \(tp=3,pp=0,dp=1; host emul-n10, local rank 1, device emulated:1, tray 10 slot 1 "
                     r"GPU serial \d+ \(module 2\)\) is an end of", row["detail"].decode()), row["detail"]
    assert "host emul-n10, local rank 1" in done.stdout
