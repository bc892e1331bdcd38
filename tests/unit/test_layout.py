"""Shard arithmetic and layout validation (no communication)."""

import random

import pytest

from tessera_mpi.dist import Replicate, ShardSpec, shard_bounds
from tessera_mpi.errors import LayoutError
from tessera_mpi.dist.layout import Placed, volume


def test_uneven_rule_from_the_docstring():
    sizes = [b - a for a, b in (shard_bounds(1000, 6, i) for i in range(6))]
    assert sizes == [167, 167, 167, 167, 167, 165]
    assert [b - a for a, b in (shard_bounds(5, 6, i) for i in range(6))] == [1, 1, 1, 1, 1, 0]
    assert [shard_bounds(10, 4, i) for i in range(4)] == [(0, 3), (3, 6), (6, 9), (9, 10)]


def test_shards_tile_exactly_for_random_lengths():
    rng = random.Random(1)
    for _ in range(500):
        length, parts = rng.randrange(0, 5000), rng.randrange(1, 100)
        bounds = [shard_bounds(length, parts, i) for i in range(parts)]
        assert bounds[0][0] == 0 and bounds[-1][1] == length
        assert all(a <= b for a, b in bounds)
        assert all(bounds[i][1] == bounds[i + 1][0] for i in range(parts - 1))
        sizes = [b - a for a, b in bounds]
        assert sizes == sorted(sizes, reverse=True), "trailing shards are the smaller ones"


def test_shard_index_out_of_range():
    with pytest.raises(ValueError, match="not in range"):
        shard_bounds(10, 4, 4)


def test_spec_normalizes_and_names_dims():
    spec = ShardSpec(partition=["row", "col"], mesh_axes=["tp", "pp"])
    assert spec.partition == ("row", "col") and spec.mesh_axes == ("tp", "pp")
    assert spec.dims() == (0, 1)
    assert ShardSpec(partition="row", mesh_axes="dp").dims() == (0,)
    assert str(spec) == "ShardSpec(row->tp, col->pp)"
    assert spec.is_shard() and not spec.is_replicate()
    assert Replicate().is_replicate() and str(Replicate()) == "Replicate()"


@pytest.mark.parametrize(
    "partition, mesh_axes, error, text",
    [
        (("row", "col"), ("tp",), LayoutError, "2 partition entries"),
        (("row",), ("tp", "pp"), LayoutError, "2 mesh axes"),
        (("diag",), ("tp",), LayoutError, "not a dimension"),
        ((-1,), ("tp",), LayoutError, "negative"),
        ((1.5,), ("tp",), TypeError, "ints"),
        (("row", "col"), ("tp", "tp"), LayoutError, "twice"),
        (("row",), ("",), TypeError, "axis names"),
        ((), (), LayoutError, "Replicate"),
    ],
)
def test_spec_errors(partition, mesh_axes, error, text):
    with pytest.raises(error, match=text):
        ShardSpec(partition=partition, mesh_axes=mesh_axes)


def test_dimension_over_two_axes_is_outer_first():
    placed = Placed(global_shape=(12, 5), dim_axes=((0, 1), ()), replica_axes=(2,), mesh_shape=(2, 3, 2))
    rows = {(a, b): placed.box((a, b, 0))[0] for a in range(2) for b in range(3)}
    assert rows[(0, 0)] == (0, 2) and rows[(0, 2)] == (4, 6) and rows[(1, 0)] == (6, 8)
    assert placed.box((1, 2, 1))[1] == (0, 5)
    assert placed.replica_key((1, 2, 1)) == (1,)
    assert placed.shard_count == 6
    assert volume(((0, 2), (3, 3))) == 0
