"""Device timing modes (issue 19): one event pair around the whole batch (as nccl-tests) against
an event pair per iteration, all-reduce at 1 MiB. Collective: run under mpirun.

Exit status: 0 when the data are right, the clock is device events and the two modes' t_max agree
within 15%; 1 when only the timings disagree; 2 when the data are wrong or the clock is not events.
"""

import sys

from tessera_mpi import runtime
from tessera_mpi.fabric.sweep import measure

rt = runtime.start()
batch = measure("all_reduce", rt.world, rt, size_bytes=1 << 20)
each = measure("all_reduce", rt.world, rt, size_bytes=1 << 20, percentiles=True)
gap = abs(batch.timing.t_max - each.timing.t_max) / each.timing.t_max
wrong = batch.wrong + each.wrong
if rt.world.rank == 0:
    print(f"events around the batch {batch.timing.t_max * 1e6:.1f} us, per iteration {each.timing.t_max * 1e6:.1f} us "
          f"(p50 {each.timing.p50 * 1e6:.1f}, p99 {each.timing.p99 * 1e6:.1f}), gap {gap:.1%}; "
          f"clock {batch.timing.clock}, buffers {batch.buffers}, wrong elements {wrong}")
sys.exit(2 if wrong or batch.timing.clock != "events" else 0 if gap <= 0.15 else 1)
