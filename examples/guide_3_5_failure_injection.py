"""QA guide section 3.5, as written (with the package name tessera_mpi): injected GPU failure.

The guide's block uses `dist`, `op` and `X` from section 3.4; they are set up first. Launch with
`mpirun --with-ft ulfm -n 72 ...` for a real failure (ULFM), or plain `mpirun` for the
simulated one. After the block, the survivors carry on: an all-reduce over the rebuilt mesh.
"""

from tessera_mpi import dist, op

X = dist.tensor((4096, 4096), mesh=dist.Mesh(axes=["dp"], devices=range(72)))

# --- the guide's example, as written ---
from tessera_mpi import fault

mesh = dist.Mesh(axes=["dp"], devices=range(72))

with fault.inject(drop_device=5):
    try:
        Y = op.all_reduce(X, op="sum")
    except RuntimeError as e:
        print("Caught simulated GPU failure:", e)
# --- end of the guide's example ---

ones = dist.tensor([1.0], mesh=mesh)
total = op.all_reduce(ones, op="sum").numpy().tolist()
assert total == [71.0], f"survivors' all-reduce gave {total}, expected [71.0]"
if mesh.rank == 0:
    print(f"recovered ({fault.mode()} fault tolerance): {mesh}, all-reduce of ones = {total[0]:g}")
