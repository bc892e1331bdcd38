"""An example rack test written with the tessera_mpi pytest plugin (see docs/pytest.md).

Run it on every rank:

    mpirun -n 8 python -m pytest --with-mpi docs/example_rack_test.py --tessera-mesh 4x2 \
        --tessera-results results/my-rack-tests.h5

Each test runs on every rank. Assert with `assert_all`: a failure on one rank then fails the
test on all ranks and names the failing ranks, their hosts and devices.
"""

import numpy as np
import pytest

from tessera_mpi import dist, op, profile
from tessera_mpi.testing import assert_all


def test_every_axis_sums_ones_to_its_size(tessera_mesh):
    for axis in tessera_mesh.axes:
        ones = dist.tensor([1.0], mesh=tessera_mesh)
        total = op.all_reduce(ones, op="sum", axis=axis).numpy()[0]
        size = tessera_mesh.axis_size(axis)
        assert_all(total == size, f"sum of ones over {axis} is {total}, expected {size}", mesh=tessera_mesh)


def test_deterministic_sum_is_the_same_bits_on_every_rank(tessera_mesh, tessera_comm):
    rng = np.random.default_rng(tessera_comm.rank)
    x = dist.tensor(rng.standard_normal(4096).astype(np.float32), mesh=tessera_mesh)
    total = op.all_reduce(x, op="sum", deterministic=True).numpy()
    digests = tessera_comm.allgather(total.tobytes())
    assert_all(all(d == digests[0] for d in digests), "ranks hold different bits", mesh=tessera_mesh)


@pytest.mark.parametrize("size", [4096, 1 << 20])
def test_all_reduce_bandwidth_is_recorded(tessera_mesh, tessera_results, size):
    x = dist.tensor((size // 4,), mesh=tessera_mesh, dtype=np.float32)
    with profile.session() as sess:
        for _ in range(5):
            op.all_reduce(x, op="sum")
    figures = sess.report(show=False)
    busbw = figures[0].busbw_GBps
    tessera_results.save("busbw", np.array([busbw]), units="GB/s")
    tessera_results.headline = f"all_reduce {size} B: {busbw:.3g} GB/s busbw"
    assert_all(busbw > 0, f"busbw {busbw}", mesh=tessera_mesh)
