"""One fault scenario outside the suite: argv[1] is drop-one, drop-zero, hang or corrupt.

Prints one "RESULT ..." line on the lowest surviving rank; exits 0 when the scenario behaved.
"""

import sys

import numpy as np

from tessera_mpi import CorruptionError, dist, fault, op

scenario = sys.argv[1]
mesh = dist.Mesh(axes=["dp"])
n = mesh.size
x = dist.tensor((64,), mesh=mesh)
victim = {"drop-one": n - 2, "drop-zero": 0, "hang": n // 2, "corrupt": n - 1}[scenario]

if scenario in ("drop-one", "drop-zero"):
    caught = None
    with fault.inject(drop_device=victim) as injection:
        try:
            op.all_reduce(x, op="sum")
        except RuntimeError as exc:
            caught = exc
    ones = op.all_reduce(dist.tensor([1.0], mesh=mesh), op="sum").numpy()[0]
    survivors_sum = op.all_reduce(x, op="sum", deterministic=True).numpy()
    ok = (caught is not None and injection.failed == (victim,) and mesh.size == n - 1 and ones == n - 1
          and np.array_equal(survivors_sum, x.numpy() * (n - 1)))
    if mesh.rank == 0:
        print(f"RESULT {scenario} mode={injection.mode} failed={injection.failed} size={mesh.size} "
              f"ok={ok} caught={caught}", flush=True)
elif scenario == "hang":
    with fault.inject(hang_device=victim, timeout=3):
        op.all_reduce(x, op="sum")
    ok = False
    print("RESULT hang: the collective completed, which a hung rank should have prevented", flush=True)
else:
    try:
        with fault.inject(corrupt_device=victim, bits=1):
            op.all_reduce(x, op="sum", deterministic=True, verify=True)
        ok = False
        named = ()
    except CorruptionError as exc:
        named = exc.ranks
        ok = named == (victim,)
    if mesh.rank == 0:
        print(f"RESULT corrupt named={named} ok={ok}", flush=True)
sys.exit(0 if ok else 1)
