"""Sharded tensors at 4 ranks: layouts, uneven splits, and an audit that names the bad rank."""

import numpy as np
import pytest

from tessera_mpi.testing import assert_all
from tessera_mpi import dist


@pytest.fixture(scope="module")
def mesh():
    return dist.Mesh(axes=["tp", "dp"], shape=(2, 2))


def _same_everywhere(world, value):
    values = world.allgather(value)
    return all(v == values[0] for v in values)


@pytest.mark.mpi(min_size=4)
def test_guide_layout_at_four_ranks(world, mesh):
    w = dist.tensor((1_000, 1_000), layout=dist.ShardSpec(partition=("row",), mesh_axes=("tp",)), mesh=mesh)
    rows = (0, 500) if mesh.coords[0] == 0 else (500, 1000)
    assert_all(w.box == (rows, (0, 1000)) and w.local_shape == (500, 1000))
    report = w.sharding_report()
    assert_all(report.ok and report.shards == 2 and report.copies == 2, str(report))


@pytest.mark.mpi(min_size=4)
def test_uneven_and_empty_shards(world, mesh):
    w = dist.tensor((3, 5), layout=dist.ShardSpec(partition=("row", "col"), mesh_axes=("tp", "dp")), mesh=mesh)
    expected = {0: ((0, 2), (0, 3)), 1: ((0, 2), (3, 5)), 2: ((2, 3), (0, 3)), 3: ((2, 3), (3, 5))}
    assert_all(w.box == expected[world.rank], f"{w.box}")
    assert_all(w.sharding_valid())
    z = dist.tensor((1, 4), layout=dist.ShardSpec(partition=("row", "row"), mesh_axes=("tp", "dp")), mesh=mesh)
    assert_all(z.local_shape == ((1, 4) if world.rank == 0 else (0, 4)))
    assert_all(z.sharding_valid())


@pytest.mark.mpi(min_size=4)
def test_corruption_is_attributed_to_its_rank(world, mesh):
    w = dist.tensor((8, 8), layout=dist.ShardSpec(partition=("col",), mesh_axes=("tp",)), mesh=mesh)
    if world.rank == 2:
        w.local[1, 1] += 1
    report = w.sharding_report()
    assert_all(_same_everywhere(world, str(report)), "the report differs between ranks")
    content = [p for p in report.problems if p.rule == "content"]
    assert_all(not report.ok and content and content[0].ranks == (2,), str(report))
    replicas = [p for p in report.problems if p.rule == "replicas"]
    assert_all(replicas and set(replicas[0].ranks) == {2, 3}, str(report))


@pytest.mark.mpi(min_size=4)
def test_overlap_and_gap_are_found(world, mesh):
    w = dist.tensor((8, 8), layout=dist.ShardSpec(partition=("row", "col"), mesh_axes=("tp", "dp")), mesh=mesh)
    if world.rank == 1:
        w = dist.DistTensor(w.local, mesh=mesh, layout=w.layout, placed=w.placed, box=((0, 4), (0, 4)),
                            patterned=False)
    report = w.sharding_report()
    rules = {p.rule: p.ranks for p in report.problems}
    assert_all(rules.get("box") == (1,) and set(rules.get("tiling", ())) == {0, 1}, str(report))


@pytest.mark.mpi(min_size=4)
def test_replicated_user_data(world, mesh):
    data = np.arange(12.0).reshape(3, 4)
    x = dist.tensor(data, mesh=mesh, layout=dist.Replicate())
    assert_all(np.array_equal(x.numpy(), data) and x.sharding_valid())
    if world.rank == 3:
        x.local[0, 0] = -1
    report = x.sharding_report()
    replicas = [p for p in report.problems if p.rule == "replicas"]
    assert_all(replicas and replicas[0].ranks == (3,), str(report))


@pytest.mark.mpi(min_size=4)
def test_metadata_mismatch(world, mesh):
    shape = (4, 4) if world.rank != 0 else (4, 5)
    w = dist.tensor(shape, mesh=mesh)
    report = w.sharding_report()
    assert_all(not report.ok and report.problems[0].rule == "metadata"
                      and report.problems[0].ranks == (1, 2, 3), str(report))
