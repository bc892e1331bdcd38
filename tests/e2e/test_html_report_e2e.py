"""--html end to end: the report of a 72-rank run opened in headless Chromium with the network
off, and the report a killed run leaves behind."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from html.parser import HTMLParser

import numpy as np
import pytest
from browser import Browser, find_browser
from conftest import NVL72, ROOT, SCRIPTS, mpirun

from tessera_mpi.results import read_results
from tessera_mpi.results.html.rackmap import MPI_WORDS, STATE_MARK, lost_world_ranks, ranks_of
from tessera_mpi.results.measures import mpi_seconds
from tessera_mpi.util.procs import find_mpirun, kill_session

PLANTED = str(SCRIPTS / "planted_check.py")


def _browser() -> str:
    found = find_browser()
    if found is None:
        pytest.skip("no Chromium on PATH and none could be installed here: install Debian's `chromium` "
                    "(apt-get install -y chromium; .ci/run does it on a fresh machine)")
    return found


@pytest.mark.slow
def test_the_report_of_a_72_rank_run_in_a_real_browser(nvl72_run, tmp_path):
    """The report of the session's default suite on an emulated NVL72 (72 ranks, 18 hosts), and
    beside it the report of a 72-rank run on the same emulated rack in which ranks 2 and 5 fail
    (mesh, the planted check, links to 8 peers: about 16 s), both opened with the network off."""
    report = nvl72_run.report
    assert nvl72_run.done.returncode == 0, nvl72_run.done.stdout[-4000:] + nvl72_run.done.stderr[-3000:]
    assert f"reports: {report}" in nvl72_run.done.stdout
    run = read_results(nvl72_run.out)
    assert report.stat().st_size < 5 << 20
    failing, failing_report = tmp_path / "failing72.h5", tmp_path / "failing72.html"
    done = mpirun(72, PLANTED, "fail", "--tests", "mesh,planted,links", "--link-peers", "8", "--quick",
                  "--out", str(failing), "--html", str(failing_report), timeout=300, env=NVL72)
    assert done.returncode == 1, done.stdout + done.stderr  # ranks 2 and 5 fail the planted check
    url = report.resolve().as_uri()
    with Browser(_browser()) as browser:
        log = browser.open(url)
        assert log.console_errors == []
        leaving = [u for u in log.requests if u != url and not u.startswith("data:")]
        assert leaving == [], f"the page requested {leaving}"
        assert browser.evaluate("document.querySelectorAll('#rack-map .cell').length") == 72
        assert browser.evaluate("document.querySelectorAll('#rack-map .cell[data-state=failed]').length") == 0
        # Readable without colour: every cell's text begins with its state's symbol.
        marks = browser.evaluate("Array.from(document.querySelectorAll('#rack-map .cell')).map(c => "
                                 "[c.dataset.state, c.textContent.trim()[0]])")
        assert all(STATE_MARK[state] == first for state, first in marks), marks
        # The faults check's losses (real or simulated) are the lost cells, after the world shrank.
        lost = sorted(lost_world_ranks(run, ranks_of(run)))
        faults = run.checks["faults"].attrs
        assert len(lost) == int(faults["start_ranks"]) - int(faults["end_ranks"]), (lost, run.attrs.get("lost_ranks"))
        assert browser.evaluate("Array.from(document.querySelectorAll('#rack-map .cell[data-state=lost]'))"
                                ".map(c => +c.dataset.rank)") == lost
        assert browser.evaluate("document.getElementById('verdict').dataset.verdict") == "passed"
        for name in run.checks:
            assert browser.evaluate(f"!!document.querySelector('section#check-{name}[data-check={name}]')"), name
            assert browser.evaluate(f"!!document.querySelector('#checks a[href=\"#check-{name}\"]')"), name
        assert browser.evaluate("document.querySelectorAll('#check-links img').length") >= 2
        assert browser.evaluate("Array.from(document.images).every(i => i.complete && i.naturalWidth > 0)")
        # Colour the map by the links' bandwidth: every cell then prints its value.
        browser.evaluate("var s = document.getElementById('rack-colour'); s.value = 'links-out';"
                         "s.dispatchEvent(new Event('change')); 0")
        values = browser.evaluate("Array.from(document.querySelectorAll('#rack-map .cell .v')).map(v => v.textContent)")
        assert len(values) == 72 and all(v and v != "n/a" for v in values)
        assert browser.evaluate("document.getElementById('rack-scale').textContent").startswith("links: median")
        # The emulated NVML reads every GPU: the map can be coloured by the counters' increases.
        assert run.health, "the emulated NVL72 run wrote no /health tables"
        browser.evaluate("var s = document.getElementById('rack-colour'); s.value = 'health-all';"
                         "s.dispatchEvent(new Event('change')); 0")
        values = browser.evaluate("Array.from(document.querySelectorAll('#rack-map .cell .v')).map(v => v.textContent)")
        assert len(values) == 72 and all(v and v != "n/a" for v in values), values
        assert browser.evaluate("document.getElementById('rack-scale').textContent").startswith("GPU health")
        # Time in MPI calls (every check's `calls` table): every rank ran the checks before the
        # faults check lost 7, so the total has a value on all 72 cells, in seconds.
        browser.evaluate("var s = document.getElementById('rack-colour'); s.value = 'mpi-total';"
                         "s.dispatchEvent(new Event('change')); 0")
        values = browser.evaluate("Array.from(document.querySelectorAll('#rack-map .cell .v')).map(v => v.textContent)")
        assert len(values) == 72 and all(v and v != "n/a" and float(v) > 0 for v in values), values
        scale = browser.evaluate("document.getElementById('rack-scale').textContent")
        assert scale.startswith(f"{MPI_WORDS}: all checks") and " s (value printed" in scale, scale
        assert not browser.evaluate("!!document.getElementById('no-mpi-time')")
        seconds = mpi_seconds(run)
        assert set(seconds) == set(run.checks) and np.isfinite(seconds["mesh"]).all()
        # The ranks lost in the faults check have no figure for the checks after it.
        later = [name for name in run.checks if list(run.checks).index(name) > list(run.checks).index("faults")]
        assert all(np.isnan(seconds[name][lost]).all() for name in later), later
        # The figure tells who the others waited for: the faults check's hang victim stalls
        # outside its call (a planned hang strikes before the clock) for seconds, while every
        # other rank waits inside it until the hang is detected.
        scenarios = {row["scenario"].decode(): row for row in run.checks["faults"].datasets["scenarios"]}
        victim = int(scenarios["hang"]["victims"].decode())
        during = seconds["faults"]
        others = np.delete(during, victim)
        assert int(np.nanargmin(during)) == victim and during[victim] < 0.5 * np.nanmedian(others), \
            (victim, during[victim], np.nanmedian(others))
        shot = browser.screenshot(tmp_path / "report.png")
        browser.resize(390, 844)
        # Against the width the page can use (clientWidth: the window less its scroll bar, 375 of 390).
        assert browser.evaluate("document.documentElement.scrollWidth <= document.documentElement.clientWidth")
        assert browser.evaluate("Array.from(document.images).every(i => i.getBoundingClientRect().right <= "
                                "document.documentElement.clientWidth)")
        narrow = browser.screenshot(tmp_path / "report-narrow.png")
        # A log that would have caught a request: the browser saw the page itself.
        assert url in log.requests
        # The failing run: its culprits are the failed cells, the first one is named up top.
        browser.resize(1280, 1800)
        failing_url = failing_report.resolve().as_uri()
        log = browser.open(failing_url)
        assert log.console_errors == [] and [u for u in log.requests if u != failing_url
                                             and not u.startswith("data:")] == []
        failed = browser.evaluate("Array.from(document.querySelectorAll('#rack-map .cell[data-state=failed]'))"
                                  ".map(c => +c.dataset.rank)")
        assert sorted(failed) == [2, 5]
        assert browser.evaluate("Array.from(document.querySelectorAll('#rack-map .cell[data-state=failed]'))"
                                ".every(c => c.textContent.trim().startsWith('✗') && "
                                "c.getAttribute('aria-label').endsWith(': failed'))")
        assert browser.evaluate("document.querySelectorAll('#rack-map .cell').length") == 72
        assert browser.evaluate("document.getElementById('verdict').dataset.verdict") == "failed"
        serial = read_results(failing).ranks["gpu_serial"][2]
        serial = serial.decode() if isinstance(serial, bytes) else str(serial)
        assert (f"planted failed: rank 2 (tp=0,pp=1,dp=0) host emul-n01, local device 2 (emulated:2), tray 1, "
                f"slot 2, GPU serial {serial}") in browser.evaluate("document.getElementById('first-culprit').textContent")
        assert browser.evaluate("document.querySelectorAll('#check-links img').length") == 2
    assert shot.stat().st_size > 20_000 and narrow.stat().st_size > 20_000


class _Sections(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.checks: list[str] = []
        self.verdict = ""

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "section" and "data-check" in attrs:
            self.checks.append(attrs["data-check"])
        if tag == "section" and attrs.get("id") == "verdict":
            self.verdict = attrs["data-verdict"]


def test_a_killed_run_leaves_the_last_complete_report(tmp_path):
    """The suite is SIGKILLed, whole, while its second check hangs: the page of the first stays."""
    mpirun_path = find_mpirun()
    if mpirun_path is None:
        pytest.skip("no mpirun found (install the local-mpi extra or load the site MPI)")
    report = tmp_path / "report.html"
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1", PYTHONUNBUFFERED="1")
    proc = subprocess.Popen([mpirun_path, "--oversubscribe", "-n", "8", sys.executable, PLANTED, "hang",
                             "--tests", "mesh,planted", "--timeout", "120", "--out", str(tmp_path / "run.h5"),
                             "--html", str(report)], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and 'data-check="mesh"' not in (report.read_text() if report.exists() else ""):
            time.sleep(0.5)
    finally:
        kill_session(proc.pid)
        proc.wait()
    page = _Sections()
    page.feed(report.read_text())
    assert page.checks == ["mesh"] and page.verdict == "incomplete"
    text = report.read_text()
    assert "1 of 2 selected checks recorded; next: planted" in text and text.rstrip().endswith("</html>")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.html", "run.h5"], "no half-written temporary file"
