"""The one call path: every communication of tessera_mpi's data path is a `Call` on a `Group`.

    with group.call("all_reduce", size_bytes=x.nbytes, dtype=x.dtype) as call:
        call.all_reduce(x, y, op="sum")      # staged when needed, then the group's transport
        call.result(y)                       # the buffer a planned corruption strikes

What a call does, in order, and nothing else does it: the fault hooks (a planned drop, hang
or delay strikes as the call starts); the tracker records the call (the roll call reports it);
the profiling clock starts while a session is open; the data moves, each device buffer staged
through host memory when the transport cannot take it; on every way out the tracker leaves the
call; a transport error becomes what the transport says it means (DeviceLostError naming the
lost ranks); on success the result meets the corruption hook and the session gets the record.
The metadata agreement (`comm.check.agree_call`) is a call of its own on the same group.

Timed loops bind a call once (`Group.bind`) and run it many times: the same steps, with
everything that can be resolved ahead resolved then.

Control messages (agreements, counts, verdicts) use the group's MPI communicator `comm`
directly; data buffers go through the transport.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import numpy as np
from mpi4py import MPI

from ..runtime import context
from ..runtime.tracker import tracker
from ..runtime.transfer import Staging
from . import hooks, profiling
from .transport import MpiTransport, ReduceOp, Transport


@dataclass(frozen=True, eq=False)
class Group:
    """The ranks of one collective: their MPI communicator, their transport, and how to name them.

    `members[r]` is the job-world rank of group rank r; `where(world_rank)` says where a rank
    sits (a mesh coordinate) in failure messages. A background group (`tracked=False`) serves
    another thread: its calls leave the main thread's tracker and planned faults alone.
    """

    comm: MPI.Intracomm
    transport: Transport
    staging: Staging
    members: tuple[int, ...]
    where: Callable[[int], str] | None = None
    tracked: bool = True

    @classmethod
    def of(cls, comm: MPI.Intracomm, *, where: Callable[[int], str] | None = None,
           tracked: bool = True) -> Group:
        """Return the group of `comm`'s ranks over MPI (no communication)."""
        rt = context.current()
        assert rt is not None, "the runtime starts before any group is made"
        members = MPI.Group.Translate_ranks(comm.Get_group(), list(range(comm.size)), rt.world.Get_group())
        transport = MpiTransport(comm, device_buffers=rt.cuda_aware)
        return cls(comm=comm, transport=transport, staging=rt.staging, members=tuple(members),
                   where=where, tracked=tracked)

    @property
    def size(self) -> int:
        return self.comm.size

    @property
    def rank(self) -> int:
        return self.comm.rank

    def call(self, name: str, *, size_bytes: int | None = None, dtype: Any = None,
             participants: int | None = None, inject: bool = True) -> Call:
        """Return a call named `name` (use it as a context manager).

        `name` is what the tracker and failure messages say. A call that gives its nccl-tests
        `size_bytes` (and `dtype`) is a collective of the table of that name, which profiling
        sessions record with its `participants` (default: the group's size; 2 for a send);
        `inject=False` keeps planned faults out of it (agreements).
        """
        call = Call(self, name, size_bytes=size_bytes, dtype=dtype, inject=inject)
        call.participants = self.comm.size if participants is None else participants
        return call

    def bind(self, name: str, collective: str, send: Any, recv: Any, *, result: Any = None,
             **kwargs: Any) -> tuple[Callable[[], None], Call]:
        """Return (run, call): `run()` makes one call `name` of `collective` on these buffers
        with every step of the call path, and `call.seconds` adds up the time spent inside.

        For timed loops: on host buffers the transport's call is resolved once, so an
        iteration costs the call path's steps and the library call, no more.
        """
        call = Call(self, name, size_bytes=None, dtype=None, inject=True)
        call._result = result
        if self.staging.device:
            move = getattr(call, collective)
            # Device buffers are staged (or synchronized) on every run, as in any call.
            raw: Callable[[], None] = (lambda: move(recv, **kwargs)) if collective == "broadcast" \
                else (lambda: move(send, recv, **kwargs))
        else:
            raw = self.transport.bind(collective, send, recv, **kwargs)
        begin, end, failed = call._begin, call._end, call._failed

        def run() -> None:
            begin()
            try:
                raw()
            except BaseException as exc:
                translated = failed(exc)
                if translated is exc:
                    raise
                raise translated from exc
            end()

        return run, call


class Call:
    """One communication on one group, from its start to its end (see the module docstring)."""

    __slots__ = ("group", "name", "size_bytes", "dtype", "participants", "inject", "seconds", "_clock",
                 "_entered", "_result", "_pending")

    def __init__(self, group: Group, name: str, *, size_bytes: int | None, dtype: Any, inject: bool) -> None:
        self.group = group
        self.name = name
        self.size_bytes = size_bytes
        self.dtype = dtype
        self.participants = group.comm.size
        self.inject = inject and group.tracked
        self.seconds = 0.0
        """Host seconds spent inside this call so far (all its runs, for a bound call)."""
        self._clock: Any = None
        self._entered = 0.0
        self._result: Any = None
        self._pending: list[tuple[Any, Any, Any]] = []

    @property
    def size(self) -> int:
        return self.group.comm.size

    @property
    def rank(self) -> int:
        return self.group.comm.rank

    # The steps around the data movement.

    def _begin(self) -> None:
        if self.inject and hooks.active:
            hooks.before(self.name)
        if self.group.tracked:
            tracker.enter(self.name)
            if profiling.sessions and self.size_bytes is not None:
                self._clock = self.group.staging.backend.clock()
                self._clock.start()
        self._entered = MPI.Wtime()

    def _end(self) -> None:
        self.seconds += MPI.Wtime() - self._entered
        if not self.group.tracked:
            return
        tracker.leave()
        if self.inject and hooks.active and self._result is not None:
            hooks.after(self._result)
        if self._clock is not None:
            clock, self._clock = self._clock, None
            profiling.record(self.name, size_bytes=self.size_bytes or 0, dtype=self.dtype or np.uint8,
                             participants=self.participants, seconds=clock.stop())

    def _failed(self, exc: BaseException) -> BaseException:
        """Leave the call after `exc` and return what to raise for it."""
        self._clock = None
        self._pending.clear()
        if self.group.tracked:
            tracker.leave()
        transport = self.group.transport
        if isinstance(exc, transport.errors):
            return transport.lost(exc, self.name, self.group.where)
        return exc

    def __enter__(self) -> Call:
        self._begin()
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 tb: TracebackType | None) -> bool:
        if value is None:
            self._end()
            return False
        translated = self._failed(value)
        if translated is value:
            return False
        raise translated from value

    def result(self, array: Any) -> Any:
        """Name `array` as the call's result (what a planned corruption strikes); return it."""
        self._result = array
        return array

    # Data movement: each device buffer is staged (or synchronized) for the transport.

    def all_reduce(self, send: Any, recv: Any, *, op: ReduceOp = "sum") -> None:
        """Reduce `send` (None: `recv` in place) elementwise over the group into `recv`."""
        s = self.group.staging
        target = s.send_buffer(recv) if send is None else s.recv_buffer(recv)
        self.group.transport.all_reduce(None if send is None else s.send_buffer(send), target, op=op)
        s.finish(target, recv)

    def all_gather(self, send: Any, recv: Any, *, counts: Sequence[int] | None = None) -> None:
        """Gather every member's `send` (None: its block of `recv`, in place) into `recv`."""
        s = self.group.staging
        target = s.send_buffer(recv) if send is None else s.recv_buffer(recv)
        self.group.transport.all_gather(None if send is None else s.send_buffer(send), target, counts=counts)
        s.finish(target, recv)

    def reduce_scatter(self, send: Any, recv: Any, *, op: ReduceOp = "sum",
                       counts: Sequence[int] | None = None) -> None:
        """Reduce `send` over the group and leave this rank its block in `recv`."""
        s = self.group.staging
        target = s.send_buffer(recv) if send is None else s.recv_buffer(recv)
        self.group.transport.reduce_scatter(None if send is None else s.send_buffer(send), target, op=op,
                                            counts=counts)
        s.finish(target, recv)

    def broadcast(self, buffer: Any, *, root: int) -> None:
        """Give every member the contents of `buffer` on group rank `root`."""
        s = self.group.staging
        staged = s.send_buffer(buffer)
        self.group.transport.broadcast(staged, root=root)
        s.finish(staged, buffer)

    def all_to_all(self, send: Any, recv: Any, *, send_counts: Sequence[int] | None = None,
                   recv_counts: Sequence[int] | None = None) -> None:
        """Send block j of `send` (None: of `recv`, in place) to member j, gathering into `recv`."""
        s = self.group.staging
        target = s.send_buffer(recv) if send is None else s.recv_buffer(recv)
        self.group.transport.all_to_all(None if send is None else s.send_buffer(send), target,
                                        send_counts=send_counts, recv_counts=recv_counts)
        s.finish(target, recv)

    def send(self, buffer: Any, *, dest: int, tag: int = 0) -> None:
        self.group.transport.send(self.group.staging.send_buffer(buffer), dest=dest, tag=tag)

    def recv(self, buffer: Any, *, source: int, tag: int = 0) -> None:
        s = self.group.staging
        target = s.recv_buffer(buffer)
        self.group.transport.recv(target, source=source, tag=tag)
        s.finish(target, buffer)

    def sendrecv(self, send: Any, recv: Any, *, dest: int, source: int, tag: int = 0) -> None:
        """Send `send` (None: `recv`, replaced in place) to `dest` while receiving from `source`."""
        s = self.group.staging
        target = s.send_buffer(recv) if send is None else s.recv_buffer(recv)
        self.group.transport.sendrecv(None if send is None else s.send_buffer(send), target,
                                      dest=dest, source=source, tag=tag)
        s.finish(target, recv)

    def start_send(self, buffer: Any, *, dest: int, tag: int = 0) -> Any:
        return self.group.transport.start_send(self.group.staging.send_buffer(buffer), dest=dest, tag=tag)

    def start_recv(self, buffer: Any, *, source: int, tag: int = 0) -> Any:
        """Start a receive into `buffer`; it holds the message after `wait_all`."""
        s = self.group.staging
        target = s.recv_buffer(buffer)
        request = self.group.transport.start_recv(target, source=source, tag=tag)
        if target is not buffer:
            self._pending.append((request, target, buffer))
        return request

    def wait_all(self, requests: Sequence[Any]) -> None:
        """Wait for started sends and receives; staged receives among them then reach their buffers."""
        self.group.transport.wait_all(requests)
        waited = {id(r) for r in requests}
        done = [p for p in self._pending if id(p[0]) in waited]
        self._pending = [p for p in self._pending if id(p[0]) not in waited]
        for _, target, buffer in done:
            self.group.staging.finish(target, buffer)
