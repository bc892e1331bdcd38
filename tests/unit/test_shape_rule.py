"""The rule that picks a mesh shape when `shape` is omitted."""

import itertools
import math

import pytest

from tessera_mpi.dist import default_shape
from tessera_mpi.errors import MeshSpecError


@pytest.mark.parametrize(
    "n, ndim, expected",
    [
        (72, 3, (6, 6, 2)),  # the guide's 6x6x2
        (72, 2, (9, 8)),
        (72, 1, (72,)),
        (72, 4, (4, 3, 3, 2)),
        (8, 3, (2, 2, 2)),
        (4, 3, (2, 2, 1)),
        (30, 3, (5, 3, 2)),
        (7, 2, (7, 1)),
        (1, 3, (1, 1, 1)),
    ],
)
def test_known_shapes(n, ndim, expected):
    assert default_shape(n, ndim) == expected


def _all_shapes(n, ndim):
    return [s for s in itertools.product(range(1, n + 1), repeat=ndim) if math.prod(s) == n]


@pytest.mark.parametrize("n", [1, 2, 6, 12, 16, 24, 36, 48, 60, 64, 72, 96])
@pytest.mark.parametrize("ndim", [1, 2, 3])
def test_rule_against_brute_force(n, ndim):
    """Smallest largest axis, then the largest second axis, and so on, over every ordering."""
    shapes = _all_shapes(n, ndim)
    best = min(shapes, key=lambda s: (max(s), [-d for d in sorted(s, reverse=True)[1:]]))
    got = default_shape(n, ndim)
    assert math.prod(got) == n
    assert list(got) == sorted(got, reverse=True), "sizes are non-increasing from the first axis"
    assert got == tuple(sorted(best, reverse=True))


@pytest.mark.parametrize("n, ndim", [(0, 3), (8, 0), (-1, 2)])
def test_rejects_impossible(n, ndim):
    with pytest.raises(MeshSpecError):
        default_shape(n, ndim)
