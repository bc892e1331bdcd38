"""`Telemetry`: this rank's GPU as the health layer sees it, through NVML, its emulation, or not at all.

One per process, opened by `runtime.start` once the rank's device is bound (`open_for`), read by
the suite's runner (a snapshot before and after every check), the `health` check and
`fault.inject` (which moves the emulated counters). Snapshots are local: no communication.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from .emulated import EmulatedGpu
from .identity import GpuIdentity
from .nvlink import NvLinkInfo
from .nvml import NvmlGpu, load, pci_bus_id
from .snapshot import Snapshot


@dataclass
class Telemetry:
    """This rank's GPU: identity, snapshots, and what the suite learned from them so far."""

    source: str
    """"nvml", "emulated", or "" when there is none (see `reason`)."""
    reason: str = ""
    identity: GpuIdentity = field(default_factory=GpuIdentity)
    gpu: NvmlGpu | None = None
    emulated: EmulatedGpu | None = None
    baseline: Snapshot | None = None
    """The first snapshot taken: what `health` compares the present with (the suite's start)."""
    throttled: list[str] = field(default_factory=list)
    """"clocks held down for temperature during bandwidth": throttling seen in fabric checks."""

    @property
    def available(self) -> bool:
        return bool(self.source)

    def snapshot(self) -> Snapshot | None:
        """Read this rank's GPU now (None without telemetry); the first one becomes the baseline."""
        if self.emulated is not None:
            shot = self.emulated.snapshot()
        elif self.gpu is not None:
            try:
                shot = self.gpu.snapshot()
            except Exception as exc:  # a binding older or newer than the adapter knows: a line, not a crash
                shot = Snapshot(time.monotonic(), problems=(f"NVML snapshot failed: {type(exc).__name__}: {exc}",))
        else:
            return None
        if self.baseline is None:
            self.baseline = shot
        return shot

    def nvlink_info(self) -> NvLinkInfo | None:
        """This GPU's NVLinks now (see NvLinkInfo); None without telemetry or NVLink state."""
        if self.emulated is not None:
            return self.emulated.nvlink_info()
        if self.gpu is not None:
            try:
                return self.gpu.nvlink_info(self.identity.product)
            except Exception:  # a binding the adapter does not know: no NVLink figures, never a crash
                return None
        return None

    def label(self) -> str:
        """The GPU column of the /health tables: the serial, else the UUID, else the bus id."""
        i = self.identity
        return i.serial or i.uuid or i.pci_bus_id or "unknown GPU"


_NONE = Telemetry(source="", reason="no GPU telemetry: the runtime has not started")
_current: Telemetry = _NONE


def telemetry() -> Telemetry:
    """Return this process's telemetry (one without a source before `open_for`)."""
    return _current


def open_for(backend: str, *, host: str, ordinal: int | None, device_label: str,
             tray: int | None = None) -> Telemetry:
    """Open this rank's GPU for backend `backend` (local; never raises): the emulated NVML for
    "emulated" (in the placement's `tray` where it has one), NVML for "cupy", none for host memory."""
    global _current
    try:
        _current = _open(backend, host=host, ordinal=ordinal, device_label=device_label, tray=tray)
    except Exception as exc:  # the runtime must start whatever NVML does
        _current = Telemetry("", reason=f"no NVML: opening the GPU failed ({type(exc).__name__}: {exc})")
    return _current


def _open(backend: str, *, host: str, ordinal: int | None, device_label: str, tray: int | None) -> Telemetry:
    if backend == "emulated":
        gpu = EmulatedGpu(host, ordinal or 0, tray=tray)
        return Telemetry("emulated", identity=gpu.identity, emulated=gpu)
    if backend != "cupy":
        return Telemetry("", reason=f"no NVML: the {backend} backend runs on host memory, no GPU to read")
    nvml, reason = load()
    if nvml is None:
        return Telemetry("", reason=reason)
    gpu, reason = NvmlGpu.open(nvml, pci=pci_bus_id(device_label), index=ordinal)
    if gpu is None:
        return Telemetry("", reason=reason)
    return Telemetry("nvml", identity=gpu.identity(), gpu=gpu)


def describe_source(tel: Any) -> str:
    """"nvml", "emulated (no real GPU)" or the reason there is none: the console's header line."""
    if tel.source == "emulated":
        return "emulated NVML (no real GPU: made-up serials and counters)"
    return tel.source or tel.reason
