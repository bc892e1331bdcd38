"""`GpuIdentity`: what a technician reads off the part to pull (serial, board, position)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class GpuIdentity:
    """One GPU's identity as NVML (or its emulation) reports it; "" where it is not reported.

    `tray`, `slot`, `host_id`, `module_id` and `chassis_serial` come from the GB200 NVL72
    platform info (nvmlDeviceGetPlatformInfo) and the module id; they are -1 / "" elsewhere.
    """

    uuid: str = ""
    serial: str = ""
    board_part: str = ""
    product: str = ""
    pci_bus_id: str = ""
    chassis_serial: str = ""
    tray: int = -1
    slot: int = -1
    host_id: int = -1
    module_id: int = -1
    source: str = ""
    """"nvml", "emulated", or why there is none ("no NVML: ...")."""

    @property
    def known(self) -> bool:
        return bool(self.uuid or self.serial)

    def __str__(self) -> str:
        """"tray 10 slot 2 GPU serial 1654322012345 (module 3)": the words of failure messages."""
        if not self.known:
            return ""
        gpu = f"GPU serial {self.serial}" if self.serial else f"GPU {self.uuid}"
        module = f" (module {self.module_id})" if self.module_id >= 0 else ""
        where = " ".join(p for p in (f"tray {self.tray}" if self.tray >= 0 else "",
                                     f"slot {self.slot}" if self.slot >= 0 else "") if p)
        return f"{where} {gpu}{module}" if where else f"{gpu}{module}"

    def row(self) -> dict[str, object]:
        """The /ranks columns of this identity."""
        return {"gpu_uuid": self.uuid, "gpu_serial": self.serial, "board_part": self.board_part,
                "product": self.product, "pci_bus_id": self.pci_bus_id, "chassis_serial": self.chassis_serial,
                "tray": self.tray, "slot": self.slot, "host_id": self.host_id, "module_id": self.module_id,
                "identity_source": self.source}
