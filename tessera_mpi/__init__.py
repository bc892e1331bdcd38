"""tessera_mpi: rack-scale QA for multi-GPU systems, launched with MPI (one rank per GPU).

The QA guide's API: `from tessera_mpi import dist, op, tensor, profile, fault`.
"""

from . import dist, fault, op, profile, tensor
from ._version import __version__
from .errors import (
    AxisError,
    ConfigError,
    CorruptionError,
    DeviceLostError,
    DivergenceError,
    LayoutError,
    MeshSpecError,
    NotInMeshError,
    TesseraError,
)

__all__ = [
    "AxisError",
    "ConfigError",
    "CorruptionError",
    "DeviceLostError",
    "DivergenceError",
    "LayoutError",
    "MeshSpecError",
    "NotInMeshError",
    "TesseraError",
    "__version__",
    "dist",
    "fault",
    "op",
    "profile",
    "tensor",
]
