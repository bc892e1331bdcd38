"""The distributed API of the QA guide: meshes, layouts and distributed tensors."""

from .layout import Replicate, ShardSpec, shard_bounds
from .mesh import Mesh, default_shape
from .shard_audit import ShardingReport
from .tensor import DistTensor, tensor

__all__ = [
    "DistTensor",
    "Mesh",
    "Replicate",
    "ShardSpec",
    "ShardingReport",
    "default_shape",
    "shard_bounds",
    "tensor",
]
