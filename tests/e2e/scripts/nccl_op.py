"""The guide's collectives with transport="nccl", for test_nccl_e2e.py (emulated backend) and
scripts/gpu_check.sh (CuPy and real NCCL, one rank per GPU).

    python nccl_op.py MODE

same:    every op.* collective over NCCL (emulated) gives MPI's bits, the correctly rounded sum
         too (every algorithm, float32/float16/bfloat16, adversarial data); the data really
         went over NCCL (a live NCCL communicator per group used); a planted corruption on an
         NCCL all-reduce is named by verify=True. Prints "rank R: SAME <n>" or the mismatches.
hang:    every rank but the last calls an NCCL all-reduce (check=False, so the hang is in the
         NCCL call itself, not the MPI argument check); the last sleeps far past the timeout.
"""

import sys
import time

import numpy as np

from tessera_mpi import dist, fault, op, runtime
from tessera_mpi.comm import nccl
from tessera_mpi.errors import CorruptionError
from tessera_mpi.reduction.exact_reference import reference_sums
from tessera_mpi.reduction.formats import supported
from tessera_mpi.suite.checks.determinism import adversarial

mode = sys.argv[1]
rt = runtime.start()
mesh = dist.Mesh(axes=["tp", "dp"], shape=(2, rt.size // 2))
me = mesh.rank
if mode == "hang":
    x = dist.tensor((8,), mesh=mesh)
    mesh.comm.Barrier()
    if me == 0:
        print(f"ENTERED {time.time():.3f}", flush=True)
    op.all_reduce(x, op="sum", check=False)  # one MPI all-reduce first: the NCCL one is #2
    if me == rt.size - 1:
        time.sleep(600)
    op.all_reduce(x, op="sum", transport="nccl", check=False)
    raise SystemExit(f"rank {me}: the NCCL all-reduce returned without the last rank")

assert mode == "same", mode
wrong: list[str] = []
compared = 0


def both(name, run):
    """Run `run(transport)` on each transport and compare the local results' bits."""
    global compared
    a, b = run("mpi"), run("nccl")
    a, b = (np.ascontiguousarray(t.numpy() if hasattr(t, "numpy") else t) for t in (a, b))
    compared += 1
    if a.dtype != b.dtype or a.shape != b.shape or a.tobytes() != b.tobytes():
        wrong.append(f"{name}: nccl {b.reshape(-1)[:4]} vs mpi {a.reshape(-1)[:4]}")


sharded = dist.tensor((12, 10), mesh=mesh, layout=dist.ShardSpec(partition=(0,), mesh_axes=("dp",)))
full = dist.tensor((12, 10), mesh=mesh)
for reduce in ("sum", "max", "min", "prod", "avg"):
    both(f"all_reduce {reduce}", lambda t, reduce=reduce: op.all_reduce(full, reduce, axis="dp", transport=t))
both("all_reduce in place", lambda t: op.all_reduce(full.with_local(full.local.copy()), "max", transport=t))
both("all_gather (uneven)", lambda t: op.all_gather(sharded, transport=t))
both("reduce_scatter (uneven)", lambda t: op.reduce_scatter(full, "max", axis="dp", dim=1, transport=t))
both("reduce_scatter deterministic", lambda t: op.reduce_scatter(full, axis="tp", dim=0, deterministic=True,
                                                                  transport=t))
both("broadcast", lambda t: op.broadcast(full, root=1, axis="dp", transport=t))
both("all_to_all", lambda t: op.all_to_all(sharded, axis="dp", split_dim=1, concat_dim=0, transport=t))
both("shift", lambda t: op.shift(sharded, axis="dp", offset=1, transport=t))

# The correctly rounded sum over NCCL: adversarial contributions, every algorithm and format,
# bit-identical to MPI's and to the rational reference.
flat = dist.Mesh(axes=["dp"])
for dtype in supported():
    matrix = adversarial(flat.size, dtype, random_columns=40)
    want = reference_sums(matrix)
    x = dist.tensor(matrix[flat.rank], mesh=flat)
    for algorithm in ("alltoall", "gather", "digits", "auto"):
        got = {t: op.all_reduce(x, "sum", deterministic=True, algorithm=algorithm, transport=t).numpy()
               for t in ("mpi", "nccl")}
        compared += 1
        if got["nccl"].tobytes() != got["mpi"].tobytes() or got["nccl"].tobytes() != want.tobytes():
            wrong.append(f"deterministic {np.dtype(dtype).name} {algorithm}: nccl differs from "
                         f"{'mpi' if got['nccl'].tobytes() != got['mpi'].tobytes() else 'the reference'}")

groups = [g for g in (mesh.group("dp", transport="nccl")[1], flat.group(None, transport="nccl")[1])]
# "nccl (emulated)" here, "nccl" where scripts/gpu_check.sh runs this on GPUs.
went = all(g.transport.label.startswith("nccl") and g.transport._communicator is not None for g in groups)
if not went:
    wrong.append("the NCCL groups made no NCCL communicator: the data did not go over NCCL")

named = ()
if flat.size >= 3:
    y = dist.tensor((256,), mesh=flat)
    try:
        with fault.inject(corrupt_device=flat.size - 1, bits=1, seed=1):
            op.all_reduce(y, "sum", deterministic=True, verify=True, transport="nccl")
    except CorruptionError as exc:
        named = exc.ranks
    if named != (flat.size - 1,):
        wrong.append(f"a corrupted NCCL all-reduce named ranks {named}, not {flat.size - 1}")
print(f"rank {me}: {'SAME' if not wrong else 'DIFFERENT'} {compared} live {len(nccl._live)} "
      + "; ".join(wrong[:6]), flush=True)
