"""The suite's report files (--junit, --json, --html) and its --baseline comparison, kept by the
rank that writes the results file (rank 0, or the new rank 0 after rank 0 was lost)."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field

from mpi4py import MPI

from .. import runtime
from ..util.atomic import write_text
from ..runtime.agree import agree
from ..errors import ConfigError
from ..reports import RunSummary, junit_xml, summary_json
from ..results import ResultsWriter, RunResults, read_results
from ..results.compare import Comparison, compare_runs
from ..results.reader import ResultsFileError, rows_of
from .options import SuiteOptions


@dataclass
class Reports:
    """Writes the report files after every check and at the end; compares with the baseline."""

    options: SuiteOptions
    started: float
    """MPI.Wtime() when the run started."""
    _sections: dict[tuple, str] = field(default_factory=dict)
    """The HTML report's finished checks, drawn once (their figures are most of its cost)."""
    _baseline: RunResults | None = None

    def validate(self) -> None:
        """Collective: raise ConfigError on every rank when the baseline cannot be read or is the
        results file --out names, or a report file cannot be written (rank 0 looks)."""
        rt = runtime.current()
        error = ""
        if rt.rank == 0:
            baseline, out = self.options.baseline, self.options.out
            try:
                if baseline is not None:
                    if out is not None and not out.is_dir() and out.resolve() == baseline.resolve():
                        raise ConfigError(f"--baseline {baseline} is the file this run writes its results to")
                    read_results(baseline)
                for flag, path in (("--junit", self.options.junit), ("--json", self.options.json),
                                   ("--html", self.options.html)):
                    if path is not None:
                        try:
                            write_text(path, "")  # replaced by the first report; proves the folder writable
                        except OSError as exc:
                            raise ConfigError(f"{flag} {path} cannot be written: {exc.strerror or exc}") from exc
            except (ConfigError, ResultsFileError) as exc:
                error = f"--baseline: {exc}" if isinstance(exc, ResultsFileError) else str(exc)
        verdict = agree(rt.control, not error, error)
        if not verdict.ok:
            raise ConfigError(verdict.messages[0])

    def write(self, writer: ResultsWriter, *, complete: bool, exit_code: int | None = None,
              comparison: Comparison | None = None) -> None:
        """Rewrite the report files from what `writer` holds (writing rank only)."""
        if self.options.html is not None:
            self._write_html(writer, comparison)
        if self.options.junit is None and self.options.json is None:
            return
        summary = RunSummary(
            attrs=dict(writer.attrs), checks=list(writer.checks), results_file=str(writer.path),
            elapsed_s=MPI.Wtime() - self.started, complete=complete, exit_code=exit_code,
            baseline=str(self.options.baseline) if comparison is not None else None,
            baseline_lines=tuple(comparison.lines) if comparison is not None else (),
            baseline_regressions=tuple(comparison.regressions) if comparison is not None else (),
            selftest=rows_of(writer.tables["selftest"].data) if "selftest" in writer.tables else (),
        )
        if self.options.junit is not None:
            write_text(self.options.junit, junit_xml(summary))
        if self.options.json is not None:
            write_text(self.options.json, summary_json(summary))

    def _write_html(self, writer: ResultsWriter, comparison: Comparison | None) -> None:
        """Rewrite the HTML report from the results file just written: the page shows what the
        file holds, and a killed run leaves the last complete page (atomic replacement)."""
        from ..results.html import run_report  # matplotlib and the page's modules, only with --html
        if self.options.baseline is not None and self._baseline is None:
            self._baseline = read_results(self.options.baseline)
        assert self.options.html is not None
        try:
            page = run_report(read_results(writer.path), baseline=self._baseline, comparison=comparison,
                              cache=self._sections)
        except Exception as exc:  # noqa: BLE001 - a report that cannot be drawn must not end the run
            print(f"tessera_mpi.suite: warning: the HTML report could not be drawn: {exc!r}", file=sys.stderr,
                  flush=True)
            return
        write_text(self.options.html, page)

    def compare(self, writer: ResultsWriter) -> Comparison:
        """Compare the finished results file with --baseline (writing rank only)."""
        assert self.options.baseline is not None
        comparison = compare_runs(read_results(self.options.baseline), read_results(writer.path))
        writer.attrs["baseline"] = str(self.options.baseline)
        writer.attrs["baseline_regressions"] = len(comparison.regressions)
        writer.write()
        return comparison
