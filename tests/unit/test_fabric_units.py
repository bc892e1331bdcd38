"""Bandwidth conventions, expectations, sweep sizes and patterns, pair schedules, slow links."""

import io

import numpy as np
import pytest

from tessera_mpi.fabric.busbw import bus_factor, busbw_gbps, per_rank_count, size_of
from tessera_mpi.fabric.expectations import expectation
from tessera_mpi.hardware.nvlink import NvLinkInfo
from tessera_mpi.runtime.device import Placement
from tessera_mpi.fabric.p2p import partner, rounds
from tessera_mpi.profile import Record, _figures, format_figures
from tessera_mpi.suite.checks.links import common_end, slow_links
from tessera_mpi.suite.options import UsageError, parse_bytes, parse_options, parse_sizes
from tessera_mpi.util.text import human_bytes
from tessera_mpi.suite.progress import Progress
from tessera_mpi.fabric.pattern import summed, values
from tessera_mpi.fabric.sweep import distinct, sizes


def test_nccl_tests_conventions():
    assert bus_factor("all_reduce", 8) == pytest.approx(1.75)
    assert bus_factor("all_gather", 8) == bus_factor("reduce_scatter", 8) == bus_factor("all_to_all", 8) == 0.875
    assert bus_factor("broadcast", 72) == bus_factor("sendrecv", 2) == 1.0
    assert busbw_gbps("all_reduce", 10**9, 1.0, 2) == pytest.approx(1.0)
    assert per_rank_count("all_gather", 1 << 20, 8, 4) == (1 << 20) // 32
    assert size_of("all_gather", 10, 8, 4) == 320 and size_of("all_reduce", 10, 8, 4) == 40
    assert per_rank_count("all_to_all", 8, 72, 4) == 1
    with pytest.raises(ValueError):
        bus_factor("gossip", 4)


def test_expectations():
    def on(*devices):
        return [Placement(host="n1", local_rank=i, local_size=len(devices), device=d) for i, d in enumerate(devices)]

    h200, _ = expectation(on("cuda:0 NVIDIA H200 0000:1b:00.0", "cuda:1 NVIDIA H200 0000:2b:00.0"))
    assert h200.busbw_gbps == 450 and "NVLink 4" in h200.source
    assert expectation(on("cuda:0 NVIDIA GB200 0000:01:00.0"))[0].busbw_gbps == 900
    mixed = on("cuda:0 NVIDIA GB200 0000:01:00.0", "cuda:1 NVIDIA H100 80GB HBM3 0000:02:00.0")
    assert expectation(mixed)[0].busbw_gbps == 450
    assert expectation(on("cpu"))[0] is None and expectation([])[0] is None
    assert expectation(on("cpu"), given_gbps=12.5)[0].source == "--expect-busbw 12.5"
    # Name fragments are not products: PCIe cards and bridged pairs have no NVLink fabric.
    for card in ("NVIDIA H100 PCIe", "NVIDIA A100-PCIE-40GB", "NVIDIA H100 NVL", "NVIDIA H200 NVL"):
        none, why = expectation(on(f"cuda:0 {card} 0000:1b:00.0"))
        assert none is None and card in why, card
    shared, why = expectation(on("cuda:0 NVIDIA H200 0000:1b:00.0", "cuda:0 NVIDIA H200 0000:1b:00.0"))
    assert shared is None and "ranks share a GPU" in why
    assert h200.source.startswith("from the device name: NVLink 4, 18 links x 25 GB/s = 450 GB/s")


def test_expectations_from_nvml():
    def read(*infos):
        return [Placement(host="n1", local_rank=i, local_size=len(infos), device=f"cuda:{i} X 0000:{i + 1:02x}:00.0",
                          nvlink=info) for i, info in enumerate(infos)]

    # The exact product NVML names wins (its datasheet), whatever generation the driver reports.
    h200 = NvLinkInfo("NVIDIA H200", 5, 18, 18, 18, "nvml")
    got, _ = expectation(read(h200, h200))
    assert got.busbw_gbps == 450 and got.source.startswith("from NVML: the product NVIDIA H200, NVLink 4, 18 links")
    # A product the table does not name: generation x active links, where they all lead to NVSwitches.
    b300 = NvLinkInfo("NVIDIA B300 SXM6 AC", 5, 18, 18, 18, "nvml")
    got, _ = expectation(read(b300, b300))
    assert got.busbw_gbps == 900
    assert got.source == ("from NVML: NVLink 5 x 18 active links x 50 GB/s per direction (NVIDIA B300 SXM6 AC, "
                          "links to NVSwitches)")
    # The slowest GPU bounds the job: one with a link down from the start (health names it).
    got, _ = expectation(read(b300, NvLinkInfo("NVIDIA B300 SXM6 AC", 5, 18, 17, 17, "nvml")))
    assert got.busbw_gbps == 850 and "17 active links" in got.source
    # A bridged pair, far ends NVML cannot name, no known generation, no active link: no expectation.
    for info, words in ((NvLinkInfo("NVIDIA H100 NVL", 4, 18, 12, 0, "nvml"), "do not all lead to NVSwitches"),
                        (NvLinkInfo("NVIDIA B300", 5, 18, 18, -1, "nvml"), "far ends unknown"),
                        (NvLinkInfo("NVIDIA B300", 0, 18, 18, 18, "nvml"), "no known NVLink generation"),
                        (NvLinkInfo("NVIDIA L40S", 0, 4, 0, 0, "nvml"), "no active NVLink")):
        none, why = expectation(read(info))
        assert none is None and words in why, (info, why)
    # NVML on some ranks only: the device names decide (here an unknown one: none).
    none, why = expectation(read(b300, None))
    assert none is None and "not a product of the built-in table" in why
    # --expect-busbw wins over NVML.
    assert expectation(read(b300), given_gbps=12.5)[0].source == "--expect-busbw 12.5"
    # Emulated NVML: the figure in words, labelled emulated, never an expectation to judge against.
    emulated = NvLinkInfo("Emulated GB200", 5, 18, 18, 18, "emulated")
    none, why = expectation(read(emulated, emulated))
    assert none is None and why.startswith("emulated NVML: NVLink 5 x 18 active links (of 18; all to NVSwitches) "
                                           "would expect 900 GB/s per direction")


def test_sweep_sizes_and_pattern():
    assert sizes(8, 64, 2) == [8, 16, 32, 64] and sizes(8, 100, 4) == [8, 32]
    with pytest.raises(ValueError):
        sizes(8, 4, 2)
    assert list(distinct("all_gather", [8, 16, 32, 64, 128], 8, 4)) == [8, 64, 128]
    for ranks in (1, 3, 72):
        brute = sum(values(np, r, 5, 200, np.float64) for r in range(ranks))
        assert np.array_equal(summed(np, ranks, 5, 200, np.float64), brute)
    assert values(np, 2, 0, 4, np.float32).tolist() == [15.0, 28.0, 10.0, 23.0]


@pytest.mark.parametrize("n", [2, 3, 8, 9, 72])
def test_rounds_pair_every_rank_once(n):
    schedule = rounds(n)
    assert len(schedule) == (n - 1 if n % 2 == 0 else n)
    seen = [pair for pairs in schedule for pair in pairs]
    assert len(seen) == len(set(seen)) == n * (n - 1) // 2
    for pairs in schedule:
        ranks = [r for pair in pairs for r in pair]
        assert len(ranks) == len(set(ranks)), "a rank appears twice in one round"
        assert all(partner(pairs, a) == b and partner(pairs, b) == a for a, b in pairs)


def test_slow_links_and_the_common_end():
    m = np.full((4, 4), 10.0)
    np.fill_diagonal(m, 0)
    m[2, 0] = m[2, 1] = m[3, 2] = 1.0
    median, slow = slow_links(m, 0.5)
    assert median == 10.0 and sorted((a, b) for a, b, _ in slow) == [(2, 0), (2, 1), (3, 2)]
    assert common_end(slow) == (2, 3)
    assert common_end([(0, 1, 1.0), (2, 3, 1.0)]) is None
    assert slow_links(np.zeros((2, 2)), 0.5) == (0.0, [])


def test_size_flags():
    assert parse_bytes("64K") == 65536 and parse_bytes("4MiB") == 4 << 20 and parse_bytes("1g") == 1 << 30
    assert parse_sizes("8:1G") == (8, 1 << 30, 2) and parse_sizes("1K:64M:4") == (1024, 64 << 20, 4)
    for bad in ("8", "8:4", "x:1G", "8:1G:1", "8:1Q"):
        with pytest.raises(UsageError):
            parse_sizes(bad)
    o = parse_options(["--sizes", "8:1M:4", "--expect-busbw", "450", "--min-efficiency", "0.9",
                       "--duration", "5", "--link-peers", "3", "--slow-link-fraction", "0.25"], {"x": ""})
    assert (o.sizes, o.expect_busbw, o.min_efficiency, o.duration_s, o.link_peers, o.slow_link_fraction) == (
        (8, 1 << 20, 4), 450.0, 0.9, 5.0, 3, 0.25)
    for argv in (["--min-efficiency", "1.5"], ["--expect-busbw", "0"], ["--duration", "-1"], ["--link-peers", "0"]):
        with pytest.raises(UsageError):
            parse_options(argv, {"x": ""})


def test_profile_figures_over_ranks():
    everyone = [
        [Record("all_reduce", 1000, "float32", 2, 1e-3), Record("all_reduce", 1000, "float32", 2, 3e-3)],
        [Record("all_reduce", 1000, "float32", 2, 4e-3), Record("all_reduce", 1000, "float32", 2, 4e-3)],
    ]
    (f,) = _figures(everyone)
    assert f.calls == 2 and f.time_us_max == pytest.approx(4000) and f.time_us_min == pytest.approx(2000)
    assert f.time_us_avg == pytest.approx(3000)
    assert f.algbw_GBps == pytest.approx(1000 / 4e-3 / 1e9) and f.busbw_GBps == pytest.approx(f.algbw_GBps)
    assert "all_reduce" in format_figures([f]) and "no collectives" in format_figures([])


def test_progress_lines_and_bar(monkeypatch):
    stream = io.StringIO()
    monkeypatch.setattr("tessera_mpi.suite.progress.LOG_EVERY_S", 0.0)
    p = Progress("sweep", 2, enabled=True, stream=stream)
    p.step("a")
    p.step("b")
    p.step("c")
    assert stream.getvalue().splitlines() == ["    sweep: a (1/2, ETA 0 s)", "    sweep: b (2/2, ETA 0 s)",
                                              "    sweep: c (3/3, ETA 0 s)"]
    monkeypatch.setenv("TESSERA_PROGRESS", "bar")
    bar = io.StringIO()
    q = Progress("sweep", 4, enabled=True, stream=bar)
    q.step("x")
    q.close()
    assert "\r    [######..................] sweep: x (1/4" in bar.getvalue()
    quiet = io.StringIO()
    Progress("sweep", 2, enabled=False, stream=quiet).step("a")
    assert quiet.getvalue() == ""
    assert human_bytes(8) == "8 B" and human_bytes(65536) == "64 KiB" and human_bytes(3 << 30) == "3 GiB"
