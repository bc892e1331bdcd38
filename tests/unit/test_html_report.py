"""The HTML report and history from small results files of every kind, read back as the CLI does."""

from __future__ import annotations

import re
import subprocess
import sys
from html.parser import HTMLParser

import h5py
import numpy as np
import pytest

from tessera_mpi.results import CheckRecord, Dataset, ResultsWriter, read_results, table
from tessera_mpi.results import cli
from tessera_mpi.results.compare import compare_runs
from tessera_mpi.results.html import run_report
from tessera_mpi.results.html.rackmap import rank_metrics
from tessera_mpi.results.html.trend import headline_series
from tessera_mpi.results.measures import counter_increases
from tessera_mpi.results.html.rackmap import lost_world_ranks, ranks_of, states

SIZES = [1 << 10, 1 << 14, 1 << 18, 1 << 20]


class Page(HTMLParser):
    """The elements of a page with their attributes, the text, and the external references."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.elements: list[tuple[str, dict[str, str]]] = []
        self.words: list[str] = []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        self.elements.append((tag, {k: v or "" for k, v in attrs}))

    def handle_data(self, data):
        self.words.append(data)

    @property
    def text(self) -> str:
        return " ".join(self.words)

    def all(self, tag: str, **attrs: str) -> list[dict[str, str]]:
        return [a for t, a in self.elements if t == tag and all(a.get(k.replace("_", "-")) == v
                                                                for k, v in attrs.items())]

    def cells(self) -> dict[int, str]:
        return {int(a["data-rank"]): a["data-state"] for t, a in self.elements
                if t == "div" and "cell" in a.get("class", "").split() and "data-rank" in a}


def _ranks(n: int, *, hosts: int = 1, identity: bool = False) -> np.ndarray:
    per = n // hosts
    rows = []
    for r in range(n):
        row = {"rank": r, "host": f"node{r // per + 1:02d}", "local_rank": r % per, "local_size": per,
               "device": "cpu", "coords": np.array([r // 12, (r // 2) % 6, r % 2], dtype=np.int32)}
        if identity:
            # As hardware.identity names them; a bus id repeats on every host.
            row.update(tray=r // per + 1, slot=r % per, gpu_serial=f"16543220{r:05d}",
                       pci_bus_id=f"00000000:{0x10 + r % per:02x}:00.0")
        rows.append(row)
    return table(rows)


def _sweep(busbw: float) -> np.ndarray:
    return table([{"size_bytes": s, "count": s // 4, "dtype": "float32", "in_place": ip, "iters": 10,
                   "time_us_avg": 10.0, "time_us_min": 9.0, "time_us_max": s / busbw / 1e3, "time_us_p50": 9.5,
                   "time_us_p99": 10.5, "host_time_us_max": 11.0, "loop": "compiled",
                   "algbw_GBps": busbw / 2, "busbw_GBps": busbw * (0.5 + i / 8), "wrong": 0}
                  for i, s in enumerate(SIZES) for ip in (False, True)])


def _verdicts(status: str, culprits=(), failing=(), *, performance: str = "not judged") -> dict:
    sanity = "passed" if status in ("passed",) or performance == "failed" else status
    return {"sanity": sanity, "performance": performance, "not_judged": "", "figures": "",
            "culprits": list(culprits), "failing_ranks": np.array(failing, dtype=np.int64)}


def _check(name: str, status: str = "passed", *, message: str = "", headline: str = "", datasets=None, **attrs):
    return CheckRecord(name=name, status=status, duration_s=1.25, message=message,
                       headline=headline or f"{name} {status}", datasets=datasets or {},
                       attrs={**_verdicts(status), **attrs})


def _all_kinds(n: int, *, failing_rank: int | None = None, busbw: float = 50.0) -> list[CheckRecord]:
    """One record of every check kind the suite has, optionally with a sanity failure on one rank."""
    uni = np.full((n, n), 5.0) + np.arange(n)[:, None] * 0.01
    np.fill_diagonal(uni, 0.0)
    scenarios = table([{"scenario": s, "victims": v, "detected": True, "observers": f"{n - 1}/{n - 1}",
                        "detection_ms": d, "recovery_ms": r, "survivors": n - 1, "verified": True, "detail": "ok"}
                       for s, v, d, r in (("hang", "36", 5800.0, 0.0), ("drop-one (guide 3.5)", "5", 12.0, 40.0),
                                          ("drop-rank-0", "0", 15.0, 60.0))])
    planted = failing_rank is not None
    return [
        _check("mesh", datasets={"hosts": Dataset(table([{"host": "node01", "ranks": n, "devices": 1,
                                                           "first_rank": 0, "last_rank": n - 1}]))}),
        _check("sharding", "failed" if planted else "passed",
               message=f"failed on rank {failing_rank} (tp=0,pp=1,dp=0; host node01): bit flip" if planted else "",
               headline="sanity: a bit flip" if planted else "8/8 layouts valid",
               **(_verdicts("failed", [f"rank {failing_rank}"], [failing_rank]) if planted else {}),
               datasets={"cases": Dataset(table([{"case": "guide-3.2", "valid": not planted, "problems": ""}]))}),
        _check("determinism", datasets={"digests": Dataset(table(
            [{"case": "random-float32", "algorithm": a, "variant": v, "sha256": "ab" * 32}
             for a in ("digits", "alltoall") for v in ("reference", "permutation-1-repeat-0")]))}),
        _check("bandwidth", datasets={c: Dataset(_sweep(busbw)) for c in ("all_reduce", "all_gather", "sendrecv")},
               expected_busbw_GBps=0.0, expectation_source="none", min_efficiency=0.8),
        _check("links", datasets={"unidirectional": Dataset(uni), "bidirectional": Dataset(uni + uni.T),
                                  "slow_links": Dataset(table([{"src": 3, "dst": 4, "GBps": 1.0}]))},
               median_GBps=5.0, slow_fraction=0.5, judged=False),
        _check("bisection", datasets={"splits": Dataset(table(
            [{"split": s, "pairs": n // 2, "bytes_per_rank": 1 << 20, "t_max_us": 900.0, "aggregate_GBps": 80.0,
              "per_rank_min_GBps": 1.0, "per_rank_median_GBps": 2.0, "slowest_rank": 7, "expected_GBps": 0.0}
             for s in ("halves", "random")]))}),
        _check("soak", datasets={"timeline": Dataset(table(
            [{"t_s": float(t), "iters": 10, "window_s": 1.0, "time_us_max": 20.0, "busbw_GBps": 40.0 + t,
              "wrong": 0} for t in range(6)]))}, median_GBps=42.0, trend=1.1, size_bytes=1 << 20),
        _check("parallelism", datasets={"errors": Dataset(table(
            [{"step": s, "quantity": q, "tolerance": 1e-4, "max_rel_err": 1e-7, "worst_rank": 3, "ranks_over": 0}
             for s in range(3) for q in ("shard", "gradient")]))}),
        _check("faults", datasets={"scenarios": Dataset(scenarios)}, mode="real", mode_reason="ULFM"),
    ]


def _write(path, records, *, n=72, hosts=1, identity=False, tables=None, **attrs):
    base = {"schema_version": "1.3", "tessera_mpi_version": "0.1.0", "created": "2026-12-03T10:00:00Z",
            "world_size": n, "mesh_axes": ["tp", "pp", "dp"], "mesh_shape": np.array([6, 6, 2]),
            "backend": "numpy", "cuda_aware": False, "command_line": "python -m tessera_mpi.suite",
            "launcher": "mpirun", "mpi_library_version": "Open MPI v5.0.11", "complete": True, "exit_code": 0,
            "checks_selected": [r.name for r in records]}
    base.update(attrs)
    writer = ResultsWriter(path, attrs=base, ranks=_ranks(n, hosts=hosts, identity=identity))
    writer.checks = list(records)
    writer.tables = dict(tables or {})
    writer.write()
    return read_results(path)


def test_a_passed_run_has_every_section_a_figure_per_kind_and_no_external_reference(tmp_path):
    run = _write(tmp_path / "ok.h5", _all_kinds(72))
    text = run_report(run)
    page = Page(text)
    assert page.all("section", id="verdict")[0]["data-verdict"] == "passed" and "✓ PASSED" in page.text
    assert "9 passed, 0 failed, 0 error, 0 skipped; checks took 11.2 s; 72 ranks" in page.text
    faults = _svg_text(page, "faults")  # the scenarios as a timeline: injection, detection, recovery
    assert "injection -&gt; detection" in faults and "detection -&gt; rebuilt mesh" in faults
    assert all(name in faults for name in ("hang", "drop-one (guide 3.5)", "drop-rank-0"))
    assert {a["data-check"] for a in page.all("section") if "data-check" in a} == set(run.checks)
    links = {a["href"] for a in page.all("a")}
    assert {f"#check-{name}" for name in run.checks} <= links
    cells = page.cells()
    assert sorted(cells) == list(range(72)) and set(cells.values()) == {"fine"}
    alts = [a["alt"] for a in page.all("img")]
    for kind in ("all_reduce", "links, one way", "links, both ways", "bisection", "soak", "faults", "parallelism"):
        assert any(kind in alt for alt in alts), (kind, alts)
    assert all(a["src"].startswith("data:image/svg+xml;base64,") for a in page.all("img"))
    # Nothing fetched: no src/href that is not a fragment or a data URI, and a policy that forbids it.
    for tag, attrs in page.elements:
        for key in ("src", "href"):
            if key in attrs:
                assert attrs[key].startswith(("#", "data:")), (tag, attrs)
    assert "default-src 'none'" in text and not re.search(r"https?://(?!www\.w3\.org)", text.split("<body>")[1]
                                                          .split("data:image")[0])
    options = [a["value"] for a in page.all("option")]
    assert options[:3] == ["status", "links-out", "links-in"]


def test_a_failed_rank_is_the_first_culprit_and_its_cell_says_so(tmp_path):
    run = _write(tmp_path / "bad.h5", _all_kinds(72, failing_rank=37), exit_code=1, hosts=18, identity=True)
    page = Page(run_report(run))
    assert page.all("section", id="verdict")[0]["data-verdict"] == "failed" and "✗ FAILED" in page.text
    culprit = page.text.split("First culprit:")[1]
    assert culprit.lstrip().startswith("sharding failed: rank 37 (tp=3,pp=0,dp=1) host node10, local device 1")
    assert "tray 10, slot 1, GPU serial 1654322000037" in culprit
    cells = page.cells()
    assert cells[37] == "failed" and sum(1 for s in cells.values() if s == "failed") == 1
    cell = next(a for a in page.all("div") if a.get("data-rank") == "37")
    assert "sharding: failed" in cell["title"] and "serial 1654322000037" in cell["title"]
    assert cell["aria-label"] == "rank 37: failed"
    hosts = [a for a in page.all("div") if a.get("class") == "host"]
    assert len(hosts) == 18 and "node10 (tray 10): 4 ranks" in page.text


def test_performance_failures_are_slow_and_health_failures_warnings(tmp_path):
    records = [_check("bandwidth", "failed", headline="performance: all_reduce slow",
                      **_verdicts("failed", ["link 3 -> 4"], [3], performance="failed")),
               _check("health", "failed", headline="sanity: ECC", **_verdicts("failed", ["rank 9"], [9]))]
    run = _write(tmp_path / "slow.h5", records, n=16, exit_code=1)
    state, reasons = states(run, ranks_of(run))
    assert (state[3], state[4], state[9], state[0]) == ("slow", "slow", "health", "fine")
    assert any("bandwidth: failed" in r for r in reasons[4])


def test_faults_with_a_lost_rank_0_mark_every_lost_rank(tmp_path):
    lost = ["rank 5 of 72: host node01, local rank 5, device cpu", "rank 1 of 71: host node01, local rank 1, device cpu",
            "rank 69 of 71: host node01, local rank 69, device cpu", "rank 0 of 69: host node01, local rank 0, device cpu"]
    run = _write(tmp_path / "faults.h5", _all_kinds(72), lost_ranks=lost, final_world_size=68,
                 written_in_generation=3)
    assert sorted(lost_world_ranks(run, ranks_of(run))) == [0, 1, 5, 70]
    page = Page(run_report(run))
    cells = page.cells()
    assert sorted(r for r, s in cells.items() if s == "lost") == [0, 1, 5, 70]
    assert "lost in a fault scenario (4)" in page.text and "NOT DETECTED" not in page.text


def test_a_baseline_regression_is_in_the_verdict_and_its_section(tmp_path):
    base = _write(tmp_path / "base.h5", _all_kinds(8)[:4], n=8)
    new = _write(tmp_path / "new.h5", _all_kinds(8, busbw=5.0)[:4], n=8)
    comparison = compare_runs(base, new)
    assert not comparison.ok
    page = Page(run_report(new, baseline=base, comparison=comparison))
    assert "regression(s) against the baseline" in page.text
    section = page.text.split("Against the baseline")[1]
    assert "▼" in section and "slower beyond noise" in section
    headers = [a for a in page.all("th")]
    assert headers and "baseline" in page.text.split("Provenance")[1].split("Rack map")[0]
    # Mid-run (the suite's case) the baseline is drawn but not yet compared.
    assert "compared with the baseline when the run ends" in Page(run_report(new, baseline=base)).text


def test_a_file_with_checks_missing_is_incomplete_and_names_them(tmp_path):
    records = _all_kinds(8)[:2]
    run = _write(tmp_path / "cut.h5", records, n=8, complete=False, exit_code="",
                 checks_selected=["mesh", "sharding", "bandwidth", "links"])
    page = Page(run_report(run))
    assert page.all("section", id="verdict")[0]["data-verdict"] == "incomplete"
    assert "2 of 4 selected checks recorded; next: bandwidth" in page.text
    rows = page.text.split("Checks")[1]
    assert "bandwidth" in rows and "not run" in rows and "links" in rows
    assert not page.all("section", data_check="bandwidth")


def test_a_gpu_less_file_without_optional_columns_or_figures_data(tmp_path):
    run = _write(tmp_path / "cpu.h5", [_check("mesh"), _check("soak", "skipped", message="pass --duration")], n=4)
    assert run.ranks.dtype.names == ("rank", "host", "local_rank", "local_size", "device", "coords")
    page = Page(run_report(run))
    assert len(page.cells()) == 4 and not page.all("img")
    cell = next(a for a in page.all("div") if a.get("data-rank") == "2")
    assert cell["title"].startswith("rank 2 (tp=0,pp=1,dp=0) host node01, local device 2 (cpu)\nstate: fine")


def test_the_suite_cache_reuses_a_drawn_check(tmp_path):
    run = _write(tmp_path / "ok.h5", _all_kinds(8)[:4], n=8)
    cache: dict = {}
    first = run_report(run, cache=cache)
    assert len(cache) == 4
    cache[next(k for k in cache if k[0] == "bandwidth")] = '<section class="check" data-check="bandwidth">cached</section>'
    assert "cached" in run_report(run, cache=cache) and "cached" not in first


def test_history_lines_up_runs_of_one_rack_and_marks_the_regressed(tmp_path):
    folder = tmp_path / "runs"
    folder.mkdir()
    for i, busbw in enumerate((50.0, 51.0, 5.0)):  # the third run's bandwidth fell
        _write(folder / f"r{i}.h5", _all_kinds(8, busbw=busbw)[:5] + _all_kinds(8)[-1:], n=8,
               created=f"2026-12-0{i + 1}T10:00:00Z")
    _write(folder / "other.h5", _all_kinds(4)[:1], n=4)
    (folder / "junk.h5").write_text("not hdf5")
    out = tmp_path / "history.html"
    assert cli.run(["history", str(folder), "-o", str(out)]) == 0
    page = Page(out.read_text())
    assert "4 runs of 2 rack(s)" in page.text and "junk.h5" in page.text
    rack = page.text.split("Rack 1")[1].split("Rack 2")[0]
    assert rack.count("▼ regressed") == 1 and rack.index("2026-12-03T10") < rack.index("▼ regressed")
    assert any("peak busbw per collective" in a["alt"] for a in page.all("img"))
    assert any("slowest link" in a["alt"] for a in page.all("img"))
    assert any("fault detection and recovery" in a["alt"] for a in page.all("img"))
    # Status per check per run: a row per run of this rack, a column per check.
    runs = " ".join(rack.rsplit("against the run before", 1)[1].split())
    assert runs.count("✓ passed") == 3 * 6 and runs.count("r2.h5") == 1, runs
    # The single-run report with --history: the same trend, this run marked.
    report = tmp_path / "report.html"
    assert cli.run(["report", str(folder / "r2.h5"), "--history", str(folder), "-o", str(report)]) == 0
    text = Page(report.read_text()).text
    assert "History of this rack" in text and "3 runs of the rack with 8 ranks" in text and "▶" in text


def test_report_command_exit_codes(tmp_path, capsys):
    run = _write(tmp_path / "ok.h5", _all_kinds(8)[:1], n=8)
    out = tmp_path / "r.html"
    assert cli.run(["report", str(run.path), "--baseline", str(run.path), "-o", str(out)]) == 0
    assert "no regression" in Page(out.read_text()).text
    assert cli.run(["report", str(tmp_path / "missing.h5"), "-o", str(out)]) == 2
    assert "cannot open" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.run(["report", str(run.path)])  # -o is required


def test_without_matplotlib_the_report_keeps_its_tables_and_says_why_figures_are_missing(tmp_path):
    run = _write(tmp_path / "ok.h5", _all_kinds(8), n=8)
    out = tmp_path / "r.html"
    # A fresh interpreter in which importing matplotlib fails, as on an install without the extra.
    code = ("import sys; sys.modules['matplotlib'] = None; from tessera_mpi.results import cli; "
            f"sys.exit(cli.run(['report', {str(run.path)!r}, '--history', {str(tmp_path)!r}, '-o', {str(out)!r}]))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    page = Page(out.read_text())
    assert not page.all("img") and len(page.cells()) == 8
    assert page.text.count("not drawn (matplotlib is not installed") >= 6
    assert {a["data-check"] for a in page.all("section") if "data-check" in a} == set(run.checks)


def test_an_emulated_topology_is_named_where_the_report_names_hosts(tmp_path):
    """Issue 20: the rack map's hosts are emulated ones; the map and the provenance say so."""
    emulated = Page(run_report(_write(tmp_path / "emul.h5", _all_kinds(72), hosts=18, identity=True,
                                      backend="emulated", topology="emulated topology 18x4")))
    assert "72 ranks on 18 host(s) (emulated topology 18x4), up to 4 devices each" in emulated.text
    provenance = emulated.text.split("Provenance")[-1]
    assert re.search(r"topology\s+emulated topology 18x4", provenance), provenance[:2000]
    real = Page(run_report(_write(tmp_path / "real.h5", _all_kinds(72), hosts=18, identity=True)))
    assert "72 ranks on 18 host(s), up to 4 devices each" in real.text and "emulated topology" not in real.text


def test_the_links_heatmap_draws_a_block_per_host(tmp_path):
    """Issue 20: at 72 ranks on 18 hosts the heatmap has 18 host blocks: 17 boundaries each way,
    one label per host at its block's middle, and a title that counts them and names the topology."""
    pytest.importorskip("matplotlib")
    from tessera_mpi.results.figures import links_figure
    run = _write(tmp_path / "links.h5", _all_kinds(72), hosts=18, topology="emulated topology 18x4")
    ax = links_figure(run, "unidirectional").axes[0]
    lines = [line for line in ax.get_lines() if line.get_color() == "white"]
    rows = sorted(line.get_ydata()[0] for line in lines if line.get_ydata()[0] == line.get_ydata()[1])
    cols = sorted(line.get_xdata()[0] for line in lines if line.get_xdata()[0] == line.get_xdata()[1])
    assert rows == cols == [4 * b - 0.5 for b in range(1, 18)]
    assert [t.get_text() for t in ax.get_xticklabels()] == [f"node{h + 1:02d} ({4 * h})" for h in range(18)]
    assert list(ax.get_xticks()) == [4 * h + 1.5 for h in range(18)]
    assert "boundaries of 18 host blocks (emulated topology 18x4)" in ax.get_title()
    one = _write(tmp_path / "one.h5", _all_kinds(72))
    assert not [line for line in links_figure(one, "unidirectional").axes[0].get_lines() if line.get_color() == "white"]


def _svg_text(page: Page, alt_part: str) -> str:
    """The SVG source of the first figure whose alt text holds `alt_part` (text is kept as text)."""
    import base64
    img = next(a for a in page.all("img") if alt_part in a["alt"])
    return base64.b64decode(img["src"].split(",", 1)[1]).decode()


SELFTEST = table([{"check": "sharding", "defect": "a bit flip", "planted": "corrupt(rank=7)", "expected": "rank 7",
                   "status": "failed", "named": "rank 7", "clean": "passed", "verdict": "caught",
                   "detail": "sanity: a bit flip"},
                  {"check": "links", "defect": "one slow rank", "planted": "delay(rank=3)", "expected": "rank 3",
                   "status": "passed", "named": "", "clean": "passed", "verdict": "MISSED", "detail": "all fast"}])


def test_the_contents_come_in_the_issues_order_with_the_provenance_it_names(tmp_path):
    """Verdict, provenance (beside the baseline's), rack map, checks table, the checks' sections,
    the comparison, the self-test table, then the history: the order the issue gives."""
    records = _all_kinds(8)
    records[3] = _check("bandwidth", datasets=records[3].datasets, expected_busbw_GBps=40.0, expectation_source="test",
                        min_efficiency=0.8, transports="mpi,nccl", judged_transport="nccl", loop="compiled")
    base = _write(tmp_path / "base.h5", records, n=8, created="2026-12-01T10:00:00Z", git_commit="a" * 40)
    run = _write(tmp_path / "run.h5", records, n=8, tables={"selftest": Dataset(SELFTEST)},
                 git_commit="b" * 40, command_line="mpirun -n 8 python -m tessera_mpi.suite --self-test")
    text = run_report(run, baseline=base, comparison=compare_runs(base, run), history=[base])
    ids = re.findall(r'<section[^>]* id="([^"]+)"', text)
    checks = re.findall(r'<section class="check" id="([^"]+)"', text)
    assert ids[:4] == ["verdict", "provenance", "rack", "checks"], ids
    assert checks == [f"check-{r.name}" for r in records]
    assert ids[4:4 + len(checks)] == checks, ids
    assert ids[4 + len(checks):] == ["baseline", "selftest", ids[-1]] and "history" in ids[-1], ids
    # The bandwidth figure carries the expectation, the failure threshold and the baseline's curve.
    svg = _svg_text(Page(text), "all_reduce")
    assert "expected 40 GB/s" in svg and "fail below 0.8 x expected" in svg and "baseline 2026-12-01T10:00:00Z" in svg
    provenance = Page(text.split('id="provenance"')[1].split('id="rack"')[0]).text
    for needed in ("tessera_mpi_version", "0.1.0", "mpi_library_version", "Open MPI v5.0.11", "backend", "numpy",
                   "fault-tolerance mode (faults check)", "real", "transport (fabric checks, --transport)",
                   "mpi,nccl", "transport judged", "command_line", "--self-test", "git_commit", "b" * 40, "a" * 40,
                   "baseline"):
        assert needed in provenance, needed
    selftest = Page(text.split('id="selftest"')[1]).text
    assert "1 of 2 planted defects caught" in selftest and "✓ caught" in selftest and "✗ MISSED" in selftest


def test_determinism_digests_that_differ_are_marked_failed(tmp_path):
    digests = table([{"case": "random-float32", "algorithm": "digits", "variant": v, "sha256": d}
                     for v, d in (("reference", "ab" * 32), ("permutation-1", "ab" * 32), ("permutation-2", "cd" * 32))]
                    + [{"case": "random-float32", "algorithm": "alltoall", "variant": "reference", "sha256": "ef" * 32}])
    run = _write(tmp_path / "det.h5", [_check("determinism", datasets={"digests": Dataset(digests)})], n=4)
    rows = Page(run_report(run).split('id="check-determinism"')[1]).text
    assert "random-float32 digits 3 2 ✗ failed" in " ".join(rows.split())
    assert "random-float32 alltoall 1 1 ✓ passed efefefefefefefef…" in " ".join(rows.split())


def test_under_load_and_repeat_are_shown_beside_the_run_without(tmp_path):
    """--under-load: the sweep without the load in the peak table and on the figure; --repeat:
    every repetition's status, duration and failing ranks in the check's section."""
    repetitions = table([{"repetition": i, "status": s, "duration_s": 1.0 + i, "failing_ranks": f,
                          "headline": h, "load_bytes": 1 << 20}
                         for i, s, f, h in ((1, "passed", "none", "ok"), (2, "failed", "3", "rank 3 wrong"))])
    bandwidth = _check("bandwidth", "failed", datasets={"all_reduce": Dataset(_sweep(5.0)),
                                                        "all_reduce_unloaded": Dataset(_sweep(50.0)),
                                                        "repetitions": Dataset(repetitions)},
                       expected_busbw_GBps=0.0, expectation_source="none", under_load=True,
                       load_iterations=40, load_message_bytes=1 << 20, repetitions=2,
                       **_verdicts("failed", ["rank 3"], [3]))
    page = Page(run_report(_write(tmp_path / "load.h5", [bandwidth], n=4, under_load=True, repeat=2)))
    section = " ".join(page.text.split("peak bus bandwidth")[1].split())
    assert "all_reduce 4.375 43.75" in section, section  # under load, then without (the peak of _sweep: 0.875 x)
    assert "under load: 40 background all-reduces" in page.text
    svg = _svg_text(page, "all_reduce")
    assert "without load" in svg and "under load" in svg
    reps = " ".join(page.text.split("repetitions")[-1].split())
    assert "1 passed 2 none ok" in reps and "2 failed 3 3 rank 3 wrong" in reps, reps


def _health_table(rows):
    if not rows:  # a check during which nothing moved: an empty table, as gpu.table_of writes it
        return Dataset(np.empty(0, dtype=[("rank", np.int64), ("gpu", h5py.string_dtype()), ("link", np.int64),
                                          ("counter", h5py.string_dtype()), ("before", float), ("after", float)]))
    return Dataset(table([{"rank": r, "gpu": g, "link": link, "counter": c, "before": b, "after": a}
                          for r, g, link, c, b, a in rows]))


def test_health_counter_increases_colour_the_map_mark_warnings_and_trend_over_runs(tmp_path):
    """/health tables as the suite writes them: rank 9's GPU gains CRC errors on a link during
    links; after a fault shrank the world the table numbers it 8, but names its serial, so it
    lands on rank 9's cell. health_end fails on it: a health warning, not a failure."""
    serial = {r: f"16543220{r:05d}" for r in range(16)}

    def health(counter_after, *, shifted=False):
        rows = []
        for r in range(16):
            crc = counter_after if r == 9 else 0.0
            rows += [((r - 1) if shifted and r > 8 else r, serial[r], 3, "nvlink_crc", 0.0, crc),
                     (r, serial[r], -1, "temperature_C", 40.0, 90.0),
                     (r, serial[r], -1, "violation_power_ns", 0.0, 5e9)]
        return rows

    def records(crc):
        # A GPU named by its bus id alone (no serial): it repeats on every host, so its row's rank decides.
        moved = [(8, serial[9], 3, "nvlink_crc", 0.0, crc), (5, "00000000:11:00.0", -1, "xid_events", 0.0, 1.0)] \
            if crc else []
        return [CheckRecord(name="health", status="passed", duration_s=0.1, message="", headline="ok",
                            attrs=_verdicts("passed"), health=_health_table(health(0.0))),
                CheckRecord(name="links", status="passed", duration_s=1.0, message="", headline="ok",
                            attrs=_verdicts("passed"), health=_health_table(moved)),
                CheckRecord(name="health_end", status="failed" if crc else "passed", duration_s=0.1,
                            message="rank 9 CRC", headline="sanity: CRC errors" if crc else "ok",
                            attrs=_verdicts("failed", ["rank 9"], [9]) if crc else _verdicts("passed"),
                            health=_health_table(health(crc, shifted=True)))]

    folder = tmp_path / "runs"
    folder.mkdir()
    clean = _write(folder / "a.h5", records(0.0), n=16, hosts=4, identity=True, created="2026-12-01T10:00:00Z")
    bad = _write(folder / "b.h5", records(4112.0), n=16, hosts=4, identity=True, created="2026-12-02T10:00:00Z",
                 exit_code=1)
    increases = counter_increases(bad)
    assert set(increases) == {"nvlink_crc", "violation_power_ns", "xid_events"}  # gauges are not counts
    assert increases["xid_events"][5] == 1.0 and np.nansum(increases["xid_events"]) == 1.0
    assert increases["nvlink_crc"][9] == 4112.0 and np.nansum(increases["nvlink_crc"]) == 4112.0
    metrics = rank_metrics(bad, ranks_of(bad))
    assert metrics["health-all"]["values"][9] == 4112.0 and metrics["health-all"]["values"][8] == 0.0
    # Each counter that grew is an option of its own; throttled time is not in the count of errors.
    assert "health-nvlink_crc" in metrics and metrics["health-violation_power_ns"]["values"][0] == 5e9
    assert "health-nvlink_crc" not in rank_metrics(clean, ranks_of(clean))
    page = Page(run_report(bad))
    assert page.cells()[9] == "health" and set(page.cells().values()) == {"health", "fine"}
    # Rank 5's XID event failed no check, but its GPU's error count grew: a warning, said in words.
    assert sorted(r for r, st in page.cells().items() if st == "health") == [5, 9]
    cell = next(a for a in page.all("div") if a.get("data-rank") == "5")
    assert "GPU counters: XID critical error events +1 during the run" in cell["title"]
    assert set(Page(run_report(clean)).cells().values()) == {"fine"}  # throttled time alone is no warning
    assert "GPU health: error counter increases, all counters" in [o for o in page.text.split("Colour by:")[1:2]][0]
    trend = headline_series([clean, bad])["health counter increases"]
    assert trend[1]["all error counters, every GPU"] == [0.0, 4113.0] and trend[1]["nvlink_crc"] == [0.0, 4112.0]
    # A run without /health tables has no point on that trend rather than a zero.
    assert "health counter increases" not in headline_series([_write(tmp_path / "c.h5", [_check("mesh")], n=16)])


def test_the_png_script_draws_with_the_reports_figure_functions(tmp_path):
    """scripts/plot_bandwidth.py has no plotting code of its own: its PNGs are figures.py's
    figures, the ones the report draws as SVG."""
    import importlib.util

    from tessera_mpi.results import figures

    path = cli.__file__.rsplit("/tessera_mpi/", 1)[0] + "/scripts/plot_bandwidth.py"
    spec = importlib.util.spec_from_file_location("plot_bandwidth", path)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    assert (script.bandwidth_figure, script.links_figure, script.soak_figure) == \
        (figures.bandwidth_figure, figures.links_figure, figures.soak_figure)
    assert "matplotlib" not in open(path).read()
    run = _write(tmp_path / "ok.h5", _all_kinds(8), n=8)
    assert script.main([str(run.path), "-o", str(tmp_path / "png")]) == 0
    assert sorted(p.name for p in (tmp_path / "png").iterdir()) == [
        "bandwidth_all_gather.png", "bandwidth_all_reduce.png", "bandwidth_sendrecv.png",
        "links_bidirectional.png", "links_unidirectional.png", "soak_timeline.png"]
