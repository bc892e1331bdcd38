"""The one call path: whichever caller's call fails, the tracker and profiling stay consistent,
and the transport's failure becomes what the transport says it means.

Single process (a one-rank job): the failing transport is MPI on COMM_SELF whose every data
call raises as a call with a dead peer does.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from mpi4py import MPI

from tessera_mpi import dist, op, profile, runtime
from tessera_mpi.comm.call import Group
from tessera_mpi.comm.transport import MpiTransport
from tessera_mpi.errors import DeviceLostError, LoadError
from tessera_mpi.fabric import p2p
from tessera_mpi.fabric.load import BackgroundLoad
from tessera_mpi.fabric.collectives import SWEPT, TABLE
from tessera_mpi.fabric.sweep import kernel, verify
from tessera_mpi.reduction import deterministic as det
from tessera_mpi.runtime.backend import EmulatedDeviceBackend
from tessera_mpi.runtime.tracker import tracker
from tessera_mpi.runtime.transfer import Staging


class Failing(MpiTransport):
    """Every data call fails; `lost` may say what the failure means."""

    def __init__(self, comm: MPI.Intracomm, *, lost_as: BaseException | None = None) -> None:
        super().__init__(comm)
        self.lost_as = lost_as

    def _fail(self, *args: Any, **kwargs: Any) -> None:
        raise MPI.Exception(MPI.ERR_OTHER)

    all_reduce = all_gather = reduce_scatter = broadcast = all_to_all = _fail
    send = recv = sendrecv = start_send = start_recv = wait_all = _fail

    def bind(self, collective: str, send: Any, recv: Any, **kwargs: Any) -> Any:
        return self._fail

    def bind_loop(self, collective: str, send: Any, recv: Any, **kwargs: Any) -> Any:
        return self._fail

    def bind_window(self, mode: str, send: Any, recvs: Any, **kwargs: Any) -> Any:
        return self._fail

    def lost(self, exc: BaseException, what: str, where: Any) -> BaseException:
        return self.lost_as if self.lost_as is not None else exc


@pytest.fixture
def rt():
    return runtime.start()


def failing_group(rt: runtime.Runtime, **kwargs: Any) -> Group:
    return Group(comm=MPI.COMM_SELF, transport=Failing(MPI.COMM_SELF, **kwargs), staging=rt.staging,
                 members=(rt.rank,))


def assert_left_cleanly(calls_before: int, session: profile.Session, *, calls: int = 1) -> None:
    assert tracker.current == "", f"the tracker still says {tracker.status()}"
    assert tracker.calls == calls_before + calls
    assert session.records == [], "a failed call was recorded as if it had completed"


def test_op_calls_that_fail_leave_the_call(rt):
    mesh = dist.Mesh(axes=["dp"])
    x = dist.tensor((8,), mesh=mesh)
    axes, good = mesh.group(None)
    mesh._groups[None] = (axes, failing_group(rt))
    before = tracker.calls
    with profile.session() as session:
        with pytest.raises(MPI.Exception):
            op.all_reduce(x, "sum", check=False)
        with pytest.raises(MPI.Exception):
            op.all_reduce(x, "sum", deterministic=True, check=False)
        assert_left_cleanly(before, session, calls=2)
        mesh._groups[None] = (axes, good)
        op.all_reduce(x, "sum", check=False)
        assert [r.name for r in session.records] == ["all_reduce"], "the next call is recorded afresh"


def test_a_failure_the_transport_recognizes_is_translated(rt):
    lost = DeviceLostError("all_reduce failed: ranks lost (rank 3)", (3,))
    group = failing_group(rt, lost_as=lost)
    before = tracker.calls
    with pytest.raises(DeviceLostError) as caught:
        with group.call("all_reduce", size_bytes=32, dtype=np.float32) as call:
            call.all_reduce(np.ones(8, np.float32), np.empty(8, np.float32))
    assert caught.value is lost and isinstance(caught.value.__cause__, MPI.Exception)
    assert tracker.current == "" and tracker.calls == before + 1


def test_sweep_kernels_that_fail_leave_the_call(rt):
    k = kernel("all_reduce", failing_group(rt), rt, count=16, dtype=np.float32, in_place=False)
    before = tracker.calls
    with profile.session() as session:
        for _ in range(3):
            with pytest.raises(MPI.Exception):
                k.run()
        assert_left_cleanly(before, session, calls=3)


def test_point_to_point_windows_that_fail_leave_the_call(rt):
    buffers = p2p.Buffers.make(rt, 0, 8, 2)
    group = failing_group(rt)
    before = tracker.calls
    with profile.session() as session:
        with pytest.raises(MPI.Exception):
            p2p.send_window(group, rt, buffers, 0)
        with pytest.raises(MPI.Exception):
            p2p.receive_window(group, rt, buffers, 0)
        with pytest.raises(MPI.Exception):
            p2p.exchange_window(group, rt, buffers, 0)
        assert_left_cleanly(before, session, calls=3)


def test_deterministic_algorithms_that_fail_leave_the_call(rt):
    group = failing_group(rt)
    before = tracker.calls
    for algorithm in ("gather", "digits", "alltoall"):
        with pytest.raises(MPI.Exception):
            with group.call("all_reduce") as call:
                det.deterministic_sum(call, np, np.ones(64, np.float64), algorithm=algorithm)
    assert tracker.current == "" and tracker.calls == before + 3


def test_the_background_load_failing_leaves_the_main_threads_tracker_alone(rt):
    mesh = dist.Mesh(axes=["dp"])
    load = BackgroundLoad(mesh, message_bytes=64)
    good = load.group
    load.group = Group(comm=good.comm, transport=Failing(good.comm), staging=rt.staging, members=good.members,
                       tracked=False)
    before = (tracker.calls, tracker.current)
    load.start()
    with pytest.raises(LoadError, match="the background load failed"):
        load.stop()
    assert (tracker.calls, tracker.current) == before, "a background call moved the main thread's tracker"
    load.group = good
    load.close()


def test_calls_on_a_background_group_are_not_profiled_or_struck(rt):
    from tessera_mpi.comm import hooks

    class Strikes:
        def __init__(self) -> None:
            self.seen: list[str] = []

        def before(self, name: str) -> None:
            self.seen.append(name)

        def after(self, result: Any) -> None:
            self.seen.append("after")

    mesh = dist.Mesh(axes=["dp"])
    _, group = mesh.group(None)
    background = Group(comm=group.comm, transport=group.transport, staging=group.staging,
                       members=group.members, tracked=False)
    strikes = Strikes()
    hooks.active.append(strikes)
    try:
        with profile.session() as session:
            for g in (background, group):
                with g.call("all_reduce", size_bytes=8, dtype=np.float32) as call:
                    call.all_reduce(np.ones(2, np.float32), call.result(np.empty(2, np.float32)))
    finally:
        hooks.active.remove(strikes)
    assert strikes.seen == ["all_reduce", "after"], "only the tracked group's call meets the fault hooks"
    assert len(session.records) == 1


@pytest.mark.parametrize("collective, in_place", [(c, v) for c in SWEPT for v in TABLE[c].variants])
def test_every_swept_kernel_runs_staged_through_an_emulated_device(rt, collective, in_place):
    backend = EmulatedDeviceBackend()
    group = Group(comm=MPI.COMM_SELF, transport=MpiTransport(MPI.COMM_SELF), staging=Staging(backend, direct=False),
                  members=(rt.rank,))
    k = kernel(collective, group, rt, count=5, dtype=np.float32, in_place=in_place)
    assert verify(k, group, np) == (0,)
    before = backend.syncs
    k.run()
    assert backend.syncs > before and backend.bytes_to_host > 0, "device buffers were not staged"
