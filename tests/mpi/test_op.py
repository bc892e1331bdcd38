"""Collectives at 4 ranks on a 2x2 (tp, dp) mesh: values, layouts, determinism, and errors."""

import numpy as np
import pytest

from tessera_mpi.testing import assert_all
from tessera_mpi import dist, op
from tessera_mpi.errors import AxisError, DivergenceError, LayoutError
from tessera_mpi.reduction.exact_reference import reference_sums
from tessera_mpi.suite.checks.determinism import adversarial, contribution


@pytest.fixture(scope="module")
def mesh():
    return dist.Mesh(axes=["tp", "dp"], shape=(2, 2))


def rank_data(rank, shape=(3, 5), dtype=np.float64):
    return (np.arange(np.prod(shape)).reshape(shape) + 100 * rank + 1).astype(dtype)


def bits(a):
    return np.ascontiguousarray(a).tobytes()


@pytest.mark.mpi(min_size=4)
@pytest.mark.parametrize("name, combine", [
    ("sum", np.sum), ("prod", np.prod), ("max", np.max), ("min", np.min), ("avg", np.mean)])
def test_reductions_over_the_mesh_and_one_axis(mesh, name, combine):
    x = dist.tensor(rank_data(mesh.rank), mesh=mesh)
    everyone = np.stack([rank_data(r) for r in range(4)])
    y = op.all_reduce(x, name)
    assert_all(np.allclose(y.numpy(), combine(everyone, axis=0)) and y.layout == x.layout, name)
    group = mesh.group_ranks("dp", mesh.rank)
    z = op.all_reduce(x, name, axis="dp")
    assert_all(np.allclose(z.numpy(), combine(everyone[list(group)], axis=0)), f"{name} over dp")


@pytest.mark.mpi(min_size=4)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("count", [1, 3, 4, 1000, 70001])
def test_deterministic_sum_is_the_exact_sum_whatever_the_algorithm(mesh, dtype, count):
    everyone = np.stack([contribution(r, count, dtype) for r in range(4)])
    x = dist.tensor(everyone[mesh.rank], mesh=mesh)
    want = reference_sums(everyone) if count <= 1000 else None
    results = {alg: op.all_reduce(x, "sum", deterministic=True, algorithm=alg).numpy()
               for alg in ("auto", "gather", "digits", "alltoall")}
    same = all(bits(r) == bits(results["digits"]) for r in results.values())
    exact = want is None or bits(results["digits"]) == bits(want)
    assert_all(same and exact, f"{dtype.__name__} n={count}: same={same} exact={exact}")


@pytest.mark.mpi(min_size=4)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_adversarial_sums_and_rank_permutations(mesh, dtype):
    matrix = adversarial(4, dtype)
    want = reference_sums(matrix)
    outcomes = []
    for perm in ([0, 1, 2, 3], [3, 1, 0, 2]):
        x = dist.tensor(matrix[perm[mesh.rank]], mesh=mesh)
        for alg in ("gather", "digits", "alltoall"):
            outcomes.append(bits(op.all_reduce(x, "sum", deterministic=True, algorithm=alg).numpy()))
    assert_all(all(o == bits(want) for o in outcomes), "adversarial sums differ from the exact reference")


@pytest.mark.mpi(min_size=4)
def test_deterministic_avg_prod_and_per_axis(mesh):
    everyone = np.stack([contribution(r, 257, np.float32) for r in range(4)])
    x = dist.tensor(everyone[mesh.rank], mesh=mesh)
    group = list(mesh.group_ranks("tp", mesh.rank))
    total = reference_sums(everyone[group])
    s = op.all_reduce(x, "sum", axis="tp", deterministic=True).numpy()
    a = op.all_reduce(x, "avg", axis="tp", deterministic=True).numpy()
    p = op.all_reduce(x, "prod", deterministic=True).numpy()
    ordered = everyone[0] * everyone[1] * everyone[2] * everyone[3]
    ok = bits(s) == bits(total) and bits(a) == bits(total / np.float32(2)) and bits(p) == bits(ordered)
    assert_all(ok and a.dtype == np.float32)


@pytest.mark.mpi(min_size=4)
def test_out_and_in_place(mesh):
    x = dist.tensor(rank_data(mesh.rank), mesh=mesh)
    y = dist.tensor(np.zeros((3, 5)), mesh=mesh)
    total = sum(rank_data(r) for r in range(4))
    returned = op.all_reduce(x, "sum", out=y)
    det_out = dist.tensor(np.zeros((3, 5)), mesh=mesh)
    op.all_reduce(x, "sum", deterministic=True, algorithm="alltoall", out=det_out)
    op.all_reduce(x, "sum", out=x)
    ok = returned is y and np.array_equal(y.numpy(), total) and np.array_equal(x.numpy(), total)
    assert_all(ok and np.array_equal(det_out.numpy(), total))


@pytest.mark.mpi(min_size=4)
def test_all_gather_uneven_and_per_axis(mesh):
    whole = dist.tensor((7, 5), mesh=mesh).numpy()
    w = dist.tensor((7, 5), layout=dist.ShardSpec(("row", "col"), ("tp", "dp")), mesh=mesh)
    g = op.all_gather(w)
    rows = op.all_gather(w, axis="dp")
    ok = (np.array_equal(g.numpy(), whole) and g.layout == dist.Replicate() and g.sharding_valid()
          and rows.layout == dist.ShardSpec(("row",), ("tp",)) and np.array_equal(rows.numpy(), whole[rows.index])
          and rows.sharding_valid())
    assert_all(ok, f"{g.layout} {rows.layout}")
    nested = dist.tensor((9, 2), layout=dist.ShardSpec(("row", "row"), ("tp", "dp")), mesh=mesh)
    with pytest.raises(LayoutError, match="inner axes"):
        op.all_gather(nested, axis="tp")
    inner = op.all_gather(nested, axis="dp")
    assert_all(np.array_equal(inner.numpy(), dist.tensor((9, 2), mesh=mesh).numpy()[inner.index]))


@pytest.mark.mpi(min_size=4)
@pytest.mark.parametrize("deterministic", [False, True])
@pytest.mark.parametrize("dim", [0, 1])
def test_reduce_scatter(mesh, deterministic, dim):
    x = dist.tensor(rank_data(mesh.rank, (5, 7)), mesh=mesh)
    s = op.reduce_scatter(x, "sum", axis="dp", dim=dim, deterministic=deterministic)
    group = mesh.group_ranks("dp", mesh.rank)
    total = sum(rank_data(r, (5, 7)) for r in group)
    ok = (s.layout == dist.ShardSpec((dim,), ("dp",)) and np.array_equal(s.numpy(), total[s.index])
          and s.local_shape[dim] == ((3, 2) if dim == 0 else (4, 3))[mesh.coords[1]])
    assert_all(ok, f"{s.layout} {s.index} {s.local_shape}")


@pytest.mark.mpi(min_size=4)
def test_broadcast_all_to_all_shift_send_recv(mesh):
    x = dist.tensor(rank_data(mesh.rank), mesh=mesh)
    b = op.broadcast(x, root=1, axis="dp")
    ok = np.array_equal(b.numpy(), rank_data(mesh.rank_of((mesh.coords[0], 1))))
    a = dist.tensor((6, 9), layout=dist.ShardSpec(("row",), ("dp",)), mesh=mesh)
    t = op.all_to_all(a, axis="dp", split_dim=1, concat_dim=0)
    back = op.all_to_all(t, axis="dp", split_dim=0, concat_dim=1)
    ok &= t.layout == dist.ShardSpec((1,), ("dp",)) and t.sharding_valid() and np.array_equal(back.numpy(), a.numpy())
    s = op.shift(a, axis="dp")
    source = mesh.rank_of((mesh.coords[0], (mesh.coords[1] - 1) % 2))
    ok &= s.box == a.placed.box(mesh.coords_of(source)) and np.array_equal(s.numpy(), dist.tensor((6, 9), mesh=mesh).numpy()[s.index])
    if mesh.coords[1] == 0:
        op.send(x, axis="dp", dest=1)
        got = x
    else:
        got = op.recv(x, axis="dp", source=0)
    ok &= np.array_equal(got.numpy(), rank_data(mesh.rank_of((mesh.coords[0], 0))))
    assert_all(ok)


@pytest.mark.mpi(min_size=4)
def test_errors_are_raised_on_every_rank(mesh, world):
    x = dist.tensor(rank_data(mesh.rank), mesh=mesh)
    with pytest.raises(ValueError, match="not a reduction"):
        op.all_reduce(x, "median")
    with pytest.raises(AxisError, match="no axis 'pp'"):
        op.all_reduce(x, "sum", axis="pp")
    with pytest.raises(TypeError, match="DistTensor"):
        op.all_reduce(np.ones(3), "sum")
    odd = dist.tensor(rank_data(mesh.rank, (3, 5) if mesh.rank != 2 else (3, 6)), mesh=mesh)
    with pytest.raises(DivergenceError, match="different arguments"):
        op.all_reduce(odd, "sum")
    with pytest.raises(DivergenceError, match="rank 2 passed.*'max'"):
        op.all_reduce(x, "max" if mesh.rank == 2 else "sum")
    uneven = dist.tensor((3, 4), layout=dist.ShardSpec(("row",), ("tp",)), mesh=mesh)
    with pytest.raises(DivergenceError, match="equal local shapes"):
        op.all_reduce(uneven, "sum", axis="tp")
    with pytest.raises(TypeError, match="float64, float32, float16"):
        op.all_reduce(dist.tensor((3,), mesh=mesh, dtype=np.longdouble), "sum", deterministic=True)
    world.Barrier()


LAYOUT_KINDS = {
    "replicated": dist.Replicate(),
    "rows over tp": dist.ShardSpec(("row",), ("tp",)),
    "cols over dp": dist.ShardSpec(("col",), ("dp",)),
    "rows x cols over tp x dp": dist.ShardSpec(("row", "col"), ("tp", "dp")),
}
OPS = {
    "all_reduce": lambda x: op.all_reduce(x, "sum"),
    "all_gather": lambda x: op.all_gather(x),
    "reduce_scatter": lambda x: op.reduce_scatter(x, "sum", axis="dp", dim=0),
    "broadcast": lambda x: op.broadcast(x, root=1),
    "all_to_all": lambda x: op.all_to_all(x, axis="dp", split_dim=0, concat_dim=1),
    "shift": lambda x: op.shift(x, axis="tp"),
}


@pytest.mark.mpi(min_size=4)
@pytest.mark.parametrize("layout", list(LAYOUT_KINDS))
@pytest.mark.parametrize("name", list(OPS))
def test_every_op_on_every_layout_kind_works_or_says_why_on_every_rank(mesh, name, layout):
    """No AttributeError and no rank on its own: a result, or the same clear error everywhere."""
    x = dist.tensor((8, 6), layout=LAYOUT_KINDS[layout], mesh=mesh)
    try:
        y = OPS[name](x)
        # shift hands each rank its neighbour's block on purpose: its data are not in place.
        outcome = ("ok", str(y.layout), name == "shift" or y.sharding_valid())
    except (LayoutError, AxisError, ValueError, TypeError) as exc:
        outcome = (type(exc).__name__, str(exc), True)
    everyone = mesh.comm.allgather(outcome)
    assert_all(all(o == everyone[0] for o in everyone), f"{name} on {layout}: {everyone}")
    assert_all(outcome[2], f"{name} on {layout}: the result's shards are not where its layout says")
    if name == "all_gather" and layout == "replicated":
        assert_all(outcome[0] == "LayoutError" and "nothing to gather" in outcome[1], str(outcome))
