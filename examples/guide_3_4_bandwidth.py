"""QA guide section 3.4, as written (with the package name tessera_mpi): bandwidth test."""

from tessera_mpi import dist, op, tensor, profile

mesh = dist.Mesh(axes=["dp"], devices=range(72))

X = dist.tensor((4096,4096), mesh=mesh)
with profile.session() as sess:
    Y = op.all_reduce(X, op="sum")
    sess.report()  # Reports achieved bandwidth and latency
