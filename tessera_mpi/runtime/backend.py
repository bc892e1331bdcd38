"""The array backend switch: CuPy when a GPU is usable, NumPy otherwise, or as TESSERA_BACKEND says.

Every buffer the framework allocates comes from the backend's `xp` namespace, so every collective
and check works on host and device memory alike. The emulated backend keeps arrays on the host but
declares them device memory, so the device code paths (stream synchronization before MPI, host
staging through pinned buffers when MPI is not CUDA-aware, device buffers handed to a CUDA-aware
MPI through DLPack or `__cuda_array_interface__` only, the device made current in every thread)
run and are tested on machines without a GPU.
"""

from __future__ import annotations

import os
import threading
from typing import Any, ClassVar

import numpy as np
from mpi4py import MPI

from ..errors import ConfigError, DeviceThreadError
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
    ordinal: int | None = None
    """The device this process uses (set by `bind`; None for host memory)."""
    reason: str = ""
    """Why this backend was chosen (select_backend), for reports: a fallback says what failed."""

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
        """Return a NumPy array with the contents of `a`, a backend array or anything NumPy
        takes (a copy for device arrays): what user data goes through before it is stored."""
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

    def use_in_thread(self) -> None:
        """Make this process's device current in the calling thread.

        CUDA's current device is a property of each host thread: a thread other than the one
        that ran `bind` (the background load's) would otherwise work on device 0.
        """

    def export(self, a: Any) -> Any:
        """Return what a CUDA-aware MPI is handed for device array `a` (the array itself:
        mpi4py reads device arrays through DLPack or `__cuda_array_interface__`)."""
        return a

    def pinned_empty(self, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
        """Return an uninitialized host array that device copies reach at full speed (pinned,
        page-locked memory on CuPy), allocated once per staged buffer (runtime/transfer.py)."""
        return np.empty(shape, dtype=dtype)

    def download(self, a: Any, out: np.ndarray) -> None:
        """Copy backend array `a` into host array `out` of its shape and dtype."""
        np.copyto(out, a)

    def upload(self, dst: Any, host: np.ndarray) -> None:
        """Copy host array `host` into backend array `dst` of its shape and dtype, in place."""
        dst[...] = host


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


class EmulatedDeviceBuffer:
    """An emulated device array as a CUDA-aware MPI receives it: like a CuPy array it offers
    DLPack (on a CUDA device) and `__cuda_array_interface__`, and no buffer protocol, so a
    path that hands MPI device memory any other way fails here as it would on a GPU.

    Its memory is host memory, so any MPI can read it: the direct path runs end to end.
    """

    __slots__ = ("array", "device", "_backend")

    def __init__(self, array: np.ndarray, device: int, backend: EmulatedDeviceBackend) -> None:
        if not array.flags.c_contiguous:
            raise ValueError("device buffers handed to MPI must be contiguous")
        self.array, self.device, self._backend = array, device, backend

    def __dlpack_device__(self) -> tuple[int, int]:
        return (2, self.device)  # kDLCUDA, as CuPy reports its arrays

    def __dlpack__(self, *, stream: Any = None, max_version: Any = None, dl_device: Any = None,
                   copy: Any = None) -> Any:
        # mpi4py passes stream=-1 (no synchronization: the call path synchronized already);
        # NumPy's capsule takes no stream.
        self._backend.exports += 1
        return self.array.__dlpack__(max_version=max_version, copy=copy)

    @property
    def __cuda_array_interface__(self) -> dict[str, Any]:
        self._backend.exports += 1
        a = self.array
        return {"shape": a.shape, "typestr": a.dtype.str, "data": (a.ctypes.data, not a.flags.writeable),
                "strides": None, "version": 3, "stream": None}


class EmulatedDeviceBackend(NumpyBackend):
    """Host memory that the framework treats as device memory, counting what device code does:
    synchronizations, copies, pinned allocations, exports to MPI, threads that set the device.

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
        self.pinned_allocations = 0
        self.exports = 0
        """DLPack or `__cuda_array_interface__` exports of device buffers handed to MPI."""
        self.thread_devices: dict[int, int | None] = {}
        """Thread id -> the device it made current (`bind` and `use_in_thread`)."""
        self.unset_device_uses = 0
        """Device work (a synchronize, a copy, an export) by a thread that never set the device:
        on a GPU, work on device 0 instead of this rank's. Counted always; once the process has
        bound a device (every real run), it also raises DeviceThreadError, so that an emulated
        suite run (gpu_check.sh --emulated's --under-load step) fails where a GPU would go wrong."""

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
        self.ordinal = ordinal
        self.thread_devices[threading.get_ident()] = ordinal
        return f"emulated:{ordinal}"

    def to_host(self, a: Any) -> np.ndarray:
        host = np.array(a, copy=True)
        self.bytes_to_host += host.nbytes
        return host

    def from_host(self, a: np.ndarray) -> Any:
        self.bytes_from_host += a.nbytes
        return np.array(a, copy=True)

    def _device_work(self) -> None:
        if threading.get_ident() in self.thread_devices:
            return
        self.unset_device_uses += 1
        if self.thread_devices:  # the process bound a device; this thread never made it current
            raise DeviceThreadError(f"device work in thread {threading.current_thread().name!r}, which never made "
                                    f"device {self.ordinal} current (ArrayBackend.use_in_thread): on a GPU it "
                                    f"would run on device 0")

    def synchronize(self) -> None:
        self._device_work()
        self.syncs += 1

    def clock(self) -> EventClock:
        return EventClock(_HostEvent, lambda begin, end: (end.at - begin.at) * 1e3)

    def use_in_thread(self) -> None:
        self.thread_devices[threading.get_ident()] = self.ordinal

    def export(self, a: Any) -> EmulatedDeviceBuffer:
        self._device_work()
        return EmulatedDeviceBuffer(a, self.ordinal or 0, self)

    def pinned_empty(self, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
        self.pinned_allocations += 1
        dtype = np.dtype(dtype)
        return self.empty(int(np.prod(shape, dtype=np.int64)), dtype).reshape(shape)

    def download(self, a: Any, out: np.ndarray) -> None:
        self._device_work()
        self.bytes_to_host += out.nbytes
        np.copyto(out, a)

    def upload(self, dst: Any, host: np.ndarray) -> None:
        self._device_work()
        self.bytes_from_host += host.nbytes
        dst[...] = host


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
        self.ordinal = ordinal
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

    def use_in_thread(self) -> None:
        if self.ordinal is not None:
            self.xp.cuda.Device(self.ordinal).use()

    def pinned_empty(self, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
        import cupyx  # type: ignore[import-not-found]

        return cupyx.empty_pinned(shape, dtype=dtype)

    def download(self, a: Any, out: np.ndarray) -> None:
        a.get(out=out)

    def upload(self, dst: Any, host: np.ndarray) -> None:
        if dst.flags.c_contiguous:
            dst.set(host)
        else:
            dst[...] = self.xp.asarray(host)


INSTALL_HINT = "pip install 'tessera_mpi[gpu-cuda12]' (or [gpu-cuda13] for a CUDA 13 driver)"


def _usable_cupy() -> tuple[Any, str]:
    """Return (cupy module or None, reason it is unusable).

    A GPU count is not enough: CuPy without its CUDA libraries imports and counts the GPUs,
    then fails on the first kernel (NVRTC compiles every kernel). So a tiny kernel runs here
    and its result is checked.
    """
    try:
        import cupy  # type: ignore[import-not-found]
    except ImportError as exc:
        return None, f"CuPy is not installed ({exc}); {INSTALL_HINT}"
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:  # CUDA raises its own error classes when no driver is present
        return None, f"CuPy cannot reach a GPU: {exc}"
    if count == 0:
        return None, "CuPy sees no GPU (check CUDA_VISIBLE_DEVICES)"
    try:
        probe = cupy.ElementwiseKernel("int32 x", "int32 y", "y = 3 * x + 1", "tessera_probe")
        got = [int(v) for v in cupy.asnumpy(probe(cupy.arange(4, dtype=cupy.int32)))]
    except Exception as exc:  # NVRTC missing, a driver too old for the runtime, ...
        return None, (f"CuPy sees {count} GPU(s) but cannot run a kernel ({type(exc).__name__}: {exc}); "
                      f"the CUDA libraries CuPy needs are missing or do not match the driver: {INSTALL_HINT}")
    if got != [1, 4, 7, 10]:
        return None, f"CuPy ran a test kernel on the GPU and got {got} instead of [1, 4, 7, 10]"
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
    backend: ArrayBackend
    if chosen == "numpy":
        backend = NumpyBackend()
    elif chosen == "emulated":
        backend = EmulatedDeviceBackend()
    else:
        cupy, reason = _usable_cupy()
        if cupy is None and chosen == "cupy":
            raise ConfigError(f"{BACKEND_ENV}=cupy but {reason}")
        backend = CupyBackend(cupy) if cupy is not None else NumpyBackend()
        backend.reason = "CuPy ran a test kernel on a GPU" if cupy is not None else f"NumPy, because {reason}"
        return backend
    backend.reason = f"{BACKEND_ENV}={chosen}"
    return backend
