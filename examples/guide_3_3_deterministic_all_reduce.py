"""QA guide section 3.3, as written (with the package name tessera_mpi): deterministic all-reduce."""

from tessera_mpi import dist, op

mesh = dist.Mesh(axes=["dp"], devices=range(72))

x = dist.tensor([1.0], mesh=mesh, layout=dist.Replicate())
y = op.all_reduce(x, op="sum", deterministic=True)

assert y.numpy().tolist() == [72.0], "Rack-scale all-reduce failed determinism check"
