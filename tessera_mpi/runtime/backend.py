"""The array backend switch: CuPy when a GPU is usable, NumPy otherwise, or as TESSERA_BACKEND says.

Every buffer the framework allocates comes from the backend's `xp` namespace, so every collective
and check works on host and device memory alike. The emulated backend keeps arrays on the host but
declares them device memory, so the device code paths (stream synchronization before MPI, host
staging when MPI is not CUDA-aware) run and are tested on machines without a GPU.
"""

from __future__ import annotations

import os
from typing import Any, ClassVar

import numpy as np
from mpi4py import MPI

from ..errors import ConfigError
from .device import visible_devices
from .topology import TOPOLOGY_ENV, read_topology

BACKEND_ENV = "TESSERA_BACKEND"
BACKEND_NAMES = ("auto", "numpy", "cupy", "emulated")
EMULATED_DEVICES_ENV = "TESSERA_EMULATED_DEVICES"
PAGE = 4096
"""Bytes per memory page: host benchmark buffers start on one."""


class HostClock:
    """Wall-clock timing with MPI.Wtime, for host buffers."""

    name = "host"

    def start(self) -> None:
        self._t0 = MPI.Wtime()

    def stop(self) -> float:
        """Return the seconds since `start`."""
        return MPI.Wtime() - self._t0


class EventClock:
    """Timing with device events on the current stream (CUDA events on CuPy).

    `events` makes the event pair; the emulated backend passes host-timed events so that this
    path runs, and is tested, on machines without a GPU.
    """

    name = "events"

    def __init__(self, events: Any, elapsed_ms: Any) -> None:
        self._begin, self._end = events(), events()
        self._elapsed_ms = elapsed_ms

    def start(self) -> None:
        self._begin.record()

    def stop(self) -> float:
        self._end.record()
        self._end.synchronize()
        return float(self._elapsed_ms(self._begin, self._end)) / 1e3


class _HostEvent:
    """An event with the CUDA event interface, stamped with the host clock (emulated backend)."""

    def record(self) -> None:
        self.at = MPI.Wtime()

    def synchronize(self) -> None:
        """Host events are complete when recorded."""


class ArrayBackend:
    """Where arrays live and how to move them; one instance per process."""

    name: ClassVar[str]
    is_device: ClassVar[bool]
    xp: Any

    def device_count(self) -> int:
        """Return how many devices this process can see (0 for host memory)."""
        return 0

    def bind(self, ordinal: int | None) -> str:
        """Make device `ordinal` current for this process and return its label for reports."""
        return "cpu"

    def asarray(self, data: Any, dtype: Any = None) -> Any:
        """Return `data` as a backend array (no copy when it already is one of the right dtype)."""
        return self.xp.asarray(data, dtype=dtype)

    def empty(self, count: int, dtype: Any) -> Any:
        """Return an uninitialized 1-D array for benchmark buffers (see NumpyBackend.empty)."""
        return self.xp.empty(count, dtype=dtype)

    def to_host(self, a: Any) -> np.ndarray:
        """Return a NumPy array with the contents of backend array `a` (a copy for device arrays)."""
        return np.asarray(a)

    def from_host(self, a: np.ndarray) -> Any:
        """Return a backend array with the contents of host array `a`."""
        return a

    def copy_into(self, dst: Any, src: Any) -> None:
        """Copy host or backend array `src` into backend array `dst` in place."""
        dst[...] = self.from_host(src) if isinstance(src, np.ndarray) else src

    def synchronize(self) -> None:
        """Wait until queued device work is done, so MPI reads finished data."""

    def clock(self) -> HostClock | EventClock:
        """Return a new clock for timing operations on this backend's buffers."""
        return HostClock()


class NumpyBackend(ArrayBackend):
    """Host memory through NumPy."""

    name = "numpy"
    is_device = False

    def __init__(self) -> None:
        self.xp = np

    def empty(self, count: int, dtype: Any) -> np.ndarray:
        """Page-aligned, as the OSU micro-benchmarks allocate theirs: NumPy's own blocks start
        anywhere in a page, and the MPI moved them 4-6% slower at 32-256 KiB here."""
        dtype = np.dtype(dtype)
        raw = np.empty(count * dtype.itemsize + PAGE, dtype=np.uint8)
        start = -raw.ctypes.data % PAGE
        return raw[start:start + count * dtype.itemsize].view(dtype)


class EmulatedDeviceBackend(NumpyBackend):
    """Host memory that the framework treats as device memory, counting syncs and copies.

    It exists so that tests cover the device paths on CPU-only machines; it measures nothing
    about a GPU and is never chosen automatically. Each node pretends to have
    TESSERA_EMULATED_DEVICES devices (default 4, as on a GB200 NVL72 compute tray), or each
    emulated host those of TESSERA_EMULATED_TOPOLOGY (runtime.topology).
    """

    name = "emulated"
    is_device = True

    def __init__(self) -> None:
        super().__init__()
        self.syncs = 0
        self.bytes_to_host = 0
        self.bytes_from_host = 0

    def device_count(self) -> int:
        value = os.environ.get(EMULATED_DEVICES_ENV, "4")
        if not value.isdigit() or int(value) < 1:
            raise ConfigError(f"{EMULATED_DEVICES_ENV} must be a positive integer, got {value!r}")
        topology = read_topology()
        if topology is None:
            return int(value)
        if EMULATED_DEVICES_ENV in os.environ and int(value) != topology.devices:
            raise ConfigError(f"{EMULATED_DEVICES_ENV}={value} contradicts {TOPOLOGY_ENV}={topology} "
                              f"({topology.devices} devices per host); unset {EMULATED_DEVICES_ENV}")
        return topology.devices

    def bind(self, ordinal: int | None) -> str:
        return f"emulated:{ordinal}"

    def to_host(self, a: Any) -> np.ndarray:
        self.bytes_to_host += a.nbytes
        return np.array(a, copy=True)

    def from_host(self, a: np.ndarray) -> Any:
        self.bytes_from_host += a.nbytes
        return np.array(a, copy=True)

    def synchronize(self) -> None:
        self.syncs += 1

    def clock(self) -> EventClock:
        return EventClock(_HostEvent, lambda begin, end: (end.at - begin.at) * 1e3)


class CupyBackend(ArrayBackend):
    """Device memory through CuPy, one current device per process."""

    name = "cupy"
    is_device = True

    def __init__(self, cupy: Any) -> None:
        self.xp = cupy

    def device_count(self) -> int:
        return int(self.xp.cuda.runtime.getDeviceCount())

    def bind(self, ordinal: int | None) -> str:
        if ordinal is None:
            raise ConfigError("the cupy backend needs a GPU but this rank sees none")
        device = self.xp.cuda.Device(ordinal)
        device.use()
        props = self.xp.cuda.runtime.getDeviceProperties(ordinal)
        name = props["name"].decode() if isinstance(props["name"], bytes) else str(props["name"])
        label = f"cuda:{ordinal} {name} {device.pci_bus_id}"
        visible = visible_devices()
        # The physical id is what an operator reads off nvidia-smi when replacing a GPU.
        if visible and ordinal < len(visible):
            label += f" (CUDA_VISIBLE_DEVICES entry {visible[ordinal]})"
        return label

    def to_host(self, a: Any) -> np.ndarray:
        return self.xp.asnumpy(a)

    def from_host(self, a: np.ndarray) -> Any:
        return self.xp.asarray(a)

    def synchronize(self) -> None:
        self.xp.cuda.get_current_stream().synchronize()

    def clock(self) -> EventClock:
        return EventClock(self.xp.cuda.Event, self.xp.cuda.get_elapsed_time)


def _usable_cupy() -> tuple[Any, str]:
    """Return (cupy module or None, reason it is unusable)."""
    try:
        import cupy  # type: ignore[import-not-found]
    except ImportError as exc:
        return None, f"CuPy is not installed ({exc}); pip install 'tessera_mpi[gpu]'"
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:  # CUDA raises its own error classes when no driver is present
        return None, f"CuPy cannot reach a GPU: {exc}"
    if count == 0:
        return None, "CuPy sees no GPU (check CUDA_VISIBLE_DEVICES)"
    return cupy, ""


def select_backend(name: str | None = None) -> ArrayBackend:
    """Return the backend named `name`, or by TESSERA_BACKEND, or CuPy if usable else NumPy.

    Raises ConfigError for an unknown name or for "cupy" when no GPU is usable.
    """
    chosen = (name if name is not None else os.environ.get(BACKEND_ENV, "auto")).strip().lower()
    if chosen not in BACKEND_NAMES:
        raise ConfigError(
            f"{BACKEND_ENV}={chosen!r} is not a backend; choose one of {', '.join(BACKEND_NAMES)}"
        )
    if chosen == "numpy":
        return NumpyBackend()
    if chosen == "emulated":
        return EmulatedDeviceBackend()
    cupy, reason = _usable_cupy()
    if cupy is not None:
        return CupyBackend(cupy)
    if chosen == "cupy":
        raise ConfigError(f"{BACKEND_ENV}=cupy but {reason}")
    return NumpyBackend()
