"""NCCL beside MPI: `NcclTransport` on CuPy's NCCL bindings, or on their emulation over MPI.

One NCCL communicator per group, bootstrapped over the group's MPI communicator (group rank
0 makes the unique id, the group broadcasts it), made on the group's first data call (every
member makes that call, so the bootstrap is collective without a call of its own), destroyed
on a rebuild after a failure and at exit. Every call is queued on the current stream: the
transport is stream-ordered, so the call path neither synchronizes nor stages for it, and a
timed loop's only synchronization is the clock's end event.

NCCL has no tags, no all-gather-v or all-to-all: a tag is ignored (NCCL matches a pair's
messages in program order, which the call path keeps), and uneven gathers and all-to-all are
grouped send/recv. In-place forms follow the transport contract; where NCCL's own in-place
convention differs (reduce-scatter's result sits at the rank's offset), the block is moved
on the stream.

`EmulatedNccl` has the bindings' interface (pointers, counts in elements, stream pointers,
group start/end) and moves the data with MPI on host memory: the emulated backend uses it so
that transport selection, the side-by-side tables and reports run end to end without a GPU.
Its figures are MPI's and are labelled emulated; they measure nothing about NCCL.
"""

from __future__ import annotations

import atexit
import ctypes
import os
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
from mpi4py import MPI

from ..errors import ConfigError, DeviceLostError
from ..runtime import context
from ..runtime.backend import ArrayBackend
from .transport import ReduceOp, Transport, mpi_lost

TRANSPORTS = ("mpi", "nccl", "both")
"""What `--transport` accepts; "both" runs each measurement on MPI and on NCCL, interleaved."""

_OPS = {"sum": "NCCL_SUM", "prod": "NCCL_PROD", "max": "NCCL_MAX", "min": "NCCL_MIN"}
_DTYPES = {"float32": "NCCL_FLOAT32", "float64": "NCCL_FLOAT64", "float16": "NCCL_FLOAT16",
           "int32": "NCCL_INT32", "int64": "NCCL_INT64", "uint32": "NCCL_UINT32", "uint64": "NCCL_UINT64",
           "int8": "NCCL_INT8", "uint8": "NCCL_UINT8", "bfloat16": "NCCL_BFLOAT16"}


@dataclass(frozen=True)
class Device:
    """How the transport reaches device memory and the current stream (CuPy's, or emulated)."""

    pointer: Callable[[Any], int]
    """The address of an array's first element."""
    stream: Callable[[], int]
    """The current stream, as the pointer the bindings take."""
    synchronize: Callable[[], None]
    """Wait for the current stream (only `wait_all` needs it: a window's clock covers delivery)."""
    copy: Callable[[Any, Any], None]
    """`copy(dst, src)` on the current stream, for the in-place conventions NCCL lacks."""
    empty: Callable[[int, Any], Any] = np.empty
    """`empty(count, dtype)`: a device array, for the padding of an uneven reduce-scatter."""


def _copy(dst: Any, src: Any) -> None:
    dst[...] = src


def cupy_device(cupy: Any) -> Device:
    """The Device of CuPy's current stream."""
    return Device(pointer=lambda a: int(a.data.ptr), stream=lambda: int(cupy.cuda.get_current_stream().ptr),
                  synchronize=lambda: cupy.cuda.get_current_stream().synchronize(), copy=_copy, empty=cupy.empty)


def host_device(backend: ArrayBackend) -> Device:
    """The Device of the emulated backend: host arrays, one implicit stream that runs at once."""
    return Device(pointer=lambda a: int(a.ctypes.data), stream=lambda: 0, synchronize=lambda: None, copy=_copy)


_live: weakref.WeakSet[NcclTransport] = weakref.WeakSet()
"""Every transport with a communicator, so a rebuild and the exit destroy them."""


def destroy_all(*, abort: bool = False) -> None:
    """Destroy every NCCL communicator of this process (local: NCCL's destroy is not collective);
    `abort` after a failure, where a destroy could wait on a dead member."""
    for transport in list(_live):
        transport.close(abort=abort)


atexit.register(destroy_all)
# The rebuilt meshes make new groups from the shrunk MPI world, and with them new communicators.
context.on_rebuild(lambda old, new: destroy_all(abort=True))


class NcclTransport(Transport):
    """NCCL on one group: `nccl` is `cupy.cuda.nccl` or an `EmulatedNccl` (see the module docstring).

    Collective like every transport: each data call on every member, in the same order.
    """

    name = "nccl"
    device_buffers = True
    stream_ordered = True

    def __init__(self, comm: MPI.Intracomm, nccl: Any, device: Device, *, emulated: bool = False) -> None:
        self.comm = comm
        self.nccl = nccl
        self.device = device
        self.emulated = emulated
        self.errors = (nccl.NcclError,) + ((MPI.Exception,) if emulated else ())
        self._communicator: Any = None
        self._pending: list[tuple[str, Any, int]] | None = None

    @property
    def live(self) -> bool:
        """Whether this transport holds an NCCL communicator now (made, not yet destroyed)."""
        return self._communicator is not None

    @property
    def label(self) -> str:
        """What reports call this transport: "nccl", or "nccl (emulated)"."""
        return "nccl (emulated)" if self.emulated else "nccl"

    def communicator(self) -> Any:
        """The NCCL communicator, bootstrapped over MPI on first use (collective over the group)."""
        if self._communicator is None:
            uid = self.nccl.get_unique_id() if self.comm.rank == 0 else None
            uid = self.comm.bcast(uid, root=0)
            self._communicator = self.nccl.NcclCommunicator(self.comm.size, uid, self.comm.rank)
            _live.add(self)
        return self._communicator

    def close(self, *, abort: bool = False) -> None:
        """Destroy (or abort) the communicator, if made (local); the next call makes a new one."""
        communicator, self._communicator = self._communicator, None
        if communicator is not None:
            _live.discard(self)
            communicator.abort() if abort else communicator.destroy()

    # Helpers: pointers, counts and NCCL's constants.

    def _dtype(self, a: Any) -> int:
        name = np.dtype(a.dtype).name
        if name not in _DTYPES:
            raise TypeError(f"NCCL has no type for {name} (it has {', '.join(_DTYPES)}); reduce it over MPI")
        return getattr(self.nccl, _DTYPES[name])

    def _op(self, op: ReduceOp) -> int:
        return getattr(self.nccl, _OPS[op])

    def native(self, a: Any) -> bool:
        """Whether NCCL has a type for `a`'s dtype (not uint16, in which the 16-bit floats of
        the deterministic sum travel: those move as their bytes)."""
        return np.dtype(a.dtype).name in _DTYPES

    def _at(self, a: Any, elements: int = 0) -> int:
        return self.device.pointer(a) + elements * a.itemsize

    def _grouped(self, moves: Sequence[tuple[str, Any, int, int, int]]) -> None:
        """Sends and receives ("send"/"recv", array, offset, count, peer) as one NCCL group."""
        c, stream = self.communicator(), self.device.stream()
        self.nccl.groupStart()
        try:
            for kind, a, offset, count, peer in moves:
                if count:
                    getattr(c, kind)(self._at(a, offset), count, self._dtype(a), peer, stream)
        finally:
            self.nccl.groupEnd()

    # The collectives.

    def all_reduce(self, send: Any, recv: Any, *, op: ReduceOp = "sum") -> None:
        source = recv if send is None else send
        self.communicator().allReduce(self._at(source), self._at(recv), recv.size, self._dtype(recv),
                                      self._op(op), self.device.stream())

    def all_gather(self, send: Any, recv: Any, *, counts: Sequence[int] | None = None) -> None:
        if not self.native(recv):
            k = recv.itemsize
            self.all_gather(_bytes(send), _bytes(recv), counts=None if counts is None else [c * k for c in counts])
            return
        p, me = self.comm.size, self.comm.rank
        if counts is None:
            count = recv.size // p
            source = self._at(recv, me * count) if send is None else self._at(send)
            self.communicator().allGather(source, self._at(recv), count, self._dtype(recv), self.device.stream())
            return
        offsets = np.concatenate(([0], np.cumsum(counts)))
        mine = send if send is not None else recv[int(offsets[me]):int(offsets[me + 1])]
        moves = [m for peer in range(p) for m in (("send", mine, 0, int(counts[me]), peer),
                                                  ("recv", recv, int(offsets[peer]), int(counts[peer]), peer))
                 if peer != me]
        if send is not None:
            self.device.copy(recv[int(offsets[me]):int(offsets[me + 1])], send)
        self._grouped(moves)

    def reduce_scatter(self, send: Any, recv: Any, *, op: ReduceOp = "sum",
                       counts: Sequence[int] | None = None) -> None:
        p, me = self.comm.size, self.comm.rank
        if counts is not None and len({int(c) for c in counts}) > 1:
            self._reduce_scatter_v(recv if send is None else send, recv, op, [int(c) for c in counts])
            return
        count = recv.size // p if send is None else recv.size
        if send is not None:
            self.communicator().reduceScatter(self._at(send), self._at(recv), count, self._dtype(recv),
                                              self._op(op), self.device.stream())
            return
        # NCCL's in place leaves the block at this rank's offset; the contract wants it first.
        self.communicator().reduceScatter(self._at(recv), self._at(recv, me * count), count, self._dtype(recv),
                                          self._op(op), self.device.stream())
        if me:
            self.device.copy(recv[:count], recv[me * count:(me + 1) * count])

    def _reduce_scatter_v(self, source: Any, recv: Any, op: ReduceOp, counts: list[int]) -> None:
        """NCCL has no reduce-scatter-v: pad every block to the largest, reduce-scatter the
        padded rows, keep this rank's count (one extra copy of the buffer, on the stream)."""
        p, me, width = self.comm.size, self.comm.rank, max(counts)
        padded, part = self.device.empty(p * width, recv.dtype), self.device.empty(width, recv.dtype)
        start = 0
        for peer, count in enumerate(counts):
            self.device.copy(padded[peer * width:peer * width + count], source[start:start + count])
            self.device.copy(padded[peer * width + count:(peer + 1) * width], 0)
            start += count
        self.communicator().reduceScatter(self._at(padded), self._at(part), width, self._dtype(recv),
                                          self._op(op), self.device.stream())
        self.device.copy(recv[:counts[me]], part[:counts[me]])

    def broadcast(self, buffer: Any, *, root: int) -> None:
        if not self.native(buffer):
            self.broadcast(_bytes(buffer), root=root)
            return
        self.communicator().broadcast(self._at(buffer), self._at(buffer), buffer.size, self._dtype(buffer), root,
                                      self.device.stream())

    def all_to_all(self, send: Any, recv: Any, *, send_counts: Sequence[int] | None = None,
                   recv_counts: Sequence[int] | None = None) -> None:
        if not self.native(recv):
            k = recv.itemsize
            self.all_to_all(_bytes(send), _bytes(recv),
                            send_counts=None if send_counts is None else [c * k for c in send_counts],
                            recv_counts=None if recv_counts is None else [c * k for c in recv_counts])
            return
        p = self.comm.size
        if send is None:
            # NCCL's grouped sends read while receives write: send from a copy.
            send = recv.copy()
        sc = [send.size // p] * p if send_counts is None else [int(c) for c in send_counts]
        rc = [recv.size // p] * p if recv_counts is None else [int(c) for c in recv_counts]
        so, ro = np.concatenate(([0], np.cumsum(sc))), np.concatenate(([0], np.cumsum(rc)))
        self._grouped([m for peer in range(p) for m in (("send", send, int(so[peer]), sc[peer], peer),
                                                         ("recv", recv, int(ro[peer]), rc[peer], peer))])

    def send(self, buffer: Any, *, dest: int, tag: int = 0) -> None:
        buffer = buffer if self.native(buffer) else _bytes(buffer)
        self.communicator().send(self._at(buffer), buffer.size, self._dtype(buffer), dest, self.device.stream())

    def recv(self, buffer: Any, *, source: int, tag: int = 0) -> None:
        buffer = buffer if self.native(buffer) else _bytes(buffer)
        self.communicator().recv(self._at(buffer), buffer.size, self._dtype(buffer), source, self.device.stream())

    def sendrecv(self, send: Any, recv: Any, *, dest: int, source: int, tag: int = 0) -> None:
        if send is None:
            send = recv.copy()
        if not self.native(recv):
            send, recv = _bytes(send), _bytes(recv)
        self._grouped([("send", send, 0, send.size, dest), ("recv", recv, 0, recv.size, source)])

    def start_send(self, buffer: Any, *, dest: int, tag: int = 0) -> Any:
        """Queue a send in the open NCCL group (opened here if none); `wait_all` closes it."""
        return self._start("send", buffer, dest)

    def start_recv(self, buffer: Any, *, source: int, tag: int = 0) -> Any:
        return self._start("recv", buffer, source)

    def _start(self, kind: str, buffer: Any, peer: int) -> tuple[str, Any, int]:
        buffer = buffer if self.native(buffer) else _bytes(buffer)
        if self._pending is None:
            self._pending = []
        request = (kind, buffer, peer)
        self._pending.append(request)
        return request

    def wait_all(self, requests: Sequence[Any]) -> None:
        """Issue the started sends and receives as one NCCL group and wait for the stream: a
        point-to-point window's clock covers delivery, as MPI's Waitall does."""
        pending, self._pending = self._pending or [], None
        self._grouped([(kind, a, 0, a.size, peer) for kind, a, peer in pending])
        self.device.synchronize()

    def synchronize(self) -> None:
        self.device.synchronize()

    def bind(self, collective: str, send: Any, recv: Any, **kwargs: Any) -> Callable[[], None]:
        """The swept collectives' NCCL call with pointers, counts and constants resolved once: an
        iteration is one library call on the current stream, no host synchronization."""
        c, stream = self.communicator(), self.device.stream()
        s, r = self._at(recv if send is None else send), self._at(recv)
        dt, p = self._dtype(recv), self.comm.size
        op = self._op(kwargs.get("op", "sum"))
        run: Any = None
        if collective == "all_reduce":
            run = partial(c.allReduce, s, r, recv.size, dt, op, stream)
        elif collective == "broadcast":
            run = partial(c.broadcast, r, r, recv.size, dt, kwargs["root"], stream)
        elif collective == "all_gather" and "counts" not in kwargs:
            count = recv.size // p
            run = partial(c.allGather, self._at(recv, self.comm.rank * count) if send is None else s, r, count,
                          dt, stream)
        elif collective == "reduce_scatter" and "counts" not in kwargs and send is not None:
            run = partial(c.reduceScatter, s, r, recv.size, dt, op, stream)
        if run is None:
            return super().bind(collective, send, recv, **kwargs)
        # NCCL holds addresses only: the call keeps its arrays alive (a freed buffer's memory is
        # reused by the next allocation, which the call would then overwrite).
        run.buffers = (send, recv)
        return run

    def lost(self, exc: BaseException, what: str, where: Callable[[int], str] | None) -> BaseException:
        """An NCCL error (or one NCCL reported asynchronously) is a lost device: abort the
        communicator (a later call makes a new one) and raise DeviceLostError naming NCCL and the
        call; which ranks failed is the roll call's and MPI's to learn."""
        if not isinstance(exc, self.nccl.NcclError):
            # The emulation's MPI underneath failed: what MPI's failure means, as over MPI.
            return mpi_lost(self.comm, exc, f"{what} over {self.label}", where) if self.emulated else exc
        found = ""
        communicator, self._communicator = self._communicator, None
        if communicator is not None:
            try:
                communicator.check_async_error()
            except self.nccl.NcclError as late:
                found = f"; asynchronous error: {late}"
            try:
                communicator.abort()
            except self.nccl.NcclError:
                pass
            _live.discard(self)
        return DeviceLostError(f"{what} failed over {self.label}: {exc}{found}", ())


def _bytes(a: Any) -> Any:
    """`a` (contiguous) as its bytes, for a move of a dtype NCCL has no type for (None stays None)."""
    return None if a is None else a.reshape(-1).view(np.uint8)


# The emulation: CuPy's NCCL interface, MPI underneath.


class EmulatedNcclError(RuntimeError):
    """An error of the emulated NCCL (a bootstrap that did not agree, a call outside the rules)."""


def _array(pointer: int, count: int, dtype: np.dtype) -> np.ndarray:
    """The host array at `pointer` (the bindings pass addresses, as CUDA would)."""
    nbytes = count * dtype.itemsize
    return np.frombuffer((ctypes.c_char * nbytes).from_address(pointer), dtype=dtype) if nbytes else \
        np.empty(0, dtype)


class EmulatedNccl:
    """A stand-in for `cupy.cuda.nccl` over one MPI communicator (host memory, emulated backend).

    The calling conventions are NCCL's: a unique id made on one rank and handed to the others, a
    communicator made from it on every rank, pointers and element counts, a stream argument,
    and sends and receives between groupStart and groupEnd issued together at groupEnd. The
    one stream runs each call as it is queued, so stream order is program order.
    """

    NcclError = EmulatedNcclError
    NCCL_SUM, NCCL_PROD, NCCL_MAX, NCCL_MIN = 0, 1, 2, 3
    NCCL_INT8, NCCL_UINT8, NCCL_INT32, NCCL_UINT32, NCCL_INT64, NCCL_UINT64 = 0, 1, 2, 3, 4, 5
    NCCL_FLOAT16, NCCL_FLOAT32, NCCL_FLOAT64, NCCL_BFLOAT16 = 6, 7, 8, 9

    def __init__(self, comm: MPI.Intracomm) -> None:
        self.comm = comm
        self.depth = 0
        self.queued: list[Callable[[], Any]] = []

    def get_unique_id(self) -> tuple[int, ...]:
        return tuple(os.urandom(128))

    def groupStart(self) -> None:  # noqa: N802 (the bindings' names)
        self.depth += 1

    def groupEnd(self) -> None:  # noqa: N802
        if self.depth == 0:
            raise EmulatedNcclError("groupEnd without groupStart")
        self.depth -= 1
        if self.depth == 0:
            queued, self.queued = self.queued, []
            MPI.Request.Waitall([start() for start in queued])

    def NcclCommunicator(self, ndev: int, uid: tuple[int, ...], rank: int) -> _EmulatedCommunicator:  # noqa: N802
        return _EmulatedCommunicator(self, ndev, uid, rank)


_NP = {EmulatedNccl.NCCL_INT8: np.int8, EmulatedNccl.NCCL_UINT8: np.uint8, EmulatedNccl.NCCL_INT32: np.int32,
       EmulatedNccl.NCCL_UINT32: np.uint32, EmulatedNccl.NCCL_INT64: np.int64,
       EmulatedNccl.NCCL_UINT64: np.uint64, EmulatedNccl.NCCL_FLOAT16: np.float16,
       EmulatedNccl.NCCL_FLOAT32: np.float32, EmulatedNccl.NCCL_FLOAT64: np.float64}
_MPI_OPS = {EmulatedNccl.NCCL_SUM: MPI.SUM, EmulatedNccl.NCCL_PROD: MPI.PROD,
            EmulatedNccl.NCCL_MAX: MPI.MAX, EmulatedNccl.NCCL_MIN: MPI.MIN}
_TAG = 7201
"""The tag of the emulation's point-to-point messages (NCCL has none: order matches them)."""


class _EmulatedCommunicator:
    """`NcclCommunicator` of the emulation: the bootstrap is checked (every member passed the
    same id and its own rank), then each call is the matching MPI call on host memory."""

    def __init__(self, nccl: EmulatedNccl, ndev: int, uid: tuple[int, ...], rank: int) -> None:
        comm = nccl.comm
        if ndev != comm.size or rank != comm.rank:
            raise EmulatedNcclError(f"communicator of {ndev} ranks as rank {rank} on a group of {comm.size} "
                                    f"where this is rank {comm.rank}")
        if len(set(comm.allgather(hash(tuple(uid))))) != 1:
            raise EmulatedNcclError("the members passed different unique ids: the id was not broadcast")
        self.nccl, self.comm, self.destroyed = nccl, comm, False

    def _live(self) -> MPI.Intracomm:
        if self.destroyed:
            raise EmulatedNcclError("call on a destroyed communicator")
        return self.comm

    def allReduce(self, send: int, recv: int, count: int, dtype: int, op: int, stream: int) -> None:  # noqa: N802
        comm, t = self._live(), np.dtype(_NP[dtype])
        target = _array(recv, count, t)
        comm.Allreduce(MPI.IN_PLACE if send == recv else _array(send, count, t), target, op=_MPI_OPS[op])

    def allGather(self, send: int, recv: int, count: int, dtype: int, stream: int) -> None:  # noqa: N802
        comm, t = self._live(), np.dtype(_NP[dtype])
        target = _array(recv, count * comm.size, t)
        in_place = send == recv + comm.rank * count * t.itemsize
        comm.Allgather(MPI.IN_PLACE if in_place else _array(send, count, t), target)

    def reduceScatter(self, send: int, recv: int, count: int, dtype: int, op: int, stream: int) -> None:  # noqa: N802
        comm, t = self._live(), np.dtype(_NP[dtype])
        source = _array(send, count * comm.size, t)
        if recv == send + comm.rank * count * t.itemsize:
            comm.Reduce_scatter_block(MPI.IN_PLACE, source, op=_MPI_OPS[op])
            source[comm.rank * count:(comm.rank + 1) * count] = source[:count].copy()
        else:
            comm.Reduce_scatter_block(source, _array(recv, count, t), op=_MPI_OPS[op])

    def broadcast(self, send: int, recv: int, count: int, dtype: int, root: int, stream: int) -> None:
        comm, t = self._live(), np.dtype(_NP[dtype])
        target = _array(recv, count, t)
        if send != recv and comm.rank == root:
            target[...] = _array(send, count, t)
        comm.Bcast(target, root=root)

    def send(self, buffer: int, count: int, dtype: int, peer: int, stream: int) -> None:
        self._p2p(lambda c, a: c.Isend(a, dest=peer, tag=_TAG), buffer, count, dtype)

    def recv(self, buffer: int, count: int, dtype: int, peer: int, stream: int) -> None:
        self._p2p(lambda c, a: c.Irecv(a, source=peer, tag=_TAG), buffer, count, dtype)

    def _p2p(self, start: Callable[[MPI.Intracomm, np.ndarray], MPI.Request], buffer: int, count: int,
             dtype: int) -> None:
        """Inside a group the message starts at groupEnd; outside, it completes now (NCCL's
        ungrouped send blocks the stream until the peer receives)."""
        comm, a = self._live(), _array(buffer, count, np.dtype(_NP[dtype]))
        if self.nccl.depth:
            self.nccl.queued.append(lambda: start(comm, a))
        else:
            start(comm, a).Wait()

    def check_async_error(self) -> None:
        """The emulation has no asynchronous errors: every call completes as it is made."""

    def abort(self) -> None:
        self.destroyed = True

    def destroy(self) -> None:
        self.destroyed = True


def unavailable(backend: ArrayBackend) -> str:
    """Why NCCL cannot run on `backend` ("" when it can: CuPy with NCCL, or the emulation).
    Local: the suite agrees on the answer before acting on it."""
    if backend.name == "emulated":
        return ""
    if backend.name != "cupy":
        return (f"the {backend.name} backend keeps buffers in host memory and NCCL moves device memory: "
                "run on GPUs with CuPy (TESSERA_BACKEND=cupy), or TESSERA_BACKEND=emulated for the emulation")
    try:
        from cupy.cuda import nccl  # type: ignore[import-not-found]
    except ImportError as exc:
        return f"CuPy has no NCCL bindings ({exc}); pip install nvidia-nccl-cu12"
    if not getattr(nccl, "available", True):
        return "CuPy was built without NCCL (cupy.cuda.nccl.available is False); pip install nvidia-nccl-cu12"
    return ""


def make(comm: MPI.Intracomm, backend: ArrayBackend) -> NcclTransport:
    """Return the NCCL transport of `comm`'s ranks on `backend` (no communication: the NCCL
    communicator is made on the first call). Raises ConfigError where NCCL is unavailable."""
    reason = unavailable(backend)
    if reason:
        raise ConfigError(f"NCCL is unavailable: {reason}")
    if backend.name == "emulated":
        return NcclTransport(comm, EmulatedNccl(comm), host_device(backend), emulated=True)
    from cupy.cuda import nccl  # type: ignore[import-not-found]
    return NcclTransport(comm, nccl, cupy_device(backend.xp))
