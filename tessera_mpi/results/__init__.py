"""Results files: the HDF5 writer, its schema, reading files back and the summary command."""

from .reader import CheckResult, ResultsFileError, RunResults, read_results
from .schema import SCHEMA_VERSION, STATUSES
from .table import table
from .writer import CheckRecord, Dataset, ResultsWriter

__all__ = [
    "SCHEMA_VERSION",
    "STATUSES",
    "CheckRecord",
    "CheckResult",
    "Dataset",
    "ResultsFileError",
    "ResultsWriter",
    "RunResults",
    "read_results",
    "table",
]
