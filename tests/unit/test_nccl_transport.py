"""NcclTransport against a fake `cupy.cuda.nccl` that records every call: the bootstrap's
order, group calls, the stream of every call, destroy and abort, errors, and no host
synchronization per timed iteration. Then the emulation over MPI on one rank."""

from __future__ import annotations

import ctypes
from typing import Any

import numpy as np
import pytest
from mpi4py import MPI

from tessera_mpi.comm import nccl as nccl_mod
from tessera_mpi.comm.call import Group
from tessera_mpi.comm.nccl import Device, EmulatedNccl, NcclTransport, host_device, unavailable
from tessera_mpi.errors import ConfigError, DeviceLostError
from tessera_mpi.fabric.timing import time_loop
from tessera_mpi.runtime import context
from tessera_mpi.runtime.backend import EmulatedDeviceBackend, EventClock, NumpyBackend
from tessera_mpi.runtime.tracker import tracker
from tessera_mpi.runtime.transfer import Staging

STREAM = 0xABC


class FakeError(RuntimeError):
    pass


class FakeComm:
    """The MPI side of the bootstrap: records the broadcast, hands every rank the root's id."""

    def __init__(self, log: list, rank: int, size: int) -> None:
        self.log, self.rank, self.size = log, rank, size

    def bcast(self, value: Any, root: int = 0) -> Any:
        self.log.append(("mpi.bcast", value if self.rank == root else None, root))
        return ("uid",) * 4


class FakeCommunicator:
    def __init__(self, log: list, ndev: int, uid: Any, rank: int, *, fail: str = "") -> None:
        self.log, self.fail = log, fail
        log.append(("NcclCommunicator", ndev, uid, rank))

    def __getattr__(self, name: str) -> Any:
        def record(*args: Any) -> None:
            self.log.append((name, *args))
            if name == self.fail or (name == "check_async_error" and self.fail):
                raise FakeError(f"{name}: unhandled cuda error")
        return record


class FakeNccl:
    """`cupy.cuda.nccl` as far as the transport uses it."""

    NcclError = FakeError
    NCCL_SUM, NCCL_MAX = 100, 102
    NCCL_FLOAT32, NCCL_FLOAT64, NCCL_INT32, NCCL_UINT8 = 7, 8, 2, 1

    def __init__(self, *, fail: str = "") -> None:
        self.log: list = []
        self.fail = fail

    def get_unique_id(self) -> tuple:
        self.log.append(("get_unique_id",))
        return ("uid",) * 4

    def groupStart(self) -> None:  # noqa: N802
        self.log.append(("groupStart",))

    def groupEnd(self) -> None:  # noqa: N802
        self.log.append(("groupEnd",))

    def NcclCommunicator(self, ndev: int, uid: Any, rank: int) -> FakeCommunicator:  # noqa: N802
        return FakeCommunicator(self.log, ndev, uid, rank, fail=self.fail)


class Counted:
    def __init__(self) -> None:
        self.syncs = 0
        self.streams = 0


def make(rank: int = 1, size: int = 4, *, fail: str = "") -> tuple[NcclTransport, FakeNccl, Counted]:
    fake, counted = FakeNccl(fail=fail), Counted()

    def stream() -> int:
        counted.streams += 1
        return STREAM

    def synchronize() -> None:
        counted.syncs += 1
        fake.log.append(("synchronize",))
        if fail == "synchronize":
            raise FakeError("synchronize: an NCCL kernel failed")

    device = Device(pointer=lambda a: int(a.ctypes.data), stream=stream, synchronize=synchronize,
                    copy=lambda dst, src: dst.__setitem__(Ellipsis, src))
    transport = NcclTransport(FakeComm(fake.log, rank, size), fake, device)  # type: ignore[arg-type]
    return transport, fake, counted


def names(log: list) -> list[str]:
    return [entry[0] for entry in log]


@pytest.mark.parametrize("rank", [0, 2])
def test_the_communicator_is_bootstrapped_over_mpi_on_the_first_call(rank):
    transport, fake, _ = make(rank=rank)
    assert fake.log == []  # lazily: making the transport communicates nothing
    x = np.ones(8, np.float32)
    transport.all_reduce(None, x)
    transport.all_reduce(None, x)
    expected_start = (["get_unique_id"] if rank == 0 else []) + ["mpi.bcast", "NcclCommunicator"]
    assert names(fake.log) == expected_start + ["allReduce", "allReduce"]
    assert fake.log[len(expected_start) - 1] == ("NcclCommunicator", 4, ("uid",) * 4, rank)
    bcast = fake.log[len(expected_start) - 2]
    assert bcast[1] == (("uid",) * 4 if rank == 0 else None)  # only the root's id travels


def test_every_call_is_on_the_current_stream_with_pointers_and_counts():
    transport, fake, _ = make(rank=1, size=4)
    send, recv = np.arange(8, dtype=np.float32), np.zeros(8, np.float32)
    transport.all_reduce(send, recv, op="max")
    transport.all_reduce(None, recv)
    gathered = np.zeros(32, np.float32)
    transport.all_gather(send, gathered)
    transport.all_gather(None, gathered)
    transport.broadcast(recv, root=3)
    calls = [e for e in fake.log if e[0] in ("allReduce", "allGather", "broadcast")]
    p, r, g = send.ctypes.data, recv.ctypes.data, gathered.ctypes.data
    assert calls == [
        ("allReduce", p, r, 8, 7, 102, STREAM),
        ("allReduce", r, r, 8, 7, 100, STREAM),  # in place: the same pointer twice, as NCCL wants
        ("allGather", p, g, 8, 7, STREAM),
        ("allGather", g + 1 * 8 * 4, g, 8, 7, STREAM),  # in place: this rank's block of recv
        ("broadcast", r, r, 8, 7, 3, STREAM),
    ]


def test_all_to_all_and_sendrecv_are_grouped_sends_and_receives():
    transport, fake, _ = make(rank=1, size=3)
    send, recv = np.arange(6, dtype=np.float64), np.zeros(6, np.float64)
    transport.all_to_all(send, recv)
    body = fake.log[fake.log.index(("groupStart",)):]
    assert names(body) == ["groupStart"] + ["send", "recv"] * 3 + ["groupEnd"]
    s, r = send.ctypes.data, recv.ctypes.data
    assert body[1:7] == [("send", s, 2, 8, 0, STREAM), ("recv", r, 2, 8, 0, STREAM),
                         ("send", s + 16, 2, 8, 1, STREAM), ("recv", r + 16, 2, 8, 1, STREAM),
                         ("send", s + 32, 2, 8, 2, STREAM), ("recv", r + 32, 2, 8, 2, STREAM)]
    fake.log.clear()
    transport.sendrecv(send, recv, dest=2, source=0)
    assert fake.log == [("groupStart",), ("send", s, 6, 8, 2, STREAM), ("recv", r, 6, 8, 0, STREAM),
                        ("groupEnd",)]


def test_in_place_reduce_scatter_moves_the_block_to_the_front():
    transport, fake, _ = make(rank=2, size=4)
    buffer = np.arange(16, dtype=np.float32)
    transport.reduce_scatter(None, buffer)
    b = buffer.ctypes.data
    assert fake.log[-1] == ("reduceScatter", b, b + 2 * 4 * 4, 4, 7, 100, STREAM)
    # The fake moved nothing, so the block at the offset is the input's: now first, per the contract.
    assert buffer[:4].tolist() == [8, 9, 10, 11]


def test_started_sends_and_receives_go_out_as_one_group_at_wait_all():
    transport, fake, counted = make(rank=0, size=2)
    a, b = np.zeros(4, np.float32), np.zeros(4, np.float32)
    requests = [transport.start_recv(a, source=1), transport.start_send(b, dest=1)]
    assert "groupStart" not in names(fake.log)
    transport.wait_all(requests)
    assert names(fake.log)[-5:] == ["groupStart", "recv", "send", "groupEnd", "synchronize"]
    assert counted.syncs == 1  # a window's clock covers delivery


def test_destroy_at_close_abort_on_rebuild_and_a_new_communicator_after():
    transport, fake, _ = make(rank=0, size=2)
    x = np.ones(2, np.float32)
    transport.all_reduce(None, x)
    transport.close()
    assert names(fake.log)[-1] == "destroy"
    transport.all_reduce(None, x)
    assert names(fake.log).count("NcclCommunicator") == 2
    nccl_mod.destroy_all(abort=True)  # what a rebuild after a failure does
    assert names(fake.log)[-1] == "abort"
    transport.close()
    assert names(fake.log)[-1] == "abort"  # nothing left to destroy


def test_an_nccl_error_is_a_lost_device_with_the_asynchronous_error():
    transport, fake, _ = make(rank=0, size=2, fail="allReduce")
    x = np.ones(2, np.float32)
    with pytest.raises(FakeError) as caught:
        transport.all_reduce(None, x)
    lost = transport.lost(caught.value, "all_reduce", None)
    assert isinstance(lost, DeviceLostError)
    assert "all_reduce failed over nccl: allReduce: unhandled cuda error" in str(lost)
    assert "asynchronous error: check_async_error" in str(lost)
    assert names(fake.log)[-2:] == ["check_async_error", "abort"]
    other = ValueError("not NCCL's")
    assert transport.lost(other, "all_reduce", None) is other


class Events:
    """CUDA events as the fake stream sees them: counts record and synchronize."""

    records = 0
    syncs = 0

    def record(self) -> None:
        Events.records += 1
        self.at = MPI.Wtime()

    def synchronize(self) -> None:
        Events.syncs += 1


def test_a_timed_loop_synchronizes_the_host_once_at_the_end_event():
    transport, fake, counted = make(rank=0, size=1)
    send, recv = np.ones(64, np.float32), np.zeros(64, np.float32)
    run = transport.bind("all_reduce", send, recv, op="sum")
    streams_after_bind = counted.streams
    Events.records = Events.syncs = 0
    clock = EventClock(Events, lambda a, b: (b.at - a.at) * 1e3)
    timing = time_loop(MPI.COMM_SELF, run, iterations=50, warmup=3, clock=clock)
    assert timing.clock == "events" and timing.iterations == 50
    assert names(fake.log).count("allReduce") == 53
    # One NCCL call per iteration, nothing else: no stream synchronize, no stream lookup.
    assert counted.syncs == 0 and counted.streams == streams_after_bind
    assert (Events.records, Events.syncs) == (2, 1)


def test_emulated_nccl_keeps_the_bindings_conventions_on_one_rank():
    fake_free = EmulatedNccl(MPI.COMM_SELF)
    transport = NcclTransport(MPI.COMM_SELF, fake_free, host_device(EmulatedDeviceBackend()), emulated=True)
    x = np.arange(5, dtype=np.float32)
    y = np.zeros(5, np.float32)
    transport.all_reduce(x, y)
    assert y.tolist() == x.tolist()
    transport.all_to_all(None, y)
    assert y.tolist() == x.tolist()
    with pytest.raises(EmulatedNccl.NcclError, match="groupEnd without groupStart"):
        fake_free.groupEnd()
    with pytest.raises(EmulatedNccl.NcclError, match="communicator of 2 ranks"):
        fake_free.NcclCommunicator(2, fake_free.get_unique_id(), 0)
    transport.close()
    assert transport.label == "nccl (emulated)"


def test_nccl_is_unavailable_on_host_buffers_and_says_why():
    reason = unavailable(NumpyBackend())
    assert "NCCL moves device memory" in reason and "TESSERA_BACKEND=emulated" in reason
    assert unavailable(EmulatedDeviceBackend()) == ""
    with pytest.raises(ConfigError, match="NCCL is unavailable: the numpy backend"):
        nccl_mod.make(MPI.COMM_SELF, NumpyBackend())


def test_a_bound_call_keeps_its_buffers_alive():
    import gc
    import weakref

    transport, fake, _ = make(rank=0, size=2)
    send = np.ones(16, np.float32)
    alive = weakref.ref(send)
    run = transport.bind("all_reduce", send, np.zeros(16, np.float32))
    del send
    gc.collect()
    assert alive() is not None  # NCCL holds the address only: a freed buffer would be reused
    run()
    assert names(fake.log)[-1] == "allReduce"


def test_an_uneven_reduce_scatter_pads_every_block_to_the_largest():
    transport, fake, _ = make(rank=1, size=3)
    send = np.arange(9, dtype=np.float32)  # blocks of 2, 4 and 3 elements
    recv = np.full(4, -1, np.float32)
    transport.reduce_scatter(send, recv, counts=[2, 4, 3])
    call = fake.log[-1]
    assert call[0] == "reduceScatter" and call[3:] == (4, 7, 100, STREAM)  # 3 rows of the largest, 4
    assert call[1] != send.ctypes.data  # from the padded copy, not the caller's buffer
    padded = np.frombuffer((ctypes.c_float * 12).from_address(call[1]), dtype=np.float32)
    assert padded.tolist() == [0, 1, 0, 0, 2, 3, 4, 5, 6, 7, 8, 0]
    fake.log.clear()
    transport.reduce_scatter(send[:6], recv[:2], counts=[2, 2, 2])  # even: NCCL's own, no copy
    assert fake.log[-1][:2] == ("reduceScatter", send.ctypes.data)


def test_16_bit_patterns_move_as_bytes_and_cannot_be_reduced():
    transport, fake, _ = make(rank=0, size=2)
    bits = np.arange(8, dtype=np.uint16)
    gathered = np.zeros(16, np.uint16)
    transport.all_gather(bits, gathered)
    assert fake.log[-1] == ("allGather", bits.ctypes.data, gathered.ctypes.data, 16, 1, STREAM)  # 16 bytes
    fake.log.clear()
    transport.all_to_all(np.zeros(6, np.uint16), np.zeros(6, np.uint16), send_counts=[1, 5], recv_counts=[3, 3])
    assert [(e[0], e[2]) for e in fake.log if e[0] in ("send", "recv")] == [
        ("send", 2), ("recv", 6), ("send", 10), ("recv", 6)]
    with pytest.raises(TypeError, match="NCCL has no type for uint16"):
        transport.all_reduce(None, bits)


def nccl_group(transport: NcclTransport) -> Group:
    backend = EmulatedDeviceBackend()
    return Group(comm=transport.comm, transport=transport,  # type: ignore[arg-type]
                 staging=Staging(backend, direct=True, stream_ordered=True, export=False), members=(0, 1))


def test_a_call_on_nccl_names_the_transport_and_waits_for_the_stream_before_it_ends():
    transport, fake, counted = make(rank=0, size=2)
    group = nccl_group(transport)
    x = np.ones(4, np.float32)
    with group.call("all_reduce", x.nbytes, x.dtype) as call:
        call.all_reduce(None, x)
        # What a roll call reports while the call is open: "in nccl all_reduce #N".
        assert tracker.current == "nccl all_reduce" and counted.syncs == 0
    assert counted.syncs == 1 and names(fake.log)[-2:] == ["allReduce", "synchronize"]
    assert tracker.current == ""
    # A timed (bound) call does not wait: its clock's end event does, once per loop.
    run, _ = group.bind("all_reduce", "all_reduce", None, x)
    for _ in range(5):
        run()
    assert counted.syncs == 1 and names(fake.log).count("allReduce") == 6


def test_a_failure_found_when_the_call_waits_for_its_stream_is_a_lost_device():
    transport, fake, _ = make(rank=0, size=2, fail="synchronize")
    group = nccl_group(transport)
    x = np.ones(4, np.float32)
    with pytest.raises(DeviceLostError, match="all_reduce failed over nccl: synchronize: an NCCL kernel failed"):
        with group.call("all_reduce", x.nbytes, x.dtype) as call:
            call.all_reduce(None, x)
    assert tracker.current == "" and names(fake.log)[-1] == "abort" and not transport.live


def test_a_rebuild_aborts_every_live_communicator_and_the_next_call_bootstraps_a_new_one():
    transport, fake, _ = make(rank=0, size=2)
    x = np.ones(2, np.float32)
    transport.all_reduce(None, x)
    assert transport.live
    # The listener comm/nccl.py registers with the runtime: what a rebuild after a loss calls.
    listeners = [f for f in context._registry.listeners if f.__module__ == nccl_mod.__name__]
    assert len(listeners) == 1
    listeners[0](None, None)
    assert names(fake.log)[-1] == "abort" and not transport.live
    transport.all_reduce(None, x)
    assert names(fake.log)[-4:] == ["get_unique_id", "mpi.bcast", "NcclCommunicator", "allReduce"]
