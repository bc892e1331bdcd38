"""The one results writer: rank 0's HDF5 file, rewritten whole and atomically after every check."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..util.atomic import replacing
from .schema import STATUSES
from .table import STRING


@dataclass(frozen=True)
class Dataset:
    """An array to store under a check's group, with its attributes (units, descriptions)."""

    data: np.ndarray
    attrs: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class CheckRecord:
    """One finished check as the results file stores it."""

    name: str
    status: str
    duration_s: float
    message: str
    headline: str
    datasets: Mapping[str, Dataset] = field(default_factory=dict)
    attrs: Mapping[str, Any] = field(default_factory=dict)
    health: Dataset | None = None
    """The GPUs' counters before and after the check, stored as /health/<name> (None: none read)."""

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"check status {self.status!r} is not one of {STATUSES}")


def _attr(value: Any) -> Any:
    """Return `value` in a form h5py stores as an attribute (None becomes "")."""
    if value is None:
        return ""
    if isinstance(value, (list, tuple)) and value and all(isinstance(v, str) for v in value):
        return np.array(value, dtype=STRING)
    return value


class ResultsWriter:
    """Holds the run's results in memory and rewrites the file after every added check.

    Each rewrite goes to a temporary file in the same folder, is flushed to disk, and replaces
    the previous file with one atomic rename: a crash at any moment leaves either the previous
    complete file or the new complete file, never a partial one. Used on one rank only.
    """

    def __init__(self, path: Path, *, attrs: Mapping[str, Any], ranks: np.ndarray) -> None:
        self.path = Path(path)
        self.attrs = dict(attrs)
        self.ranks = ranks
        self.checks: list[CheckRecord] = []
        self.tables: dict[str, Dataset] = {}
        """Run-level tables beside /ranks (/selftest)."""

    @classmethod
    def resume(cls, path: Path) -> ResultsWriter:
        """Take over an existing file (the new rank 0 after rank 0 was lost): its root
        attributes, ranks table and every check, datasets and their attributes included."""
        import h5py  # only the writing rank needs it (see table.STRING)

        path = Path(path)
        with h5py.File(path, "r") as f:
            attrs = {k: v for k, v in f.attrs.items()}
            writer = cls(path, attrs=attrs, ranks=f["ranks"][()])
            writer.tables = {k: Dataset(f[k][()], dict(f[k].attrs.items())) for k in f
                             if k not in ("ranks", "checks", "health")}
            health = f["health"] if "health" in f else {}
            for name, group in f["checks"].items():
                extra = dict(group.attrs.items())
                writer.checks.append(CheckRecord(
                    name=name,
                    status=str(extra.pop("status")),
                    duration_s=float(extra.pop("duration_s")),
                    message=str(extra.pop("message")),
                    headline=str(extra.pop("headline")),
                    datasets={k: Dataset(v[()], dict(v.attrs.items())) for k, v in group.items()},
                    attrs=extra,
                    health=Dataset(health[name][()], dict(health[name].attrs.items())) if name in health else None,
                ))
        return writer

    def add(self, record: CheckRecord) -> None:
        """Append `record` (replacing an earlier check of the same name) and rewrite the file."""
        self.checks = [c for c in self.checks if c.name != record.name] + [record]
        self.write()

    def write(self) -> None:
        """Write everything held so far to the file, atomically."""
        import h5py  # only the writing rank needs it (see table.STRING)

        with replacing(self.path) as tmp:
            with h5py.File(tmp, "w", track_order=True) as f:
                for key, value in self.attrs.items():
                    f.attrs[key] = _attr(value)
                f.create_dataset("ranks", data=self.ranks)
                for name, dataset in self.tables.items():
                    stored = f.create_dataset(name, data=dataset.data)
                    for key, value in dataset.attrs.items():
                        stored.attrs[key] = _attr(value)
                checks = f.create_group("checks", track_order=True)
                health = None
                for record in self.checks:
                    group = checks.create_group(record.name)
                    group.attrs["status"] = record.status
                    group.attrs["duration_s"] = float(record.duration_s)
                    group.attrs["message"] = record.message
                    group.attrs["headline"] = record.headline
                    for key, value in record.attrs.items():
                        group.attrs[key] = _attr(value)
                    for name, dataset in record.datasets.items():
                        stored = group.create_dataset(name, data=dataset.data)
                        for key, value in dataset.attrs.items():
                            stored.attrs[key] = _attr(value)
                    if record.health is not None:
                        if health is None:
                            health = f.create_group("health", track_order=True)
                        stored = health.create_dataset(record.name, data=record.health.data)
                        for key, value in record.health.attrs.items():
                            stored.attrs[key] = _attr(value)
