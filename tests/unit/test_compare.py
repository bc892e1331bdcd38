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


def _bandwidth(path, busbw, *, p50=10.0, p99=11.0, world_size=8):
    """A bandwidth check with one all_reduce row per size: {size_bytes: busbw}."""
    rows = table([{"size_bytes": size, "in_place": False, "time_us_min": p50, "time_us_max": p50,
                   "time_us_p50": p50, "time_us_p99": p99, "busbw_GBps": bw} for size, bw in busbw.items()])
    writer = ResultsWriter(path, attrs={**ATTRS, "world_size": world_size}, ranks=RANKS)
    writer.add(CheckRecord(name="bandwidth", status="passed", duration_s=1.0, message="", headline="",
                           datasets={"all_reduce": Dataset(rows)}))
    return read_results(path)


def test_bandwidth_within_the_runs_spread_is_noise(tmp_path):
    # p99 is 10% above p50 in both runs: a 8% drop is noise, a 30% drop is not.
    base = _bandwidth(tmp_path / "a.h5", {8: 1.0, 65536: 10.0, 1 << 20: 20.0})
    new = _bandwidth(tmp_path / "b.h5", {8: 0.92, 65536: 7.0, 1 << 20: 26.0})
    comparison = compare_runs(base, new)
    assert comparison.regressions == ["bandwidth/all_reduce: 1 of 3 sizes slower beyond noise"]
    line = next(x for x in comparison.lines if "all_reduce busbw" in x)
    assert "1 slower beyond noise: 64 KiB -30% (noise 10%)" in line
    assert "1 faster: 1 MiB +30% (noise 10%)" in line and "1 within noise (largest change -8%)" in line


def test_a_noisy_run_widens_the_band_and_steady_runs_meet_the_floor(tmp_path):
    base = _bandwidth(tmp_path / "a.h5", {65536: 10.0})
    noisy = _bandwidth(tmp_path / "b.h5", {65536: 7.0}, p99=15.0)  # its own spread is 50%
    assert compare_runs(base, noisy).ok
    steady = _bandwidth(tmp_path / "c.h5", {65536: 10.0}, p99=10.0)  # no spread: the floor decides
    assert not compare_runs(steady, _bandwidth(tmp_path / "d.h5", {65536: 9.0}, p99=10.0)).ok
    assert compare_runs(steady, _bandwidth(tmp_path / "e.h5", {65536: 9.7}, p99=10.0)).ok


def test_bandwidth_of_different_world_sizes_is_not_compared(tmp_path):
    base = _bandwidth(tmp_path / "a.h5", {65536: 10.0})
    other = _bandwidth(tmp_path / "b.h5", {65536: 1.0}, world_size=72)
    comparison = compare_runs(base, other)
    assert comparison.ok and any("bandwidth not compared: world sizes differ (8 vs 72)" in x
                                 for x in comparison.lines)


def test_compare_cli_noise_floor(tmp_path, capsys):
    base = _bandwidth(tmp_path / "a.h5", {65536: 10.0}, p99=10.0)
    new = _bandwidth(tmp_path / "b.h5", {65536: 8.0}, p99=10.0)
    assert run(["compare", str(base.path), str(new.path)]) == 1
    assert "1 regression(s)" in capsys.readouterr().out
    assert run(["compare", "--noise-floor", "0.25", str(base.path), str(new.path)]) == 0


def _run_of(path, names, *, selected, complete):
    writer = ResultsWriter(path, attrs={**ATTRS, "checks_selected": list(selected), "complete": complete},
                           ranks=RANKS)
    for name in names:
        writer.add(CheckRecord(name=name, status="passed", duration_s=1.0, message="", headline="", datasets={},
                               attrs={}))
    return read_results(path)


def test_an_interrupted_run_says_so_and_its_missing_checks_are_regressions(tmp_path, capsys):
    full = _run_of(tmp_path / "full.h5", ["mesh", "links", "soak"], selected=["mesh", "links", "soak"],
                   complete=True)
    cut = _run_of(tmp_path / "cut.h5", ["mesh"], selected=["mesh", "links", "soak"], complete=False)
    assert run([str(cut.path)]) == 0
    assert "INCOMPLETE: ended during links, 1 of 3 selected checks recorded; 1 passed" in capsys.readouterr().out
    comparison = compare_runs(full, cut)
    assert comparison.regressions == ["links: missing from the new run (it ended early)",
                                      "soak: missing from the new run (it ended early)"]
    assert run(["compare", str(full.path), str(cut.path)]) == 1


def test_a_check_the_new_run_did_not_select_is_no_regression(tmp_path):
    full = _run_of(tmp_path / "full.h5", ["mesh", "links"], selected=["mesh", "links"], complete=True)
    part = _run_of(tmp_path / "part.h5", ["mesh"], selected=["mesh"], complete=True)
    comparison = compare_runs(full, part)
    assert comparison.ok and "links: only in the base run (not selected in the new run)" in comparison.lines
    lost = _run_of(tmp_path / "lost.h5", ["mesh"], selected=["mesh", "links"], complete=True)
    assert compare_runs(full, lost).regressions == ["links: missing from the new run"]


def _two_transports(path, mpi, nccl):
    """A bandwidth table with an MPI row and an NCCL row of one size (`--transport both`)."""
    rows = table([{"transport": t, "size_bytes": 65536, "in_place": False, "time_us_min": 10.0,
                   "time_us_max": 10.0, "time_us_p50": 10.0, "time_us_p99": 10.0, "busbw_GBps": bw}
                  for t, bw in (("mpi", mpi), ("nccl", nccl))])
    writer = ResultsWriter(path, attrs={**ATTRS, "world_size": 8}, ranks=RANKS)
    writer.add(CheckRecord(name="bandwidth", status="passed", duration_s=1.0, message="", headline="",
                           datasets={"all_reduce": Dataset(rows)}))
    return read_results(path)


def test_bandwidth_is_compared_transport_by_transport(tmp_path):
    base = _two_transports(tmp_path / "a.h5", mpi=10.0, nccl=100.0)
    # NCCL fell by half, MPI held: a regression of NCCL's row, MPI's compared with MPI's.
    new = _two_transports(tmp_path / "b.h5", mpi=10.0, nccl=50.0)
    comparison = compare_runs(base, new)
    assert comparison.regressions == ["bandwidth/all_reduce: 1 of 2 sizes slower beyond noise"]
    assert any("64 KiB over nccl -50%" in line for line in comparison.lines)
    # A table of schema 1.3 (no transport column) holds MPI's rows: they meet MPI's.
    old = _bandwidth(tmp_path / "c.h5", {65536: 10.0})
    assert compare_runs(old, new).ok
