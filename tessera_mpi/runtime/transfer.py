"""Handing backend arrays to a transport: direct for host memory and transports that take
device buffers, staged through pinned host buffers otherwise."""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, Literal

import numpy as np

from .backend import ArrayBackend

BufferPath = Literal["host", "direct", "staged"]
"""How a figure's buffers reached the transport: host memory as it is ("host"), device memory
handed to a CUDA-aware MPI ("direct"), or device memory copied through pinned host buffers
("staged"). Results record it per figure."""

MIRROR_BYTES = 2 << 30
"""Pinned host memory kept for staging, at most: page-locked memory is taken from the whole
node's RAM, and a sweep's buffers of earlier sizes are not used again."""


class Staging:
    """Turns backend arrays into buffers a transport may read and write, and back.

    A transport that knows nothing of device streams (MPI) may read a send buffer (or write a
    receive buffer) while queued device work still touches it, so device work is synchronized
    before every such call; a stream-ordered transport (NCCL) needs no synchronization. A
    `direct` transport then gets the device array as the backend exports it (DLPack or
    `__cuda_array_interface__`, never a host copy); any other gets the device buffer's host
    mirror, which `finish` copies back.

    A mirror is allocated once per device buffer, in pinned host memory, and reused by every
    later call on that buffer (the sweep's and point-to-point windows' timed loops allocate
    nothing); least recently used mirrors are released beyond MIRROR_BYTES. A buffer is known
    by its address, size and dtype, so a new array at a freed address reuses the mirror too.
    A window that sends one buffer several times copies the same bytes into its mirror again
    while the earlier sends read it, which leaves what they read unchanged.
    """

    def __init__(self, backend: ArrayBackend, *, direct: bool, stream_ordered: bool = False,
                 export: bool = True) -> None:
        self.backend = backend
        self._export = export
        """Direct buffers go as the backend exports them to MPI (DLPack/CAI); a transport that
        takes device arrays themselves (NCCL: pointers on its stream) gets them unexported."""
        self.device = backend.is_device
        self.staged = backend.is_device and not direct
        """True when device buffers travel through host copies."""
        self.path: BufferPath = "staged" if self.staged else "direct" if backend.is_device else "host"
        self._sync = backend.is_device and not stream_ordered
        self._mirrors: OrderedDict[tuple[int, int, str], np.ndarray] = OrderedDict()
        self._mirror_bytes = 0
        self.mirrors_made = 0
        """Pinned host buffers allocated so far (reuse keeps this at one per device buffer)."""

    def send_buffer(self, a: Any) -> Any:
        """Return a buffer with the contents of `a` that the transport may read now."""
        if not self.device:
            return a
        if self._sync:
            self.backend.synchronize()
        if not self.staged:
            return self.backend.export(a) if self._export else a
        mirror = self.mirror(a)
        self.backend.download(a, mirror)
        return mirror

    def recv_buffer(self, a: Any) -> Any:
        """Return a buffer of `a`'s shape and dtype that the transport may write now."""
        if not self.device:
            return a
        if self._sync:
            self.backend.synchronize()
        if self.staged:
            return self.mirror(a)
        return self.backend.export(a) if self._export else a

    def finish(self, buffer: Any, a: Any) -> None:
        """Make what the transport wrote into `buffer` (from recv_buffer(a)) visible in `a`."""
        if self.staged:
            self.backend.upload(a, buffer)

    def mirror(self, a: Any) -> np.ndarray:
        """Return the pinned host buffer of device array `a`, allocated on its first use."""
        key = (_address(a), int(a.nbytes), a.dtype.str)
        mirror = self._mirrors.get(key)
        if mirror is not None and mirror.shape == a.shape:
            self._mirrors.move_to_end(key)
            return mirror
        if mirror is not None:
            self._mirror_bytes -= mirror.nbytes
        mirror = self.backend.pinned_empty(tuple(a.shape), a.dtype)
        self.mirrors_made += 1
        self._mirrors[key] = mirror
        self._mirror_bytes += mirror.nbytes
        while self._mirror_bytes > MIRROR_BYTES and len(self._mirrors) > 1:
            _, old = self._mirrors.popitem(last=False)
            self._mirror_bytes -= old.nbytes
        return mirror


def _address(a: Any) -> int:
    """The device (or emulated device) address of `a`'s first element."""
    data = getattr(a, "data", None)
    if hasattr(data, "ptr"):
        return int(data.ptr)  # a CuPy array
    return int(a.__array_interface__["data"][0])
