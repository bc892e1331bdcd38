"""Collectives on distributed tensors: all-reduce, all-gather, reduce-scatter, broadcast,
all-to-all, and point-to-point along a mesh axis.

Every function here is collective over the mesh (or over the named axes' groups): every member
must call it with the same arguments, in the same order. With check=True (the default) one small
all-gather first verifies that, raising the same DivergenceError on every rank instead of letting
the library corrupt memory or hang; benchmarks pass check=False. Bad arguments (an unknown op,
a wrong dimension) are found on each rank and agreed in that check, so one rank's bad argument
raises the same error on every rank; with check=False they raise before any communication.
Every collective is bounded by the collective timeout (runtime/sentinel.py). Each function
works out the layout, then makes one call on the call path (`comm.call`), which does the fault hooks, the tracker,
profiling, staging of device buffers and the translation of failures.

`transport="nccl"` moves the data over the NCCL transport of the same mesh group (its own
communicator, bootstrapped over the group's MPI communicator on first use; the emulated NCCL
on the emulated backend) instead of MPI (the default). The argument check still travels over
MPI; so does `verify`. Where NCCL is unavailable (host buffers, CuPy without NCCL) every rank
raises the same ConfigError, from the argument check (with check=False: on each rank, before
any communication). Results are the same as over MPI: bitwise for deterministic=True, for
max/min, and for the moves.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any, Literal

import numpy as np

from .comm import nccl
from .comm.call import Call, Group
from .comm.check import agree_call
from .dist.dtensor import DistTensor
from .dist.layout import Layout, Placed, Replicate, ShardSpec, place, volume
from .dist.mesh import Mesh
from .errors import ConfigError, CorruptionError, LayoutError
from .reduction import deterministic as det
from .reduction import formats
from .util.text import rank_ranges

ReduceOp = Literal["sum", "prod", "max", "min", "avg"]
REDUCE_OPS: tuple[str, ...] = ("sum", "prod", "max", "min", "avg")
TRANSPORTS: tuple[str, ...] = ("mpi", "nccl")
"""What `transport=` accepts."""
Axes = str | Sequence[str] | None
Box = tuple[tuple[int, int], ...]

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
    if not isinstance(op, str):
        raise TypeError(f"{what}: op must be a name such as 'sum', got {type(op).__name__} {op!r}")
    if op not in REDUCE_OPS:
        raise ValueError(f"{what}: op={op!r} is not a reduction; choose one of {', '.join(REDUCE_OPS)}")
    return op


def _check_transport(mesh: Mesh, transport: object, what: str) -> None:
    """Raise ValueError for a transport that is not one, ConfigError where NCCL cannot run here
    (local: the argument check agrees on it)."""
    if transport == "mpi":
        return
    if not isinstance(transport, str) or transport not in TRANSPORTS:
        raise ValueError(f"{what}: transport={transport!r}; choose one of {', '.join(TRANSPORTS)}")
    reason = nccl.unavailable(mesh.runtime.backend)
    if reason:
        raise ConfigError(f"{what}(transport='nccl'): NCCL is unavailable: {reason}")


def _moves(mesh: Mesh, axis: Axes, group: Group, transport: str) -> Group:
    """The group the data moves on: `group` (MPI) or the NCCL group of the same ranks (no
    communication: its communicator is made on its first call)."""
    return group if transport == "mpi" else mesh.group(axis, transport=transport)[1]


def _index(value: object, what: str, size: int, meaning: str, *,
           error: type[ValueError] = ValueError) -> int:
    """Return `value` as an index below `size`: TypeError for a non-integer, `error` out of range."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{what}={value!r} must be an int ({meaning})")
    if not 0 <= value < size:
        raise error(f"{what}={value!r} is not {meaning} (0..{size - 1})")
    return int(value)


def _dim(value: object, what: str, x: DistTensor) -> int:
    return _index(value, what, x.ndim, f"a dimension of the {x.ndim}-dimensional tensor", error=LayoutError)


def _one_axis(mesh: Mesh, axis: object, what: str) -> int:
    if not isinstance(axis, str):
        raise TypeError(f"{what} works along one mesh axis; pass axis='name', got {axis!r}")
    return mesh.axis_index(axis)


def _argument_error(check: bool, validate: Callable[[], Any]) -> Exception | None:
    """Run `validate`; return the argument error it raised, for `agree_call` to raise on every
    rank of the group (so one rank's bad argument fails them all, and none goes on alone).
    With check=False there is no agreement: raise it here."""
    try:
        validate()
    except (TypeError, ValueError) as exc:  # LayoutError and AxisError are ValueErrors
        if not check:
            raise
        return exc
    return None


def _signature(x: DistTensor, *extra: Any) -> tuple:
    return (x.dtype.str, x.global_shape, str(x.layout), *extra)


def _output(x: DistTensor, out: DistTensor | None, what: str) -> DistTensor | None:
    """Validate `out` (None, x itself for in place, or a tensor shaped like x)."""
    if out is None or out is x:
        return out
    if not isinstance(out, DistTensor):
        raise TypeError(f"{what}: out must be a DistTensor, got {type(out).__name__}")
    if out.mesh is not x.mesh:
        raise ValueError(f"{what}: out lives on another mesh ({out.mesh}) than the tensor ({x.mesh})")
    if out.local.shape != x.local.shape or out.local.dtype != x.local.dtype:
        raise ValueError(f"{what}: out holds {out.local_shape} {out.dtype}, the result is "
                         f"{x.local_shape} {x.dtype}")
    return out


def _check_reduction(op: str, dtype: np.dtype, exact: bool, algorithm: str, what: str) -> None:
    """Validate the arguments that only deterministic reductions and averages use."""
    if algorithm not in det.ALGORITHMS:
        raise ValueError(f"{what}: algorithm={algorithm!r}; choose one of {', '.join(det.ALGORITHMS)}")
    if op == "avg" and not _floating(dtype):
        raise TypeError(f"{what}: op='avg' needs a floating dtype, the tensor holds {dtype}")
    if exact and not formats.is_supported(dtype):  # imports ml_dtypes only for a bfloat16 tensor
        names = ", ".join(d.name for d in formats.supported())
        raise TypeError(f"deterministic sums support {names}, the tensor holds {dtype}")


def _floating(dtype: np.dtype) -> bool:
    """Whether `dtype` is a floating format (NumPy's, or bfloat16, which NumPy files as "V")."""
    return dtype.kind == "f" or formats.is_supported(dtype)


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
    transport: str = "mpi",
) -> DistTensor:
    """Reduce every rank's local data elementwise over the mesh (or the groups of `axis`).

    The result keeps x's layout; it is written into `out` when given (`out=x` reduces in
    place). With deterministic=True, "sum" and "avg" of floating data are the correctly
    rounded sum of the contributions (avg: that sum divided by the group size in x's dtype),
    bitwise identical on every rank, run, algorithm, rank order and backend (float16 and
    bfloat16 too); "prod" multiplies in rank order; "max" and "min" are exact anyway.
    `algorithm` ("auto", "gather", "digits", "alltoall")
    picks the deterministic sum's method; all give the same bits. With verify=True the ranks
    then compare digests of their results and raise CorruptionError on every rank, naming the
    ranks whose result differs from the majority's (silent data corruption); this needs results
    that are bitwise equal on every rank, which deterministic=True and max/min guarantee.
    transport="nccl" moves the data over NCCL (the deterministic sum's exchange of slices and
    all-gather too, with the exact sum where the data is: on the device); the same bits.
    Collective over the mesh.
    """
    if type(x) is not DistTensor or x.epoch != x.mesh.epoch:
        x = _tensor(x, "op.all_reduce")
    mesh = x.mesh
    axes, group = mesh.group(axis)
    local = x.local
    dtype = local.dtype
    error = None
    if type(op) is not str or op not in REDUCE_OPS or (out is not None and out is not x) or deterministic \
            or op == "avg" or transport != "mpi":
        # Inline rather than through _argument_error: this is every out= call's path.
        try:
            if type(op) is not str or op not in REDUCE_OPS:
                _reduce_op(op, "op.all_reduce")
            if out is not None and out is not x:
                _output(x, out, "op.all_reduce")
            if deterministic or op == "avg":
                _check_reduction(op, dtype, deterministic and op in ("sum", "avg") and _floating(dtype),
                                 algorithm, "op.all_reduce")
            _check_transport(mesh, transport, "op.all_reduce")
        except (TypeError, ValueError) as exc:
            if not check:
                raise
            error = exc
    if check:
        agree_call(group, "op.all_reduce", _signature(x, op if error is None else repr(op), axes, deterministic,
                                                      algorithm, repr(transport)), local=x.local_shape, error=error)
    if not local.flags.c_contiguous:
        local = mesh.runtime.backend.xp.ascontiguousarray(local)
    target = None if out is None else out.local
    moves = group if transport == "mpi" else _moves(mesh, axis, group, transport)
    with moves.call("all_reduce", local.nbytes, dtype) as call:
        if deterministic and _floating(dtype) and op in ("sum", "avg", "prod"):
            result = call.result(_ordered(call, x, local, op, algorithm=algorithm, target=target))
        elif out is x:
            call.all_reduce(None, local, op="sum" if op == "avg" else op)
            result = local
        else:
            result = mesh.runtime.backend.xp.empty_like(local) if target is None else target
            call.all_reduce(local, result, op="sum" if op == "avg" else op)
    if verify:
        _verify(mesh, group, result, "op.all_reduce")
    if op == "avg":
        result = mesh.runtime.backend.xp.divide(result, dtype.type(group.size)).astype(dtype, copy=False)
    if out is None:
        return x.with_local(result)
    if result is not out.local:
        out.local[...] = result
    out.patterned = False
    return out


def _ordered(call: Call, x: DistTensor, local: Any, op: str, *, algorithm: str, target: Any) -> Any:
    """Return the deterministic reduction of floating `local`: the correctly rounded sum (into
    `target` when given), or the product in rank order."""
    xp = x.mesh.runtime.backend.xp
    if op == "prod":
        return _ordered_product(call, xp, local)
    return det.deterministic_sum(call, xp, local, algorithm=algorithm, out=target)


def _ordered_product(call: Call, xp: Any, local: Any) -> Any:
    """Gather every contribution and multiply them in rank order: the same bits everywhere."""
    gathered = xp.empty((call.size,) + tuple(local.shape), dtype=local.dtype)
    call.all_gather(det.movable(local), det.movable(gathered))
    result = gathered[0].copy()
    for rank in range(1, call.size):
        result *= gathered[rank]
    return result


def _verify(mesh: Mesh, group: Group, result: Any, what: str) -> None:
    """Raise CorruptionError on every rank unless every member of `group` holds the same bits."""
    host = np.ascontiguousarray(mesh.runtime.backend.to_host(result))
    mine = np.frombuffer(hashlib.blake2b(host.tobytes(), digest_size=16).digest(), dtype=np.uint8)
    digests = np.empty((group.size, 16), dtype=np.uint8)
    with group.call(f"{what} (verify)", inject=False):
        group.comm.Allgather(mine, digests)
    kinds = [bytes(d) for d in digests]
    majority, count = Counter(kinds).most_common(1)[0]
    if count == group.size:
        return
    clear = 2 * count > group.size
    odd = [group.members[r] for r, k in enumerate(kinds) if not clear or k != majority]
    where = "; ".join(mesh.runtime.describe(r) + f" at {mesh.where(r)}" for r in odd[:8])
    verdict = "differ from the majority's" if clear else "disagree, with no majority"
    raise CorruptionError(f"{what}(verify=True): the results of ranks {rank_ranges(odd)} {verdict} "
                          f"(silent data corruption?): {where}", tuple(odd))


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


def _member_boxes(mesh: Mesh, placed: Placed, members: Sequence[int]) -> list[Box]:
    return [placed.box(mesh.coords_of(m)) for m in members]


def _relative(box: Box, origin: Box) -> tuple[slice, ...]:
    return tuple(slice(a - o, b - o) for (a, b), (o, _) in zip(box, origin))


def _intersect(a: Box, b: Box) -> Box:
    return tuple((max(a0, b0), max(max(a0, b0), min(a1, b1))) for (a0, a1), (b0, b1) in zip(a, b))


def _shape(box: Box) -> tuple[int, ...]:
    return tuple(b - a for a, b in box)


def _unpacked(xp: Any, flat: Any, boxes: Sequence[Box], box: Box) -> Any:
    """Return the block `box` assembled from `flat`, which holds the blocks `boxes` one after
    the other (each in row-major order)."""
    local = xp.empty(_shape(box), dtype=flat.dtype)
    start = 0
    for piece in boxes:
        count = volume(piece)
        local[_relative(piece, box)] = flat[start:start + count].reshape(_shape(piece))
        start += count
    return local


def _gather_axes(x: DistTensor, axis: Axes) -> tuple[str, ...]:
    """Return the mesh axes `op.all_gather` gathers over, validated against x's layout."""
    mesh = x.mesh
    sharded = x.layout.mesh_axes if isinstance(x.layout, ShardSpec) else ()
    if not sharded:
        raise LayoutError(f"op.all_gather: {x.layout} is not sharded over any mesh axis; every rank "
                          "already holds the whole tensor, so there is nothing to gather")
    names = tuple(sharded) if axis is None else ((axis,) if isinstance(axis, str) else tuple(axis))
    if not names:
        raise LayoutError("op.all_gather: axis=() names no mesh axis to gather over")
    missing = [n for n in names if n not in sharded]
    if missing:
        raise LayoutError(f"op.all_gather: {x.layout} is not sharded over {missing}; nothing to gather there")
    indices = {mesh.axis_index(n) for n in names}
    for dim_axes in x.placed.dim_axes:
        gathered = [a for a in dim_axes if a in indices]
        if gathered and tuple(dim_axes[-len(gathered):]) != tuple(gathered):
            raise LayoutError(f"op.all_gather: gather the inner axes of a dimension first; {x.layout} "
                              f"splits it over {[mesh.axes[a] for a in dim_axes]}")
    return names


def all_gather(x: DistTensor, *, axis: Axes = None, check: bool = True, transport: str = "mpi") -> DistTensor:
    """Gather the shards of x along `axis` (default: every axis x is sharded over).

    The result is x with those mesh axes removed from its layout: each rank holds the union of
    its group's blocks. Gathered axes must be the inner ones of their dimension's split.
    Uneven shards are fine. A replicated tensor has nothing to gather: LayoutError. Collective
    over the mesh.
    """
    x = _tensor(x, "op.all_gather")
    mesh = x.mesh
    names: tuple[str, ...] = ()
    try:
        names = _gather_axes(x, axis)
    except LayoutError as exc:
        # The group is unknown when the axes are wrong: agree over the whole mesh, which every
        # rank of a mesh with a wrong layout or axis can reach.
        if not check:
            raise
        agree_call(mesh.group(None)[1], "op.all_gather", _signature(x, repr(axis)), error=exc)
    axes, group = mesh.group(names)
    error = _argument_error(check, lambda: _check_transport(mesh, transport, "op.all_gather"))
    if check:
        agree_call(group, "op.all_gather", _signature(x, axes, repr(transport)), error=error)
    layout = _without_axes(x.layout, {mesh.axes[a] for a in axes})
    placed = place(layout, mesh, x.global_shape)
    box = placed.box(mesh.coords)
    boxes = _member_boxes(mesh, x.placed, mesh.group_ranks([mesh.axes[a] for a in axes], mesh.rank))
    counts = [volume(b) for b in boxes]
    xp = mesh.runtime.backend.xp
    flat = xp.empty(sum(counts), dtype=x.dtype)
    with _moves(mesh, names, group, transport).call("all_gather", flat.nbytes, x.dtype) as call:
        call.all_gather(xp.ascontiguousarray(x.local).reshape(-1), flat, counts=counts)
    return DistTensor(_unpacked(xp, flat, boxes, box), mesh=mesh, layout=layout, placed=placed, box=box,
                      patterned=False)


def reduce_scatter(
    x: DistTensor,
    op: ReduceOp = "sum",
    *,
    axis: str | Sequence[str],
    dim: int = 0,
    deterministic: bool = False,
    check: bool = True,
    transport: str = "mpi",
) -> DistTensor:
    """Reduce x over the groups of `axis` and leave each rank its shard of the result.

    x must not be sharded over `axis` (every group member holds a full contribution). The
    result's layout adds `axis` as the inner split of tensor dimension `dim`, with the uneven
    rule of `shard_bounds`. deterministic=True gives the correctly rounded sum for "sum"/"avg".
    Collective over the mesh.
    """
    x = _tensor(x, "op.reduce_scatter")
    mesh = x.mesh
    names = (axis,) if isinstance(axis, str) else tuple(axis)
    axes, group = mesh.group(names)
    given = (op, dim)

    def validate() -> None:
        _reduce_op(op, "op.reduce_scatter")
        _dim(dim, "op.reduce_scatter: dim", x)
        if isinstance(x.layout, ShardSpec) and set(x.layout.mesh_axes) & set(names):
            raise LayoutError(f"op.reduce_scatter: {x.layout} is already sharded over {names}")
        _check_reduction(op, x.dtype, deterministic and op in ("sum", "avg") and _floating(x.dtype), "auto",
                         "op.reduce_scatter")
        _check_transport(mesh, transport, "op.reduce_scatter")

    error = _argument_error(check, validate)
    if check:
        agree_call(group, "op.reduce_scatter", _signature(x, repr(given), axes, deterministic, repr(transport)),
                   local=x.local_shape, error=error)
    op, dim = _reduce_op(op, "op.reduce_scatter"), _dim(dim, "op.reduce_scatter: dim", x)
    exact = deterministic and op in ("sum", "avg") and _floating(x.dtype)
    layout = _with_axes(x.layout, dim, [mesh.axes[a] for a in axes])
    placed = place(layout, mesh, x.global_shape)
    box = placed.box(mesh.coords)
    boxes = _member_boxes(mesh, placed, mesh.group_ranks([mesh.axes[a] for a in axes], mesh.rank))
    xp = mesh.runtime.backend.xp
    front = xp.ascontiguousarray(xp.moveaxis(x.local, dim, 0))
    row = int(np.prod(front.shape[1:], dtype=np.int64))
    counts = [(b[dim][1] - b[dim][0]) * row for b in boxes]
    flat = front.reshape(-1)
    with _moves(mesh, names, group, transport).call("reduce_scatter", flat.nbytes, x.dtype) as call:
        part = call.result(_scattered(call, xp, flat, counts, [(b[dim][0] - x.box[dim][0]) * row for b in boxes],
                                      op, exact=exact))
    if op == "avg":
        part = xp.divide(part, x.dtype.type(group.size)).astype(x.dtype, copy=False)
    shard = part.reshape((box[dim][1] - box[dim][0],) + tuple(front.shape[1:]))
    local = xp.ascontiguousarray(xp.moveaxis(shard, 0, dim))
    return DistTensor(local, mesh=mesh, layout=layout, placed=placed, box=box, patterned=False)


def _scattered(call: Call, xp: Any, flat: Any, counts: list[int], displs: list[int], op: str, *,
               exact: bool) -> Any:
    """Return this rank's block of the reduction of `flat`, whose block i starts at displs[i]."""
    if not exact:
        part = xp.empty(counts[call.rank], dtype=flat.dtype)
        call.reduce_scatter(flat, part, op="sum" if op == "avg" else op, counts=counts)
        return part
    # Equal rows let the library use its all-to-all algorithms, not the slower all-to-all-v.
    blocks = xp.zeros((call.size, max(counts)), dtype=flat.dtype)
    for i, (count, displ) in enumerate(zip(counts, displs)):
        blocks[i, :count] = flat[displ:displ + count]
    return det.reduce_scatter_exact(call, xp, blocks)[: counts[call.rank]]


def broadcast(x: DistTensor, *, root: int = 0, axis: Axes = None, check: bool = True,
              transport: str = "mpi") -> DistTensor:
    """Return the local data of the group member `root` (its rank in the group) on every member.

    Collective over the mesh. For one axis, `root` is the coordinate along it.
    """
    x = _tensor(x, "op.broadcast")
    mesh = x.mesh
    axes, group = mesh.group(axis)

    def validate() -> None:
        _index(root, "op.broadcast: root", group.size, f"a rank of a group of {group.size}")
        _check_transport(mesh, transport, "op.broadcast")

    error = _argument_error(check, validate)
    if check:
        agree_call(group, "op.broadcast", _signature(x, axes, repr(root), repr(transport)), local=x.local_shape,
                   error=error)
    root = _index(root, "op.broadcast: root", group.size, f"a rank of a group of {group.size}")
    data = mesh.runtime.backend.xp.ascontiguousarray(x.local).copy()
    with _moves(mesh, axis, group, transport).call("broadcast", data.nbytes, x.dtype) as call:
        call.broadcast(data, root=root)
    return x.with_local(data)


def all_to_all(
    x: DistTensor, *, axis: str, split_dim: int, concat_dim: int, check: bool = True, transport: str = "mpi"
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
    _, group = mesh.group(axis)
    given = (split_dim, concat_dim)

    def validate() -> None:
        split, concat = _dim(split_dim, "op.all_to_all: split_dim", x), _dim(concat_dim, "op.all_to_all: concat_dim", x)
        if split == concat:
            raise LayoutError("op.all_to_all: split_dim and concat_dim must differ")
        if x.placed.dim_axes[concat][-1:] != (a,):
            raise LayoutError(f"op.all_to_all: {x.layout} must split dimension {concat} over {axis!r} "
                              "(as its inner axis) to concatenate along it")
        _check_transport(mesh, transport, "op.all_to_all")

    error = _argument_error(check, validate)
    if check:
        agree_call(group, "op.all_to_all", _signature(x, a, repr(given), repr(transport)), error=error)
    split_dim = _dim(split_dim, "op.all_to_all: split_dim", x)
    concat_dim = _dim(concat_dim, "op.all_to_all: concat_dim", x)
    layout = _with_axes(_without_axes(x.layout, {axis}), split_dim, [axis])
    return _redistribute(x, _moves(mesh, axis, group, transport), layout, place(layout, mesh, x.global_shape),
                         (a,))


def _redistribute(x: DistTensor, group: Group, layout: Layout, placed: Placed, axes: tuple[int, ...]) -> DistTensor:
    """Move data within the groups of `axes` from x's layout to `layout` with one all-to-all."""
    mesh = x.mesh
    xp = mesh.runtime.backend.xp
    members = mesh.group_ranks([mesh.axes[a] for a in axes], mesh.rank)
    old_boxes = _member_boxes(mesh, x.placed, members)
    new_boxes = _member_boxes(mesh, placed, members)
    me = members.index(mesh.rank)
    mine_old, mine_new = old_boxes[me], new_boxes[me]
    outgoing = [_intersect(mine_old, peer_new) for peer_new in new_boxes]
    incoming = [_intersect(peer_old, mine_new) for peer_old in old_boxes]
    recv_counts = [volume(b) for b in incoming]
    pieces = [xp.ascontiguousarray(x.local[_relative(b, mine_old)]).reshape(-1) for b in outgoing]
    packed = xp.concatenate(pieces) if pieces else xp.empty(0, dtype=x.dtype)
    received = xp.empty(sum(recv_counts), dtype=x.dtype)
    with group.call("all_to_all", packed.nbytes, x.dtype) as call:
        call.all_to_all(packed, received, send_counts=[volume(b) for b in outgoing], recv_counts=recv_counts)
    return DistTensor(_unpacked(xp, received, incoming, mine_new), mesh=mesh, layout=layout, placed=placed,
                      box=mine_new, patterned=False)


def _peer_box(x: DistTensor, axis: int, coordinate: int) -> Box:
    coords = list(x.mesh.coords)
    coords[axis] = coordinate
    return x.placed.box(coords)


def send(x: DistTensor, *, axis: str, dest: int, tag: int = 0, transport: str = "mpi") -> None:
    """Send this rank's block to the rank at coordinate `dest` along `axis` (blocking).

    Point-to-point: only this rank and `dest` take part; `dest` must call `recv` with a tensor
    of the same layout (and the same transport: over NCCL the tag is not used, messages of a
    pair match in program order).
    """
    x = _tensor(x, "op.send")
    mesh = x.mesh
    a = _one_axis(mesh, axis, "op.send")
    to = _index(dest, "op.send: dest", mesh.shape[a], f"a coordinate along {axis!r}")
    _check_transport(mesh, transport, "op.send")
    data = mesh.runtime.backend.xp.ascontiguousarray(x.local)
    _, group = mesh.group(axis, transport=transport)
    with group.call("send", data.nbytes, x.dtype, participants=2) as call:
        call.send(data, dest=to, tag=tag)


def recv(like: DistTensor, *, axis: str, source: int, tag: int = 0, transport: str = "mpi") -> DistTensor:
    """Receive the block that the rank at coordinate `source` along `axis` sends with `send`.

    The result has `like`'s layout and holds the source's block (its box), whose shape the
    layout determines. Point-to-point: only this rank and `source` take part.
    """
    like = _tensor(like, "op.recv")
    mesh = like.mesh
    a = _one_axis(mesh, axis, "op.recv")
    src = _index(source, "op.recv: source", mesh.shape[a], f"a coordinate along {axis!r}")
    _check_transport(mesh, transport, "op.recv")
    box = _peer_box(like, a, src)
    out = mesh.runtime.backend.xp.empty(_shape(box), dtype=like.dtype)
    _, group = mesh.group(axis, transport=transport)
    with group.call("recv", out.nbytes, like.dtype, participants=2) as call:
        call.recv(out, source=src, tag=tag)
    return DistTensor(out, mesh=mesh, layout=like.layout, placed=like.placed, box=box, patterned=False)


def shift(x: DistTensor, *, axis: str, offset: int = 1, transport: str = "mpi") -> DistTensor:
    """Send this rank's block `offset` steps along `axis` (cyclically) and receive the block
    from `offset` steps back: a ring step, deadlock-free. Collective over the axis' groups."""
    x = _tensor(x, "op.shift")
    mesh = x.mesh
    a = _one_axis(mesh, axis, "op.shift")
    if isinstance(offset, bool) or not isinstance(offset, (int, np.integer)):
        raise TypeError(f"op.shift: offset={offset!r} must be an int")
    _check_transport(mesh, transport, "op.shift")
    size, here = mesh.shape[a], mesh.coords[a]
    to, frm = (here + int(offset)) % size, (here - int(offset)) % size
    box = _peer_box(x, a, frm)
    xp = mesh.runtime.backend.xp
    out = xp.empty(_shape(box), dtype=x.dtype)
    data = xp.ascontiguousarray(x.local)
    _, group = mesh.group(axis, transport=transport)
    with group.call("sendrecv", data.nbytes, x.dtype) as call:
        call.sendrecv(data, out, dest=to, source=frm)
    return DistTensor(out, mesh=mesh, layout=x.layout, placed=x.placed, box=box, patterned=False)
