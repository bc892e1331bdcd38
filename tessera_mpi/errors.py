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


class FaultPlanError(ConfigError):
    """The arguments of `fault.inject` are invalid (raised on every rank, before any fault)."""


class AgreementTimeout(TesseraError, TimeoutError):
    """Not every rank reached an agreement before its deadline."""


class LoadUnavailableError(ConfigError):
    """The MPI library does not provide MPI_THREAD_MULTIPLE, so no background stream can run."""


class LoadError(TesseraError, RuntimeError):
    """The background stream failed (the MPI error is its cause) or was used out of order."""


class DeviceThreadError(TesseraError, RuntimeError):
    """Device work in a thread that never made the rank's device current (emulated backend; on
    a GPU that work would silently run on device 0)."""


class ModelSpecError(TesseraError, ValueError):
    """A field of the parallelism check's ModelSpec is out of range."""


class PlanError(TesseraError, ValueError):
    """The mesh or the sizes do not describe a tensor x pipeline x data parallel layout."""


class ScheduleError(TesseraError, RuntimeError):
    """A pipeline program is incomplete, out of order, or would deadlock."""


class ResultsFileError(TesseraError, OSError):
    """A file is not a readable tessera_mpi results file."""


class UsageError(TesseraError, ValueError):
    """The suite's command line is wrong; it prints usage once and every rank exits with 2."""


class CollectiveAssertionError(TesseraError, AssertionError):
    """Raised on every rank when `assert_all`'s condition was false on some rank; `failing` names them."""

    def __init__(self, message: str, failing: tuple[int, ...]) -> None:
        super().__init__(message)
        self.failing = failing


class UnplannedLossError(TesseraError, RuntimeError):
    """A rank was lost outside any fault-injection block (a real failure under ULFM): the suite
    records the running check as an error naming it and ends the job."""

    def __init__(self, message: str, failed: tuple[int, ...] = ()) -> None:
        super().__init__(message)
        self.failed = failed
        """World ranks lost."""


class NativeBuildError(TesseraError, RuntimeError):
    """A C file of the package could not be compiled into a shared library here (no compiler, or
    it failed); the code that needed it takes its pure-Python path and says why."""


class CompiledLoopUnavailable(NativeBuildError):
    """The compiled timed loop cannot be built or loaded here (no mpicc, a build error, or it would
    call another MPI library than mpi4py's); timed loops then run in Python and say so."""
