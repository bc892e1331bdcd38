"""The hardware layer without a GPU: the NVML adapter against a fake pynvml (every optional call
"not supported", realistic values for the rest), the emulated NVML, deltas and the health rules."""

from __future__ import annotations

import types

import pytest

from tessera_mpi.errors import FaultPlanError
from tessera_mpi.fault.plan import FaultPlan
from tessera_mpi.hardware import nvml as adapter
from tessera_mpi.hardware.emulated import EmulatedGpu, emulated_identity, emulated_position
from tessera_mpi.hardware.nvlink import NVML_VERSIONS, PER_LINK_GBPS, PRODUCTS, NvLinkInfo
from tessera_mpi.hardware.rules import Limits, expected_links, from_product, judge, links_up, throttle_seen
from tessera_mpi.hardware.snapshot import Snapshot, changes, rows
from tessera_mpi.hardware.telemetry import open_for


class FakeError(Exception):
    def __init__(self, value: int) -> None:
        super().__init__(value)
        self.value = value

    def __str__(self) -> str:
        return {3: "Not Supported", 4: "Insufficient Permissions", 15: "GPU is lost",
                18: "RM has detected an NVML/RM version mismatch."}.get(self.value, f"error {self.value}")


def fake_nvml(*, lost_after: int | None = None, denied: tuple[str, ...] = (), links: int = 4,
              init_error: int | None = None, version: int | None = None, far: int | None = None,
              down: tuple[int, ...] = (), name: str = "NVIDIA H200") -> types.SimpleNamespace:
    """A pynvml stand-in: identity and ECC, remaps, temperature, power, clocks and NVLink state
    are supported with realistic values; platform info, module id, retired pages, clock-event
    reasons, violation status, events and the per-link error counters are not (field values are).
    The NVLink version (nvmlNvlinkVersion_t) and the far end's type (2: an NVSwitch) are not
    supported unless given; links in `down` are inactive."""
    calls = {"n": 0}
    m = types.SimpleNamespace(
        NVMLError=FakeError, NVML_ERROR_NOT_SUPPORTED=3, NVML_ERROR_NO_PERMISSION=4, NVML_ERROR_GPU_IS_LOST=15,
        NVML_ERROR_FUNCTION_NOT_FOUND=13, NVML_ERROR_TIMEOUT=10, NVML_ERROR_LIB_RM_VERSION_MISMATCH=18,
        NVML_SUCCESS=0, NVML_MEMORY_ERROR_TYPE_CORRECTED=0, NVML_MEMORY_ERROR_TYPE_UNCORRECTED=1,
        NVML_VOLATILE_ECC=0, NVML_AGGREGATE_ECC=1, NVML_PAGE_RETIREMENT_CAUSE_MULTIPLE_SINGLE_BIT_ECC_ERRORS=0,
        NVML_PAGE_RETIREMENT_CAUSE_DOUBLE_BIT_ECC_ERROR=1, NVML_PERF_POLICY_POWER=0, NVML_PERF_POLICY_THERMAL=1,
        NVML_TEMPERATURE_GPU=0, NVML_CLOCK_SM=1, NVML_CLOCK_MEM=2, NVML_NVLINK_MAX_LINKS=18, NVML_FEATURE_ENABLED=1,
        NVML_NVLINK_ERROR_DL_REPLAY=0, NVML_NVLINK_ERROR_DL_RECOVERY=1, NVML_NVLINK_ERROR_DL_CRC_FLIT=2,
        NVML_FI_DEV_NVLINK_ERROR_DL_REPLAY=161, NVML_FI_DEV_NVLINK_ERROR_DL_RECOVERY=162,
        NVML_FI_DEV_NVLINK_ERROR_DL_CRC=163, nvmlEventTypeXidCriticalError=8, NVML_NVLINK_DEVICE_TYPE_SWITCH=2,
    )

    def guard(name, value):
        def call(*args):
            calls["n"] += 1
            if lost_after is not None and calls["n"] > lost_after:
                raise FakeError(15)
            if name in denied:
                raise FakeError(4)
            if value is None:
                raise FakeError(3)
            return value(*args) if callable(value) else value
        call.__name__ = name
        return call

    def init():
        if init_error is not None:
            raise FakeError(init_error)

    def field_values(handle, fields):
        field, link = fields[0]
        crc = {163: 17 if link == 1 else 0, 161: 0, 162: 0}[field]
        return [types.SimpleNamespace(nvmlReturn=0, valueType=3, value=types.SimpleNamespace(ullVal=crc))]

    def ecc(handle, error, counter):
        return {(1, 0): 0, (1, 1): 2, (0, 0): 5, (0, 1): 311}[(error, counter)]

    supported = {
        "nvmlInit": init, "nvmlDeviceGetHandleByPciBusId_v2": "handle", "nvmlDeviceGetHandleByIndex": "handle",
        "nvmlDeviceGetUUID": "GPU-6b1e0c8a-3f1d-4b57-9d2e-0a1b2c3d4e5f", "nvmlDeviceGetSerial": "1654322012345",
        "nvmlDeviceGetBoardPartNumber": "699-2G525-0200-000", "nvmlDeviceGetName": name,
        "nvmlDeviceGetPciInfo": types.SimpleNamespace(busId=b"00000000:1B:00.0"),
        "nvmlDeviceGetTotalEccErrors": ecc, "nvmlDeviceGetRemappedRows": (1, 0, 0, 0),
        "nvmlDeviceGetTemperature": 38, "nvmlDeviceGetPowerUsage": 118000, "nvmlDeviceGetClockInfo": 1980,
        "nvmlDeviceGetNvLinkState": lambda h, link: (int(link not in down) if link < links
                                                     else (_ for _ in ()).throw(FakeError(3))),
        "nvmlDeviceGetFieldValues": field_values,
        "nvmlDeviceGetNvLinkVersion": version, "nvmlDeviceGetNvLinkRemoteDeviceType": far,
    }
    unsupported = ["nvmlDeviceGetModuleId", "nvmlDeviceGetPlatformInfo", "nvmlDeviceGetRetiredPages",
                   "nvmlDeviceGetRetiredPagesPendingStatus", "nvmlDeviceGetCurrentClocksEventReasons",
                   "nvmlDeviceGetViolationStatus", "nvmlEventSetCreate", "nvmlDeviceRegisterEvents",
                   "nvmlEventSetWait_v2", "nvmlDeviceGetNvLinkErrorCounter"]
    for name, value in supported.items():
        setattr(m, name, guard(name, value) if name != "nvmlInit" else init)
    for name in unsupported:
        setattr(m, name, guard(name, None))
    m.c_nvmlPlatformInfo_v2_t = lambda: types.SimpleNamespace()
    return m


def _gpu(**kwargs) -> adapter.NvmlGpu:
    gpu, reason = adapter.NvmlGpu.open(fake_nvml(**kwargs), pci="00000000:1B:00.0", index=None)
    assert gpu is not None, reason
    return gpu


def test_identity_reads_what_is_supported_and_leaves_the_rest_empty():
    identity = _gpu().identity()
    assert identity.serial == "1654322012345" and identity.product == "NVIDIA H200"
    assert identity.pci_bus_id == "00000000:1B:00.0" and identity.board_part == "699-2G525-0200-000"
    assert identity.tray == -1 and identity.module_id == -1 and identity.source == "nvml"
    assert str(identity) == "GPU serial 1654322012345"


def test_snapshot_marks_unsupported_counters_and_reads_links_through_field_values():
    shot = _gpu().snapshot()
    assert shot.problems == ()
    assert shot.get("ecc_uncorrectable_aggregate") == 2 and shot.get("ecc_correctable_volatile") == 5
    assert shot.get("remapped_rows_correctable") == 1 and shot.get("power_W") == 118.0
    assert shot.links() == [0, 1, 2, 3]
    # The per-link counter call is "not supported": the field values scoped to the link answer.
    assert shot.get("nvlink_crc", 1) == 17 and shot.get("nvlink_crc", 0) == 0
    for name in ("retired_pages_dbe", "retired_pages_pending", "throttle_thermal", "violation_power_ns", "xid_events"):
        assert name in shot.unsupported and shot.get(name) is None


def test_a_gpu_lost_between_snapshots_is_a_problem_line_not_an_exception():
    gpu = _gpu(lost_after=14)
    shot = gpu.snapshot()
    assert any("GPU is lost" in p for p in shot.problems)
    assert gpu.snapshot().problems  # still no exception on the next one


def test_permission_errors_are_one_line_each():
    shot = _gpu(denied=("nvmlDeviceGetTotalEccErrors",)).snapshot()
    assert shot.problems == ("nvmlDeviceGetTotalEccErrors: permission denied (run as a user allowed to read "
                             "the GPU's counters)",)
    assert shot.get("temperature_C") == 38


def test_a_driver_library_mismatch_at_init_says_so(monkeypatch):
    import sys
    monkeypatch.setitem(sys.modules, "pynvml", fake_nvml(init_error=18))
    nvml, reason = adapter.load()
    assert nvml is None and "differ in version" in reason and reason.startswith("no NVML")


def test_no_pynvml_means_no_nvml_with_the_install_hint(monkeypatch):
    import sys
    monkeypatch.setitem(sys.modules, "pynvml", None)
    nvml, reason = adapter.load()
    assert nvml is None and "tessera_mpi[gpu]" in reason


def test_the_pci_bus_id_is_found_in_the_device_label():
    assert adapter.pci_bus_id("cuda:1 NVIDIA H200 00000000:1B:00.0 (CUDA_VISIBLE_DEVICES entry 5)") == \
        "00000000:1B:00.0"
    assert adapter.pci_bus_id("emulated:0") is None


def test_host_backends_have_no_telemetry_and_say_why():
    tel = open_for("numpy", host="n01", ordinal=None, device_label="cpu")
    assert not tel.available and "numpy" in tel.reason and tel.snapshot() is None


def test_emulated_identities_are_stable_and_distinct():
    a, b = emulated_identity("emul-n10", 2), emulated_identity("emul-n10", 3)
    assert a == emulated_identity("emul-n10", 2) and a.serial != b.serial and len(a.serial) == 13
    assert emulated_position("emul-n10", 2) == (10, 2, 3)
    assert str(a) == f"tray 10 slot 2 GPU serial {a.serial} (module 3)"


def test_the_emulated_tray_is_the_placements_where_it_has_one():
    # A topology's tray wins over the digits a host name happens to end with.
    assert emulated_position("gb200-rack2-n07", 1, tray=3) == (3, 1, 2)
    assert emulated_position("vm", 1) == (0, 1, 2)
    tel = open_for("emulated", host="gb200-rack2-n07", ordinal=1, device_label="emulated:1", tray=3)
    assert (tel.identity.tray, tel.identity.slot) == (3, 1)


def test_deltas_name_the_link_and_the_count():
    gpu = EmulatedGpu("emul-n01", 0)
    before = gpu.snapshot()
    gpu.link_errors(7, 4112)
    after = gpu.snapshot()
    moved = changes(before, after)
    assert [str(c) for c in moved] == ["NVLink 7: 4,112 CRC errors"]
    table = rows(12, "serial", before, after, only_changed=True)
    assert table == [{"rank": 12, "gpu": "serial", "link": 7, "counter": "nvlink_crc", "before": 0.0, "after": 4112.0}]
    assert len(rows(12, "serial", before, after, only_changed=False)) == len(after.values)


def _pair(strike, seconds: float = 10.0):
    gpu = EmulatedGpu("emul-n01", 1)
    start = gpu.snapshot()
    strike(gpu)
    now = gpu.snapshot()
    return start, Snapshot(start.taken_at + seconds, now.values)


def test_a_clean_gpu_passes():
    start, now = _pair(lambda g: None)
    assert judge(start, now, limits=Limits()) == []


def test_an_uncorrectable_ecc_error_fails_and_the_limit_is_a_flag():
    start, now = _pair(lambda g: g.ecc_error())
    texts = [p.text for p in judge(start, now, limits=Limits())]
    assert any("uncorrectable ECC errors (volatile)" in t for t in texts) and any("row remap pending" in t for t in texts)
    loose = judge(start, now, limits=Limits(max_uncorrectable=1))
    assert [p.counter for p in loose] == ["remap_pending"]


def test_crc_errors_fail_above_the_rate_only():
    start, slow = _pair(lambda g: g.link_errors(2, 500), seconds=10.0)  # 50 per second
    assert judge(start, slow, limits=Limits()) == []
    start, fast = _pair(lambda g: g.link_errors(2, 4112), seconds=10.0)
    problems = judge(start, fast, limits=Limits())
    assert [(p.counter, p.link) for p in problems] == [("nvlink_crc", 2)] and "411 per second" in problems[0].text


def test_crc_errors_at_exactly_the_rate_pass_and_one_more_fails():
    start, at = _pair(lambda g: g.link_errors(2, 1000), seconds=10.0)  # 100 per second: the limit
    assert judge(start, at, limits=Limits()) == []
    start, above = _pair(lambda g: g.link_errors(2, 1001), seconds=10.0)
    assert [(p.counter, p.link) for p in judge(start, above, limits=Limits())] == [("nvlink_crc", 2)]


@pytest.mark.parametrize("kind", ["replay", "recovery"])
def test_replay_and_recovery_errors_are_judged_per_minute_at_the_boundary(kind):
    counter = f"nvlink_{kind}"
    start, at = _pair(lambda g: g.link_errors(5, 1, kind), seconds=60.0)  # 1 per minute: the default
    assert judge(start, at, limits=Limits()) == []
    start, above = _pair(lambda g: g.link_errors(5, 2, kind), seconds=60.0)
    problems = judge(start, above, limits=Limits())
    assert [(p.counter, p.link) for p in problems] == [(counter, 5)]
    assert "2 per minute (--max-link-replay-rate 1)" in problems[0].text
    # One error in a 10 s check is 6 per minute: a burst fails; the limit is a flag.
    start, burst = _pair(lambda g: g.link_errors(5, 1, kind), seconds=10.0)
    assert [p.counter for p in judge(start, burst, limits=Limits())] == [counter]
    assert judge(start, burst, limits=Limits(max_link_replay_rate=6.0)) == []
    assert [p.counter for p in judge(start, burst, limits=Limits(max_link_replay_rate=5.999))] == [counter]


def test_a_link_that_went_down_fails_naming_the_link():
    start, now = _pair(lambda g: g.link_down(3))
    counters = {(p.counter, p.link) for p in judge(start, now, limits=Limits())}
    assert ("nvlink_up", 3) in counters and ("nvlink_recovery", 3) in counters
    assert any(p.text == "NVLink 3 went down during the suite" for p in judge(start, now, limits=Limits()))


def test_a_link_down_from_the_start_fails_where_the_product_says_it_should_be_up():
    gpu = EmulatedGpu("emul-n01", 1)
    gpu.link_down(17)
    start = gpu.snapshot()
    h200 = from_product("NVIDIA H200")
    assert h200 is not None and h200.links == frozenset(range(18)) and "18 NVLinks (H200 SXM datasheet)" in h200.source
    problems = judge(start, start, limits=Limits(), expected=h200)
    assert [(p.counter, p.link) for p in problems] == [("nvlink_up", 17)]
    assert problems[0].text == "NVLink 17 is down and should be up (the NVIDIA H200 has 18 NVLinks (H200 SXM datasheet))"
    # An A100 has 12: its links 12..17 are not expected, so an A100-like GPU with them down passes.
    a100 = from_product("NVIDIA A100-SXM4-80GB")
    assert a100 is not None and a100.links == frozenset(range(12)) and judge(start, start, limits=Limits(),
                                                                           expected=a100) == []
    assert from_product("Emulated GB200") is None and from_product("NVIDIA H100 PCIe") is None
    # With nothing to say which links should be up, a link down from the start is not judged.
    assert judge(start, start, limits=Limits()) == []


def test_a_link_down_from_the_start_fails_where_its_twins_have_it_up():
    full, short = frozenset(range(18)), frozenset(range(18)) - {3}
    products = ["Emulated GB200"] * 8
    up = [full] * 8
    up[5] = short
    expected = expected_links(5, products, up)
    assert expected is not None and 3 in expected.links
    assert expected.source == "up at the suite's start on at least half of the job's 7 other Emulated GB200 GPUs"
    gpu = EmulatedGpu("emul-n01", 1)
    gpu.link_down(3)
    shot = gpu.snapshot()
    assert links_up(shot) == short
    assert [(p.counter, p.link) for p in judge(shot, shot, limits=Limits(), expected=expected)] == [("nvlink_up", 3)]
    # The twins pass: what one GPU lacks is not expected of the others.
    clean = EmulatedGpu("emul-n01", 2).snapshot()
    assert judge(clean, clean, limits=Limits(), expected=expected_links(0, products, up)) == []
    # Two GPUs: the other one's link is enough; other products and unread GPUs are no twins.
    assert 3 in expected_links(1, products[:2], [full, short]).links
    assert expected_links(0, ["A", "B"], [full, short]) is None
    assert expected_links(0, products[:2], [short, None]) is None
    assert expected_links(0, products[:1], [short]) is None
    # Ranks sharing a GPU: it is no twin of itself, and a twin shared by 3 ranks counts once.
    assert expected_links(0, products[:2], [short, full], ["s1", "s1"]) is None
    shared = expected_links(0, products[:5], [full, short, short, short, full], ["s0", "s1", "s1", "s1", "s2"])
    assert 3 in shared.links and "the job's 2 other" in shared.source
    # A link most twins lack is not expected (a design with fewer links wired).
    assert 3 not in expected_links(0, products[:4], [full, short, short, full]).links  # 1 of 3 twins
    half = expected_links(0, products[:5], [full, short, short, full, full])
    assert 3 in half.links  # 2 of 4 twins have it: at least half
    fewer = expected_links(0, products[:4], [full, short, short, short])
    assert 3 not in fewer.links


def test_nvlink_info_reads_generation_active_links_and_their_far_ends():
    gpu = _gpu(links=18, version=7, far=2, down=(4,))  # NVML_NVLINK_VERSION_5_0, NVSwitch far ends
    info = gpu.nvlink_info("NVIDIA H200")
    assert info == NvLinkInfo("NVIDIA H200", 5, 18, 17, 17, "nvml")
    assert info.busbw_gbps == 850 and str(info) == "NVLink 5 x 17 active links (of 18; all to NVSwitches)"
    assert _gpu(links=18, version=6, far=2).nvlink_info("x").generation == 4  # NVML_NVLINK_VERSION_4_0
    # The version and far-end calls "not supported": generation and far ends unknown, never an error.
    unknown = _gpu(links=4).nvlink_info("NVIDIA H200")
    assert unknown == NvLinkInfo("NVIDIA H200", 0, 4, 4, -1, "nvml") and "far ends unknown" in str(unknown)
    assert _gpu(links=0).nvlink_info("NVIDIA H200") is None
    assert _gpu(links=18, version=7, far=2, lost_after=9).nvlink_info("NVIDIA H200") is None
    assert {NVML_VERSIONS[v] for v in (1, 2, 3, 4, 5, 6, 7)} == {1, 2, 3, 4, 5}


def test_the_per_link_figures_give_the_datasheets_per_gpu_bandwidth():
    # NVIDIA's per-GPU figures (both directions): A100 600 GB/s, H100/H200 900 GB/s, B200/GB200 1.8 TB/s.
    for name, both_ways in (("NVIDIA A100-SXM4-80GB", 600), ("NVIDIA H100 80GB HBM3", 900), ("NVIDIA H200", 900),
                            ("NVIDIA B200", 1800), ("NVIDIA GB200", 1800)):
        assert 2 * PRODUCTS[name].links * PER_LINK_GBPS[PRODUCTS[name].generation] == both_ways, name
    assert PER_LINK_GBPS[3] == PER_LINK_GBPS[4] == 25 and PER_LINK_GBPS[5] == 50


def test_the_emulated_gpu_reports_its_links_and_a_planted_link_down():
    gpu = EmulatedGpu("emul-n01", 0)
    assert gpu.nvlink_info() == NvLinkInfo("Emulated GB200", 5, 18, 18, 18, "emulated")
    gpu.link_down(3)
    assert gpu.nvlink_info().active == 17
    tel = open_for("emulated", host="emul-n01", ordinal=0, device_label="emulated:0")
    assert tel.nvlink_info() == NvLinkInfo("Emulated GB200", 5, 18, 18, 18, "emulated")
    open_for("numpy", host="n01", ordinal=None, device_label="cpu")


def test_throttling_counts_only_at_the_end_of_a_fabric_check():
    gpu = EmulatedGpu("emul-n01", 0)
    gpu.throttle("thermal")
    assert throttle_seen("bandwidth", gpu.snapshot()) == ["clocks held down for temperature during bandwidth"]
    assert throttle_seen("mesh", gpu.snapshot()) == []
    start = gpu.snapshot()
    problems = judge(start, start, limits=Limits(), throttled=tuple(throttle_seen("bandwidth", start)))
    assert [p.counter for p in problems] == ["throttle"]


def test_counter_faults_are_validated():
    plan = FaultPlan.make(8, ecc_error=5, link_errors={"rank": 3, "link": 7, "count": 4112})
    assert [(f.kind, f.rank, f.link, f.count) for f in plan.counters] == [("ecc_error", 5, -1, 1),
                                                                          ("link_errors", 3, 7, 4112)]
    with pytest.raises(FaultPlanError, match="link"):
        FaultPlan.make(8, link_down={"rank": 3, "link": 40})
    with pytest.raises(FaultPlanError, match="needs the keys"):
        FaultPlan.make(8, link_errors={"rank": 3})
    with pytest.raises(FaultPlanError, match="not a reason"):
        FaultPlan.make(8, throttle_reason={"rank": 3, "reason": "sunburn"})
    with pytest.raises(FaultPlanError, match="rank"):
        FaultPlan.make(8, ecc_error=9)


def test_counter_faults_are_refused_without_the_emulated_backend():
    from tessera_mpi import fault, runtime
    rt = runtime.start()
    if rt.backend.name == "emulated":
        pytest.skip("this test process runs the emulated backend, where counter faults are allowed")
    with pytest.raises(FaultPlanError, match="TESSERA_BACKEND=emulated"):
        fault.inject(ecc_error=0)


def test_an_unexpected_binding_error_never_escapes(monkeypatch):
    import sys
    broken = fake_nvml()
    broken.nvmlDeviceGetUUID = lambda h: (_ for _ in ()).throw(TypeError("binding changed"))
    monkeypatch.setitem(sys.modules, "pynvml", broken)
    tel = open_for("cupy", host="n01", ordinal=0, device_label="cuda:0 NVIDIA H200 00000000:1B:00.0")
    assert not tel.available and "TypeError" in tel.reason
    monkeypatch.setitem(sys.modules, "pynvml", fake_nvml())
    tel = open_for("cupy", host="n01", ordinal=0, device_label="cuda:0 NVIDIA H200 00000000:1B:00.0")
    assert tel.source == "nvml" and tel.identity.serial == "1654322012345"
    tel.gpu.snapshot = lambda: (_ for _ in ()).throw(RuntimeError("odd"))
    shot = tel.snapshot()
    assert shot is not None and shot.problems == ("NVML snapshot failed: RuntimeError: odd",)
    open_for("numpy", host="n01", ordinal=None, device_label="cpu")


def test_the_jobs_only_gpu_with_no_nvlink_up_expects_none_and_one_with_some_up_is_judged():
    """A machine lent one H200 of a board (the GPU check's single-GPU node) has every NVLink
    down by design: health must not fail it 18 times over. Two GPUs, or one with some links up,
    are judged against the product as before."""
    gpu = EmulatedGpu("emul-n01", 1)
    for link in range(18):
        gpu.link_down(link)
    shot = gpu.snapshot()
    assert links_up(shot) == frozenset()
    products, none_up = ["NVIDIA H200"] * 2, [frozenset(), frozenset()]
    alone = expected_links(0, products[:1], none_up[:1])
    assert alone is not None and alone.links == frozenset() and "the job's only GPU had no NVLink up" in alone.source
    assert judge(shot, shot, limits=Limits(), expected=alone) == []
    assert expected_links(0, products, none_up, ["s1", "s1"]) == alone, "two ranks on the one GPU"
    # Two GPUs with none up: each is an H200 that should reach the other.
    both = expected_links(0, products, none_up, ["s1", "s2"])
    assert both is not None and both.links == frozenset(range(18))
    assert len(judge(shot, shot, limits=Limits(), expected=both)) == 18
    # The only GPU with 17 links up: the 18th is down and should be up.
    some = EmulatedGpu("emul-n01", 1)
    some.link_down(17)
    start = some.snapshot()
    mine = expected_links(0, products[:1], [links_up(start)])
    assert [(p.counter, p.link) for p in judge(start, start, limits=Limits(), expected=mine)] == [("nvlink_up", 17)]
    # A link that was up and goes down during the suite still fails the only GPU.
    up_at_start = EmulatedGpu("emul-n01", 1).snapshot()
    assert ("nvlink_up", 17) in [(p.counter, p.link) for p in judge(up_at_start, start, limits=Limits(), expected=alone)]
