"""The emulated topology: parsing, the block assignment, the errors, and the host-aware helpers
that read placements (host blocks, per-host link summaries, pairs across hosts)."""

import numpy as np
import pytest

from tessera_mpi.errors import ConfigError
from tessera_mpi.runtime.backend import EmulatedDeviceBackend
from tessera_mpi.runtime.context import _place
from tessera_mpi.runtime.device import Placement, sharing_machine
from tessera_mpi.runtime.topology import (TOPOLOGY_ENV, HostBlock, Topology, emulated_topology, host_blocks,
                                          hosts_phrase, read_topology)
from tessera_mpi.suite.checks.bisection import across_hosts, splits
from tessera_mpi.suite.checks.links import host_summary, planted_slow_rank

NVL72 = Topology(18, 4)


@pytest.mark.parametrize("value, expected", [("18x4", (18, 4)), (" 2X8 ", (2, 8)), ("1x1", (1, 1))])
def test_read_topology(value, expected):
    topology = read_topology({TOPOLOGY_ENV: value})
    assert (topology.hosts, topology.devices) == expected and str(topology) == "x".join(map(str, expected))


@pytest.mark.parametrize("env", [{}, {TOPOLOGY_ENV: ""}, {TOPOLOGY_ENV: "  "}])
def test_unset_or_empty_is_the_real_topology(env):
    assert read_topology(env) is None
    assert emulated_topology(72, backend="numpy", env=env) is None


@pytest.mark.parametrize("value, words", [("18by4", "is not HOSTSxDEVICES; give e.g. 18x4"), ("x4", "is not HOSTSxDEVICES"),
                                          ("-1x4", "is not HOSTSxDEVICES"), ("18x4x2", "is not HOSTSxDEVICES"),
                                          ("0x4", "needs at least one host and one device per host"),
                                          ("18x0", "needs at least one host and one device per host")])
def test_malformed_values_are_configuration_errors(value, words):
    with pytest.raises(ConfigError, match=words):
        read_topology({TOPOLOGY_ENV: value})


def test_block_assignment_of_an_nvl72():
    places = [NVL72.place(r, device=f"emulated:{r % 4}", machine="vm") for r in range(72)]
    assert [p.host for p in places[:8]] == ["emul-n01"] * 4 + ["emul-n02"] * 4
    assert sorted({p.host for p in places}) == [f"emul-n{i:02d}" for i in range(1, 19)]
    for host in {p.host for p in places}:
        mine = [p for p in places if p.host == host]
        assert [p.local_rank for p in mine] == [0, 1, 2, 3] and {p.local_size for p in mine} == {4}
        assert [p.slot for p in mine] == [0, 1, 2, 3] and len({p.tray for p in mine}) == 1
    rank37 = places[37]
    assert (rank37.host, rank37.local_rank, rank37.tray, rank37.slot) == ("emul-n10", 1, 10, 1)
    assert str(rank37) == "host emul-n10, local rank 1, device emulated:1"
    assert rank37.topology == "emulated topology 18x4" and rank37.process_host == "vm"
    assert places[71].host == "emul-n18" and places[71].tray == 18
    assert NVL72.local_rank(37) == 1 and NVL72.size == 72


def test_host_names_widen_past_99_hosts():
    assert Topology(120, 1).place(119, device="d", machine="m").host == "emul-n120"
    assert Topology(120, 1).host_name(0) == "emul-n001"


def test_a_rank_outside_the_topology_is_refused():
    with pytest.raises(ValueError, match="rank 72 is outside the 18x4 topology"):
        NVL72.local_rank(72)


@pytest.mark.parametrize("ranks, hint", [(8, "e.g. 2x4"), (7, "e.g. 7x1"), (144, "e.g. 36x4")])
def test_a_rank_count_that_does_not_fit_is_a_configuration_error(ranks, hint):
    with pytest.raises(ConfigError) as caught:
        emulated_topology(ranks, backend="emulated", env={TOPOLOGY_ENV: "18x4"})
    message = str(caught.value)
    assert message.startswith(f"{TOPOLOGY_ENV}=18x4 holds 72 ranks (18 hosts x 4 devices) but the job has {ranks}")
    assert "launch 72 ranks" in message and message.endswith(hint) and "\n" not in message
    assert emulated_topology(72, backend="emulated", env={TOPOLOGY_ENV: "18x4"}) == NVL72


@pytest.mark.parametrize("backend", ["numpy", "cupy"])
def test_only_the_emulated_backend_takes_an_emulated_identity(backend):
    with pytest.raises(ConfigError, match=f"honoured only with TESSERA_BACKEND=emulated \\(this run's backend is {backend}\\)"):
        emulated_topology(72, backend=backend, env={TOPOLOGY_ENV: "18x4"})


def test_the_emulated_backend_has_the_topologys_devices(monkeypatch):
    monkeypatch.delenv("TESSERA_EMULATED_DEVICES", raising=False)
    monkeypatch.setenv(TOPOLOGY_ENV, "9x8")
    assert EmulatedDeviceBackend().device_count() == 8
    monkeypatch.setenv("TESSERA_EMULATED_DEVICES", "8")
    assert EmulatedDeviceBackend().device_count() == 8
    monkeypatch.setenv("TESSERA_EMULATED_DEVICES", "4")
    with pytest.raises(ConfigError, match="TESSERA_EMULATED_DEVICES=4 contradicts TESSERA_EMULATED_TOPOLOGY=9x8"):
        EmulatedDeviceBackend().device_count()
    monkeypatch.delenv(TOPOLOGY_ENV)
    assert EmulatedDeviceBackend().device_count() == 4


def test_the_one_place_reads_the_topology(monkeypatch):
    monkeypatch.delenv("TESSERA_EMULATED_DEVICES", raising=False)
    monkeypatch.setenv(TOPOLOGY_ENV, "18x4")
    backend, where = _place("emulated", 37, size=72, node_rank=5)
    assert backend.name == "emulated"
    assert (where.host, where.local_rank, where.device, where.tray, where.slot) == ("emul-n10", 1, "emulated:1", 10, 1)
    assert where.machine and where.machine != where.host
    with pytest.raises(ConfigError, match="but the job has 8"):
        _place("emulated", 3, size=8, node_rank=3)
    monkeypatch.delenv(TOPOLOGY_ENV)
    _, real = _place("emulated", 37, size=72, node_rank=5)
    assert (real.local_rank, real.device, real.tray, real.slot, real.topology) == (5, "emulated:1", None, None, "")
    assert real.host == real.machine


def test_the_machine_is_shared_by_every_emulated_host():
    places = [NVL72.place(r, device="d", machine="vm") for r in range(72)]
    assert sharing_machine(places[37], places) == 72
    real = [Placement(host=f"n{r // 4}", local_rank=r % 4, local_size=4, device="d") for r in range(8)]
    assert sharing_machine(real[5], real) == 4 and real[5].process_host == "n1"


def test_host_blocks():
    assert host_blocks(["a", "a", "b", "a"]) == [HostBlock("a", 0, 1), HostBlock("b", 2, 2), HostBlock("a", 3, 3)]
    assert host_blocks([]) == []
    blocks = host_blocks([NVL72.place(r, device="d", machine="vm").host for r in range(72)])
    assert len(blocks) == 18 and blocks[9] == HostBlock("emul-n10", 36, 39) and list(blocks[9].ranks) == [36, 37, 38, 39]


def test_hosts_phrase():
    places = [NVL72.place(r, device="d", machine="vm") for r in range(72)]
    assert hosts_phrase(places) == "18 hosts (emulated topology 18x4)"
    assert hosts_phrase([Placement(host="vm", local_rank=0, local_size=1, device="cpu")]) == "1 host"


def test_per_host_link_summary_finds_the_slow_tray():
    hosts = [NVL72.place(r, device="d", machine="vm").host for r in range(72)]
    matrix = np.full((72, 72), 10.0)
    np.fill_diagonal(matrix, 0.0)
    matrix[36:40, :] = matrix[:, 36:40] = 1.0  # emul-n10's links are slow both ways
    matrix[36:40, 36:40] = 5.0
    np.fill_diagonal(matrix, 0.0)
    slow = [(a, b, 1.0) for a in range(72) for b in range(72) if matrix[a, b] == 1.0]
    rows, blocks = host_summary(matrix, hosts, slow)
    assert [r["host"] for r in rows] == [f"emul-n{i:02d}" for i in range(1, 19)] and blocks.shape == (18, 18)
    n10 = rows[9]
    assert (n10["first_rank"], n10["last_rank"], n10["ranks"]) == (36, 39, 4)
    assert (n10["within_GBps"], n10["out_GBps"], n10["in_GBps"], n10["slowest_GBps"]) == (5.0, 1.0, 1.0, 1.0)
    assert n10["slow_links"] == len(slow) == 2 * 4 * 68
    assert rows[0]["within_GBps"] == 10.0 and rows[0]["slow_links"] == 2 * 4 * 4
    assert blocks[9, 9] == 5.0 and blocks[9, 0] == blocks[0, 9] == 1.0 and blocks[0, 1] == 10.0


def test_a_host_with_no_measured_link_reports_zero():
    rows, blocks = host_summary(np.zeros((2, 2)), ["a", "b"], [])
    assert rows[0]["within_GBps"] == rows[0]["slowest_GBps"] == 0.0 and not blocks.any()


def test_pairs_across_hosts():
    places = [NVL72.place(r, device="d", machine="vm") for r in range(72)]
    halves = splits(72)["halves"]
    assert across_hosts(places, halves) == 36
    assert across_hosts(places, [1, 0, 3, 2, 5, 4, 7, 6]) == 0
    assert across_hosts(places, [4, 5, 6, 7, 0, 1, 2, 3]) == 4


@pytest.mark.parametrize("n, rank", [(72, 37), (8, 5), (4, 3), (2, 1)])
def test_the_links_self_test_plants_inside_a_host(n, rank):
    assert planted_slow_rank(n) == rank


def _runtime(placements, *, origin, started):
    """A Runtime without communicators: what the faults check reads to name its victims."""
    from tessera_mpi.runtime import Runtime
    return Runtime(world=None, control=None, error_comm=None, watch=None, ending=None, node=None, launch=None,
                   placement=placements[0], backend=None, cuda_aware=False, cuda_aware_source="", staging=None,
                   oversubscribed=False, placements=tuple(placements), ft=None, origin=tuple(origin),
                   started=tuple(started))


def test_faults_names_victims_by_their_rank_and_placement_as_the_job_started(monkeypatch):
    """After drop-one loses rank 5 of a 2x4 job, drop-two's victims (1, 5) are numbered in the
    shrunk world, where rank 5 is the job's rank 6 (emul-n02 slot 2) and its local rank is 1
    (emul-n02 keeps 4, 6 and 7). The culprit must be rank 6 with the placement it started with."""
    from dataclasses import replace

    from tessera_mpi import runtime
    from tessera_mpi.suite.checks import faults

    started = [replace(p, gpu=f"tray {p.tray} slot {p.slot} GPU serial {1000 + r}")
               for r, p in enumerate(Topology(2, 4).place(r, device=f"emulated:{r % 4}", machine="vm") for r in range(8))]
    alive = [0, 1, 2, 3, 4, 6, 7]
    shrunk = [replace(started[r], local_rank=[a for a in alive if started[a].host == started[r].host].index(r))
              for r in alive]
    assert shrunk[5].local_rank == 1 and shrunk[5].slot == 2, "the shrunk placement renumbers the local rank"
    worlds = [_runtime(started, origin=range(8), started=started), _runtime(shrunk, origin=alive, started=started)]
    monkeypatch.setattr(runtime, "current", lambda: worlds[0])

    def outcome(victims, detected):
        return faults.Outcome(f"drop {victims}", victims, detected, "6/6", 1.0, 1.0, 7, True, "detail")

    def drop_one(ctx):
        worlds.pop(0)  # the loss shrinks the world
        return outcome("5", True)

    first = faults._located(drop_one, None)
    second = faults._located(lambda ctx: outcome("1,5", False), None)
    assert (first[0].victims, first[0].hosts) == ("5", "emul-n02 local rank 1")
    assert (second[0].victims, second[0].hosts) == ("1,6", "emul-n01 local rank 1, emul-n02 local rank 2")

    class Ctx:
        findings = []

        def fail(self, message, *, culprit, at_start=False):
            self.findings.append((message, culprit, at_start))

    ctx = Ctx()
    faults._judge(ctx, first + second, worlds[0])
    [(message, culprits, at_start)] = ctx.findings
    assert at_start, "the victims are numbered as started already: the runner must not renumber them again"
    assert [str(c) for c in culprits] == ["rank 1", "rank 6"]
    assert ("the fault on rank 1 (host emul-n01, local rank 1, device emulated:1, tray 1 slot 1 GPU serial 1001), "
            "rank 6 (host emul-n02, local rank 2, device emulated:2, tray 2 slot 2 GPU serial 1006) "
            "was not detected") in message, message


def _shrunk_2x4():
    """A 2x4 job after the loss of rank 5: (the runtime at start, the runtime of the 7 survivors)."""
    from dataclasses import replace
    started = [replace(p, gpu=f"tray {p.tray} slot {p.slot} GPU serial {1000 + r}")
               for r, p in enumerate(Topology(2, 4).place(r, device=f"emulated:{r % 4}", machine="vm") for r in range(8))]
    alive = [0, 1, 2, 3, 4, 6, 7]
    shrunk = [replace(started[r], local_rank=[a for a in alive if started[a].host == started[r].host].index(r))
              for r in alive]
    from types import SimpleNamespace
    return (replace(_runtime(started, origin=range(8), started=started), world=SimpleNamespace(size=8, rank=0)),
            replace(_runtime(shrunk, origin=alive, started=started), world=SimpleNamespace(size=7, rank=0)))


def test_the_runner_records_a_later_checks_ranks_as_the_job_started():
    """After rank 5 of 2x4 is lost, rank 5 of the 7 survivors is the job's rank 6 (emul-n02
    slot 2, now local rank 1 there). Everything the runner records for a check that ran on the
    shrunk world (culprits, failing ranks, the summary, references, the self-test's expected
    culprit, and the runtime's and mesh's descriptions) names rank 6 and its start-up placement;
    culprits a check numbered as started already (the faults check's lost victims) stay; an
    unshrunk world is left as it is."""
    from tessera_mpi.runtime.agree import Verdict
    from tessera_mpi.suite import renumber
    from tessera_mpi.suite.context import Finding
    from tessera_mpi.suite.registry import SelfTest
    from tessera_mpi.suite.selftest import expected_culprit
    from tessera_mpi.suite.verdict import Culprit

    whole, shrunk = _shrunk_2x4()
    assert shrunk.renumbered and not whole.renumbered
    findings = [Finding("sanity", "wrong", (Culprit.rank(5), Culprit.link(5, 0))),
                Finding("performance", "slow", (Culprit.pair(6, 4), Culprit.whole())),
                Finding("sanity", "lost unseen", (Culprit.rank(5),), at_start=True)]
    assert sorted(map(str, renumber.culprits(findings, shrunk))) == [
        "global", "link 6 -> 0", "pair 4-7", "rank 5", "rank 6"]
    assert renumber.culprits(findings[:1], whole) == {Culprit.rank(5), Culprit.link(5, 0)}

    verdict = Verdict(ok=False, failing=(1, 5), messages={1: "bad sum", 5: "slow"}, level=1)
    assert renumber.failing(verdict, shrunk) == [1, 6] and renumber.failing(verdict, whole) == [1, 5]
    text = renumber.summary(verdict, shrunk, shrunk.describe)
    assert ("rank 6 (rank 5 of the 7 survivors; host emul-n02, local rank 2, device emulated:2, tray 2 slot 2 "
            "GPU serial 1006): slow") in text, text
    assert "rank 1 (rank 1 of the 7 survivors; host emul-n01, local rank 1" in text, text
    assert renumber.summary(verdict, whole, whole.describe) == verdict.summary(whole.describe)
    assert shrunk.describe(5).startswith("rank 5 (rank 6 at start; host emul-n02, local rank 2, device emulated:2, "
                                         "tray 2 slot 2 GPU serial 1006"), shrunk.describe(5)
    assert shrunk.describe(4) == f"rank 4 ({shrunk.placements[4]})" and whole.describe(5) == f"rank 5 ({whole.placements[5]})"
    assert renumber.judgement_culprits("rank 5, link 6 -> 2", shrunk) == "rank 6, link 7 -> 2"
    assert renumber.judgement_culprits("", shrunk) == "" and renumber.judgement_culprits("rank 5", whole) == "rank 5"

    spec = SelfTest("a slow last-but-one rank", lambda rt, o, clean: {}, lambda n: Culprit.rank(n - 2))
    assert expected_culprit(spec, shrunk) == Culprit.rank(6) and expected_culprit(spec, whole) == Culprit.rank(6)


def test_an_emulated_nvl72_has_72_distinct_gpus_the_same_on_every_run():
    """Each of the 72 emulated GPUs has its own serial and UUID, in its placement's tray and slot,
    and a second start-up makes the same ones (a serial names a part only if it is stable)."""
    from tessera_mpi.hardware.emulated import emulated_identity
    places = [NVL72.place(r, device=f"emulated:{r % 4}", machine="vm") for r in range(72)]
    gpus = [emulated_identity(p.host, p.local_rank, tray=p.tray) for p in places]
    assert len({g.serial for g in gpus}) == len({g.uuid for g in gpus}) == 72
    assert [(g.tray, g.slot) for g in gpus] == [(p.tray, p.slot) for p in places]
    assert gpus == [emulated_identity(p.host, p.local_rank, tray=p.tray) for p in places]
