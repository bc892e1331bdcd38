"""QA guide section 3.2, as written (with the package name tessera_mpi): mesh layout QA."""

from tessera_mpi import dist, tensor

# Define 6×6×2 mesh over 72 GPUs
mesh = dist.Mesh(axes=["tp","pp","dp"], devices=range(72))

# Validate tensor sharding
W = dist.tensor((1_000,1_000),
    layout=dist.ShardSpec(partition=("row","col"), mesh_axes=("tp","pp")),
    mesh=mesh)

assert W.sharding_valid(), "Sharding mismatch detected at rack scale"
