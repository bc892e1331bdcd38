"""The compiled timed loop (comm/native.py, comm/timed_loop.c) in one process (a one-rank job):
built and cached, refused when it would call another MPI library, used by the sweep and
recorded as loop=compiled, and the Python loop when it is forced or unavailable. The 4-rank
comparison of the two loops is in tests/mpi/test_fabric.py."""

from __future__ import annotations

import numpy as np
import pytest
from mpi4py import MPI

from tessera_mpi import runtime
from tessera_mpi.comm import hooks, native
from tessera_mpi.comm.call import Group
from tessera_mpi.comm.transport import MpiTransport
from tessera_mpi.errors import CompiledLoopUnavailable
from tessera_mpi.fabric import p2p
from tessera_mpi.fabric.collectives import SWEPT, TABLE
from tessera_mpi.fabric.sweep import kernel, measure, verify
from tessera_mpi.fabric.timing import time_loop
from tessera_mpi.runtime import native_build
from tessera_mpi.runtime.backend import EmulatedDeviceBackend, EventClock
from tessera_mpi.runtime.transfer import Staging

VARIANTS = [(c, v) for c in SWEPT for v in TABLE[c].variants]


@pytest.fixture
def rt():
    return runtime.start()


@pytest.fixture
def fresh(monkeypatch, tmp_path):
    """The loader's state forgotten and the cache in a fresh folder: the next use builds."""
    monkeypatch.setattr(native, "_loaded", None)
    monkeypatch.setattr(native, "_reason", None)
    monkeypatch.setenv(native_build.CACHE_ENV, str(tmp_path))
    return tmp_path


def test_the_loop_builds_once_into_the_cache_and_calls_mpi4pys_library(fresh):
    lib = native.library()
    assert lib is not None, native.reason()
    assert lib.path.parent == fresh and lib.path.name.startswith("timed_loop-")
    built = lib.path.stat().st_mtime_ns
    native._loaded = None
    again = native.library()
    assert again is not None and again.path == lib.path and lib.path.stat().st_mtime_ns == built


def test_a_loop_linked_to_another_mpi_library_is_refused(fresh, monkeypatch):
    path = native._build()
    # Pretend mpi4py loaded another library: where its MPI_Allreduce lies no longer matches.
    monkeypatch.setattr(native, "_mpi_library_path", lambda: "libc.so.6")
    monkeypatch.setattr(native.ctypes, "CDLL", _with_allreduce_elsewhere(native.ctypes.CDLL))
    with pytest.raises(CompiledLoopUnavailable, match="another MPI library"):
        native._load(path)


def _with_allreduce_elsewhere(cdll):
    class Elsewhere(cdll):
        def __getattr__(self, name):
            if name == "MPI_Allreduce":
                return super().__getattr__("printf")
            return super().__getattr__(name)
    return Elsewhere


def test_without_a_compiler_the_sweep_falls_back_to_python_and_says_why(fresh, monkeypatch, rt):
    monkeypatch.setenv(native.MPICC_ENV, "/bin/false")
    m = measure("all_reduce", MPI.COMM_SELF, rt, size_bytes=64, budget_s=0.001)
    assert native.library() is None and "failed" in native.reason()
    assert m.timing.loop == "python" and m.row()["loop"] == "python" and m.wrong == 0


def test_the_environment_switch_disables_the_compiled_loop(fresh, monkeypatch, rt):
    monkeypatch.setenv(native.DISABLE_ENV, "0")
    assert native.library() is None and native.DISABLE_ENV in native.reason()


@pytest.mark.parametrize("collective, in_place", VARIANTS)
def test_compiled_and_python_loops_agree_on_every_swept_kernel(rt, collective, in_place):
    assert native.library() is not None, native.reason()
    results = {}
    for loop in ("auto", "python"):
        m = measure(collective, MPI.COMM_SELF, rt, size_bytes=4096, in_place=in_place, budget_s=0.001, loop=loop)
        assert m.wrong == 0
        results[loop] = m
    assert results["auto"].timing.loop == "compiled" and results["auto"].row()["loop"] == "compiled"
    assert results["python"].timing.loop == "python"
    # The same buffers after the same calls: the compiled loop moves exactly what Python's does.
    k = kernel(collective, MPI.COMM_SELF, rt, count=50, dtype=np.float32, in_place=in_place)
    assert k.batch is not None
    k.load()
    k.batch(0, np.empty(4))
    compiled = np.array(k.result(), copy=True)
    k.load()
    for _ in range(3):
        k.run()
    assert np.array_equal(compiled, k.result())


def test_both_loops_run_the_iterations_asked_for(rt):
    k = kernel("all_reduce", MPI.COMM_SELF, rt, count=16, dtype=np.float32, in_place=False)
    compiled = time_loop(MPI.COMM_SELF, k.run, iterations=37, warmup=2, batch=k.batch)
    python = time_loop(MPI.COMM_SELF, k.run, iterations=37, warmup=2)
    assert (compiled.iterations, compiled.loop) == (37, "compiled")
    assert (python.iterations, python.loop) == (37, "python")
    assert 0 < compiled.t_min <= compiled.t_max and compiled.p50 <= compiled.p99


def test_a_planned_fault_sends_the_timed_loop_back_to_python(rt):
    class Counting:
        def __init__(self):
            self.calls = 0

        def before(self, name):
            self.calls += 1

        def after(self, result):
            pass

        def plants(self, name):
            return False

        def lost(self, error):
            pass

    k = kernel("all_reduce", MPI.COMM_SELF, rt, count=16, dtype=np.float32, in_place=False)
    planted = Counting()
    hooks.active.append(planted)
    try:
        timing = time_loop(MPI.COMM_SELF, k.run, iterations=9, warmup=1, batch=k.batch)
    finally:
        hooks.active.remove(planted)
    assert timing.loop == "python" and planted.calls == 10, "every call meets the fault hooks"


def test_a_failing_call_inside_the_compiled_loop_raises_through_the_call_path(rt):
    group = Group.of(MPI.COMM_SELF)
    send, recv = np.ones(4, np.float32), np.empty(4, np.float32)
    _, call = group.bind("bad", "sendrecv", send, recv, dest=0, source=0)
    # A peer outside the communicator: MPI returns an error code from inside the C loop.
    batch = group.bind_batch(call, "sendrecv", send, recv, dest=5, source=0)
    assert batch is not None
    with pytest.raises(MPI.Exception):
        batch(0, np.empty(3))
    assert not call.active


def test_device_buffers_are_timed_by_events_around_the_batch(rt):
    backend = EmulatedDeviceBackend()
    group = Group(comm=MPI.COMM_SELF, transport=MpiTransport(MPI.COMM_SELF), staging=Staging(backend, direct=False),
                  members=(rt.rank,))
    k = kernel("all_reduce", group, rt, count=8, dtype=np.float32, in_place=False)
    assert k.batch is None, "staged device buffers have no compiled loop"
    assert verify(k, group, np) == (0,)

    class Counted(EventClock):
        starts = 0

        def start(self):
            Counted.starts += 1
            super().start()

    def clock():
        real = backend.clock()
        counted = Counted.__new__(Counted)
        counted.__dict__.update(real.__dict__)
        return counted

    batch = time_loop(MPI.COMM_SELF, k.run, iterations=20, warmup=1, clock=clock())
    assert Counted.starts == 1 and batch.clock == "events" and batch.iterations == 20
    assert batch.p50 == batch.p99 == pytest.approx(batch.t_max), "batch mode: percentiles of per-rank means"
    assert batch.host_t_max is not None and batch.loop == "python"
    Counted.starts = 0
    each = time_loop(MPI.COMM_SELF, k.run, iterations=20, warmup=1, clock=clock(), percentiles=True)
    assert Counted.starts == 20 and each.iterations == 20


def test_an_unknown_loop_is_refused(rt):
    with pytest.raises(ValueError, match="loop must be"):
        measure("all_reduce", MPI.COMM_SELF, rt, size_bytes=64, loop="numba")  # type: ignore[arg-type]


def test_a_compiled_exchange_window_delivers_and_is_recorded(rt):
    buffers = p2p.Buffers.make(rt, 0, 300, 3)
    seconds, wrong = p2p.exchange_window(MPI.COMM_SELF, rt, buffers, 0)
    assert seconds > 0 and wrong == 0 and buffers.loop == "compiled"
    for r in buffers.recv:
        r[...] = 0
    seconds, wrong = p2p.exchange_window(MPI.COMM_SELF, rt, buffers, 0)
    assert wrong == 0, "every message of the window arrived"


def test_host_benchmark_buffers_start_on_a_page(rt):
    k = kernel("all_gather", MPI.COMM_SELF, rt, count=1000, dtype=np.float32, in_place=False)
    assert k.result().ctypes.data % 4096 == 0
    buffers = p2p.Buffers.make(rt, 0, 1000, 2)
    assert all(a.ctypes.data % 4096 == 0 for a in (buffers.send, *buffers.recv))
    assert rt.backend.empty(3, np.float64).ctypes.data % 4096 == 0
