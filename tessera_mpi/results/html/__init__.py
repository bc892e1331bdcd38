"""The report a person reads: one self-contained HTML page per run, and a history of runs."""

from .report import SectionCache, history_report, run_report
from .trend import load_runs

__all__ = ["SectionCache", "history_report", "load_runs", "run_report"]
