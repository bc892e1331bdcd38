"""History: every run of the same rack over time, status per check, the headline figures' trend,
and which runs regressed against the run before them."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..compare import compare_runs
from ..measures import counter_increases, is_bandwidth_table, peak_busbw, text
from ..reader import ResultsFileError, RunResults, read_results
from .page import esc, status, table
from .sections import FIGURES_OFF, Draw, anchor

Rack = tuple[int, tuple[str, ...]]
"""What makes two runs the same rack: the world size and the set of hosts."""


def rack_of(run: RunResults) -> Rack:
    """Return the rack a run ran on."""
    hosts = sorted({text(h) for h in run.ranks["host"]}) if "host" in (run.ranks.dtype.names or ()) else []
    return int(run.attrs.get("world_size", len(run.ranks))), tuple(hosts)


def load_runs(paths: Iterable[str | Path]) -> tuple[list[RunResults], list[str]]:
    """Read the results files named (a folder stands for its *.h5 files); return the runs and a
    note for each file that could not be read."""
    runs, problems = [], []
    for given in paths:
        given = Path(given)
        files = sorted(given.glob("*.h5")) if given.is_dir() else [given]
        for path in files:
            try:
                runs.append(read_results(path))
            except ResultsFileError as exc:
                problems.append(str(exc))
    return runs, problems


@dataclass(frozen=True)
class History:
    """The runs of one rack in time order, and what each lost against the run before it."""

    rack: Rack
    runs: tuple[RunResults, ...]
    regressions: tuple[tuple[str, ...], ...]
    """Per run, the regressions against the previous run (none for the first)."""

    @property
    def labels(self) -> list[str]:
        return [str(r.attrs.get("created", r.path.name)) for r in self.runs]


def histories(runs: Sequence[RunResults]) -> list[History]:
    """Group runs by rack, each group in creation order; the rack with most runs first."""
    groups: dict[Rack, list[RunResults]] = {}
    for run in runs:
        groups.setdefault(rack_of(run), []).append(run)
    out = []
    for rack, members in groups.items():
        members.sort(key=lambda r: (str(r.attrs.get("created", "")), str(r.path)))
        found = [()] + [tuple(compare_runs(a, b).regressions) for a, b in zip(members, members[1:])]
        out.append(History(rack=rack, runs=tuple(members), regressions=tuple(found)))
    return sorted(out, key=lambda h: (-len(h.runs), h.rack))


def headline_series(runs: Sequence[RunResults]) -> dict[str, tuple[str, dict[str, list[float]]]]:
    """Return the trend figures, {key: (unit, {series: one value per run, NaN where absent})}:
    peak busbw per collective, the slowest link, fault detection and recovery times, and the GPU
    health counters' increases over each run (/health tables; all error counts together, and
    each counter that grew; a run without the tables has none)."""
    n = len(runs)
    out: dict[str, tuple[str, dict[str, list[float]]]] = {}

    def put(key: str, unit: str, series: str, index: int, value: float) -> None:
        values = out.setdefault(key, (unit, {}))[1].setdefault(series, [float("nan")] * n)
        values[index] = value

    for i, run in enumerate(runs):
        bandwidth = run.checks.get("bandwidth")
        if bandwidth is not None:
            for name, data in bandwidth.datasets.items():
                if is_bandwidth_table(data) and not name.endswith("_unloaded") and len(data):
                    put("peak busbw per collective", "GB/s", name, i, peak_busbw(data))
        links = run.checks.get("links")
        if links is not None and "unidirectional" in links.datasets:
            matrix = links.datasets["unidirectional"]
            if (matrix > 0).any():
                put("slowest link", "GB/s", "slowest link, one way", i, float(matrix[matrix > 0].min()))
                put("slowest link", "GB/s", "median link", i, float(np.median(matrix[matrix > 0])))
        faults = run.checks.get("faults")
        if faults is not None and "scenarios" in faults.datasets and len(faults.datasets["scenarios"]):
            data = faults.datasets["scenarios"]
            put("fault detection and recovery", "ms", "slowest detection", i, float(np.max(data["detection_ms"])))
            put("fault detection and recovery", "ms", "slowest recovery", i, float(np.max(data["recovery_ms"])))
    # Per run, each error count's increase over every GPU (throttled nanoseconds are time, not
    # events); a counter that grew in any run is a line of its own, 0 in the runs it did not.
    grew: list[dict[str, float]] = [{c: float(np.nansum(v)) for c, v in counter_increases(run).items()
                                     if not c.endswith("_ns")} for run in runs]
    moved = sorted({c for totals in grew for c, v in totals.items() if v > 0})
    for i, totals in enumerate(grew):
        if totals:
            put("health counter increases", "count", "all error counters, every GPU", i, sum(totals.values()))
            for counter in moved:
                put("health counter increases", "count", counter, i, totals.get(counter, 0.0))
    return out


def trend_html(history: History, draw: Draw, *, current: int | None = None) -> str:
    """Return the trend figures of one rack's history (the run a report is about marked)."""
    try:
        from ..figures import trend_figure
    except ImportError:
        return draw("trend figures", FIGURES_OFF)
    regressed = [bool(r) for r in history.regressions]
    parts = []
    for title, (unit, series) in headline_series(history.runs).items():
        parts.append(draw(f"trend: {title}", trend_figure(title, history.labels, series, unit=unit,
                                                            regressed=regressed, current=current)))
    return "".join(parts)


def runs_table(history: History, *, current: int | None = None) -> str:
    """Return status per check per run, the regressed runs marked."""
    names = list(dict.fromkeys(n for r in history.runs for n in r.checks))
    rows = []
    for i, (run, regressions) in enumerate(zip(history.runs, history.regressions)):
        mark = "▶ " if i == current else ""
        verdict = (f'<span class="regressed">▼ regressed: {esc("; ".join(regressions[:3]))}</span>'
                   if regressions else "")
        rows.append([f"{mark}{esc(run.attrs.get('created', '?'))}", esc(run.path.name)]
                    + [status(run.checks[n].status) if n in run.checks else "—" for n in names] + [verdict])
    return table(["run", "file", *names, "against the run before"], rows, raw=True)


def history_section(history: History, draw: Draw, *, current: int | None = None, title: str = "History") -> str:
    """Return one rack's history: the runs table, then the trend."""
    world, hosts = history.rack
    head = (f"<h2>{esc(title)}</h2><p class=\"note\">{len(history.runs)} runs of the rack with {world} ranks on "
            f"{len(hosts)} host(s) ({esc(', '.join(hosts[:6]))}{' ...' if len(hosts) > 6 else ''}); "
            "▼ marks a run that regressed against the run before it</p>")
    ident = anchor("history-" + "-".join(map(str, (world, *hosts[:2]))))
    return f'<section id="{ident}" class="history">{head}{runs_table(history, current=current)}' \
           f'{trend_html(history, draw, current=current)}</section>'
