"""The distributed API of the QA guide: meshes, layouts, distributed tensors and their audit.

Modules: mesh (named axes on a Cartesian communicator), layout (ShardSpec, Replicate and the
one uneven-shard rule), dtensor (DistTensor and `dist.tensor`), audit (`sharding_valid`), fill
(the global-index pattern that makes misplacement detectable).
"""

from .audit import ShardingReport
from .dtensor import DistTensor, tensor
from .layout import Replicate, ShardSpec, shard_bounds
from .mesh import Mesh, default_shape

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
