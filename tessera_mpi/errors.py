"""Exception classes that callers can catch, one per kind of failure."""

from __future__ import annotations


class TesseraError(Exception):
    """Base class of every error tessera_mpi raises on purpose."""


class ConfigError(TesseraError, ValueError):
    """The run was configured in a way that cannot work (bad flag, unusable backend, bad mesh shape)."""


class MeshSpecError(ConfigError):
    """The arguments of `dist.Mesh` are invalid; raised on every rank before any communication."""


class LayoutError(TesseraError, ValueError):
    """A layout (ShardSpec, Replicate) does not fit the tensor or the mesh it is applied to."""


class NotInMeshError(TesseraError, RuntimeError):
    """This rank is not one of the mesh's devices and takes no part in the mesh's work."""


class DivergenceError(TesseraError, RuntimeError):
    """Ranks that must pass the same arguments to a collective call passed different ones."""


class AxisError(TesseraError, ValueError):
    """A name was used as a mesh axis but the mesh has no axis of that name."""


class DeviceLostError(TesseraError, RuntimeError):
    """A collective failed because ranks (devices) died; `failed` names them."""

    def __init__(self, message: str, failed: tuple[int, ...] = ()) -> None:
        super().__init__(message)
        self.failed = failed
        """Ranks in the job's world (as numbered before the failure) known to have failed."""


class CorruptionError(TesseraError, RuntimeError):
    """A verified collective found ranks whose result differs from the others' (silent data corruption)."""

    def __init__(self, message: str, ranks: tuple[int, ...] = ()) -> None:
        super().__init__(message)
        self.ranks = ranks


class StaleTensorError(TesseraError, RuntimeError):
    """A tensor's block no longer exists on its mesh, which was rebuilt after a failure."""
