"""The user API in one process (an MPI singleton): a 1-rank mesh is still a mesh."""

import numpy as np
import pytest

from tessera_mpi import dist
from tessera_mpi.errors import AxisError, LayoutError


@pytest.fixture(scope="module")
def mesh():
    return dist.Mesh(axes=["tp", "pp", "dp"], devices=range(1))


def test_mesh_of_one(mesh):
    assert mesh.shape == (1, 1, 1) and mesh.coords == (0, 0, 0) and mesh.is_member
    assert mesh.comm_for(["tp", "dp"]).size == 1
    assert "rank 0 (tp=0,pp=0,dp=0; host" in mesh.describe(0)
    assert repr(mesh) == "Mesh(axes=['tp', 'pp', 'dp'], devices=range(0, 1), shape=(1, 1, 1))"
    with pytest.raises(AxisError, match="no axis 'ep'"):
        mesh.axis_size("ep")


def test_guide_tensor_on_one_rank(mesh):
    w = dist.tensor((1_000, 1_000), layout=dist.ShardSpec(partition=("row", "col"), mesh_axes=("tp", "pp")),
                    mesh=mesh)
    assert w.global_shape == (1000, 1000) and w.local_shape == (1000, 1000) and w.dtype == np.float32
    assert w.index == (slice(0, 1000), slice(0, 1000))
    assert w.sharding_valid()


def test_audit_finds_a_corrupted_element(mesh):
    w = dist.tensor((10, 10), mesh=mesh)
    w.local[3, 4] = 0
    report = w.sharding_report()
    assert not report.ok and [p.rule for p in report.problems] == ["content"]
    assert "1 of 100 elements" in str(report)


def test_data_tensor(mesh):
    y = dist.tensor([1.0], mesh=mesh, layout=dist.Replicate())
    assert y.numpy().tolist() == [1.0] and not y.patterned
    assert y.sharding_valid()


@pytest.mark.parametrize(
    "layout, shape, error, text",
    [
        (dist.ShardSpec(partition=("row",), mesh_axes=("ep",)), (4, 4), AxisError, "no axis 'ep'"),
        (dist.ShardSpec(partition=("col",), mesh_axes=("tp",)), (4,), LayoutError, "splits dimension 1"),
        ("rows", (4,), TypeError, "ShardSpec"),
    ],
)
def test_layout_errors(mesh, layout, shape, error, text):
    with pytest.raises(error, match=text):
        dist.tensor(shape, mesh=mesh, layout=layout)


def test_tensor_needs_a_mesh():
    with pytest.raises(TypeError, match="mesh="):
        dist.tensor((2, 2), mesh=None)


def test_op_argument_errors_need_no_communication(mesh):
    from tessera_mpi import op

    x = dist.tensor((4, 3), mesh=mesh)
    with pytest.raises(ValueError, match="choose one of sum, prod, max, min, avg"):
        op.all_reduce(x, "mean")
    with pytest.raises(ValueError, match="algorithm='ring'"):
        op.all_reduce(x, "sum", deterministic=True, algorithm="ring")
    with pytest.raises(TypeError, match="needs a floating dtype"):
        op.all_reduce(dist.tensor((3,), mesh=mesh, dtype=np.int32), "avg")
    with pytest.raises(LayoutError, match="not sharded over"):
        op.all_gather(x, axis="tp")
    with pytest.raises(LayoutError, match="dim=2"):
        op.reduce_scatter(x, axis="dp", dim=2)
    with pytest.raises(ValueError, match="root=1"):
        op.broadcast(x, root=1)
    with pytest.raises(TypeError, match="one mesh axis"):
        op.shift(x, axis=["tp", "dp"])
    with pytest.raises(ValueError, match="out holds"):
        op.all_reduce(x, "sum", out=dist.tensor((4, 4), mesh=mesh))


def test_single_rank_collectives_are_identities(mesh):
    from tessera_mpi import op

    x = dist.tensor((5, 4), mesh=mesh)
    assert np.array_equal(op.all_reduce(x, "sum", deterministic=True).numpy(), x.numpy())
    assert np.array_equal(op.all_reduce(x, "prod").numpy(), x.numpy())
    s = op.reduce_scatter(x, axis="dp", dim=1, deterministic=True)
    assert s.layout == dist.ShardSpec((1,), ("dp",)) and np.array_equal(s.numpy(), x.numpy())
