"""Collectives that only some ranks call, for the collective-timeout tests.

    python partial_collective.py MODE TOKEN

leave:  ranks 0-1 call op.all_reduce, the others leave the program.
other:  ranks 0-1 call op.all_reduce, the others op.all_gather.
bogus:  rank 0 passes op="bogus", catches the error and goes on; the others pass "sum".
stuck:  every rank but the last calls op.all_reduce; the last sleeps far past the timeout
        (alive and answering roll calls, but never arriving).
TOKEN only marks the processes, so the test can find any left running.
"""

import sys
import time

from tessera_mpi import dist, op, runtime

mode = sys.argv[1]
rt = runtime.start()
mesh = dist.Mesh(axes=["dp"], devices=range(rt.size))
x = dist.tensor((8,), mesh=mesh)
me = mesh.rank
mesh.comm.Barrier()
if me == 0:
    # When the partial collective starts: the test measures from here to the job's end.
    print(f"ENTERED {time.time():.3f}", flush=True)
if mode == "leave":
    if me < 2:
        op.all_reduce(x, op="sum")
elif mode == "other":
    if me < 2:
        op.all_reduce(x, op="sum")
    else:
        op.all_gather(x)
elif mode == "bogus":
    try:
        op.all_reduce(x, op="bogus" if me == 0 else "sum")
    except ValueError as exc:
        print(f"rank {me}: {type(exc).__name__}: {exc}", flush=True)
    y = op.all_reduce(x, op="sum")
    print(f"rank {me}: then all_reduce gave {float(y.numpy().flat[0]):g}", flush=True)
elif mode == "stuck":
    if me == rt.size - 1:
        time.sleep(600)
    op.all_reduce(x, op="sum")
else:
    raise SystemExit(f"unknown mode {mode!r}")
print(f"rank {me} done", flush=True)
