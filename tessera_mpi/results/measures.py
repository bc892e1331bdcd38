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


def counter_increases(run: RunResults) -> dict[str, np.ndarray]:
    """Return {counter: its increase on each rank over the run} for the GPU health counters that
    only grow (kind "count", hardware/counters.py), read from the /health/<check> tables; one
    value per row of /ranks, NaN where no table read that rank's GPU.

    A rank's GPU is found by its serial, UUID or bus id (the tables' `gpu` column) where one rank
    alone has it, so that a table written after a fault shrank the world still lands on the right
    cell; the table's own `rank` is used only when the GPU is not named in /ranks. The tables overlap (`health` and
    `health_end` span the suite from its first snapshot, the others one check each), and a count
    only grows, so the increase is the largest reading less the smallest, per GPU, link and counter.
    """
    from ..hardware.counters import BY_NAME  # the counters' kinds: the one table of them

    n = len(run.ranks)
    names = run.ranks.dtype.names or ()
    by_gpu: dict[str, int] = {}
    for column in ("gpu_serial", "gpu_uuid", "pci_bus_id"):
        if column in names:
            values = [text(v) for v in run.ranks[column]]
            for index, value in enumerate(values):
                # A bus id repeats on every host (and an emulated one always): only a name that
                # one rank holds identifies its GPU.
                if value and values.count(value) == 1:
                    by_gpu.setdefault(value, index)
    first: dict[tuple[int, int, str], float] = {}
    last: dict[tuple[int, int, str], float] = {}
    for data in run.health.values():
        if not len(data) or not {"rank", "gpu", "link", "counter", "before", "after"} <= set(data.dtype.names or ()):
            continue
        for row in data:
            counter = text(row["counter"])
            spec = BY_NAME.get(counter)
            if spec is None or spec.kind != "count":
                continue
            index = by_gpu.get(text(row["gpu"]), int(row["rank"]))
            if not 0 <= index < n:
                continue
            key = (index, int(row["link"]), counter)
            for value in (float(row["before"]), float(row["after"])):
                if np.isfinite(value):
                    first[key] = min(first.get(key, value), value)
                    last[key] = max(last.get(key, value), value)
    out: dict[str, np.ndarray] = {}
    for (index, _, counter), low in first.items():
        values = out.setdefault(counter, np.full(n, np.nan))
        values[index] = (0.0 if np.isnan(values[index]) else values[index]) + last[(index, _, counter)] - low
    return out


CALLS = "calls"
"""The per-check dataset of each rank's time in calls through the call path (schema 1.5)."""


def mpi_seconds(run: RunResults) -> dict[str, np.ndarray]:
    """Return {check: seconds each rank spent inside calls through the call path during it},
    one value per row of /ranks (the table's `rank` is the launch rank), NaN where the check
    has no row for that rank (lost before it ran). Empty for a file written before schema 1.5,
    which records no such time."""
    n = len(run.ranks)
    out: dict[str, np.ndarray] = {}
    for name, check in run.checks.items():
        data = check.datasets.get(CALLS)
        if data is None or not len(data) or not {"rank", "seconds"} <= set(data.dtype.names or ()):
            continue
        values = np.full(n, np.nan)
        for rank, seconds in zip(np.asarray(data["rank"], dtype=np.int64), np.asarray(data["seconds"], dtype=float)):
            if 0 <= rank < n:
                values[rank] = (0.0 if np.isnan(values[rank]) else values[rank]) + seconds
        out[name] = values
    return out
