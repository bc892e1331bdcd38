"""The emulated GPU's NVML: stable identities and counters that `fault.inject` moves.

The emulated backend (TESSERA_BACKEND=emulated) stands in for GPUs on machines without one, and
this stands in for their NVML, so that snapshots, deltas, the `health` verdict, its messages and
the /health tables run end to end there. Nothing here describes a real GPU.
"""

from __future__ import annotations

import hashlib
import re
import time
import uuid

from .counters import COUNTERS, THROTTLE_REASONS
from .identity import GpuIdentity
from .nvlink import NvLinkInfo
from .snapshot import DEVICE, Snapshot

LINKS = 18
"""NVLinks per emulated GPU, as a GB200 or H100 SXM has."""
GENERATION = 5
"""The emulated GPU's NVLink generation, a GB200's (its links all lead to emulated NVSwitches)."""
GAUGES = {"temperature_C": 41.0, "power_W": 612.0, "clock_sm_MHz": 1980.0, "clock_mem_MHz": 3996.0}
"""Readings of an idle, healthy emulated GPU (in the range a GB200 reports)."""
LINK_COUNTERS = {"crc": "nvlink_crc", "replay": "nvlink_replay", "recovery": "nvlink_recovery"}
"""fault.inject(link_errors={..., "kind": ...})'s kinds and the counter each moves."""


def emulated_position(host: str, ordinal: int, *, tray: int | None = None) -> tuple[int, int, int]:
    """Return (tray, slot, module id) of an emulated GPU: the tray the placement gives (an
    emulated topology's), else the number a host name ends with (emul-n10: 10; none: 0); the
    slot its device ordinal and the module the ordinal + 1. The one place an emulated position
    is made up."""
    if tray is None:
        digits = re.search(r"(\d+)$", host)
        tray = int(digits.group(1)) if digits else 0
    return tray, ordinal, ordinal + 1


def emulated_identity(host: str, ordinal: int, *, tray: int | None = None) -> GpuIdentity:
    """The identity of emulated GPU `ordinal` of `host` (in `tray` where the placement says):
    the same on every run."""
    digest = hashlib.sha256(f"{host}/{ordinal}".encode()).digest()
    tray, slot, module = emulated_position(host, ordinal, tray=tray)
    return GpuIdentity(
        uuid=f"GPU-{uuid.UUID(bytes=digest[:16])}", serial=str(1650000000000 + int.from_bytes(digest[:6], "big") % 10**10),
        board_part="EMU-GB200-0000", product="Emulated GB200", pci_bus_id=f"00000000:{0x10 + ordinal:02x}:00.0",
        chassis_serial=f"EMU{int.from_bytes(digest[6:10], 'big') % 10**9:09d}", tray=tray, slot=slot, host_id=1,
        module_id=module, source="emulated",
    )


class EmulatedGpu:
    """One emulated GPU's counters (every counter supported, every link up, nothing counted)."""

    def __init__(self, host: str, ordinal: int, *, tray: int | None = None) -> None:
        self.identity = emulated_identity(host, ordinal, tray=tray)
        self.values: dict[tuple[str, int], float] = {}
        for spec in COUNTERS:
            for link in (range(LINKS) if spec.per_link else (DEVICE,)):
                self.values[(spec.name, link)] = GAUGES.get(spec.name, 1.0 if spec.name == "nvlink_up" else 0.0)

    def snapshot(self) -> Snapshot:
        return Snapshot(time.monotonic(), dict(self.values))

    def nvlink_info(self) -> NvLinkInfo:
        """The emulated links as NVML would report them: generation 5, the up ones to NVSwitches."""
        up = sum(1 for link in range(LINKS) if self.values[("nvlink_up", link)] >= 1)
        return NvLinkInfo(self.identity.product, GENERATION, LINKS, up, up, "emulated")

    def save(self) -> dict[tuple[str, int], float]:
        return dict(self.values)

    def restore(self, saved: dict[tuple[str, int], float]) -> None:
        self.values = dict(saved)

    # What fault.inject moves (fault/inject.py strikes them).

    def ecc_error(self, count: int = 1) -> None:
        """An uncorrectable ECC error: the volatile and aggregate counts grow, a row remap is pending."""
        for name in ("ecc_uncorrectable_volatile", "ecc_uncorrectable_aggregate", "remapped_rows_uncorrectable"):
            self.values[(name, DEVICE)] += count
        self.values[("remap_pending", DEVICE)] = 1.0

    def link_errors(self, link: int, count: int, kind: str = "crc") -> None:
        self.values[(LINK_COUNTERS[kind], link)] += count

    def link_down(self, link: int) -> None:
        self.values[("nvlink_up", link)] = 0.0
        self.values[("nvlink_recovery", link)] += 1

    def throttle(self, reason: str) -> None:
        self.values[(THROTTLE_REASONS[reason], DEVICE)] = 1.0
        if reason in ("thermal", "power"):
            self.values[(f"violation_{reason}_ns", DEVICE)] += 1e9
        self.values[("clock_sm_MHz", DEVICE)] = GAUGES["clock_sm_MHz"] / 2
