"""Handing backend arrays to MPI: direct for host memory and CUDA-aware MPI, staged otherwise."""

from __future__ import annotations

from typing import Any

import numpy as np

from .backend import ArrayBackend


class Staging:
    """Turns backend arrays into buffers MPI may read and write, and back.

    MPI knows nothing of CUDA streams, so device work that produced a send buffer (or still
    reads a receive buffer) is synchronized before every MPI call. A CUDA-aware MPI then gets the
    device array itself; any other MPI gets host copies, which `finish` copies back.
    """

    def __init__(self, backend: ArrayBackend, *, cuda_aware: bool) -> None:
        self.backend = backend
        self.device = backend.is_device
        self.staged = backend.is_device and not cuda_aware
        """True when device buffers travel through host copies."""

    def send_buffer(self, a: Any) -> Any:
        """Return a buffer with the contents of `a` that MPI may read now."""
        if not self.device:
            return a
        self.backend.synchronize()
        return self.backend.to_host(a) if self.staged else a

    def recv_buffer(self, a: Any) -> Any:
        """Return a buffer of `a`'s shape and dtype that MPI may write now."""
        if not self.device:
            return a
        self.backend.synchronize()
        return np.empty(a.shape, dtype=a.dtype) if self.staged else a

    def finish(self, buffer: Any, a: Any) -> None:
        """Make what MPI wrote into `buffer` (from recv_buffer(a)) visible in `a`."""
        if self.staged:
            self.backend.copy_into(a, buffer)
