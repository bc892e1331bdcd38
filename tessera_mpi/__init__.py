"""tessera_mpi: rack-scale QA for multi-GPU systems, launched with MPI (one rank per GPU).

The QA guide's API: `from tessera_mpi import dist, op, tensor, profile, fault`. `tensor` is the
module of distributed tensors (`tensor.DistTensor`; `tensor.tensor` is `dist.tensor`). The
layers, lowest first, are described in docs/architecture.md.
"""

from . import dist, fault, op, profile
from ._version import __version__
from .dist import dtensor as tensor
from .errors import (
    AgreementTimeout,
    AxisError,
    ConfigError,
    CorruptionError,
    DeviceLostError,
    DivergenceError,
    FaultPlanError,
    LayoutError,
    MeshSpecError,
    NotInMeshError,
    StaleTensorError,
    TesseraError,
)

__all__ = [
    "AgreementTimeout",
    "AxisError",
    "ConfigError",
    "CorruptionError",
    "DeviceLostError",
    "DivergenceError",
    "FaultPlanError",
    "LayoutError",
    "MeshSpecError",
    "NotInMeshError",
    "StaleTensorError",
    "TesseraError",
    "__version__",
    "dist",
    "fault",
    "op",
    "profile",
    "tensor",
]
