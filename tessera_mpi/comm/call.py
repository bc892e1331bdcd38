"""The one call path: every communication of tessera_mpi's data path is a `Call` on a `Group`.

    with group.call("all_reduce", x.nbytes, x.dtype) as call:
        call.all_reduce(x, y, op="sum")      # staged when needed, then the group's transport

What a call does, in order, and nothing else does it: the fault hooks (a planned drop, hang
or delay strikes as the call starts); the tracker records the call (the roll call reports it)
and, as it ends, the host seconds spent inside it (`tracker.seconds`: a rank's time in MPI
calls, which the suite records per check; a planted delay strikes before the clock starts, so
a late rank shows the time the others waited for it, not its own lateness);
the profiling clock starts while a session is open; the data moves, each device buffer staged
through host memory when the transport cannot take it; a call on a stream-ordered transport
(NCCL) waits for its stream before it ends, unless it is timed, so that a hung kernel is caught
while the tracker still names the call ("nccl all_reduce"); on every way out the tracker leaves the
call; a transport error becomes what the transport says it means (DeviceLostError naming the
lost ranks); on success the result meets the corruption hook and the session gets the record.
The metadata agreement (`comm.check.agree_call`) is a call of its own on the same group.

The result (what a planned corruption strikes) is the buffer the call received into last.
Timed loops bind a call once (`Group.bind`) and run it many times: the same steps, with
everything that can be resolved ahead resolved then.

Control messages (agreements, counts, verdicts) use the group's MPI communicator `comm`
directly; data buffers go through the transport.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from time import perf_counter
from types import TracebackType
from typing import Any

import numpy as np
from mpi4py import MPI

from ..runtime import context
from ..runtime.tracker import tracker
from ..runtime.transfer import Staging
from . import hooks, nccl, profiling
from .transport import Loop, MpiTransport, ReduceOp, Transport, mpi_lost


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
    _calls: dict[str, Call] = field(default_factory=dict, repr=False)
    """Calls by name, reused: making an object per collective costs more than the rest of the
    call path's steps together."""

    @classmethod
    def of(cls, comm: MPI.Intracomm, *, where: Callable[[int], str] | None = None,
           tracked: bool = True, transport: str = "mpi") -> Group:
        """Return the group of `comm`'s ranks over `transport`, "mpi" or "nccl" (no
        communication; ConfigError for "nccl" where NCCL is unavailable)."""
        rt = context.current()
        assert rt is not None, "the runtime starts before any group is made"
        members = MPI.Group.Translate_ranks(comm.Get_group(), list(range(comm.size)), rt.world.Get_group())
        staging = rt.staging
        if transport == "nccl":
            moves: Transport = nccl.make(comm, rt.backend)
            # NCCL takes device buffers as they are and orders them on the stream: no copies, no syncs.
            staging = Staging(rt.backend, direct=True, stream_ordered=True, export=False)
        elif transport == "mpi":
            moves = MpiTransport(comm, device_buffers=rt.cuda_aware)
        else:
            raise ValueError(f"transport must be 'mpi' or 'nccl', got {transport!r}")
        return cls(comm=comm, transport=moves, staging=staging, members=tuple(members),
                   where=where, tracked=tracked)

    @property
    def size(self) -> int:
        return self.comm.size

    @property
    def rank(self) -> int:
        return self.comm.rank

    @contextmanager
    def control(self, what: str) -> Iterator[None]:
        """Translate failures of the bookkeeping a measurement does on `comm` around its calls
        (barriers, calibration, gathers of timings: MPI on every transport, no Call of their
        own) as a call's are: with real fault tolerance a lost process raises DeviceLostError
        naming it, whether it is met in a call or between calls. Local."""
        try:
            yield
        except MPI.Exception as exc:
            translated = mpi_lost(self.comm, exc, what, self.where)
            if translated is exc:
                raise
            raise translated from exc

    def call(self, name: str, size_bytes: int | None = None, dtype: Any = None, *,
             participants: int | None = None, inject: bool = True) -> Call:
        """Return the call `name` on this group, ready to enter (see `Call`)."""
        call = self._calls.get(name)
        if call is None or call.active:
            call = self._calls[name] = Call(self, name)
        call.size_bytes, call.dtype, call.participants, call.inject = size_bytes, dtype, participants, inject
        return call

    def bind(self, name: str, collective: str, send: Any, recv: Any, *, result: Any = None,
             **kwargs: Any) -> tuple[Callable[[], None], Call]:
        """Return (run, call): `run()` makes one call `name` of `collective` on these buffers
        with every step of the call path, and `call.seconds` adds up the time spent inside.

        For timed loops: on host buffers the transport's call is resolved once, so an
        iteration costs the call path's steps and the library call, no more.
        """
        call = Call(self, name, timed=True)
        # A stream-ordered transport takes device buffers as they are: nothing to stage per run.
        if self.staging.device and not self.transport.stream_ordered:
            move = getattr(call, collective)
            # Device buffers are staged (or synchronized) on every run, as in any call.
            raw: Callable[[], None] = (lambda: move(recv, **kwargs)) if collective == "broadcast" \
                else (lambda: move(send, recv, **kwargs))
        else:
            raw = self.transport.bind(collective, send, recv, **kwargs)
        enter, leave = call.__enter__, call.__exit__

        def run() -> None:
            enter()
            try:
                raw()
            except BaseException as exc:
                leave(type(exc), exc, None)  # raises what the failure means, if not `exc` itself
                raise
            call._result = result
            leave(None, None, None)

        return run, call

    def bind_batch(self, call: Call, collective: str, send: Any, recv: Any, *, result: Any = None,
                   **kwargs: Any) -> Batch | None:
        """Return the compiled loop of `collective` on these buffers as one run of `call` (the
        call path's steps once around the whole batch), or None where there is none: device
        buffers (staged on every call), a transport or collective without a compiled loop.

        For `fabric.timing.time_loop`, with the `run` of `bind` on the same buffers as its
        Python fallback.
        """
        loop = None if self.staging.device else self.transport.bind_loop(collective, send, recv, **kwargs)
        return None if loop is None else Batch(call, loop, result)


@dataclass(frozen=True)
class Batch:
    """A compiled timed loop run as one call (see `Group.bind_batch`); collective over the group."""

    call: Call
    loop: Loop
    result: Any

    @property
    def usable(self) -> bool:
        """False while planned faults are active: they strike each call, so the loop runs in
        Python (local: the caller agrees with the other ranks)."""
        return not (hooks.active and self.call.inject and self.call.group.tracked)

    def __call__(self, warmup: int, stamps: np.ndarray) -> None:
        """`warmup` calls, a barrier, len(stamps) - 1 timed calls; the clock in `stamps`."""
        call = self.call
        call.__enter__()
        try:
            self.loop(warmup, stamps)
        except BaseException as exc:
            call.__exit__(type(exc), exc, None)  # raises what the failure means, if not `exc` itself
            raise
        call._result = self.result
        call.__exit__(None, None, None)


class Call:
    """One communication on one group, from its start to its end (see the module docstring).

    The steps are written once, in `__enter__` and `__exit__`; a bound call (`Group.bind`) runs
    them around each iteration (a compiled batch once around its loop, barrier and warm-up
    included). Every tracked call adds its host seconds to `tracker.seconds`; a timed call also
    adds them up in its own `seconds`. The
    data movement methods name the buffer they receive into as the call's result (what a
    planned corruption strikes); `result()` names another.

    `name` is what the tracker and failure messages say. A call that gives its nccl-tests
    `size_bytes` (and `dtype`) is a collective of the table of that name, which profiling
    sessions record with its `participants` (default: the group's size; 2 for a send);
    `inject=False` keeps planned faults out of it (agreements). Made for every collective, so
    it is kept small.
    """

    __slots__ = ("group", "name", "label", "size_bytes", "dtype", "participants", "inject", "timed", "seconds",
                 "active", "_settle", "_clock", "_entered", "_result", "_pending")

    def __init__(self, group: Group, name: str, size_bytes: int | None = None, dtype: Any = None, *,
                 participants: int | None = None, inject: bool = True, timed: bool = False) -> None:
        self.group = group
        self.name = name
        transport = group.transport
        self.label = name if transport.name == "mpi" else f"{transport.label} {name}"
        """What the tracker (and so a roll call and a hang report) says: the name, after the
        transport's label where it is not MPI ("nccl all_reduce")."""
        self._settle = transport.stream_ordered and not timed
        """Wait for the stream before leaving: a stream-ordered call returns once its work is
        queued, and a hung kernel would otherwise surface at a later synchronization, under
        another call's name or none. Timed calls do not (their clock's end event waits once)."""
        self.size_bytes = size_bytes
        self.dtype = dtype
        self.participants = participants
        self.inject = inject
        self.timed = timed
        self.seconds = 0.0
        """Host seconds spent inside this call so far (all its runs), for a timed call."""
        self.active = False
        """Between entry and exit (a group makes a new call rather than reuse an active one)."""
        self._clock: Any = None
        self._result: Any = None
        self._pending: list[tuple[Any, Any, Any]] | None = None

    @property
    def size(self) -> int:
        return self.group.comm.size

    @property
    def rank(self) -> int:
        return self.group.comm.rank

    def __enter__(self) -> Call:
        self.active = True
        self._result = None
        tracked = self.group.tracked
        if hooks.active and self.inject and tracked:
            hooks.before(self.name)
        if tracked:
            # The tracker's two fields, written here and nowhere else (see runtime/tracker.py).
            tracker.calls += 1
            tracker.current = self.label
            if profiling.sessions and self.size_bytes is not None:
                self._clock = self.group.staging.backend.clock()
                self._clock.start()
        # One clock read each way, no object: every call pays it (tracker.seconds, `seconds`).
        self._entered = perf_counter()
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 tb: TracebackType | None) -> bool:
        if value is None and self._settle:
            try:
                self.group.transport.synchronize()
            except BaseException as exc:
                # What the failure means (raised by the call below), or the failure itself.
                self.__exit__(type(exc), exc, None)
                raise
        self.active = False
        inside = perf_counter() - self._entered
        if self.timed:
            self.seconds += inside
        tracked = self.group.tracked
        if tracked:
            tracker.seconds += inside
        if value is not None:
            self._clock = self._pending = None
            if tracked:
                tracker.current = ""
            transport = self.group.transport
            if not isinstance(value, transport.errors):
                return False
            translated = transport.lost(value, self.name, self.group.where)
            if hooks.active and tracked:
                hooks.lost(translated)
            if translated is value:
                return False
            raise translated from value
        if not tracked:
            return False
        tracker.current = ""
        if hooks.active and self.inject and self._result is not None:
            hooks.after(self._result)
        if self._clock is not None:
            clock, self._clock = self._clock, None
            profiling.record(self.name, size_bytes=self.size_bytes or 0, dtype=self.dtype or np.uint8,
                             participants=self.participants or self.group.comm.size, seconds=clock.stop())
        return False

    def result(self, array: Any) -> Any:
        """Name `array` as the call's result (what a planned corruption strikes); return it."""
        self._result = array
        return array

    # Data movement: each device buffer is staged (or synchronized) for the transport.

    def all_reduce(self, send: Any, recv: Any, *, op: ReduceOp = "sum") -> None:
        """Reduce `send` (None: `recv` in place) elementwise over the group into `recv`."""
        self._result = recv
        s = self.group.staging
        if not s.device:
            self.group.transport.all_reduce(send, recv, op=op)
            return
        target = s.send_buffer(recv) if send is None else s.recv_buffer(recv)
        self.group.transport.all_reduce(None if send is None else s.send_buffer(send), target, op=op)
        s.finish(target, recv)

    def all_gather(self, send: Any, recv: Any, *, counts: Sequence[int] | None = None) -> None:
        """Gather every member's `send` (None: its block of `recv`, in place) into `recv`."""
        self._result = recv
        s = self.group.staging
        target = s.send_buffer(recv) if send is None else s.recv_buffer(recv)
        self.group.transport.all_gather(None if send is None else s.send_buffer(send), target, counts=counts)
        s.finish(target, recv)

    def reduce_scatter(self, send: Any, recv: Any, *, op: ReduceOp = "sum",
                       counts: Sequence[int] | None = None) -> None:
        """Reduce `send` over the group and leave this rank its block in `recv`."""
        self._result = recv
        s = self.group.staging
        target = s.send_buffer(recv) if send is None else s.recv_buffer(recv)
        self.group.transport.reduce_scatter(None if send is None else s.send_buffer(send), target, op=op,
                                            counts=counts)
        s.finish(target, recv)

    def broadcast(self, buffer: Any, *, root: int) -> None:
        """Give every member the contents of `buffer` on group rank `root`."""
        self._result = buffer
        s = self.group.staging
        staged = s.send_buffer(buffer)
        self.group.transport.broadcast(staged, root=root)
        s.finish(staged, buffer)

    def all_to_all(self, send: Any, recv: Any, *, send_counts: Sequence[int] | None = None,
                   recv_counts: Sequence[int] | None = None) -> None:
        """Send block j of `send` (None: of `recv`, in place) to member j, gathering into `recv`."""
        self._result = recv
        s = self.group.staging
        target = s.send_buffer(recv) if send is None else s.recv_buffer(recv)
        self.group.transport.all_to_all(None if send is None else s.send_buffer(send), target,
                                        send_counts=send_counts, recv_counts=recv_counts)
        s.finish(target, recv)

    def send(self, buffer: Any, *, dest: int, tag: int = 0) -> None:
        self.group.transport.send(self.group.staging.send_buffer(buffer), dest=dest, tag=tag)

    def recv(self, buffer: Any, *, source: int, tag: int = 0) -> None:
        self._result = buffer
        s = self.group.staging
        target = s.recv_buffer(buffer)
        self.group.transport.recv(target, source=source, tag=tag)
        s.finish(target, buffer)

    def sendrecv(self, send: Any, recv: Any, *, dest: int, source: int, tag: int = 0) -> None:
        """Send `send` (None: `recv`, replaced in place) to `dest` while receiving from `source`."""
        self._result = recv
        s = self.group.staging
        target = s.send_buffer(recv) if send is None else s.recv_buffer(recv)
        self.group.transport.sendrecv(None if send is None else s.send_buffer(send), target,
                                      dest=dest, source=source, tag=tag)
        s.finish(target, recv)

    def start_send(self, buffer: Any, *, dest: int, tag: int = 0) -> Any:
        return self.group.transport.start_send(self.group.staging.send_buffer(buffer), dest=dest, tag=tag)

    def start_recv(self, buffer: Any, *, source: int, tag: int = 0) -> Any:
        """Start a receive into `buffer`; it holds the message after `wait_all`."""
        self._result = buffer
        s = self.group.staging
        target = s.recv_buffer(buffer)
        request = self.group.transport.start_recv(target, source=source, tag=tag)
        if target is not buffer:
            self._pending = (self._pending or []) + [(request, target, buffer)]
        return request

    def wait_all(self, requests: Sequence[Any]) -> None:
        """Wait for started sends and receives; staged receives among them then reach their buffers."""
        self.group.transport.wait_all(requests)
        waited = {id(r) for r in requests}
        pending = self._pending or []
        done = [p for p in pending if id(p[0]) in waited]
        self._pending = [p for p in pending if id(p[0]) not in waited]
        for _, target, buffer in done:
            self.group.staging.finish(target, buffer)
