"""Mesh argument validation happens locally, before any communication, with clear messages."""

import pytest

from tessera_mpi.errors import MeshSpecError
from tessera_mpi.dist.mesh import check_mesh_args


def test_defaults_and_normalization():
    assert check_mesh_args(["tp", "pp", "dp"], range(72), None, 72) == (
        ("tp", "pp", "dp"), tuple(range(72)), (6, 6, 2))
    assert check_mesh_args("dp", None, 8, 8) == (("dp",), tuple(range(8)), (8,))
    assert check_mesh_args(["a", "b"], [3, 1, 2, 0], (2, 2), 4)[1] == (3, 1, 2, 0)


@pytest.mark.parametrize(
    "axes, devices, shape, world, text",
    [
        (["tp", "pp"], range(72), (7, 7), 72, "49 positions but 72 devices"),
        (["tp", "pp"], range(72), (6, 6, 2), 72, "3 sizes but there are 2 axes"),
        (["tp"], range(80), None, 72, "outside the job's 72 ranks"),
        (["tp"], [0, 1, 1], None, 72, "more than once"),
        (["tp", "tp"], range(4), None, 4, "distinct"),
        (["tp", ""], range(4), None, 4, "must not be empty"),
        ([], range(4), None, 4, "at least one axis"),
        (["dp"], [], None, 4, "empty"),
        (["a", "b"], range(4), (4, 0), 4, "below 1"),
    ],
)
def test_invalid_values(axes, devices, shape, world, text):
    with pytest.raises(MeshSpecError, match=text):
        check_mesh_args(axes, devices, shape, world)


def test_mesh_spec_error_is_a_value_error():
    with pytest.raises(ValueError):
        check_mesh_args(["tp", "pp"], range(72), (7, 7), 72)


@pytest.mark.parametrize(
    "axes, devices, shape",
    [(5, None, None), (["tp", 3], None, None), (["dp"], "0123", None), (["dp"], [0.5], None),
     (["dp"], None, "6x6"), (["dp"], None, (True,)), (["dp"], [True], None)],
)
def test_wrong_kinds_are_type_errors(axes, devices, shape):
    with pytest.raises(TypeError):
        check_mesh_args(axes, devices, shape, 4)


def test_suggestion_names_a_valid_shape():
    with pytest.raises(MeshSpecError, match=r"e\.g\. 6x6x2"):
        check_mesh_args(["tp", "pp", "dp"], range(72), (4, 4, 4), 72)
