"""`python -m tessera_mpi.results compare`: status changes and digest equality."""

from tessera_mpi.results import CheckRecord, Dataset, ResultsWriter, read_results, table
from tessera_mpi.results.cli import run
from tessera_mpi.results.compare import compare_runs

from test_results import ATTRS, RANKS


def _write(path, digests, *, status="passed", world_size=2, elements=64):
    writer = ResultsWriter(path, attrs={**ATTRS, "world_size": world_size}, ranks=RANKS)
    rows = table([{"case": "random-float32", "algorithm": a, "variant": "p0", "sha256": d}
                  for a, d in digests.items()])
    writer.add(CheckRecord(name="determinism", status=status, duration_s=1.0, message="", headline="",
                           datasets={"digests": Dataset(rows)}, attrs={"elements_per_rank": elements}))
    return read_results(path)


def test_identical_digests(tmp_path, capsys):
    a = _write(tmp_path / "a.h5", {"digits": "aa", "alltoall": "aa"})
    b = _write(tmp_path / "b.h5", {"digits": "aa", "alltoall": "aa"})
    comparison = compare_runs(a, b)
    assert comparison.ok and "identical bits: all 2 digests in common are equal" in "\n".join(comparison.lines)
    assert run(["compare", str(a.path), str(b.path)]) == 0
    assert "no regression" in capsys.readouterr().out


def test_changed_digest_is_a_regression(tmp_path):
    a = _write(tmp_path / "a.h5", {"digits": "aa", "alltoall": "aa"})
    b = _write(tmp_path / "b.h5", {"digits": "aa", "alltoall": "bb"})
    comparison = compare_runs(a, b)
    assert not comparison.ok and "1 of 2 digests differ" in comparison.regressions[0]
    assert run(["compare", str(a.path), str(b.path)]) == 1


def test_status_regression_and_different_workloads(tmp_path):
    a = _write(tmp_path / "a.h5", {"digits": "aa"})
    b = _write(tmp_path / "b.h5", {"digits": "cc"}, status="failed", world_size=72)
    comparison = compare_runs(a, b)
    assert comparison.regressions == ["determinism: passed -> failed"]
    assert any("not comparable: world sizes differ (2 vs 72)" in line for line in comparison.lines)
    c = _write(tmp_path / "c.h5", {"digits": "cc"}, elements=128)
    assert any("elements per rank differ" in line for line in compare_runs(a, c).lines)


def test_unreadable_file(tmp_path):
    assert run(["compare", str(tmp_path / "nope.h5"), str(tmp_path / "nope.h5")]) == 2
