"""The suite's command line, parsed without MPI communication."""

from pathlib import Path

import pytest

from tessera_mpi.suite.options import DEFAULT_TIMEOUT_S, UsageError, parse_options, parse_shape

CHECKS = {"mesh": "m", "sharding": "s"}


def test_defaults():
    o = parse_options([], CHECKS)
    assert o.tests == () and o.mesh_shape is None and o.axes == ("tp", "pp", "dp")
    assert o.out is None and not o.quick and o.timeout_s == DEFAULT_TIMEOUT_S and not o.list_checks


def test_all_flags():
    o = parse_options(["--tests", "sharding,mesh", "--mesh", "6x6x2", "--out", "x.h5", "--quick",
                       "--timeout", "30", "--list"], CHECKS)
    assert o.tests == ("sharding", "mesh") and o.mesh_shape == (6, 6, 2)
    assert o.out == Path("x.h5") and o.quick and o.timeout_s == 30 and o.list_checks


def test_axes_follow_the_mesh_rank():
    assert parse_options(["--mesh", "72"], CHECKS).axes == ("dp",)
    assert parse_options(["--mesh", "9x8"], CHECKS).axes == ("tp", "dp")
    assert parse_options(["--mesh", "3x3x4x2", "--axes", "a,b,c,d"], CHECKS).axes == ("a", "b", "c", "d")


@pytest.mark.parametrize(
    "argv, text",
    [
        (["--mesh", "6x6x"], "not a shape"),
        (["--mesh", "6x0"], "not a shape"),
        (["--mesh", "six"], "not a shape"),
        (["--tests", "mesh,nope"], "unknown check"),
        (["--tests", "mesh,,sharding"], "empty name"),
        (["--mesh", "2x2x2x2"], "name them with --axes"),
        (["--mesh", "2x2", "--axes", "a,b,c"], "names 3 axes"),
        (["--timeout", "0"], "positive"),
        (["--timeout", "soon"], "invalid float"),
        (["--bogus"], "unrecognized"),
    ],
)
def test_usage_errors(argv, text):
    with pytest.raises(UsageError, match=text):
        parse_options(argv, CHECKS)


def test_parse_shape():
    assert parse_shape("6X6x2") == (6, 6, 2)


def test_under_load_and_repeat():
    o = parse_options([], CHECKS)
    assert not o.under_load and o.repeat == 1
    o = parse_options(["--under-load", "--repeat", "3"], CHECKS)
    assert o.under_load and o.repeat == 3
    with pytest.raises(UsageError, match="--repeat must be at least 1, got 0"):
        parse_options(["--repeat", "0"], CHECKS)
    with pytest.raises(UsageError, match="invalid int"):
        parse_options(["--repeat", "twice"], CHECKS)
