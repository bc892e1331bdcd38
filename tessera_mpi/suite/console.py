"""What the suite prints on rank 0: a header, one line per finished check, a summary table."""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Sequence

from ..util.text import plural
from ..results import CheckRecord
from .repetition import Spread
from .selftest import SelfTestRow

NAME_WIDTH = 14


def _emit(text: str) -> None:
    print(text, flush=True)


def note(text: str) -> None:
    """Print a line about the run itself (not a check), indented like the check lines."""
    _emit(f"  note: {text}")


def header(lines: Sequence[str]) -> None:
    """Print the run's header lines."""
    for line in lines:
        _emit(line)


def repetition(number: int, total: int) -> None:
    """Print the start of repetition `number` of `total` (--repeat)."""
    _emit(f"  repetition {number} of {total}")


def verdicts(record: CheckRecord) -> str:
    """Return "sanity passed, performance failed" (or the reason performance was not judged)."""
    a = record.attrs
    if "sanity" not in a or record.status in ("error", "skipped"):
        return ""
    performance = a.get("performance", "not judged")
    if performance == "not judged" and a.get("not_judged"):
        performance += f" ({a['not_judged']})"
    return f"sanity {a['sanity']}, performance {performance}"


def check_line(record: CheckRecord, *, planted: str = "") -> None:
    """Print one finished check, its message and verdicts when it did not pass, and the load
    beside it; a self-test's planted run says what was planted and whom it blamed."""
    if planted:
        culprits = ", ".join(map(str, record.attrs.get("culprits", ()))) or "none"
        _emit(f"  {record.name:<{NAME_WIDTH}}{record.status.upper():<8}{record.duration_s:>8.2f} s  planted "
              f"{planted}: {record.headline} [culprits: {culprits}]")
        return
    _emit(f"  {record.name:<{NAME_WIDTH}}{record.status.upper():<8}{record.duration_s:>8.2f} s  {record.headline}")
    if record.status != "passed" and record.message:
        for line in record.message.splitlines():
            _emit(f"      {line}")
    if record.status == "failed":
        _emit(f"      {verdicts(record)}")
        if record.attrs.get("figures"):
            _emit(f"      figures: {record.attrs['figures']}")
    if "load_iterations" in record.attrs:
        a = record.attrs
        _emit(f"      under load: {a['load_iterations']} background all-reduces of {a['load_message_bytes']} "
              f"bytes per rank in {a['load_seconds']:.2f} s")


def repetitions(history: Sequence[Sequence[CheckRecord]]) -> None:
    """Print every check's status in each repetition and the spread of its durations."""
    width = max([NAME_WIDTH - 2, *(len(h[0].name) for h in history)]) + 2
    _emit("")
    _emit(f"{'repetitions':<{width}}{'min s':>8}{'median s':>9}{'max s':>8}  status per repetition")
    for records in history:
        spread = Spread.of(records)
        statuses = " ".join(r.status for r in records)
        _emit(f"{records[0].name:<{width}}{spread.minimum:>8.2f}{spread.median:>9.2f}{spread.maximum:>8.2f}"
              f"  {statuses}")


def baseline(path: str, lines: Sequence[str], regressions: Sequence[str]) -> None:
    """Print the comparison with --baseline."""
    _emit("")
    _emit(f"baseline {path}:")
    for line in lines:
        _emit(f"  {line}")
    _emit(f"  {plural(len(regressions), 'regression') if regressions else 'no regression'}")


def selftest(rows: Sequence[SelfTestRow]) -> None:
    """Print the self-test table: check, planted defect, expected culprit, verdict, culprits named."""
    _emit("")
    width = max([len("planted defect"), *(len(r.defect) for r in rows)]) + 2
    _emit(f"{'self-test':<{NAME_WIDTH}}{'planted defect':<{width}}{'expected':<12}{'verdict':<16}culprits named")
    for r in rows:
        _emit(f"{r.check:<{NAME_WIDTH}}{r.defect:<{width}}{r.expected:<12}{r.verdict:<16}{r.named}")
    missed = [r for r in rows if not r.ok]
    _emit(f"self-test {'PASSED' if not missed else 'FAILED'}: {len(rows) - len(missed)} of {len(rows)} planted "
          "defects caught and blamed on the planted culprit, every clean run passed" if not missed else
          f"self-test FAILED: {len(missed)} of {len(rows)} planted defects not caught as they must be")


def summary(records: Sequence[CheckRecord], *, elapsed_s: float, results_path: str, regressions: int = 0) -> None:
    """Print the closing table and the totals (a --baseline regression fails the run)."""
    counts = Counter(r.status for r in records)
    width = max([NAME_WIDTH - 2, *(len(r.name) for r in records)]) + 2
    _emit("")
    _emit(f"{'check':<{width}}{'status':<8}{'sanity':<8}{'perf.':<12}{'duration':>10}  headline")
    for r in records:
        sanity, performance = str(r.attrs.get("sanity", "")), str(r.attrs.get("performance", ""))
        _emit(f"{r.name:<{width}}{r.status:<8}{sanity[:7]:<8}{performance[:11]:<12}{r.duration_s:>8.2f} s  "
              f"{r.headline}")
    passed = records and counts["passed"] + counts["skipped"] == len(records) and not regressions
    verdict = "PASSED" if passed else "FAILED"
    totals = ", ".join(f"{counts[s]} {s}" for s in ("passed", "failed", "error", "skipped"))
    if regressions:
        totals += f"; {plural(regressions, 'regression')} against the baseline"
    _emit(f"{verdict}: {totals} ({plural(len(records), 'check')} in {elapsed_s:.1f} s)")
    _emit(f"results: {results_path}")
    sys.stdout.flush()
