"""The NVML adapter: every call to NVML (nvidia-ml-py's `pynvml`) is made here and nowhere else.

Every read is optional: a function the driver, the library or the GPU does not support gives
"not supported" for its counter, a permission error a line in the snapshot's problems, and a
GPU that vanished ("GPU is lost") ends that snapshot with that problem; nothing raises out of
`NvmlGpu.identity` or `NvmlGpu.snapshot`. `pynvml` is imported on first use (the `gpu` extra).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

from .identity import GpuIdentity
from .nvlink import NVML_VERSIONS, NvLinkInfo
from .snapshot import DEVICE, Snapshot

UNSUPPORTED_CODES = ("NVML_ERROR_NOT_SUPPORTED", "NVML_ERROR_FUNCTION_NOT_FOUND", "NVML_ERROR_DEPRECATED",
                     "NVML_ERROR_NOT_FOUND", "NVML_ERROR_INVALID_ARGUMENT")
"""Errors that mean "this GPU or driver does not have that counter" (NOT_FOUND and
INVALID_ARGUMENT: a link index or a page-retirement query a GPU without them refuses)."""
_VALUE_MEMBERS = {0: "dVal", 1: "uiVal", 2: "ulVal", 3: "ullVal", 4: "sllVal", 5: "siVal"}
"""nvmlValueType_t -> the member of the nvmlValue_t union that holds a field value."""
_PCI = re.compile(r"[0-9A-Fa-f]{4,8}:[0-9A-Fa-f]{2}:[0-9A-Fa-f]{2}\.[0-9A-Fa-f]")


class Lost(Exception):
    """The GPU answered NVML_ERROR_GPU_IS_LOST: nothing more can be read from it."""


class _Unsupported:
    def __repr__(self) -> str:
        return "not supported"


UNSUPPORTED = _Unsupported()


def pci_bus_id(device_label: str) -> str | None:
    """The PCI bus id in a placement's device label ("cuda:0 NVIDIA H200 0000:1b:00.0 ..."):
    NVML finds the GPU by it, whatever CUDA_VISIBLE_DEVICES renumbered."""
    match = _PCI.search(device_label)
    return match.group(0) if match else None


def load() -> tuple[Any, str]:
    """Return (the initialized pynvml module, "") or (None, why there is no NVML here)."""
    try:
        import pynvml  # type: ignore[import-not-found]
    except ImportError as exc:
        return None, f"no NVML: nvidia-ml-py is not installed ({exc}); pip install 'tessera_mpi[gpu]'"
    try:
        pynvml.nvmlInit()
    except Exception as exc:  # NVMLError subclasses, or OSError when libnvidia-ml.so is missing
        return None, f"no NVML: nvmlInit failed ({_describe(pynvml, exc)})"
    return pynvml, ""


def _describe(nvml: Any, exc: BaseException) -> str:
    mismatch = getattr(nvml, "NVML_ERROR_LIB_RM_VERSION_MISMATCH", None)
    if mismatch is not None and getattr(exc, "value", None) == mismatch:
        return f"{exc}: the NVML library and the loaded driver differ in version; reboot or reload the driver"
    return f"{type(exc).__name__}: {exc}"


def _text(value: Any) -> str:
    return value.decode(errors="replace").strip("\x00 ") if isinstance(value, bytes) else str(value).strip()


class NvmlGpu:
    """One GPU through NVML: its identity and snapshots of its health counters."""

    def __init__(self, nvml: Any, handle: Any) -> None:
        self.nvml = nvml
        self.handle = handle
        self.problems: list[str] = []
        self.xids = 0
        self._events = self._register_xids()

    @classmethod
    def open(cls, nvml: Any, *, pci: str | None, index: int | None) -> tuple[NvmlGpu | None, str]:
        """Return (the GPU at PCI bus id `pci`, else at NVML index `index`; "") or (None, why)."""
        try:
            if pci is not None:
                handle = nvml.nvmlDeviceGetHandleByPciBusId_v2(pci.encode() if isinstance(pci, str) else pci)
            elif index is not None:
                handle = nvml.nvmlDeviceGetHandleByIndex(index)
            else:
                return None, "no NVML device: this rank has no GPU"
        except Exception as exc:
            return None, f"NVML cannot open the GPU at {pci or f'index {index}'} ({_describe(nvml, exc)})"
        return cls(nvml, handle), ""

    def _call(self, what: str, fn: Callable[..., Any] | None, *args: Any) -> Any:
        """Call an NVML function; UNSUPPORTED where the GPU lacks it; raise Lost when it is gone;
        other errors (permissions, timeouts) become one problem line and UNSUPPORTED."""
        if fn is None:
            return UNSUPPORTED  # a binding without this function (looked up with getattr)
        try:
            return fn(*args)
        except self.nvml.NVMLError as exc:
            code = getattr(exc, "value", None)
            if code in self._codes(UNSUPPORTED_CODES):
                return UNSUPPORTED
            if code in self._codes(("NVML_ERROR_GPU_IS_LOST",)):
                raise Lost(f"{what}: GPU is lost (NVML_ERROR_GPU_IS_LOST)") from exc
            if code in self._codes(("NVML_ERROR_NO_PERMISSION",)):
                self._problem(f"{what}: permission denied (run as a user allowed to read the GPU's counters)")
            else:
                self._problem(f"{what}: {_describe(self.nvml, exc)}")
            return UNSUPPORTED
        except AttributeError:
            return UNSUPPORTED  # an older nvidia-ml-py without this function

    def _codes(self, names: tuple[str, ...]) -> set[int]:
        return {getattr(self.nvml, n) for n in names if hasattr(self.nvml, n)}

    def _problem(self, line: str) -> None:
        if line not in self.problems:
            self.problems.append(line)

    def _register_xids(self) -> Any:
        nvml = self.nvml
        try:
            events = self._call("nvmlEventSetCreate", nvml.nvmlEventSetCreate)
            if events is UNSUPPORTED:
                return None
            done = self._call("nvmlDeviceRegisterEvents", nvml.nvmlDeviceRegisterEvents, self.handle,
                              nvml.nvmlEventTypeXidCriticalError, events)
            return None if done is UNSUPPORTED else events
        except Lost:
            return None

    def identity(self) -> GpuIdentity:
        """Read the identity; fields NVML does not report stay empty (-1 for numbers)."""
        nvml, h = self.nvml, self.handle
        try:
            fields: dict[str, Any] = {"source": "nvml"}
            for key, fn in (("uuid", nvml.nvmlDeviceGetUUID), ("serial", nvml.nvmlDeviceGetSerial),
                            ("board_part", nvml.nvmlDeviceGetBoardPartNumber), ("product", nvml.nvmlDeviceGetName)):
                value = self._call(fn.__name__, fn, h)
                if value is not UNSUPPORTED:
                    fields[key] = _text(value)
            pci = self._call("nvmlDeviceGetPciInfo", nvml.nvmlDeviceGetPciInfo, h)
            if pci is not UNSUPPORTED:
                fields["pci_bus_id"] = _text(getattr(pci, "busId", b""))
            module = self._call("nvmlDeviceGetModuleId", nvml.nvmlDeviceGetModuleId, h)
            if module is not UNSUPPORTED and module is not None:
                fields["module_id"] = int(module)
            fields.update(self._platform())
            return GpuIdentity(**fields)
        except Lost as exc:
            return GpuIdentity(source=f"nvml: {exc}")

    def _platform(self) -> dict[str, Any]:
        """The GB200 NVL72 platform info (v2): chassis serial, slot, tray, host id, module id."""
        nvml = self.nvml
        make = getattr(nvml, "c_nvmlPlatformInfo_v2_t", None)
        if make is None:
            return {}
        info = make()
        done = self._call("nvmlDeviceGetPlatformInfo", nvml.nvmlDeviceGetPlatformInfo, self.handle, info)
        if done is UNSUPPORTED:
            return {}
        # The numbers are single bytes (c_char) in the structure.
        return {"chassis_serial": _text(info.chassisSerialNumber), "slot": _byte(info.slotNumber),
                "tray": _byte(info.trayIndex), "host_id": _byte(info.hostId), "module_id": _byte(info.moduleId)}

    def snapshot(self) -> Snapshot:
        """Read every health counter the GPU supports (see counters.COUNTERS)."""
        values: dict[tuple[str, int], float] = {}
        unsupported: list[str] = []
        self.problems = []
        taken = time.monotonic()
        try:
            for name, value in self._device_values():
                if value is UNSUPPORTED:
                    unsupported.append(name)
                else:
                    values[(name, DEVICE)] = float(value)
            link_unsupported = self._links(values)
            unsupported.extend(link_unsupported)
        except Lost as exc:
            self._problem(str(exc))
        return Snapshot(taken, values, tuple(dict.fromkeys(unsupported)), tuple(self.problems))

    def _device_values(self) -> list[tuple[str, Any]]:
        nvml, h = self.nvml, self.handle
        c = self._call
        out: list[tuple[str, Any]] = []
        for name, error, counter in (
                ("ecc_uncorrectable_volatile", nvml.NVML_MEMORY_ERROR_TYPE_UNCORRECTED, nvml.NVML_VOLATILE_ECC),
                ("ecc_uncorrectable_aggregate", nvml.NVML_MEMORY_ERROR_TYPE_UNCORRECTED, nvml.NVML_AGGREGATE_ECC),
                ("ecc_correctable_volatile", nvml.NVML_MEMORY_ERROR_TYPE_CORRECTED, nvml.NVML_VOLATILE_ECC),
                ("ecc_correctable_aggregate", nvml.NVML_MEMORY_ERROR_TYPE_CORRECTED, nvml.NVML_AGGREGATE_ECC)):
            out.append((name, c("nvmlDeviceGetTotalEccErrors", nvml.nvmlDeviceGetTotalEccErrors, h, error, counter)))
        remap = c("nvmlDeviceGetRemappedRows", nvml.nvmlDeviceGetRemappedRows, h)
        names = ("remapped_rows_correctable", "remapped_rows_uncorrectable", "remap_pending", "remap_failed")
        out.extend(zip(names, remap if remap is not UNSUPPORTED else (UNSUPPORTED,) * 4))
        for name, cause in (("retired_pages_sbe", nvml.NVML_PAGE_RETIREMENT_CAUSE_MULTIPLE_SINGLE_BIT_ECC_ERRORS),
                            ("retired_pages_dbe", nvml.NVML_PAGE_RETIREMENT_CAUSE_DOUBLE_BIT_ECC_ERROR)):
            pages = c("nvmlDeviceGetRetiredPages", nvml.nvmlDeviceGetRetiredPages, h, cause)
            out.append((name, UNSUPPORTED if pages is UNSUPPORTED else len(pages)))
        out.append(("retired_pages_pending",
                    c("nvmlDeviceGetRetiredPagesPendingStatus", nvml.nvmlDeviceGetRetiredPagesPendingStatus, h)))
        out.append(("xid_events", self._drain_xids()))
        reasons = c("nvmlDeviceGetCurrentClocksEventReasons", nvml.nvmlDeviceGetCurrentClocksEventReasons, h)
        for name, masks in (("throttle_thermal", ("nvmlClocksEventReasonSwThermalSlowdown",
                                                  "nvmlClocksEventReasonHwThermalSlowdown")),
                            ("throttle_power", ("nvmlClocksEventReasonSwPowerCap",
                                                "nvmlClocksEventReasonHwPowerBrakeSlowdown")),
                            ("throttle_hw_slowdown", ("nvmlClocksEventReasonHwSlowdown",))):
            bits = sum(getattr(nvml, m, 0) for m in masks)
            out.append((name, UNSUPPORTED if reasons is UNSUPPORTED else int(bool(int(reasons) & bits))))
        for name, policy in (("violation_thermal_ns", nvml.NVML_PERF_POLICY_THERMAL),
                             ("violation_power_ns", nvml.NVML_PERF_POLICY_POWER)):
            seen = c("nvmlDeviceGetViolationStatus", nvml.nvmlDeviceGetViolationStatus, h, policy)
            out.append((name, UNSUPPORTED if seen is UNSUPPORTED else seen.violationTime))
        out.append(("temperature_C", c("nvmlDeviceGetTemperature", nvml.nvmlDeviceGetTemperature, h,
                                       nvml.NVML_TEMPERATURE_GPU)))
        power = c("nvmlDeviceGetPowerUsage", nvml.nvmlDeviceGetPowerUsage, h)
        out.append(("power_W", UNSUPPORTED if power is UNSUPPORTED else power / 1000.0))
        for name, clock in (("clock_sm_MHz", nvml.NVML_CLOCK_SM), ("clock_mem_MHz", nvml.NVML_CLOCK_MEM)):
            out.append((name, c("nvmlDeviceGetClockInfo", nvml.nvmlDeviceGetClockInfo, h, clock)))
        return out

    def _drain_xids(self) -> Any:
        """Count the XID critical errors queued since the last snapshot (a non-blocking wait)."""
        if self._events is None:
            return UNSUPPORTED
        nvml = self.nvml
        timeout = getattr(nvml, "NVML_ERROR_TIMEOUT", None)
        while True:
            try:
                nvml.nvmlEventSetWait_v2(self._events, 0)
            except nvml.NVMLError as exc:
                if getattr(exc, "value", None) != timeout:
                    self._problem(f"nvmlEventSetWait: {_describe(nvml, exc)}")
                return self.xids
            self.xids += 1

    def _links(self, values: dict[tuple[str, int], float]) -> list[str]:
        """NVLink state and error counters per link: the per-link counter calls where they work,
        else the field values (the per-link calls are deprecated on newer GPUs)."""
        nvml, h = self.nvml, self.handle
        unsupported: list[str] = []
        for link in range(getattr(nvml, "NVML_NVLINK_MAX_LINKS", 18)):
            state = self._call("nvmlDeviceGetNvLinkState", nvml.nvmlDeviceGetNvLinkState, h, link)
            if state is UNSUPPORTED:
                if link == 0:
                    unsupported.append("nvlink_up")
                break
            values[("nvlink_up", link)] = float(int(state) == getattr(nvml, "NVML_FEATURE_ENABLED", 1))
            for name, kind, field in (("nvlink_crc", "NVML_NVLINK_ERROR_DL_CRC_FLIT", "NVML_FI_DEV_NVLINK_ERROR_DL_CRC"),
                                      ("nvlink_replay", "NVML_NVLINK_ERROR_DL_REPLAY",
                                       "NVML_FI_DEV_NVLINK_ERROR_DL_REPLAY"),
                                      ("nvlink_recovery", "NVML_NVLINK_ERROR_DL_RECOVERY",
                                       "NVML_FI_DEV_NVLINK_ERROR_DL_RECOVERY")):
                value = self._call("nvmlDeviceGetNvLinkErrorCounter", nvml.nvmlDeviceGetNvLinkErrorCounter, h,
                                   link, getattr(nvml, kind))
                if value is UNSUPPORTED:
                    value = self._field(getattr(nvml, field, None), link)
                if value is UNSUPPORTED:
                    unsupported.append(name)
                else:
                    values[(name, link)] = float(value)
        return unsupported

    def _field(self, field: int | None, link: int) -> Any:
        """One field value scoped to `link` (nvmlDeviceGetFieldValues), or UNSUPPORTED."""
        if field is None:
            return UNSUPPORTED
        got = self._call("nvmlDeviceGetFieldValues", self.nvml.nvmlDeviceGetFieldValues, self.handle, [(field, link)])
        if got is UNSUPPORTED or got[0].nvmlReturn != getattr(self.nvml, "NVML_SUCCESS", 0):
            return UNSUPPORTED
        return getattr(got[0].value, _VALUE_MEMBERS.get(int(got[0].valueType), "ullVal"))

    def nvlink_info(self, product: str) -> NvLinkInfo | None:
        """What NVML says of this GPU's NVLinks now: how many it has, how many are up, their
        generation (nvmlNvlinkVersion_t, see nvlink.NVML_VERSIONS) and how many lead to an NVSwitch;
        None where NVML reports no NVLink state (a PCIe card, an old driver) or the GPU is lost."""
        nvml, h = self.nvml, self.handle
        links = active = to_switch = 0
        generations: set[int] = set()
        switch = getattr(nvml, "NVML_NVLINK_DEVICE_TYPE_SWITCH", 2)
        try:
            for link in range(getattr(nvml, "NVML_NVLINK_MAX_LINKS", 18)):
                state = self._call("nvmlDeviceGetNvLinkState", nvml.nvmlDeviceGetNvLinkState, h, link)
                if state is UNSUPPORTED:
                    break
                links += 1
                if int(state) != getattr(nvml, "NVML_FEATURE_ENABLED", 1):
                    continue
                active += 1
                version = self._call("nvmlDeviceGetNvLinkVersion", nvml.nvmlDeviceGetNvLinkVersion, h, link)
                generations.add(NVML_VERSIONS.get(int(version), 0) if version is not UNSUPPORTED else 0)
                far = self._call("nvmlDeviceGetNvLinkRemoteDeviceType",
                                 getattr(nvml, "nvmlDeviceGetNvLinkRemoteDeviceType", None), h, link)
                if far is UNSUPPORTED or to_switch < 0:
                    to_switch = -1
                elif int(far) == switch:
                    to_switch += 1
        except Lost:
            return None
        if not links:
            return None
        # Links of different (or unknown) generations give no one figure: generation 0.
        generation = generations.pop() if len(generations) == 1 else 0
        return NvLinkInfo(product, generation, links, active, to_switch if active else 0, "nvml")


def _byte(value: Any) -> int:
    if isinstance(value, bytes):
        return value[0] if value else -1
    return int(value)
