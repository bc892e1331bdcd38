"""Reading a results file back: root attributes, the ranks table and each check."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ResultsFileError


def plain(value: Any) -> Any:
    """Return an HDF5 attribute value as plain Python (str, int, float, lists of them)."""
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, np.ndarray):
        return [plain(v) for v in value.tolist()]
    if isinstance(value, np.generic):
        return value.item()
    return value


def rows_of(data: np.ndarray) -> list[dict[str, Any]]:
    """Return a stored table (a structured array) as a list of plain dicts, one per row."""
    names = data.dtype.names or ()
    return [{name: plain(row[name]) for name in names} for row in data]


@dataclass(frozen=True)
class CheckResult:
    """One /checks/<name> group."""

    name: str
    status: str
    duration_s: float
    message: str
    headline: str
    attrs: dict[str, Any] = field(default_factory=dict)
    datasets: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass(frozen=True)
class RunResults:
    """A whole results file, loaded into memory."""

    path: Path
    attrs: dict[str, Any]
    ranks: np.ndarray
    checks: dict[str, CheckResult]
    tables: dict[str, np.ndarray] = field(default_factory=dict)
    """Run-level tables beside /ranks (/selftest under --self-test)."""
    health: dict[str, np.ndarray] = field(default_factory=dict)
    """/health/<check>: each check's GPU counters before and after it, where they were read."""


def read_results(path: str | Path) -> RunResults:
    """Load the results file at `path`; raise ResultsFileError when it is missing or not one."""
    import h5py  # only a reading rank needs it (see table.STRING)

    path = Path(path)
    try:
        f = h5py.File(path, "r")
    except (OSError, FileNotFoundError) as exc:
        raise ResultsFileError(f"cannot open {path} as an HDF5 file: {exc}") from None
    with f:
        if "schema_version" not in f.attrs or "checks" not in f:
            raise ResultsFileError(f"{path} is an HDF5 file but not a tessera_mpi results file")
        attrs = {k: plain(v) for k, v in f.attrs.items()}
        ranks = f["ranks"][()]
        tables = {k: f[k][()] for k in f if k not in ("ranks", "checks", "health")}
        health = {k: v[()] for k, v in f["health"].items()} if "health" in f else {}
        checks = {}
        for name, group in f["checks"].items():
            extra = {k: plain(v) for k, v in group.attrs.items()}
            checks[name] = CheckResult(
                name=name,
                status=extra.pop("status"),
                duration_s=float(extra.pop("duration_s")),
                message=extra.pop("message"),
                headline=extra.pop("headline"),
                attrs=extra,
                datasets={key: group[key][()] for key in group},
            )
    return RunResults(path=path, attrs=attrs, ranks=ranks, checks=checks, tables=tables, health=health)
