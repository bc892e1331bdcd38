"""Collectives on distributed tensors: all-reduce, all-gather, reduce-scatter, broadcast,
all-to-all, and point-to-point along a mesh axis.

Every function here is collective over the mesh (or over the named axes' groups): every member
must call it with the same arguments, in the same order. With check=True (the default) one small
allgather first verifies that, raising the same DivergenceError on every rank instead of letting
MPI corrupt memory or hang; benchmarks pass check=False. Bad arguments (an unknown op, an axis
the mesh lacks) raise before any communication. NumPy and CuPy tensors both work: device
buffers are synchronized before MPI and, unless MPI is CUDA-aware, staged through the host.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import hashlib
from collections import Counter

import numpy as np
from mpi4py import MPI

from . import deterministic as det
from . import profile
from .fault import hooks
from .runtime.tracker import tracker
from .call_check import check_call
from ._text import rank_ranges
from .errors import CorruptionError, LayoutError
from .layout import Layout, Placed, Replicate, ShardSpec, place, volume
from .mesh import Mesh
from .tensor import DistTensor

ReduceOp = Literal["sum", "prod", "max", "min", "avg"]
REDUCE_OPS: tuple[str, ...] = ("sum", "prod", "max", "min", "avg")
_MPI_OPS = {"sum": MPI.SUM, "prod": MPI.PROD, "max": MPI.MAX, "min": MPI.MIN, "avg": MPI.SUM}
Axes = str | Sequence[str] | None

__all__ = [
    "REDUCE_OPS",
    "all_gather",
    "all_reduce",
    "all_to_all",
    "broadcast",
    "recv",
    "reduce_scatter",
    "send",
    "shift",
]


def _tensor(x: object, what: str) -> DistTensor:
    if not isinstance(x, DistTensor):
        raise TypeError(f"{what} takes a DistTensor (from dist.tensor), got {type(x).__name__}")
    if x.epoch != x.mesh.epoch:
        x.refresh()
    return x


def _reduce_op(op: object, what: str) -> str:
    if op not in REDUCE_OPS:
        raise ValueError(f"{what}: op={op!r} is not a reduction; choose one of {', '.join(REDUCE_OPS)}")
    return str(op)


def _one_axis(mesh: Mesh, axis: object, what: str) -> int:
    if not isinstance(axis, str):
        raise TypeError(f"{what} works along one mesh axis; pass axis='name', got {axis!r}")
    return mesh.axis_index(axis)


def _world_rank(mesh: Mesh, axes: tuple[int, ...]) -> Any:
    """Return a function from a rank of this rank's group along `axes` to its world rank."""
    members = mesh.group_ranks([mesh.axes[a] for a in axes], mesh.rank) if axes else (mesh.rank,)
    return lambda r: mesh.devices[members[r]]


def _signature(x: DistTensor, *extra: Any) -> tuple:
    return (x.dtype.str, x.global_shape, str(x.layout), *extra)


def _enter(mesh: Mesh, name: str) -> Any:
    """Begin a collective's communication: planned faults strike, the tracker records the call,
    and a clock starts when a profiling session is open (each nearly free otherwise)."""
    if hooks.active:
        hooks.before(name)
    tracker.enter(name)
    if not profile._sessions:
        return None
    clock = mesh.runtime.backend.clock()
    clock.start()
    return clock


def _leave(clock: Any, name: str, size_bytes: int, dtype: Any, participants: int, result: Any = None) -> None:
    """End a collective's communication: the result may be corrupted by a planned fault, and
    the profiling session gets the call."""
    tracker.leave()
    if hooks.active and result is not None:
        hooks.after(result)
    if clock is not None:
        profile.record(name, size_bytes=size_bytes, dtype=dtype, participants=participants,
                       seconds=clock.stop())


def _failure(exc: MPI.Exception, comm: MPI.Comm, mesh: Mesh, what: str) -> BaseException:
    """Return what to raise for an MPI error in a collective (DeviceLostError for a failure)."""
    tracker.leave()
    return hooks.lost(exc, comm, what, mesh.where)


def _output(x: DistTensor, out: DistTensor | None, what: str) -> DistTensor | None:
    """Validate `out` (None, x itself for in place, or a tensor shaped like x)."""
    if out is None or out is x:
        return out
    if not isinstance(out, DistTensor) or out.mesh is not x.mesh:
        raise TypeError(f"{what}: out must be a DistTensor on the same mesh, got {out!r}")
    if out.local.shape != x.local.shape or out.local.dtype != x.local.dtype:
        raise ValueError(f"{what}: out holds {out.local_shape} {out.dtype}, the result is "
                         f"{x.local_shape} {x.dtype}")
    return out


def all_reduce(
    x: DistTensor,
    op: ReduceOp = "sum",
    *,
    axis: Axes = None,
    deterministic: bool = False,
    algorithm: str = "auto",
    out: DistTensor | None = None,
    verify: bool = False,
    check: bool = True,
) -> DistTensor:
    """Reduce every rank's local data elementwise over the mesh (or the groups of `axis`).

    The result keeps x's layout; it is written into `out` when given (`out=x` reduces in
    place). With deterministic=True, "sum" and "avg" of float32/float64 data are the correctly
    rounded sum of the contributions (avg: that sum divided by the group size in x's dtype),
    bitwise identical on every rank, run, algorithm, rank order and backend; "prod" multiplies
    in rank order; "max" and "min" are exact anyway. `algorithm` ("auto", "digits", "alltoall")
    picks the deterministic sum's method; all give the same bits. With verify=True the ranks
    then compare digests of their results and raise CorruptionError on every rank, naming the
    ranks whose result differs from the majority's (silent data corruption); this needs results
    that are bitwise equal on every rank, which deterministic=True and max/min guarantee.
    Collective over the mesh.
    """
    if type(x) is not DistTensor:
        x = _tensor(x, "op.all_reduce")
    if x.epoch != x.mesh.epoch:
        x.refresh()
    mpi_op = _MPI_OPS.get(op) if type(op) is str else None
    if mpi_op is None:
        _reduce_op(op, "op.all_reduce")
    if out is not None and out is not x:
        _output(x, out, "op.all_reduce")
    local = x.local
    dtype = local.dtype
    exact = deterministic and op in ("sum", "avg") and dtype.kind == "f"
    if deterministic or op == "avg":
        _check_reduction(op, dtype, exact, algorithm)
    mesh = x.mesh
    axes, comm = mesh.group(axis)
    if check:
        check_call(comm, "op.all_reduce", _signature(x, op, axes, deterministic, algorithm),
                   local=x.local_shape, rank_of=_world_rank(mesh, axes))
    rt = mesh.runtime
    xp, staging = rt.backend.xp, rt.staging
    if not local.flags.c_contiguous:
        local = xp.ascontiguousarray(local)
    target = None if out is None else out.local
    clock = _enter(mesh, "all_reduce")
    try:
        if exact:
            result = det.deterministic_sum(comm, xp, staging, local, algorithm=algorithm, out=target)
        elif deterministic and op == "prod" and dtype.kind == "f":
            result = _ordered_product(comm, x, local)
        elif out is x:
            result = local
            buffer = staging.send_buffer(local)
            comm.Allreduce(MPI.IN_PLACE, buffer, op=mpi_op)
            staging.finish(buffer, local)
        else:
            result = xp.empty_like(local) if target is None else target
            send, recv = staging.send_buffer(local), staging.recv_buffer(result)
            comm.Allreduce(send, recv, op=mpi_op)
            staging.finish(recv, result)
    except MPI.Exception as exc:
        raise _failure(exc, comm, mesh, "all_reduce") from exc
    _leave(clock, "all_reduce", local.nbytes, dtype, comm.size, result)
    if verify:
        _verify(mesh, axes, comm, result, "op.all_reduce")
    if op == "avg":
        result = xp.divide(result, dtype.type(comm.size)).astype(dtype, copy=False)
    if out is None:
        return x.with_local(result)
    if result is not out.local:
        out.local[...] = result
    out.patterned = False
    return out


def _verify(mesh: Mesh, axes: tuple[int, ...], comm: MPI.Intracomm, result: Any, what: str) -> None:
    """Raise CorruptionError on every rank unless every rank of `comm` holds the same bits."""
    host = np.ascontiguousarray(mesh.runtime.backend.to_host(result))
    mine = np.frombuffer(hashlib.blake2b(host.tobytes(), digest_size=16).digest(), dtype=np.uint8)
    digests = np.empty((comm.size, 16), dtype=np.uint8)
    comm.Allgather(mine, digests)
    kinds = [bytes(d) for d in digests]
    majority, count = Counter(kinds).most_common(1)[0]
    if count == comm.size:
        return
    members = mesh.group_ranks([mesh.axes[a] for a in axes], mesh.rank)
    clear = 2 * count > comm.size
    odd = [mesh.devices[members[r]] for r, k in enumerate(kinds) if not clear or k != majority]
    where = "; ".join(mesh.runtime.describe(r) + f" at {mesh.where(r)}" for r in odd[:8])
    verdict = "differ from the majority's" if clear else "disagree, with no majority"
    raise CorruptionError(f"{what}(verify=True): the results of ranks {rank_ranges(odd)} {verdict} "
                          f"(silent data corruption?): {where}", tuple(odd))


def _check_reduction(op: str, dtype: np.dtype, exact: bool, algorithm: str) -> None:
    """Validate the arguments that only deterministic reductions and averages use."""
    if algorithm not in det.ALGORITHMS:
        raise ValueError(f"op.all_reduce: algorithm={algorithm!r}; choose one of {', '.join(det.ALGORITHMS)}")
    if op == "avg" and dtype.kind != "f":
        raise TypeError(f"op.all_reduce: op='avg' needs a floating dtype, the tensor holds {dtype}")
    if exact and dtype not in (np.float32, np.float64):
        raise TypeError(f"deterministic sums support float32 and float64, the tensor holds {dtype}")


def _ordered_product(comm: MPI.Intracomm, x: DistTensor, local: Any) -> Any:
    """Gather every contribution and multiply them in rank order: the same bits everywhere."""
    xp = x.mesh.runtime.backend.xp
    staging = x.mesh.runtime.staging
    gathered = xp.empty((comm.size,) + tuple(local.shape), dtype=local.dtype)
    send, recv = staging.send_buffer(local), staging.recv_buffer(gathered)
    comm.Allgather(send, recv)
    staging.finish(recv, gathered)
    result = gathered[0].copy()
    for rank in range(1, comm.size):
        result *= gathered[rank]
    return result


def _without_axes(layout: Layout, removed: set[str]) -> Layout:
    if not isinstance(layout, ShardSpec):
        return layout
    pairs = [(p, a) for p, a in zip(layout.partition, layout.mesh_axes) if a not in removed]
    if not pairs:
        return Replicate()
    return ShardSpec(partition=tuple(p for p, _ in pairs), mesh_axes=tuple(a for _, a in pairs))


def _with_axes(layout: Layout, dim: int, added: Sequence[str]) -> ShardSpec:
    partition = layout.partition if isinstance(layout, ShardSpec) else ()
    mesh_axes = layout.mesh_axes if isinstance(layout, ShardSpec) else ()
    return ShardSpec(partition=(*partition, *([dim] * len(added))), mesh_axes=(*mesh_axes, *added))


def _member_boxes(mesh: Mesh, placed: Placed, members: Sequence[int]) -> list[tuple[tuple[int, int], ...]]:
    return [placed.box(mesh.coords_of(m)) for m in members]


def _relative(box: Sequence[tuple[int, int]], origin: Sequence[tuple[int, int]]) -> tuple[slice, ...]:
    return tuple(slice(a - o, b - o) for (a, b), (o, _) in zip(box, origin))


def _intersect(a: Sequence[tuple[int, int]], b: Sequence[tuple[int, int]]) -> tuple[tuple[int, int], ...]:
    return tuple((max(a0, b0), max(max(a0, b0), min(a1, b1))) for (a0, a1), (b0, b1) in zip(a, b))


def all_gather(x: DistTensor, *, axis: Axes = None, check: bool = True) -> DistTensor:
    """Gather the shards of x along `axis` (default: every axis x is sharded over).

    The result is x with those mesh axes removed from its layout: each rank holds the union of
    its group's blocks. Gathered axes must be the inner ones of their dimension's split.
    Uneven shards are fine. Collective over the mesh.
    """
    x = _tensor(x, "op.all_gather")
    mesh = x.mesh
    sharded = x.layout.mesh_axes if isinstance(x.layout, ShardSpec) else ()
    names = tuple(sharded) if axis is None else ((axis,) if isinstance(axis, str) else tuple(axis))
    axes, comm = mesh.group(names) if names else ((), None)
    missing = [n for n in names if n not in sharded]
    if missing:
        raise LayoutError(f"op.all_gather: {x.layout} is not sharded over {missing}; nothing to gather there")
    for dim_axes in x.placed.dim_axes:
        gathered = [a for a in dim_axes if a in axes]
        if gathered and tuple(dim_axes[-len(gathered):]) != tuple(gathered):
            raise LayoutError(f"op.all_gather: gather the inner axes of a dimension first; {x.layout} "
                              f"splits it over {[mesh.axes[a] for a in dim_axes]}")
    if check:
        check_call(comm, "op.all_gather", _signature(x, axes), rank_of=_world_rank(mesh, axes))
    if not axes:
        return x.with_local(x.local.copy())
    layout = _without_axes(x.layout, {mesh.axes[a] for a in axes})
    placed = place(layout, mesh, x.global_shape)
    box = placed.box(mesh.coords)
    members = mesh.group_ranks([mesh.axes[a] for a in axes], mesh.rank)
    boxes = _member_boxes(mesh, x.placed, members)
    counts = [volume(b) for b in boxes]
    displs = [sum(counts[:i]) for i in range(len(counts))]
    rt = mesh.runtime
    xp = rt.backend.xp
    flat = xp.empty(sum(counts), dtype=x.dtype)
    clock = _enter(mesh, "all_gather")
    try:
        send, recv = rt.staging.send_buffer(xp.ascontiguousarray(x.local).reshape(-1)), rt.staging.recv_buffer(flat)
        comm.Allgatherv(send, [recv, (counts, displs)])
        rt.staging.finish(recv, flat)
    except MPI.Exception as exc:
        raise _failure(exc, comm, mesh, "all_gather") from exc
    _leave(clock, "all_gather", flat.nbytes, x.dtype, comm.size, flat)
    local = xp.empty(tuple(b - a for a, b in box), dtype=x.dtype)
    for member_box, count, displ in zip(boxes, counts, displs):
        shape = tuple(b - a for a, b in member_box)
        local[_relative(member_box, box)] = flat[displ:displ + count].reshape(shape)
    return DistTensor(local, mesh=mesh, layout=layout, placed=placed, box=box, patterned=False)


def reduce_scatter(
    x: DistTensor,
    op: ReduceOp = "sum",
    *,
    axis: str | Sequence[str],
    dim: int = 0,
    deterministic: bool = False,
    check: bool = True,
) -> DistTensor:
    """Reduce x over the groups of `axis` and leave each rank its shard of the result.

    x must not be sharded over `axis` (every group member holds a full contribution). The
    result's layout adds `axis` as the inner split of tensor dimension `dim`, with the uneven
    rule of `shard_bounds`. deterministic=True gives the correctly rounded sum for "sum"/"avg".
    Collective over the mesh.
    """
    x = _tensor(x, "op.reduce_scatter")
    op = _reduce_op(op, "op.reduce_scatter")
    mesh = x.mesh
    names = (axis,) if isinstance(axis, str) else tuple(axis)
    axes, comm = mesh.group(names)
    if not 0 <= dim < x.ndim:
        raise LayoutError(f"op.reduce_scatter: dim={dim} but the tensor has {x.ndim} dimensions")
    if isinstance(x.layout, ShardSpec) and set(x.layout.mesh_axes) & set(names):
        raise LayoutError(f"op.reduce_scatter: {x.layout} is already sharded over {names}")
    if op == "avg" and x.dtype.kind != "f":
        raise TypeError(f"op.reduce_scatter: op='avg' needs a floating dtype, the tensor holds {x.dtype}")
    exact = deterministic and op in ("sum", "avg") and x.dtype.kind == "f"
    if exact and x.dtype not in (np.float32, np.float64):
        raise TypeError(f"deterministic sums support float32 and float64, the tensor holds {x.dtype}")
    if check:
        check_call(comm, "op.reduce_scatter", _signature(x, op, axes, dim, deterministic),
                   local=x.local_shape, rank_of=_world_rank(mesh, axes))
    layout = _with_axes(x.layout, dim, [mesh.axes[a] for a in axes])
    placed = place(layout, mesh, x.global_shape)
    box = placed.box(mesh.coords)
    members = mesh.group_ranks([mesh.axes[a] for a in axes], mesh.rank)
    boxes = _member_boxes(mesh, placed, members)
    rt = mesh.runtime
    xp = rt.backend.xp
    front = xp.ascontiguousarray(xp.moveaxis(x.local, dim, 0))
    row = int(np.prod(front.shape[1:], dtype=np.int64))
    origin = x.box[dim][0]
    counts = [(b[dim][1] - b[dim][0]) * row for b in boxes]
    displs = [(b[dim][0] - origin) * row for b in boxes]
    flat = front.reshape(-1)
    clock = _enter(mesh, "reduce_scatter")
    try:
        if exact:
            blocks = xp.zeros((comm.size, max(counts)), dtype=x.dtype)
            for i, (count, displ) in enumerate(zip(counts, displs)):
                blocks[i, :count] = flat[displ:displ + count]
            part = det.reduce_scatter_exact(comm, xp, rt.staging, blocks)[: counts[comm.rank]]
        else:
            part = xp.empty(counts[comm.rank], dtype=x.dtype)
            send, recv = rt.staging.send_buffer(flat), rt.staging.recv_buffer(part)
            comm.Reduce_scatter(send, recv, recvcounts=counts, op=_MPI_OPS[op])
            rt.staging.finish(recv, part)
    except MPI.Exception as exc:
        raise _failure(exc, comm, mesh, "reduce_scatter") from exc
    _leave(clock, "reduce_scatter", flat.nbytes, x.dtype, comm.size, part)
    if op == "avg":
        part = xp.divide(part, x.dtype.type(comm.size)).astype(x.dtype, copy=False)
    shard = part.reshape((box[dim][1] - box[dim][0],) + tuple(front.shape[1:]))
    local = xp.ascontiguousarray(xp.moveaxis(shard, 0, dim))
    return DistTensor(local, mesh=mesh, layout=layout, placed=placed, box=box, patterned=False)


def broadcast(x: DistTensor, *, root: int = 0, axis: Axes = None, check: bool = True) -> DistTensor:
    """Return the local data of the group member `root` (its rank in the group) on every member.

    Collective over the mesh. For one axis, `root` is the coordinate along it.
    """
    x = _tensor(x, "op.broadcast")
    mesh = x.mesh
    axes, comm = mesh.group(axis)
    size = comm.size
    if isinstance(root, bool) or not isinstance(root, (int, np.integer)) or not 0 <= root < size:
        raise ValueError(f"op.broadcast: root={root!r} is not a rank of a group of {size}")
    if check:
        check_call(comm, "op.broadcast", _signature(x, axes, int(root)), local=x.local_shape,
                   rank_of=_world_rank(mesh, axes))
    rt = mesh.runtime
    data = rt.backend.xp.ascontiguousarray(x.local).copy()
    clock = _enter(mesh, "broadcast")
    try:
        buffer = rt.staging.send_buffer(data)
        comm.Bcast(buffer, root=int(root))
        rt.staging.finish(buffer, data)
    except MPI.Exception as exc:
        raise _failure(exc, comm, mesh, "broadcast") from exc
    _leave(clock, "broadcast", data.nbytes, x.dtype, comm.size, data)
    return x.with_local(data)


def all_to_all(
    x: DistTensor, *, axis: str, split_dim: int, concat_dim: int, check: bool = True
) -> DistTensor:
    """Reshard x along one mesh axis: from split over `concat_dim` to split over `split_dim`.

    Each rank cuts its block along `split_dim` into one piece per group member, sends piece j to
    member j, and joins what it receives along `concat_dim` (the MPI all-to-all). x must be
    split over `axis` on `concat_dim` (as its inner axis) and not on `split_dim`; the result's
    layout moves `axis` from `concat_dim` to the inner split of `split_dim`. Uneven shards are
    fine. Collective over the mesh.
    """
    x = _tensor(x, "op.all_to_all")
    mesh = x.mesh
    a = _one_axis(mesh, axis, "op.all_to_all")
    for name, d in (("split_dim", split_dim), ("concat_dim", concat_dim)):
        if not 0 <= d < x.ndim:
            raise LayoutError(f"op.all_to_all: {name}={d} but the tensor has {x.ndim} dimensions")
    if split_dim == concat_dim:
        raise LayoutError("op.all_to_all: split_dim and concat_dim must differ")
    if x.placed.dim_axes[concat_dim][-1:] != (a,):
        raise LayoutError(f"op.all_to_all: {x.layout} must split dimension {concat_dim} over {axis!r} "
                          "(as its inner axis) to concatenate along it")
    if check:
        check_call(mesh.comm_for(axis), "op.all_to_all", _signature(x, a, split_dim, concat_dim),
                   rank_of=_world_rank(mesh, (a,)))
    layout = _with_axes(_without_axes(x.layout, {axis}), split_dim, [axis])
    placed = place(layout, mesh, x.global_shape)
    return _redistribute(x, layout, placed, (a,))


def _redistribute(x: DistTensor, layout: Layout, placed: Placed, axes: tuple[int, ...]) -> DistTensor:
    """Move data within the groups of `axes` from x's layout to `layout` with one Alltoallv."""
    mesh = x.mesh
    rt = mesh.runtime
    xp = rt.backend.xp
    members = mesh.group_ranks([mesh.axes[a] for a in axes], mesh.rank)
    old_boxes = _member_boxes(mesh, x.placed, members)
    new_boxes = _member_boxes(mesh, placed, members)
    me = members.index(mesh.rank)
    mine_old, mine_new = old_boxes[me], new_boxes[me]
    outgoing = [_intersect(mine_old, peer_new) for peer_new in new_boxes]
    incoming = [_intersect(peer_old, mine_new) for peer_old in old_boxes]
    send_counts = [volume(b) for b in outgoing]
    recv_counts = [volume(b) for b in incoming]
    send_displs = [sum(send_counts[:i]) for i in range(len(members))]
    recv_displs = [sum(recv_counts[:i]) for i in range(len(members))]
    pieces = [xp.ascontiguousarray(x.local[_relative(b, mine_old)]).reshape(-1) for b in outgoing]
    packed = xp.concatenate(pieces) if pieces else xp.empty(0, dtype=x.dtype)
    received = xp.empty(sum(recv_counts), dtype=x.dtype)
    comm = mesh.group([mesh.axes[a] for a in axes])[1]
    clock = _enter(mesh, "all_to_all")
    try:
        send, recv = rt.staging.send_buffer(packed), rt.staging.recv_buffer(received)
        comm.Alltoallv([send, (send_counts, send_displs)], [recv, (recv_counts, recv_displs)])
        rt.staging.finish(recv, received)
    except MPI.Exception as exc:
        raise _failure(exc, comm, mesh, "all_to_all") from exc
    _leave(clock, "all_to_all", packed.nbytes, x.dtype, comm.size, received)
    local = xp.empty(tuple(b - a for a, b in mine_new), dtype=x.dtype)
    for box, count, displ in zip(incoming, recv_counts, recv_displs):
        local[_relative(box, mine_new)] = received[displ:displ + count].reshape(tuple(b - a for a, b in box))
    return DistTensor(local, mesh=mesh, layout=layout, placed=placed, box=mine_new, patterned=False)


def _peer_box(x: DistTensor, axis: int, coordinate: int) -> tuple[tuple[int, int], ...]:
    coords = list(x.mesh.coords)
    coords[axis] = coordinate
    return x.placed.box(coords)


def _coordinate(mesh: Mesh, axis: int, value: object, what: str) -> int:
    size = mesh.shape[axis]
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not 0 <= value < size:
        raise ValueError(f"{what}={value!r} is not a coordinate along {mesh.axes[axis]!r} (0..{size - 1})")
    return int(value)


def send(x: DistTensor, *, axis: str, dest: int, tag: int = 0) -> None:
    """Send this rank's block to the rank at coordinate `dest` along `axis` (blocking).

    Point-to-point: only this rank and `dest` take part; `dest` must call `recv` with a tensor
    of the same layout.
    """
    x = _tensor(x, "op.send")
    mesh = x.mesh
    a = _one_axis(mesh, axis, "op.send")
    to = _coordinate(mesh, a, dest, "op.send: dest")
    data = mesh.runtime.backend.xp.ascontiguousarray(x.local)
    comm = mesh.comm_for(axis)
    clock = _enter(mesh, "send")
    try:
        comm.Send(mesh.runtime.staging.send_buffer(data), dest=to, tag=tag)
    except MPI.Exception as exc:
        raise _failure(exc, comm, mesh, "send") from exc
    _leave(clock, "send", data.nbytes, x.dtype, 2)


def recv(like: DistTensor, *, axis: str, source: int, tag: int = 0) -> DistTensor:
    """Receive the block that the rank at coordinate `source` along `axis` sends with `send`.

    The result has `like`'s layout and holds the source's block (its box), whose shape the
    layout determines. Point-to-point: only this rank and `source` take part.
    """
    like = _tensor(like, "op.recv")
    mesh = like.mesh
    a = _one_axis(mesh, axis, "op.recv")
    src = _coordinate(mesh, a, source, "op.recv: source")
    box = _peer_box(like, a, src)
    rt = mesh.runtime
    out = rt.backend.xp.empty(tuple(b - s for s, b in box), dtype=like.dtype)
    comm = mesh.comm_for(axis)
    clock = _enter(mesh, "recv")
    try:
        buffer = rt.staging.recv_buffer(out)
        comm.Recv(buffer, source=src, tag=tag)
        rt.staging.finish(buffer, out)
    except MPI.Exception as exc:
        raise _failure(exc, comm, mesh, "recv") from exc
    _leave(clock, "recv", out.nbytes, like.dtype, 2, out)
    return DistTensor(out, mesh=mesh, layout=like.layout, placed=like.placed, box=box, patterned=False)


def shift(x: DistTensor, *, axis: str, offset: int = 1) -> DistTensor:
    """Send this rank's block `offset` steps along `axis` (cyclically) and receive the block
    from `offset` steps back: a ring step, deadlock-free. Collective over the axis' groups."""
    x = _tensor(x, "op.shift")
    mesh = x.mesh
    a = _one_axis(mesh, axis, "op.shift")
    size = mesh.shape[a]
    here = mesh.coords[a]
    to, frm = (here + offset) % size, (here - offset) % size
    box = _peer_box(x, a, frm)
    rt = mesh.runtime
    xp = rt.backend.xp
    out = xp.empty(tuple(b - s for s, b in box), dtype=x.dtype)
    data = xp.ascontiguousarray(x.local)
    comm = mesh.comm_for(axis)
    clock = _enter(mesh, "sendrecv")
    try:
        send_buffer = rt.staging.send_buffer(data)
        recv_buffer = rt.staging.recv_buffer(out)
        comm.Sendrecv(send_buffer, dest=to, recvbuf=recv_buffer, source=frm)
        rt.staging.finish(recv_buffer, out)
    except MPI.Exception as exc:
        raise _failure(exc, comm, mesh, "shift") from exc
    _leave(clock, "sendrecv", data.nbytes, x.dtype, size, out)
    return DistTensor(out, mesh=mesh, layout=x.layout, placed=x.placed, box=box, patterned=False)
