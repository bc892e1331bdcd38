"""Transports: what moves buffers between the ranks of one group, behind the call path.

A transport is bound to one group of ranks (one communicator) and knows nothing of meshes,
tensors, faults, profiling or staging: the call path (`comm.call`) does those around it. What a
transport must guarantee, so that another one (NCCL) can take its place without touching a
check or `op`:

- **Ordering.** Calls on one transport complete in program order on every member. A call
  returns when its buffers may be reused: for a host transport, when the data has moved; for
  a stream-ordered transport (`stream_ordered`), when the work is queued on the current
  stream, after which the stream's order protects the buffers.
- **Buffers.** Contiguous arrays whose element counts the caller chose; counts per member
  (`counts`) in elements. `device_buffers` says whether device arrays may be passed as they are;
  when False the call path hands the transport host arrays only.
- **In place.** `send=None` means in place: `recv` holds this rank's input and receives the
  result. For reduce-scatter in place the result is the first `count` elements of `recv`; for
  all-gather in place this rank's block sits at its own offset of `recv`.
- **Failure.** A failed call raises an exception of one of `errors`; `lost(exc, ...)` turns it
  into what the caller sees (DeviceLostError naming the failed ranks when processes died,
  the exception itself otherwise). A transport never hangs on a member's death when the
  library can detect it; hangs are the watchdog's job.
"""

from __future__ import annotations

import ctypes
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any, ClassVar

import numpy as np
from mpi4py import MPI

from ..errors import DeviceLostError
from ..runtime import context
from ..runtime.ft import FAILURE_CLASSES, learn_failed
from . import native

ReduceOp = str
"""One of "sum", "prod", "max", "min" (an average is a sum the caller divides)."""

Loop = Callable[[int, np.ndarray], None]
"""`loop(warmup, stamps)`: `warmup` calls, a barrier, then len(stamps) - 1 timed calls, all in
compiled code; stamps[0] is the clock after the barrier and stamps[i + 1] after call i (MPI.Wtime
seconds). Collective over the transport's group; a failed call raises the transport's error."""


class Transport(ABC):
    """The data movement of one group of ranks (see the module docstring for the contract)."""

    name: ClassVar[str]
    device_buffers: bool
    stream_ordered: bool = False
    errors: tuple[type[BaseException], ...] = ()

    @property
    def label(self) -> str:
        """What results and reports call this transport (its name unless it is an emulation)."""
        return self.name

    comm: MPI.Intracomm
    """The group's MPI communicator: every transport is bootstrapped over one (NCCL's unique id
    travels on it), and it numbers the group's ranks."""

    @property
    def size(self) -> int:
        return self.comm.size

    @property
    def rank(self) -> int:
        return self.comm.rank

    def synchronize(self) -> None:
        """Wait until this rank's calls queued so far have completed (local). A host transport's
        calls complete as they return: nothing to wait for. A stream-ordered one waits for its
        stream, so that the call path can keep a call open until its work is done."""

    @abstractmethod
    def all_reduce(self, send: Any, recv: Any, *, op: ReduceOp = "sum") -> None: ...

    @abstractmethod
    def all_gather(self, send: Any, recv: Any, *, counts: Sequence[int] | None = None) -> None: ...

    @abstractmethod
    def reduce_scatter(self, send: Any, recv: Any, *, op: ReduceOp = "sum",
                       counts: Sequence[int] | None = None) -> None: ...

    @abstractmethod
    def broadcast(self, buffer: Any, *, root: int) -> None: ...

    @abstractmethod
    def all_to_all(self, send: Any, recv: Any, *, send_counts: Sequence[int] | None = None,
                   recv_counts: Sequence[int] | None = None) -> None: ...

    @abstractmethod
    def send(self, buffer: Any, *, dest: int, tag: int = 0) -> None: ...

    @abstractmethod
    def recv(self, buffer: Any, *, source: int, tag: int = 0) -> None: ...

    @abstractmethod
    def sendrecv(self, send: Any, recv: Any, *, dest: int, source: int, tag: int = 0) -> None: ...

    @abstractmethod
    def start_send(self, buffer: Any, *, dest: int, tag: int = 0) -> Any:
        """Start a send; return a request for `wait_all`."""

    @abstractmethod
    def start_recv(self, buffer: Any, *, source: int, tag: int = 0) -> Any:
        """Start a receive; return a request for `wait_all`."""

    @abstractmethod
    def wait_all(self, requests: Sequence[Any]) -> None: ...

    def bind(self, collective: str, send: Any, recv: Any, **kwargs: Any) -> Callable[[], None]:
        """Return one call of `collective` on these buffers as a function of no arguments, for
        timed loops: whatever can be resolved once is resolved here."""
        if collective == "broadcast":
            return partial(self.broadcast, recv, **kwargs)
        return partial(getattr(self, collective), send, recv, **kwargs)

    def bind_loop(self, collective: str, send: Any, recv: Any, **kwargs: Any) -> Loop | None:
        """Return the compiled timed loop of `collective` on these buffers, or None when this
        transport has none for it (the timed loop then runs in Python)."""
        return None

    def bind_window(self, mode: str, send: Any, recvs: Sequence[Any], *, peer: int,
                    tag: int) -> Callable[[], float] | None:
        """Return a compiled point-to-point window (`mode` "send", "receive" or "exchange", as
        `fabric.p2p` runs them) that returns its seconds, or None when this transport has none."""
        return None

    def lost(self, exc: BaseException, what: str, where: Callable[[int], str] | None) -> BaseException:
        """Return what to raise for `exc`, an error of this transport inside call `what`."""
        return exc


_MPI_OPS = {"sum": MPI.SUM, "prod": MPI.PROD, "max": MPI.MAX, "min": MPI.MIN}


def _displacements(counts: Sequence[int]) -> list[int]:
    return [int(v) for v in np.concatenate(([0], np.cumsum(counts)[:-1]))] if len(counts) else []


class MpiTransport(Transport):
    """The MPI library through mpi4py, on one communicator (today's path, any MPI).

    Device arrays go to MPI as they are only when the library is CUDA-aware (`device_buffers`);
    MPI knows no streams, so the call path synchronizes before every call.
    """

    name = "mpi"
    errors = (MPI.Exception,)

    def __init__(self, comm: MPI.Intracomm, *, device_buffers: bool = False) -> None:
        self.comm = comm
        self.device_buffers = device_buffers

    def all_reduce(self, send: Any, recv: Any, *, op: ReduceOp = "sum") -> None:
        self.comm.Allreduce(MPI.IN_PLACE if send is None else send, recv, op=_MPI_OPS[op])

    def all_gather(self, send: Any, recv: Any, *, counts: Sequence[int] | None = None) -> None:
        source = MPI.IN_PLACE if send is None else send
        if counts is None:
            self.comm.Allgather(source, recv)
        else:
            self.comm.Allgatherv(source, [recv, (list(counts), _displacements(counts))])

    def reduce_scatter(self, send: Any, recv: Any, *, op: ReduceOp = "sum",
                       counts: Sequence[int] | None = None) -> None:
        source = MPI.IN_PLACE if send is None else send
        if counts is None:
            self.comm.Reduce_scatter_block(source, recv, op=_MPI_OPS[op])
        else:
            self.comm.Reduce_scatter(source, recv, recvcounts=list(counts), op=_MPI_OPS[op])

    def broadcast(self, buffer: Any, *, root: int) -> None:
        self.comm.Bcast(buffer, root=root)

    def all_to_all(self, send: Any, recv: Any, *, send_counts: Sequence[int] | None = None,
                   recv_counts: Sequence[int] | None = None) -> None:
        if send_counts is None:
            self.comm.Alltoall(MPI.IN_PLACE if send is None else send, recv)
            return
        assert recv_counts is not None
        self.comm.Alltoallv([send, (list(send_counts), _displacements(send_counts))],
                            [recv, (list(recv_counts), _displacements(recv_counts))])

    def send(self, buffer: Any, *, dest: int, tag: int = 0) -> None:
        self.comm.Send(buffer, dest=dest, tag=tag)

    def recv(self, buffer: Any, *, source: int, tag: int = 0) -> None:
        self.comm.Recv(buffer, source=source, tag=tag)

    def sendrecv(self, send: Any, recv: Any, *, dest: int, source: int, tag: int = 0) -> None:
        if send is None:
            self.comm.Sendrecv_replace(recv, dest=dest, sendtag=tag, source=source, recvtag=tag)
        else:
            self.comm.Sendrecv(send, dest=dest, sendtag=tag, recvbuf=recv, source=source, recvtag=tag)

    def start_send(self, buffer: Any, *, dest: int, tag: int = 0) -> MPI.Request:
        return self.comm.Isend(buffer, dest=dest, tag=tag)

    def start_recv(self, buffer: Any, *, source: int, tag: int = 0) -> MPI.Request:
        return self.comm.Irecv(buffer, source=source, tag=tag)

    def wait_all(self, requests: Sequence[Any]) -> None:
        MPI.Request.Waitall(list(requests))

    def bind(self, collective: str, send: Any, recv: Any, **kwargs: Any) -> Callable[[], None]:
        # The timed loop then calls mpi4py itself: no frame of ours per iteration.
        comm, source = self.comm, MPI.IN_PLACE if send is None else send
        if collective == "all_reduce":
            return partial(comm.Allreduce, source, recv, op=_MPI_OPS[kwargs.get("op", "sum")])
        if collective == "all_gather" and "counts" not in kwargs:
            return partial(comm.Allgather, source, recv)
        if collective == "reduce_scatter" and "counts" not in kwargs:
            return partial(comm.Reduce_scatter_block, source, recv, op=_MPI_OPS[kwargs.get("op", "sum")])
        if collective == "broadcast":
            return partial(comm.Bcast, recv, root=kwargs["root"])
        if collective == "all_to_all" and "send_counts" not in kwargs:
            return partial(comm.Alltoall, source, recv)
        if collective == "sendrecv" and send is not None:
            return partial(comm.Sendrecv, send, dest=kwargs["dest"], recvbuf=recv, source=kwargs["source"])
        if collective == "sendrecv":
            return partial(comm.Sendrecv_replace, recv, dest=kwargs["dest"], source=kwargs["source"])
        return super().bind(collective, send, recv, **kwargs)

    def bind_loop(self, collective: str, send: Any, recv: Any, **kwargs: Any) -> Loop | None:
        """The compiled loop (comm.native) on host NumPy buffers, for the equal-block forms of the
        swept collectives with a predefined datatype; None otherwise or when it is not built."""
        lib = native.library()
        arrays = [a for a in (send, recv) if a is not None]
        if lib is None or collective not in native.KINDS or not all(isinstance(a, np.ndarray) and
                                                                    a.flags.c_contiguous for a in arrays):
            return None
        if {"counts", "send_counts", "recv_counts", "tag"} & set(kwargs):
            return None
        try:
            # The predefined datatype (reductions are defined on it; dtlib's answer is a duplicate).
            dtype = MPI.Datatype.fromcode(recv.dtype.char)
        except (KeyError, ValueError):
            return None
        p = self.comm.size
        # Counts as mpi4py derives them from the buffers: per-rank blocks where the call has blocks.
        count = {"all_gather": recv.size // p, "all_to_all": recv.size // p,
                 "reduce_scatter": recv.size // p if send is None else recv.size}.get(collective, recv.size)
        kind = native.KINDS["sendrecv_replace" if collective == "sendrecv" and send is None else collective]
        op = _MPI_OPS[kwargs.get("op", "sum")]
        a, b = {"broadcast": (kwargs.get("root", 0), 0),
                "sendrecv": (kwargs.get("dest", 0), kwargs.get("source", 0))}.get(collective, (0, 0))
        handles = (self.comm, dtype, op)  # kept alive with the loop: the C side reads their storage
        comm_at, type_at, op_at = (MPI._addressof(h) for h in handles)
        send_at = 0 if send is None else send.ctypes.data
        recv_at = recv.ctypes.data

        def loop(warmup: int, stamps: np.ndarray) -> None:
            assert stamps.dtype == np.float64 and stamps.flags.c_contiguous and handles
            rc, _ = lib.loop(kind, comm_at, type_at, op_at, send_at, recv_at, count, a, b, warmup,
                             len(stamps) - 1, stamps.ctypes.data)
            if rc != MPI.SUCCESS:
                raise MPI.Exception(rc)

        return loop

    def bind_window(self, mode: str, send: Any, recvs: Sequence[Any], *, peer: int,
                    tag: int) -> Callable[[], float] | None:
        """The compiled window (comm.native) on host NumPy buffers of one dtype and size."""
        lib = native.library()
        arrays = [send, *recvs]
        if lib is None or not recvs or not all(isinstance(a, np.ndarray) and a.flags.c_contiguous
                                               and a.dtype == send.dtype and a.size == send.size for a in arrays):
            return None
        try:
            dtype = MPI.Datatype.fromcode(send.dtype.char)
        except (KeyError, ValueError):
            return None
        handles = (self.comm, dtype)  # kept alive with the window: the C side reads their storage
        comm_at, type_at = (MPI._addressof(h) for h in handles)
        pointers = (ctypes.c_void_p * len(recvs))(*(r.ctypes.data for r in recvs))
        mode_number, send_at, count = native.WINDOWS[mode], send.ctypes.data, send.size

        def window() -> float:
            assert handles and arrays
            rc, seconds = lib.window(mode_number, comm_at, type_at, send_at, pointers, count, len(recvs), peer, tag)
            if rc != MPI.SUCCESS:
                raise MPI.Exception(rc)
            return seconds

        return window

    def lost(self, exc: BaseException, what: str, where: Callable[[int], str] | None) -> BaseException:
        """With real fault tolerance and a failure-class error, revoke the communicator (so
        every member leaves it) and name the failed ranks in a DeviceLostError."""
        return mpi_lost(self.comm, exc, what, where)


def mpi_lost(comm: MPI.Intracomm, exc: BaseException, what: str,
             where: Callable[[int], str] | None) -> BaseException:
    """`MpiTransport.lost` on `comm` (also what the emulated NCCL, MPI underneath, does with an
    MPI error)."""
    rt = context.current()
    if rt is None or not rt.ft.real or not isinstance(exc, MPI.Exception) \
            or exc.Get_error_class() not in FAILURE_CLASSES:
        return exc
    try:
        comm.Revoke()
    except MPI.Exception:
        pass
    failed = learn_failed(comm, rt.world)
    names = "; ".join(rt.describe(r) + (f" at {where(r)}" if where else "") for r in failed)
    return DeviceLostError(f"{what} failed: ranks lost ({names or 'not known on this rank'}); "
                           f"MPI said: {exc.Get_error_string()}", failed)
