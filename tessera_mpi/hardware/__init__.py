"""GPU identity and health counters: NVML through one adapter (`nvml.py`), an emulation of it
for machines without a GPU (`emulated.py`), snapshots and the rules that judge them."""

from .counters import COUNTERS, CounterSpec
from .identity import GpuIdentity
from .snapshot import Change, Snapshot, changes
from .telemetry import Telemetry, telemetry

__all__ = ["COUNTERS", "Change", "CounterSpec", "GpuIdentity", "Snapshot", "Telemetry", "changes", "telemetry"]
