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


@pytest.mark.parametrize(
    "argv, text",
    [
        (["--tests", "mesh,mesh"], "--tests names mesh more than once"),
        (["--sizes", "-5:10"], r"--sizes '-5:10': '-5' is not a size"),
        (["--sizes", "8:-1K"], r"--sizes '8:-1K': '-1K' is not a size"),
        (["--out", "a.h5", "--junit", "a.h5"], "--out and --junit name the same file"),
        (["--out", "a.h5", "--json", "./sub/../a.h5"], "--out and --json name the same file"),
        (["--junit", "r.xml", "--json", "r.xml"], "--junit and --json name the same file"),
        (["--json", "r.json", "--html", "r.json"], "--json and --html name the same file"),
        (["--html", "."], "--html . is a folder; give a file name"),
        (["--out", "base.h5", "--baseline", "base.h5"], "--out and --baseline name the same file"),
    ],
)
def test_outputs_and_values_that_look_like_flags(argv, text, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UsageError, match=text):
        parse_options(argv, CHECKS)


def test_two_names_for_one_file_through_a_symlink(tmp_path):
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    with pytest.raises(UsageError, match="--out and --junit name the same file"):
        parse_options(["--out", str(tmp_path / "real" / "x"), "--junit", str(tmp_path / "link" / "x")], CHECKS)


def test_a_negative_looking_value_is_still_a_value_and_real_flags_still_parse():
    o = parse_options(["--sizes", "8:64K", "--quick"], CHECKS)
    assert o.sizes == (8, 65536, 2) and o.quick


def test_html_report_path(tmp_path):
    assert parse_options(["--html", str(tmp_path / "r.html")], CHECKS).html == tmp_path / "r.html"
    assert parse_options([], CHECKS).html is None
