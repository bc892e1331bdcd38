"""Rows of Python values as a NumPy structured array that HDF5 stores as a compound table."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

# h5py.string_dtype("utf-8") spelled out: h5py itself is imported only where a file is read or
# written (rank 0), so the other ranks of a 72-rank job do not pay its import.
STRING = np.dtype("O", metadata={"vlen": str})


def _column_dtype(values: Sequence[Any]) -> Any:
    first = values[0]
    if isinstance(first, str):
        return STRING
    if isinstance(first, (bool, np.bool_)):
        return np.bool_
    if isinstance(first, (tuple, list, np.ndarray)):
        inner = np.asarray(first)
        return (inner.dtype, inner.shape)
    return np.asarray(values).dtype


def table(rows: Sequence[Mapping[str, Any]]) -> np.ndarray:
    """Return `rows` (dicts with the same keys) as a structured array, one field per key.

    Strings become UTF-8 variable-length strings, tuples of numbers fixed-size sub-arrays.
    """
    if not rows:
        raise ValueError("a table needs at least one row")
    names = list(rows[0])
    for row in rows:
        if list(row) != names:
            raise ValueError(f"table rows must have the same keys in order: {names} vs {list(row)}")
    dtype = [(name, _column_dtype([row[name] for row in rows])) for name in names]
    out = np.empty(len(rows), dtype=dtype)
    for name in names:
        out[name] = [row[name] for row in rows]
    return out
