"""Handing backend arrays to a transport: direct for host memory and transports that take
device buffers, staged through host copies otherwise."""

from __future__ import annotations

from typing import Any

import numpy as np

from .backend import ArrayBackend


class Staging:
    """Turns backend arrays into buffers a transport may read and write, and back.

    A transport that knows nothing of device streams (MPI) may read a send buffer (or write a
    receive buffer) while queued device work still touches it, so device work is synchronized
    before every such call; a stream-ordered transport (NCCL) needs no synchronization. A
    `direct` transport then gets the device array itself; any other gets host copies, which
    `finish` copies back.
    """

    def __init__(self, backend: ArrayBackend, *, direct: bool, stream_ordered: bool = False) -> None:
        self.backend = backend
        self.device = backend.is_device
        self.staged = backend.is_device and not direct
        """True when device buffers travel through host copies."""
        self._sync = backend.is_device and not stream_ordered

    def send_buffer(self, a: Any) -> Any:
        """Return a buffer with the contents of `a` that the transport may read now."""
        if not self.device:
            return a
        if self._sync:
            self.backend.synchronize()
        return self.backend.to_host(a) if self.staged else a

    def recv_buffer(self, a: Any) -> Any:
        """Return a buffer of `a`'s shape and dtype that the transport may write now."""
        if not self.device:
            return a
        if self._sync:
            self.backend.synchronize()
        return np.empty(a.shape, dtype=a.dtype) if self.staged else a

    def finish(self, buffer: Any, a: Any) -> None:
        """Make what the transport wrote into `buffer` (from recv_buffer(a)) visible in `a`."""
        if self.staged:
            self.backend.copy_into(a, buffer)
