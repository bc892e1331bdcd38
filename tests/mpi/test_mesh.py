"""Meshes at 4 ranks: coordinates, sub-communicators, subsets, and errors that never hang."""

import pytest

from tessera_mpi.testing import assert_all
from tessera_mpi import dist
from tessera_mpi.errors import DivergenceError, MeshSpecError, NotInMeshError


@pytest.mark.mpi(min_size=4)
def test_two_axis_mesh(world):
    mesh = dist.Mesh(axes=["tp", "dp"], shape=(2, 2))
    r = world.rank
    assert_all(mesh.rank == r and mesh.coords == (r // 2, r % 2), f"coords {mesh.coords}")
    tp, dp = mesh.comm_for("tp"), mesh.comm_for("dp")
    assert_all(tp.size == 2 and dp.size == 2)
    assert_all(tuple(tp.allgather(r)) == mesh.group_ranks("tp", r) == (r % 2, 2 + r % 2))
    assert_all(tuple(dp.allgather(r)) == mesh.group_ranks("dp", r) == (r - r % 2, r - r % 2 + 1))
    assert_all(mesh.comm_for(["dp", "tp"]).size == 4)
    sub = mesh["dp"]
    assert_all(sub.shape == (2,) and sub.devices == mesh.group_ranks("dp", r) and sub.coords == (r % 2,))
    assert_all(all(p.host for p in mesh.placements) and len(mesh.placements) == 4)


@pytest.mark.mpi(min_size=4)
def test_default_shape_and_row_major_order(world):
    mesh = dist.Mesh(axes=["tp", "pp", "dp"])
    assert_all(mesh.shape == dist.default_shape(world.size, 3))
    assert_all(all(mesh.rank_of(mesh.coords_of(q)) == q for q in range(mesh.size)))
    cart = mesh.comm
    assert_all(tuple(cart.Get_coords(world.rank)) == mesh.coords)


@pytest.mark.mpi(min_size=4)
def test_subset_of_devices(world):
    mesh = dist.Mesh(axes=["dp"], devices=[3, 1])
    member = world.rank in (1, 3)
    assert_all(mesh.is_member == member)
    # Members and non-members must make the same number of collective assertions.
    if member:
        t = dist.tensor((6, 2), mesh=mesh, layout=dist.ShardSpec(("row",), ("dp",)))
        expected_rank, expected_rows = (0, (0, 3)) if world.rank == 3 else (1, (3, 6))
        fine = (mesh.rank == expected_rank and mesh.comm.size == 2 and t.box[0] == expected_rows
                and t.sharding_valid())
        assert_all(fine, f"devices[i] is mesh rank i: rank {mesh.rank}, rows {t.box[0]}")
    else:
        try:
            dist.tensor((6, 2), mesh=mesh)
            raised = False
        except NotInMeshError as exc:
            raised = "is not in" in str(exc)
        assert_all(raised, "a non-member creating a tensor gets NotInMeshError")


@pytest.mark.mpi(min_size=4)
def test_invalid_arguments_raise_everywhere_without_communication(world):
    with pytest.raises(MeshSpecError, match="49 positions"):
        dist.Mesh(axes=["tp", "pp"], shape=(7, 7))
    with pytest.raises(MeshSpecError, match="outside the job"):
        dist.Mesh(axes=["dp"], devices=range(world.size + 1))
    with pytest.raises(MeshSpecError, match="distinct"):
        dist.Mesh(axes=["dp", "dp"], shape=(world.size, 1))
    world.Barrier()


@pytest.mark.mpi(min_size=4)
def test_arguments_that_differ_across_ranks(world):
    shape = (2, 2) if world.rank != 1 else (4, 1)
    with pytest.raises(DivergenceError, match="rank 1 passed"):
        dist.Mesh(axes=["tp", "dp"], shape=shape)
    world.Barrier()
