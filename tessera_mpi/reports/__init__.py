"""Reports of a suite run for CI and dashboards: JUnit XML and a JSON summary, written atomically."""

from .junit import junit_xml
from .summary import RunSummary, summary_json

__all__ = ["RunSummary", "junit_xml", "summary_json"]
