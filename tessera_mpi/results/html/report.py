"""One self-contained HTML page per run (`run_report`) and per set of runs (`history_report`)."""

from __future__ import annotations

from collections.abc import MutableMapping, Sequence
from typing import Any

from ..compare import Comparison
from ..reader import CheckResult, RunResults
from .page import document, esc, figure
from .rackmap import rack_map, ranks_of
from .sections import (FIGURES_OFF, anchor, check_section, checks_table, comparison_section, provenance, selftest_section,
                       verdict)
from .trend import History, history_section, histories

SectionCache = MutableMapping[tuple, str]
"""Checks' sections already drawn, kept by whoever rewrites a report after every check (the
suite): a finished check's section does not change, and its figures cost most of the time."""


def draw(alt: str, fig: Any) -> str:
    """Return `fig` as an inline SVG figure; a note when there is no figure module (matplotlib)."""
    if fig is None:
        return ""
    if fig is FIGURES_OFF:
        return f'<p class="note">{esc(alt)}: not drawn (matplotlib is not installed: pip install tessera_mpi[plot])</p>'
    from ..figures import svg_data_uri
    return figure(svg_data_uri(fig), alt)


def _cache_key(check: CheckResult, baseline: RunResults | None) -> tuple:
    return (check.name, check.status, check.duration_s, check.headline, check.message,
            str(baseline.path) if baseline is not None else None)


def run_report(run: RunResults, *, baseline: RunResults | None = None, comparison: Comparison | None = None,
               history: Sequence[RunResults] = (), cache: SectionCache | None = None) -> str:
    """Return the report of `run`: verdict, provenance (and the baseline's), the rack map, the
    table of checks, one section per check with its figures, the comparison with `baseline`
    (`comparison`, when it was made), the self-test table, and with `history` (earlier runs)
    the trend of this rack's runs with `run` marked."""
    ranks = ranks_of(run)
    nav = ['<a href="#verdict">verdict</a>', '<a href="#provenance">provenance</a>', '<a href="#rack">rack map</a>',
           '<a href="#checks">checks</a>']
    nav += [f'<a href="#{anchor(c)}">{esc(c)}</a>' for c in run.checks]
    sections = []
    for check in run.checks.values():
        key = _cache_key(check, baseline)
        if cache is not None and key in cache:
            sections.append(cache[key])
            continue
        html = check_section(run, check, draw, baseline=baseline)
        if cache is not None:
            cache[key] = html
        sections.append(html)
    trend = ""
    if history:
        others = [r for r in history if str(r.path) != str(run.path)]
        mine = next((h for h in histories([*others, run]) if any(r is run for r in h.runs)), None)
        if mine is not None:
            current = next(i for i, r in enumerate(mine.runs) if r is run)
            trend = history_section(mine, draw, current=current, title="History of this rack")
            nav.append(f'<a href="#{anchor("history-" + "-".join(map(str, (mine.rack[0], *mine.rack[1][:2]))))}">'
                       "history</a>")
    if baseline is not None:
        nav.append('<a href="#baseline">baseline</a>')
    title = f"tessera_mpi report {run.attrs.get('created', '')} ({run.attrs.get('world_size')} ranks)"
    body = "".join([
        f"<h1>{esc(title)}</h1><nav>{' '.join(nav)}</nav>",
        verdict(run, ranks, comparison=comparison),
        provenance(run, baseline),
        rack_map(run),
        checks_table(run),
        *sections,
        comparison_section(baseline, comparison),
        selftest_section(run),
        trend,
    ])
    return document(title, body)


def history_report(runs: Sequence[RunResults], *, problems: Sequence[str] = ()) -> str:
    """Return the history page of `runs`: one section per rack (same world size and hosts)."""
    found: list[History] = histories(runs)
    body = [f"<h1>tessera_mpi history: {len(runs)} runs of {len(found)} rack(s)</h1>"]
    if problems:
        body.append("<p>Files not read:</p><pre>" + esc("\n".join(problems)) + "</pre>")
    for index, history in enumerate(found, 1):
        body.append(history_section(history, draw, title=f"Rack {index}"))
    return document("tessera_mpi history", "".join(body))
