"""The report's sections: the verdict, provenance, the table of checks and one section per check."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

import numpy as np

from ..compare import Comparison
from ..measures import CALLS, is_bandwidth_table, peak_busbw, text
from ..reader import CheckResult, RunResults, rows_of
from .page import esc, status, table
from .rackmap import MPI_WORDS, Rank, culprit_ranks

Draw = Callable[[str, Any], str]
"""Draws a figure: (alt text, a Figure, None or FIGURES_OFF) -> HTML ("" for None)."""
FIGURES_OFF = object()
"""Stands for a figure that could not be drawn because matplotlib (an extra) is not installed."""

PROVENANCE = ("created", "tessera_mpi_version", "schema_version", "git_commit", "world_size", "final_world_size",
              "mesh_shape", "mesh_axes", "backend", "cuda_aware", "cuda_aware_source", "mpi_library_version",
              "mpi4py_version", "numpy_version", "python_version", "launcher", "oversubscribed", "command_line",
              "under_load", "repeat", "checks_selected", "complete", "exit_code", "slurm_job_id", "slurm_nodelist",
              "slurm_partition", "slurm_cluster", "topology", "baseline", "baseline_regressions")
"""Root attributes shown under provenance, in this order; any others follow."""
TABLE_ROWS = 200
"""Longer tables are cut to their first rows (the results file has them all)."""


def anchor(name: str) -> str:
    """Return the id of a check's section."""
    return "check-" + "".join(c if c.isalnum() or c in "-_" else "-" for c in name)


def unfinished(run: RunResults) -> str | None:
    """Return why a run is not finished ("2 of 9 selected checks recorded; next: links"), or None."""
    if "complete" not in run.attrs or bool(run.attrs["complete"]):
        return None
    selected = [str(s) for s in run.attrs.get("checks_selected", [])]
    absent = [n for n in selected if n not in run.checks]
    nxt = f"; next: {absent[0]}" if absent else ""
    return (f"{len(selected) - len(absent)} of {len(selected)} selected checks recorded{nxt} (the run was still "
            "going when this report was written, or it was killed or hung)")


def run_passed(run: RunResults) -> bool:
    """Whether the run passed: its exit code where recorded, else every check passed or skipped."""
    if "exit_code" in run.attrs and run.attrs["exit_code"] != "":
        return int(run.attrs["exit_code"]) == 0
    return all(c.status in ("passed", "skipped") for c in run.checks.values()) \
        and not int(run.attrs.get("baseline_regressions", 0) or 0)


def first_culprit(run: RunResults, ranks: list[Rank]) -> str | None:
    """Return the first failure in one line: the check, whom it blames (rank, host, position,
    serial where known) and what failed; None when nothing failed."""
    by_rank = {r.rank: r for r in ranks}
    for check in run.checks.values():
        if check.status not in ("failed", "error"):
            continue
        culprits = [str(c) for c in check.attrs.get("culprits", []) or []]
        failing = [int(r) for r in np.atleast_1d(check.attrs.get("failing_ranks", []))]
        who = culprits[0] if culprits else (f"rank {failing[0]}" if failing else "global")
        named = culprit_ranks(who) or failing[:1]
        where = by_rank[named[0]].describe() if named and named[0] in by_rank else who
        if named and who.startswith(("link", "pair")):
            where = f"{who}: {where}"
        what = check.headline or (check.message.splitlines() or [""])[0]
        return f"{check.name} {check.status}: {where}: {what}"
    return None


def verdict(run: RunResults, ranks: list[Rank], *, comparison: Comparison | None) -> str:
    """Return the verdict box: PASSED, FAILED or INCOMPLETE, counts, duration, first culprit."""
    counts = Counter(c.status for c in run.checks.values())
    tally = ", ".join(f"{counts[s]} {s}" for s in ("passed", "failed", "error", "skipped"))
    duration = sum(c.duration_s for c in run.checks.values())
    pending = unfinished(run)
    if pending is not None:
        kind, word = "incomplete", "◔ INCOMPLETE"
    elif run_passed(run):
        kind, word = "passed", "✓ PASSED"
    else:
        kind, word = "failed", "✗ FAILED"
    lines = [f'<div class="big" id="verdict-word">{word}</div>',
             f"<div>{esc(tally)}; checks took {duration:.1f} s; {esc(run.attrs.get('world_size'))} ranks, "
             f"created {esc(run.attrs.get('created'))}</div>"]
    if pending is not None:
        lines.append(f"<div>{esc(pending)}</div>")
    culprit = first_culprit(run, ranks)
    if culprit is not None:
        lines.append(f'<div id="first-culprit"><strong>First culprit:</strong> {esc(culprit)}</div>')
    regressions = comparison.regressions if comparison is not None else []
    if regressions:
        lines.append(f'<div class="regressed">▼ {len(regressions)} regression(s) against the baseline: '
                     f"{esc(regressions[0])}{' ...' if len(regressions) > 1 else ''}</div>")
    return f'<section id="verdict" class="verdict v-{kind}" data-verdict="{kind}">{"".join(lines)}</section>'


def _attr_text(value: Any) -> str:
    if isinstance(value, list):
        return "x".join(map(str, value)) if all(isinstance(v, int) for v in value) else ", ".join(map(str, value))
    return str(value).splitlines()[0] if isinstance(value, str) and value else str(value)


def _recorded(run: RunResults, checks: tuple[str, ...], key: str) -> Any:
    """Return attribute `key` of the first of `checks` in `run` that recorded it, else None."""
    return next((run.checks[c].attrs[key] for c in checks if c in run.checks and run.checks[c].attrs.get(key)), None)


def provenance(run: RunResults, baseline: RunResults | None) -> str:
    """Return the provenance table, beside the baseline's when there is one."""
    keys = [k for k in PROVENANCE if k in run.attrs or (baseline is not None and k in baseline.attrs)]
    keys += sorted(k for k in run.attrs if k not in PROVENANCE and k != "lost_ranks")
    headers = ["attribute", "this run"] + (["baseline"] if baseline is not None else [])
    rows = []
    for key in keys:
        row = [key, _attr_text(run.attrs.get(key, "—"))]
        if baseline is not None:
            row.append(_attr_text(baseline.attrs.get(key, "—")))
        rows.append(row)
    # Recorded by the checks rather than at the root: the fault-tolerance mode, the transport
    # (the first fabric check that ran says it) and the timed loop.
    fabric = ("bandwidth", "links", "bisection", "soak")
    for label, checks, key in (("fault-tolerance mode (faults check)", ("faults",), "mode"),
                               ("fault-tolerance mode because", ("faults",), "mode_reason"),
                               ("transport (fabric checks, --transport)", fabric, "transports"),
                               ("transport judged", fabric, "judged_transport"),
                               ("timed loop (bandwidth check)", ("bandwidth",), "loop"),
                               ("compiled loop unavailable because", ("bandwidth",), "loop_fallback")):
        mine = _recorded(run, checks, key)
        theirs = _recorded(baseline, checks, key) if baseline is not None else None
        if mine or theirs:
            rows.append([label, str(mine or "—")] + ([str(theirs or "—")] if baseline is not None else []))
    files = f"<p class=\"note\">results file {esc(run.path)}" + (
        f"; baseline {esc(baseline.path)}" if baseline is not None else "") + "</p>"
    lost = run.attrs.get("lost_ranks") or []
    lost_html = (f"<p>Ranks lost during the run ({len(lost)}):</p><pre>{esc(chr(10).join(map(str, lost)))}</pre>"
                 if lost else "")
    return f'<section id="provenance"><h2>Provenance</h2>{files}{table(headers, rows)}{lost_html}</section>'


def checks_table(run: RunResults) -> str:
    """Return the table of checks, each row linking to its section."""
    rows = []
    for check in run.checks.values():
        a = check.attrs
        culprits = ", ".join(str(c) for c in a.get("culprits", []) or [])
        message = check.message.splitlines()
        rows.append([f'<a href="#{anchor(check.name)}">{esc(check.name)}</a>', status(check.status),
                     status(str(a.get("sanity", "—"))), status(str(a.get("performance", "—"))),
                     f"{check.duration_s:.2f} s", esc(check.headline),
                     esc(message[0] + (f" (+{len(message) - 1} lines)" if len(message) > 1 else "")) if message else "",
                     esc(culprits)])
    missing = [str(s) for s in run.attrs.get("checks_selected", []) if str(s) not in run.checks]
    for name in missing:
        rows.append([esc(name), status("not run"), "", "", "", "not recorded in this file", "", ""])
    return ('<section id="checks"><h2>Checks</h2>'
            + table(["check", "status", "sanity", "performance", "duration", "headline", "message", "culprits"],
                    rows, raw=True) + "</section>")


def data_table(data: np.ndarray, *, caption: str, skip: tuple[str, ...] = ()) -> str:
    """Return a stored table as HTML (its first TABLE_ROWS rows), or a one-line summary for a matrix."""
    if data.dtype.names is None:
        return f'<p class="note">{esc(caption)}: {data.dtype} array of shape {"x".join(map(str, data.shape))}</p>'
    names = [n for n in data.dtype.names if n not in skip]
    rows = [[row[n] for n in names] for row in rows_of(data[:TABLE_ROWS])]
    more = f" (first {TABLE_ROWS} of {len(data)} rows)" if len(data) > TABLE_ROWS else ""
    return table(names, rows, caption=caption + more)


def _digests(check: CheckResult) -> str:
    data = check.datasets["digests"]
    groups: dict[tuple[str, str], set[str]] = {}
    counts: Counter[tuple[str, str]] = Counter()
    for row in data:
        key = (text(row["case"]), text(row["algorithm"]))
        groups.setdefault(key, set()).add(text(row["sha256"]))
        counts[key] += 1
    rows = [[case, algorithm, str(counts[(case, algorithm)]), str(len(d)),
             status("passed") if len(d) == 1 else status("failed"), next(iter(d))[:16] + "…" if len(d) == 1 else "—"]
            for (case, algorithm), d in groups.items()]
    return table(["case", "algorithm", "runs (rank orders)", "distinct digests", "identical bits", "sha256"],
                 rows, caption="determinism digests: every rank order must give the same bits", raw=True)


def _bandwidth(run: RunResults, check: CheckResult, draw: Draw, baseline: RunResults | None) -> list[str]:
    figures = _figures_module()
    parts = []
    peaks = []
    for key, data in check.datasets.items():
        if is_bandwidth_table(data) and not key.endswith("_unloaded"):
            alone = check.datasets.get(key + "_unloaded")
            old = baseline.checks["bandwidth"].datasets.get(key) if baseline is not None and \
                "bandwidth" in baseline.checks else None
            peaks.append([key, f"{peak_busbw(data):.4g}",
                          f"{peak_busbw(alone):.4g}" if alone is not None else "—",
                          f"{peak_busbw(old):.4g}" if old is not None and len(old) else "—",
                          str(int(data["wrong"].sum())) if "wrong" in (data.dtype.names or ()) else "—"])
            if figures is not None:
                parts.append(draw(f"{key}: bus bandwidth and latency against message size",
                                  figures.bandwidth_figure(run, key, baseline=baseline)))
    expected = float(check.attrs.get("expected_busbw_GBps", 0.0) or 0.0)
    head = table(["collective", "peak busbw GB/s", "without load", "baseline", "wrong elements"], peaks,
                 caption=f"peak bus bandwidth over the largest sizes; expected "
                         f"{expected:g} GB/s" if expected else "peak bus bandwidth over the largest sizes "
                                                                "(no expectation)")
    return [head, *parts]


def _figures_module() -> Any:
    try:
        from .. import figures
    except ImportError:  # matplotlib is an extra: the report still has its tables without it
        return None
    return figures


SPECIFIC = {"links": ("unidirectional", "bidirectional"), "bandwidth": ()}
"""Datasets a check's own section draws rather than lists."""


def check_section(run: RunResults, check: CheckResult, draw: Draw, *, baseline: RunResults | None) -> str:
    """Return one check's section: status, verdicts, headline, message, culprits, then its
    figures and tables."""
    a = check.attrs
    figures = _figures_module()
    out = [f'<section class="check" id="{anchor(check.name)}" data-check="{esc(check.name)}" '
           f'data-status="{esc(check.status)}">',
           f"<h2>{esc(check.name)} {status(check.status)}</h2>",
           f"<p>sanity {status(str(a.get('sanity', '—')))}, performance {status(str(a.get('performance', '—')))}; "
           f"{check.duration_s:.2f} s</p>",
           f"<p><strong>{esc(check.headline)}</strong></p>"]
    if a.get("figures") and a.get("figures") != check.headline:
        out.append(f'<p class="note">figures: {esc(a["figures"])}</p>')
    if a.get("not_judged"):
        out.append(f'<p class="note">performance not judged: {esc(a["not_judged"])}</p>')
    if check.message:
        out.append(f"<pre>{esc(check.message)}</pre>")
    culprits = a.get("culprits", []) or []
    if culprits:
        out.append(f"<p>culprits: {esc(', '.join(map(str, culprits)))}</p>")
    if a.get("load_iterations"):
        out.append(f'<p class="note">under load: {esc(a.get("load_iterations"))} background all-reduces of '
                   f'{esc(a.get("load_message_bytes"))} bytes per rank ran beside this check</p>')
    if "traceback" in a:
        out.append(f"<pre>{esc(a['traceback'])}</pre>")
    shown = set(SPECIFIC.get(check.name, ()))
    if check.name == "bandwidth":
        out.extend(_bandwidth(run, check, draw, baseline))
        shown.update(k for k, d in check.datasets.items() if is_bandwidth_table(d))
    elif check.name == "links" and figures is not None:
        for key in figures.LINK_KINDS:
            out.append(draw(f"links, {figures.LINK_KINDS[key]}", figures.links_figure(run, key)))
    elif check.name in ("soak", "bisection", "faults", "parallelism") and figures is not None:
        fn = getattr(figures, f"{check.name}_figure")
        out.append(draw(f"{check.name}: {'timeline' if check.name in ('soak', 'faults') else 'overview'}", fn(run)))
    if figures is None and check.name in ("bandwidth", "links", "soak", "bisection", "faults", "parallelism"):
        out.append(draw(f"{check.name} figures", FIGURES_OFF))
    if "digests" in check.datasets:
        out.append(_digests(check))
        shown.add("digests")
    if CALLS in check.datasets:
        out.append(_mpi_time(check.datasets[CALLS]))
        shown.add(CALLS)  # 72 rows: the rack map is its view
    for key in ("references", "repetitions"):
        if key in check.datasets:
            out.append(data_table(check.datasets[key], caption=key))
            shown.add(key)
    for key, data in check.datasets.items():
        if key not in shown:
            out.append(data_table(data, caption=key))
    out.append("</section>")
    return "".join(out)


def _mpi_time(data: np.ndarray) -> str:
    """One line for a check's `calls` table: the spread of the ranks' time in MPI calls, and who
    waited least (in a collective, the rank the others wait for)."""
    seconds = np.asarray(data["seconds"], dtype=float)
    if not len(seconds):
        return ""
    least = int(data["rank"][int(np.argmin(seconds))])
    return (f'<p class="note">{esc(MPI_WORDS)} (waiting for the others included): min {seconds.min():.3g} s (rank {least}), median '
            f'{float(np.median(seconds)):.3g} s, max {seconds.max():.3g} s over {len(seconds)} ranks; '
            "colour the rack map by it</p>")


def comparison_section(baseline: RunResults | None, comparison: Comparison | None) -> str:
    """Return the comparison with the baseline, or a note why there is none yet."""
    if baseline is None:
        return ""
    if comparison is None:
        body = '<p class="note">compared with the baseline when the run ends</p>'
    else:
        lines = "".join(f'<li class="{"regressed" if "(regression)" in line else ""}">'
                        f'{"▼ " if "(regression)" in line else ""}{esc(line)}</li>' for line in comparison.lines)
        word = "no regression" if comparison.ok else f"{len(comparison.regressions)} regression(s)"
        body = f"<p>{status('passed' if comparison.ok else 'failed')} {esc(word)}</p><ul>{lines}</ul>"
    return f'<section id="baseline"><h2>Against the baseline</h2><p class="note">{esc(baseline.path)}</p>{body}</section>'


def selftest_section(run: RunResults) -> str:
    """Return the --self-test table, when the run has one."""
    data = run.tables.get("selftest")
    if data is None or data.dtype.names is None:
        return ""
    names = list(data.dtype.names)
    rows = [[status(str(v)) if n in ("verdict", "status", "clean") else esc(v) for n, v in row.items()]
            for row in rows_of(data)]
    caught = sum(1 for row in rows_of(data) if row.get("verdict") == "caught")
    return (f'<section id="selftest"><h2>Self-test</h2><p>{caught} of {len(data)} planted defects caught</p>'
            + table(names, rows, raw=True) + "</section>")
