"""Scratch buffers the deterministic sum reuses from one call to the next.

Why: a fresh multi-MiB host buffer is fresh pages from the kernel, and touching them is one
page fault per 4 KiB. The all-to-all algorithm needs two or three buffers of the message's
size (the padded rows, the received slices, the gathered result when it cannot gather into
`out`); allocated per call they cost more than the exchange itself where many ranks share a
node's cores (72 ranks on 2 cores, 4 MiB: the deterministic sum 2.0x (float32) and 3.6x
(float64) the native one with fresh buffers, 1.37x and 1.36x with these; docs/performance.md).

One buffer per role and thread (the background load runs its own collectives in a thread), kept
until a call needs another shape, dtype or array module: at most one of each role is held, the
size of the latest message. Nothing a caller receives is a scratch buffer. Local: no
communication.
"""

from __future__ import annotations

import threading
from typing import Any

_held = threading.local()


def buffer(xp: Any, role: str, shape: tuple[int, ...], dtype: Any) -> Any:
    """Return an uninitialised array of `shape` and `dtype` for `role`, the same array as the
    last call with the same role, shape, dtype and `xp` on this thread. The caller must not
    keep it past its own use, nor return it."""
    held = getattr(_held, "buffers", None)
    if held is None:
        held = _held.buffers = {}
    key = (getattr(xp, "__name__", repr(xp)), tuple(shape), str(dtype))
    kept = held.get(role)
    if kept is None or kept[0] != key:
        held.pop(role, None)  # drop the old one first: never two of a role alive at once
        kept = held[role] = (key, xp.empty(shape, dtype=dtype))
    return kept[1]


def release() -> None:
    """Drop this thread's scratch buffers (for tests, and for a caller that needs the memory
    back). Local: no communication."""
    _held.buffers = {}
