"""Headline figures read back from a results file's tables (no plotting library needed)."""

from __future__ import annotations

import numpy as np

from .reader import RunResults

PEAK_SHARE = 4
"""A collective's peak busbw is the best over the largest 1/PEAK_SHARE of its sizes (as the
bandwidth check computes it; the reader does not keep the tables' own `peak_busbw_GBps`)."""


def text(value: object) -> str:
    """Return a value of a stored table as str (h5py gives strings back as bytes)."""
    return value.decode() if isinstance(value, bytes) else str(value)


def run_label(run: RunResults) -> str:
    """Return how a figure names a run: its creation time, world size and backend."""
    a = run.attrs
    return f"{a.get('created', '?')} ({a.get('world_size')} ranks, {a.get('backend')})"


def hosts_of(run: RunResults) -> list[str]:
    """Return the host of every rank, in rank order."""
    return [text(h) for h in run.ranks["host"]] if "host" in (run.ranks.dtype.names or ()) else []


def peak_busbw(data: np.ndarray) -> float:
    """Return a bandwidth table's peak busbw (GB/s) over its largest sizes, 0.0 for an empty table."""
    if len(data) == 0:
        return 0.0
    sizes = sorted(set(data["size_bytes"].tolist()))
    large = sizes[-max(1, len(sizes) // PEAK_SHARE):]
    return float(data["busbw_GBps"][np.isin(data["size_bytes"], large)].max())


def is_bandwidth_table(data: np.ndarray) -> bool:
    """Whether a dataset is one collective's sweep (a row per size and variant)."""
    names = data.dtype.names or ()
    return all(k in names for k in ("size_bytes", "busbw_GBps", "time_us_max", "time_us_min", "in_place"))
