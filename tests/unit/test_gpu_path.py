"""The GPU path without a GPU: the CuPy probe against fake CuPy modules, pinned staging buffers
reused, device buffers reaching MPI only as CuPy arrays do, the CUDA-aware refusal, the device
set in the load's thread, the exact sum's host round trips, and user data through `to_host`.

Single process (a one-rank job); the emulated backend counts what device code does.
"""

from __future__ import annotations

import sys
import threading
import types
from typing import Any

import numpy as np
import pytest
from mpi4py import MPI

from tessera_mpi import dist, runtime
from tessera_mpi.comm.call import Group
from tessera_mpi.comm.transport import MpiTransport
from tessera_mpi.errors import ConfigError
from tessera_mpi.fabric import p2p
from tessera_mpi.fabric.load import BackgroundLoad
from tessera_mpi.fabric.sweep import kernel, verify
from tessera_mpi.reduction import exact_sum as es
from tessera_mpi.reduction import gpu_kernel
from tessera_mpi.runtime.backend import CupyBackend, EmulatedDeviceBackend, select_backend
from tessera_mpi.runtime.cuda_aware import detect_cuda_aware
from tessera_mpi.runtime.transfer import Staging


@pytest.fixture
def rt():
    return runtime.start()


# --- the CuPy probe (item 2) -------------------------------------------------------------------


def fake_cupy(kernel: Any, devices: int = 1) -> types.ModuleType:
    """A CuPy module as installed: `kernel(x)` is what its ElementwiseKernel computes."""
    cupy = types.ModuleType("cupy")
    cupy.int32 = np.int32
    cupy.arange = np.arange
    cupy.asnumpy = np.asarray
    cupy.cuda = types.SimpleNamespace(runtime=types.SimpleNamespace(getDeviceCount=lambda: devices))

    def elementwise(*args: Any) -> Any:
        return kernel

    cupy.ElementwiseKernel = elementwise
    return cupy


def no_nvrtc(x: Any) -> Any:
    raise RuntimeError("CuPy failed to load libnvrtc.so.12: OSError: libnvrtc.so.12: cannot open shared object")


def test_a_cupy_that_counts_gpus_but_cannot_compile_falls_back_with_the_reason(monkeypatch):
    monkeypatch.setitem(sys.modules, "cupy", fake_cupy(no_nvrtc))
    backend = select_backend("auto")
    assert backend.name == "numpy"
    assert "cannot run a kernel" in backend.reason and "libnvrtc" in backend.reason
    assert "gpu-cuda12" in backend.reason
    with pytest.raises(ConfigError, match="TESSERA_BACKEND=cupy but CuPy sees 1 GPU.*cannot run a kernel"):
        select_backend("cupy")


def test_the_probe_checks_the_kernels_answer(monkeypatch):
    monkeypatch.setitem(sys.modules, "cupy", fake_cupy(lambda x: x * 0))
    backend = select_backend("auto")
    assert backend.name == "numpy" and "instead of [1, 4, 7, 10]" in backend.reason
    monkeypatch.setitem(sys.modules, "cupy", fake_cupy(lambda x: 3 * x + 1))
    backend = select_backend("auto")
    assert isinstance(backend, CupyBackend) and backend.reason == "CuPy ran a test kernel on a GPU"
    monkeypatch.setitem(sys.modules, "cupy", fake_cupy(lambda x: 3 * x + 1, devices=0))
    assert "sees no GPU" in select_backend("auto").reason


# --- pinned staging buffers (item 3) ----------------------------------------------------------


def staged_group(rt: Any, backend: EmulatedDeviceBackend, *, direct: bool = False,
                 transport: Any = None) -> Group:
    return Group(comm=MPI.COMM_SELF, transport=transport or MpiTransport(MPI.COMM_SELF, device_buffers=direct),
                 staging=Staging(backend, direct=direct), members=(rt.rank,))


def test_staging_allocates_one_pinned_buffer_per_device_buffer_and_reuses_it(rt):
    backend = EmulatedDeviceBackend()
    group = staged_group(rt, backend)
    send, recv = np.arange(256, dtype=np.float32), np.zeros(256, dtype=np.float32)
    run, _ = group.bind("all_reduce", "all_reduce", send, recv, result=recv, op="sum")
    for _ in range(50):
        run()
    assert np.array_equal(recv, send)
    assert backend.pinned_allocations == 2 and group.staging.mirrors_made == 2, "a timed loop allocated"
    assert backend.bytes_to_host == 50 * send.nbytes and backend.bytes_from_host == 50 * recv.nbytes


def test_a_swept_kernel_and_a_p2p_window_allocate_nothing_per_call(rt):
    backend = EmulatedDeviceBackend()
    group = staged_group(rt, backend)
    k = kernel("all_gather", group, rt, count=8, dtype=np.float32, in_place=False)
    assert verify(k, group, np) == (0,)
    made = backend.pinned_allocations
    for _ in range(20):
        k.run()
    assert backend.pinned_allocations == made == 2
    buffers = p2p.Buffers(send=np.ones(16, np.float32), recv=[np.zeros(16, np.float32) for _ in range(4)], count=16)
    for _ in range(5):
        requests = []
        with group.call("p2p exchange") as call:
            requests += [call.start_recv(r, source=0, tag=5) for r in buffers.recv]
            requests += [call.start_send(buffers.send, dest=0, tag=5) for _ in buffers.recv]
            call.wait_all(requests)
    assert all(np.array_equal(r, buffers.send) for r in buffers.recv)
    assert backend.pinned_allocations == made + 5, "one mirror per message buffer, not per message"


def test_mirrors_follow_a_buffers_shape_and_are_capped(rt, monkeypatch):
    from tessera_mpi.runtime import transfer

    backend = EmulatedDeviceBackend()
    staging = Staging(backend, direct=False)
    a = np.zeros(64, dtype=np.float32)
    assert staging.mirror(a) is staging.mirror(a)
    assert staging.mirror(a.reshape(8, 8)).shape == (8, 8) and staging.mirrors_made == 2
    monkeypatch.setattr(transfer, "MIRROR_BYTES", 3 * 256)
    others = [np.zeros(64, dtype=np.float32) for _ in range(5)]
    for b in others:
        staging.mirror(b)
    assert staging._mirror_bytes <= 3 * 256 and len(staging._mirrors) == 3


# --- device buffers to a CUDA-aware MPI (item 4) ----------------------------------------------


class Recording(MpiTransport):
    """MPI on COMM_SELF, recording every data buffer it is handed."""

    def __init__(self, comm: MPI.Intracomm) -> None:
        super().__init__(comm, device_buffers=True)
        self.seen: list[Any] = []

    def _record(self, *buffers: Any) -> None:
        self.seen += [b for b in buffers if b is not None]

    def all_reduce(self, send, recv, **kw):
        self._record(send, recv)
        super().all_reduce(send, recv, **kw)

    def all_gather(self, send, recv, **kw):
        self._record(send, recv)
        super().all_gather(send, recv, **kw)

    def broadcast(self, buffer, **kw):
        self._record(buffer)
        super().broadcast(buffer, **kw)

    def sendrecv(self, send, recv, **kw):
        self._record(send, recv)
        super().sendrecv(send, recv, **kw)

    def start_send(self, buffer, **kw):
        self._record(buffer)
        return super().start_send(buffer, **kw)

    def start_recv(self, buffer, **kw):
        self._record(buffer)
        return super().start_recv(buffer, **kw)


def test_the_direct_path_hands_mpi_device_buffers_only_as_cupy_arrays_reach_it(rt):
    backend = EmulatedDeviceBackend()
    transport = Recording(MPI.COMM_SELF)
    group = staged_group(rt, backend, direct=True, transport=transport)
    x, y = np.arange(8, dtype=np.float64), np.zeros(8)
    with group.call("all_reduce") as call:
        call.all_reduce(x, y)
        call.all_reduce(None, y)
        call.all_gather(x, y)
        call.broadcast(y, root=0)
        call.sendrecv(x, y, dest=0, source=0)
        z = np.zeros(8)
        call.wait_all([call.start_recv(z, source=0, tag=3), call.start_send(x, dest=0, tag=3)])
    assert np.array_equal(y, x) and np.array_equal(z, x)
    assert len(transport.seen) == 10 and backend.exports >= 10, "MPI read the buffers some other way"
    for buffer in transport.seen:
        with pytest.raises(TypeError):
            memoryview(buffer)  # no buffer protocol: as a CuPy array, a host-only path would fail
        assert buffer.__dlpack_device__()[0] == 2  # kDLCUDA
    assert backend.pinned_allocations == 0 and backend.bytes_to_host == 0 and backend.syncs == 10


def test_every_swept_kernel_runs_on_the_direct_path(rt):
    from tessera_mpi.fabric.collectives import SWEPT, TABLE

    for collective in SWEPT:
        for in_place in TABLE[collective].variants:
            backend = EmulatedDeviceBackend()
            group = staged_group(rt, backend, direct=True)
            k = kernel(collective, group, rt, count=5, dtype=np.float32, in_place=in_place)
            assert k.batch is None, "device buffers must not reach the compiled host loop"
            assert verify(k, group, np) == (0,), (collective, in_place)
            assert backend.exports > 0 and backend.pinned_allocations == 0


def test_cuda_aware_is_refused_where_the_library_says_no(monkeypatch):
    from tessera_mpi.runtime import cuda_aware

    monkeypatch.setenv("TESSERA_CUDA_AWARE", "1")
    # The wheel's Open MPI is built without CUDA and says so.
    with pytest.raises(ConfigError, match="reports no CUDA support.*TESSERA_CUDA_AWARE_FORCE=1"):
        detect_cuda_aware(MPI.get_vendor()[0])
    monkeypatch.setenv("TESSERA_CUDA_AWARE_FORCE", "1")
    assert detect_cuda_aware(MPI.get_vendor()[0])[0] is True
    monkeypatch.delenv("TESSERA_CUDA_AWARE_FORCE")
    monkeypatch.setattr(cuda_aware, "_open_mpi_query", lambda: None)
    assert detect_cuda_aware("Open MPI") == (True, "TESSERA_CUDA_AWARE=1"), "no answer: the user's word holds"
    monkeypatch.setattr(cuda_aware, "_open_mpi_query", lambda: True)
    assert detect_cuda_aware("Open MPI") == (True, "TESSERA_CUDA_AWARE=1")
    monkeypatch.setenv("TESSERA_CUDA_AWARE", "0")
    assert detect_cuda_aware("Open MPI") == (False, "TESSERA_CUDA_AWARE=0")


# --- the load thread sets the device (item 5) -------------------------------------------------


def load_on(backend: EmulatedDeviceBackend) -> BackgroundLoad:
    """A background load whose buffers and staging are `backend`'s, started."""
    load = BackgroundLoad(dist.Mesh(axes=["dp"]), message_bytes=64)
    load._backend = backend
    good = load.group
    load.group = Group(comm=good.comm, transport=good.transport, staging=Staging(backend, direct=False),
                       members=good.members, tracked=False)
    load.start()
    return load


def run_load(rt: Any, backend: EmulatedDeviceBackend) -> None:
    load = load_on(backend)
    while backend.syncs < 20:
        threading.Event().wait(0.001)
    load.stop()
    load.close()


def test_the_background_load_sets_the_ranks_device_in_its_thread(rt):
    backend = EmulatedDeviceBackend()
    backend.bind(3)
    run_load(rt, backend)
    load_threads = [t for t in backend.thread_devices if t != threading.get_ident()]
    assert load_threads and all(backend.thread_devices[t] == 3 for t in load_threads)
    assert backend.unset_device_uses == 0


def test_without_setting_it_the_emulated_backend_notices(rt, monkeypatch):
    """The load's thread fails (so an emulated suite run with --under-load fails too)."""
    from tessera_mpi.errors import LoadError

    backend = EmulatedDeviceBackend()
    backend.bind(3)
    monkeypatch.setattr(backend, "use_in_thread", lambda: None)
    load = load_on(backend)
    with pytest.raises(LoadError, match="never made device 3 current"):
        load.stop()
    load.close()
    assert backend.unset_device_uses == 1 and backend.syncs == 0


# --- host round trips in the exact sum on device buffers (item 6) -----------------------------


class DeviceArray(np.ndarray):
    """A NumPy array that counts what would be a host round trip for a CuPy array: reading a
    value on the host (bool, int, float, item, get) or a shape that depends on the data."""

    round_trips = 0

    def __array_wrap__(self, arr, context=None, return_scalar=False):
        return np.asarray(arr).view(DeviceArray)  # device results stay device arrays, even 0-d

    def _trip(self):
        DeviceArray.round_trips += 1

    def __bool__(self):
        self._trip()
        return bool(np.asarray(self))

    def __int__(self):
        self._trip()
        return int(np.asarray(self))

    def __float__(self):
        self._trip()
        return float(np.asarray(self))

    def __index__(self):
        self._trip()
        return np.asarray(self).__index__()

    def item(self, *args):
        self._trip()
        return np.asarray(self).item(*args)

    def get(self):
        self._trip()
        return np.array(self)


def _device(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.view(DeviceArray)
    if isinstance(value, np.generic):
        return np.asarray(value).view(DeviceArray)
    if isinstance(value, tuple):
        return tuple(_device(v) for v in value)
    return value


class FakeCupy(types.ModuleType):
    """NumPy dressed as CuPy: every function returns DeviceArray; data-dependent shapes count."""

    SHAPE_FROM_DATA = {"flatnonzero", "nonzero", "argwhere", "unique", "extract", "compress"}

    def __init__(self) -> None:
        super().__init__("cupy")

    def __getattr__(self, name: str) -> Any:
        thing = getattr(np, name)
        if not callable(thing) or isinstance(thing, type):
            return thing

        def call(*args: Any, **kwargs: Any) -> Any:
            if name in self.SHAPE_FROM_DATA:
                DeviceArray.round_trips += 1
            return _device(thing(*args, **kwargs))

        return call


def fake_certified_sum(cupy: Any, values: Any, fmt: Any) -> Any:
    """The kernel's contract (gpu_kernel.certified_sum) without the kernel: certify every
    column whose exact-sum reference equals its float64 sum, fail the others; one round trip."""
    host = np.asarray(values)
    reference = es.exact_sum_numpy(np, host)
    with np.errstate(all="ignore"):
        quick = host.astype(np.float64).sum(axis=0).astype(fmt.compute)
    failed = ~((quick == reference) & np.isfinite(quick)) | np.isnan(host).any(axis=0)
    failed |= np.signbit(quick) != np.signbit(reference)
    failed |= np.abs(host).max(axis=0) > 1e30  # wide-ranging columns: leave them to the fallback
    out = np.where(failed, np.float32(7.0), reference).astype(fmt.compute)
    failures = np.array([failed.sum()], dtype=np.uint64).view(DeviceArray)
    return out.view(DeviceArray), failed.view(DeviceArray), int(failures.get()[0])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_device_path_makes_one_host_round_trip_per_call(monkeypatch, dtype):
    monkeypatch.setattr(gpu_kernel, "certified_sum", fake_certified_sum)
    xp = FakeCupy()
    rng = np.random.default_rng(5)
    easy = rng.standard_normal((8, 3 * es.CHUNK)).astype(dtype)
    hard = easy.copy()
    hard[:, 7] = [1e38, -1e38, 1e-30, 3.0, -3.0, 1e-38, 2.0, -2.0]
    hard[:, 9] = np.nan
    hard[:, 10] = [np.inf] + [1.0] * 7
    hard[:, 11] = -0.0
    hard[:, 40000] = [3e38, 3e38, -3e38, 1.0, 0.0, 0.0, 0.0, 0.0]  # overflows on the way in float32
    fallback = []
    exact_columns_device = es._exact_columns_device
    monkeypatch.setattr(es, "_exact_columns_device", lambda xp, flat, fmt: fallback.append(flat.shape[1]) or
                        exact_columns_device(xp, flat, fmt))
    for data in (easy, hard):
        DeviceArray.round_trips = 0
        got = np.asarray(es.exact_sum(xp, data.view(DeviceArray)))
        assert DeviceArray.round_trips == 1, f"{DeviceArray.round_trips} host round trips in one call"
        want = es.exact_sum_numpy(np, data)
        assert got.tobytes() == want.tobytes()
    assert fallback and fallback[-1] >= 5, "the hard columns did not reach the device fallback"


def test_the_old_device_path_would_have_counted_many(monkeypatch):
    """The counter sees the round trips the issue names (so the test above can fail)."""
    xp = FakeCupy()
    data = np.random.default_rng(1).standard_normal((8, 2 * es.CHUNK)).astype(np.float32)
    data[:, 3] = [1e30, -1e30, 1e-30, 0, 0, 0, 0, 0]
    DeviceArray.round_trips = 0
    es._exact_columns(xp, data.view(DeviceArray), es.FloatFormat.of(np.float32))
    assert DeviceArray.round_trips >= 4


def test_compact_gives_the_true_indices_in_order():
    mask = np.array([False, True, True, False, False, True])
    assert es._compact(np, mask, 3).tolist() == [1, 2, 5]
    assert es._compact(np, np.zeros(4, bool), 0).tolist() == []


# --- user data through to_host (item 7) -------------------------------------------------------


class Refuses:
    """A device array as CuPy's: NumPy may not convert it implicitly."""

    def __init__(self, host: np.ndarray) -> None:
        self.host = host

    def __array__(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError("Implicit conversion to a NumPy array is not allowed")


class ExplicitBackend(EmulatedDeviceBackend):
    def to_host(self, a: Any) -> np.ndarray:
        return super().to_host(a.host if isinstance(a, Refuses) else a)


def test_user_data_goes_through_the_backends_to_host(rt, monkeypatch):
    from tessera_mpi.suite.context import CheckContext
    from tessera_mpi.testing.pytest_plugin import Recorder

    backend = ExplicitBackend()
    recorder = Recorder(to_host=backend.to_host)
    recorder.save("losses", Refuses(np.arange(3.0)))
    assert recorder.datasets["losses"].data.tolist() == [0.0, 1.0, 2.0]
    fake_rt = types.SimpleNamespace(backend=backend, rank=0)
    monkeypatch.setattr("tessera_mpi.suite.context.runtime.current", lambda: fake_rt)
    ctx = CheckContext(mesh=None, options=None)  # type: ignore[arg-type]
    ctx.save("table", Refuses(np.ones(4)))
    assert ctx.datasets["table"].data.tolist() == [1.0] * 4
    assert backend.bytes_to_host == 24 + 32


# --- CuPy's side of the backend, against a fake (items 3 and 5) -------------------------------


class FakeDeviceArray:
    """What the CuPy backend calls on a CuPy array."""

    def __init__(self, n: int) -> None:
        self.store = np.zeros(n)
        self.flags = types.SimpleNamespace(c_contiguous=True)

    def get(self, out: np.ndarray) -> np.ndarray:
        np.copyto(out, self.store)
        return out

    def set(self, host: np.ndarray) -> None:
        np.copyto(self.store, host)


def test_the_cupy_backend_uses_pinned_memory_and_sets_the_device_per_thread(monkeypatch):
    used: list[tuple[int, int]] = []

    class Device:
        def __init__(self, ordinal: int) -> None:
            self.ordinal = ordinal

        def use(self) -> None:
            used.append((threading.get_ident(), self.ordinal))

    pinned: list[tuple] = []
    cupyx = types.ModuleType("cupyx")
    cupyx.empty_pinned = lambda shape, dtype: pinned.append(shape) or np.empty(shape, dtype)
    monkeypatch.setitem(sys.modules, "cupyx", cupyx)
    backend = CupyBackend(types.SimpleNamespace(cuda=types.SimpleNamespace(Device=Device)))
    backend.ordinal = 2
    staging = Staging(backend, direct=False)
    a = FakeDeviceArray(4)
    a.store[:] = [1, 2, 3, 4]
    a.nbytes, a.dtype, a.shape = 32, np.dtype(np.float64), (4,)
    a.data = types.SimpleNamespace(ptr=0xD000)
    for _ in range(3):  # the staged steps of a call, without the stream synchronization
        mirror = staging.mirror(a)
        backend.download(a, mirror)
        mirror *= 2
        backend.upload(a, mirror)
    assert pinned == [(4,)] and a.store.tolist() == [8, 16, 24, 32]
    thread = threading.Thread(target=backend.use_in_thread)
    thread.start()
    thread.join()
    assert used and used[0][1] == 2 and used[0][0] != threading.get_ident()


# --- what is judged where ranks share a GPU (item 1) ------------------------------------------


def test_ranks_sharing_one_h200_get_no_bandwidth_expectation_nor_timing_judgement(monkeypatch):
    from tessera_mpi.fabric.expectations import expectation
    from tessera_mpi.runtime.device import Placement
    from tessera_mpi.suite.context import CheckContext

    h200 = "cuda:0 NVIDIA H200 0000:1b:00.0"
    four = [Placement(host="n1", local_rank=i, local_size=4, device=h200) for i in range(4)]
    none, why = expectation(four)
    assert none is None and why.startswith("ranks share a GPU (cuda:0 NVIDIA H200")
    cpus = [Placement(host="n1", local_rank=i, local_size=4, device="cpu") for i in range(4)]
    assert "no expectation for 'cpu'" in expectation(cpus)[1], "CPU ranks share no GPU"
    options = types.SimpleNamespace(self_test=False)
    for placements, judged in ((four, False), (cpus, True), (four[:1], True)):
        fake_rt = types.SimpleNamespace(placements=tuple(placements), oversubscribed=False, rank=0)
        monkeypatch.setattr("tessera_mpi.suite.context.runtime.current", lambda: fake_rt)
        ctx = CheckContext(mesh=None, options=options)  # type: ignore[arg-type]
        assert ctx.judge_timing is judged
        assert ("ranks share a GPU (cuda:0 NVIDIA H200" in ctx.timing_not_judged) is not judged


def test_a_transport_of_device_arrays_gets_them_unexported_and_unsynchronized():
    """NCCL's staging (Group.of(transport="nccl")): the device array itself, no MPI export, no
    synchronization; MPI's direct staging exports it (found when the two branches met: the
    emulated NCCL was handed an MPI export and had no .size)."""
    from tessera_mpi.runtime.backend import EmulatedDeviceBuffer
    backend = EmulatedDeviceBackend()
    a = np.arange(8, dtype=np.float32)
    nccl = Staging(backend, direct=True, stream_ordered=True, export=False)
    assert nccl.send_buffer(a) is a and nccl.recv_buffer(a) is a
    assert backend.exports == 0 and backend.syncs == 0
    mpi = Staging(backend, direct=True)
    assert isinstance(mpi.send_buffer(a), EmulatedDeviceBuffer) and backend.syncs == 1


# --- the GPU check's launcher flags (scripts/mpi_flags.sh, item 8) ----------------------------


def launcher_flags(tmp_path: Any, version: str, **env: str) -> tuple[list[str], str]:
    """The flags gpu_check.sh would give a launcher whose --version prints `version`."""
    import os
    import subprocess
    from pathlib import Path

    fake = tmp_path / "mpirun"
    fake.write_text(f"#!/bin/sh\ncat <<'EOF'\n{version}\nEOF\n")
    fake.chmod(0o755)
    script = Path(__file__).parents[2] / "scripts" / "mpi_flags.sh"
    environ = {k: v for k, v in os.environ.items() if k != "MPIRUN_FLAGS"}
    run = subprocess.run(["bash", "-c", f'. "{script}"; mpi_flags "{fake}" TESSERA_BACKEND PYTHONPATH'],
                         capture_output=True, text=True, timeout=60, env=dict(environ, **env))
    assert run.returncode == 0, run.stderr
    return run.stdout.split(), run.stderr


def test_the_gpu_check_speaks_each_launchers_dialect(tmp_path):
    open_mpi = "mpirun (Open MPI) 5.0.11\n\nReport bugs to https://www.open-mpi.org/community/help/"
    assert launcher_flags(tmp_path, open_mpi)[0] == ["--oversubscribe", "-x", "TESSERA_BACKEND", "-x", "PYTHONPATH"]
    # MPICH's and Intel MPI's Hydra reject --oversubscribe and -x: they pass the environment anyway.
    hydra = "HYDRA build details:\n    Version:                                 4.2.0"
    assert launcher_flags(tmp_path, hydra) == ([], "")
    assert launcher_flags(tmp_path, "Intel(R) MPI Library for Linux* OS, Version 2021.13")[0] == []
    flags, warning = launcher_flags(tmp_path, "srun-wrapper 1.0")
    assert flags == [] and "unknown launcher" in warning and "MPIRUN_FLAGS" in warning
    assert launcher_flags(tmp_path, open_mpi, MPIRUN_FLAGS="--bind-to none")[0] == ["--bind-to", "none"]


def test_the_gpu_check_without_a_gpu_fails_at_once_naming_why(tmp_path):
    """Not the emulated mode: CuPy absent (as here) or counting no GPU ends the check before any
    launch, with the reason in the verdict, never a run on zero GPUs."""
    import os
    import subprocess
    from pathlib import Path

    script = Path(__file__).parents[2] / "scripts" / "gpu_check.sh"
    zero = tmp_path / "python-zero"
    zero.write_text("#!/bin/sh\necho 0\n")
    zero.chmod(0o755)
    for python, why in ((sys.executable, "No module named 'cupy'"), (str(zero), "counted '0'")):
        out = tmp_path / ("out-" + Path(python).name)
        run = subprocess.run(["bash", str(script), "2", str(out)], capture_output=True, text=True, timeout=60,
                             env=dict(os.environ, PYTHON=python))
        verdict = (out / "verdict.txt").read_text()
        assert run.returncode == 1 and verdict.startswith("gpu_check: FAILED: CuPy sees no GPU here") and why in verdict
        assert not (out / "gpu-check.h5").exists()
