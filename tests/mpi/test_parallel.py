"""Parallel training at 4 ranks: every tp/pp/dp layout agrees with the reference, planted faults
are caught on the ranks that hold them, the traffic counts are what the layout implies, and the
background load runs beside collectives and stops on every rank together."""

import numpy as np
import pytest

from tessera_mpi.testing import assert_all
from tessera_mpi import dist, fault, op
from tessera_mpi.fabric.load import BackgroundLoad, LoadError
from tessera_mpi.parallel import Grid, Plan, validate
from tessera_mpi.suite.checks.determinism import contribution

SIZES = dict(d_model=8, ff_per_shard=4, blocks_per_stage=2, micro_batches=3, micro_batch_size=2)


def run(axes, shape, *, steps=2, plant=None, rank=None):
    mesh = dist.Mesh(axes=list(axes), shape=shape)
    plan = Plan(Grid.of(mesh), **SIZES)
    if plant is None:
        return mesh, validate(mesh, plan, steps=steps, seed=5, lr=0.1)
    with fault.inject(plant=plant, ranks=[rank]):
        return mesh, validate(mesh, plan, steps=steps, seed=5, lr=0.1)


@pytest.mark.mpi(min_size=4)
@pytest.mark.parametrize("axes, shape", [
    (("tp", "pp"), (2, 2)), (("pp", "dp"), (2, 2)), (("tp", "dp"), (2, 2)), (("pp",), (4,)),
    (("tp", "pp", "dp"), (1, 2, 2))])
def test_every_layout_agrees_with_the_reference(axes, shape):
    _, v = run(axes, shape)
    assert_all(not v.failures and v.replicas_identical.all(), str(v.failures))
    assert_all(np.abs(v.losses - v.reference_losses).max() <= 1e-5 * v.reference_losses.max(),
                      f"{v.losses} vs {v.reference_losses}")


def _ranks_saying(mesh, failures, *needles):
    everyone = mesh.comm.allgather(failures)
    return [r for r, found in enumerate(everyone) if any(all(n in f for n in needles) for f in found)]


@pytest.mark.mpi(min_size=4)
def test_a_wrong_shard_is_caught_on_the_rank_that_holds_it():
    mesh, v = run(("tp", "dp"), (2, 2), plant="parallel.wrong_shard", rank=3)
    failing = _ranks_saying(mesh, v.failures, "step 0:")
    shard = _ranks_saying(mesh, v.failures, "step 0:", "shard (rel err")
    replicas = _ranks_saying(mesh, v.failures, "dp replicas hold different weights after step 0")
    assert_all(failing == [0, 1, 2, 3] and shard == [3] and replicas == [2, 3],
                      f"failing {failing}, shard {shard}, replicas {replicas}")


@pytest.mark.mpi(min_size=4)
def test_a_dropped_micro_batch_is_caught_on_the_rank_that_lost_it():
    mesh, v = run(("pp", "dp"), (2, 2), plant="parallel.drop_micro_batch", rank=1)
    step0 = _ranks_saying(mesh, v.failures, "step 0:")
    gradient = _ranks_saying(mesh, v.failures, "step 0:", "gradient (rel err")
    later = _ranks_saying(mesh, v.failures, "step 1:")
    assert_all(step0 == [0, 1] and gradient == [1] and later == [2, 3],
                      f"step 0 {step0}, gradient {gradient}, step 1 {later}")


@pytest.mark.mpi(min_size=4)
@pytest.mark.parametrize("axes", [("tp", "pp"), ("pp", "dp")])
def test_traffic_counts_follow_from_the_layout(axes):
    mesh, v = run(axes, (2, 2), steps=1)
    counts = v.traffic[0]
    message = SIZES["micro_batch_size"] * SIZES["d_model"] * 4
    blocks, micro = SIZES["blocks_per_stage"], SIZES["micro_batches"]
    d, f = SIZES["d_model"], SIZES["ff_per_shard"]
    tp_calls = 2 * blocks * micro if "tp" in axes else 0
    dp_bytes = blocks * (2 * d * f + f + d) * 4 if "dp" in axes else 0
    got = {a: (c.calls, c.bytes) for a, c in counts.items()}
    want = {"tp": (tp_calls, tp_calls * message), "pp": (micro, micro * message),
            "dp": (int(dp_bytes > 0), dp_bytes)}
    assert_all(got == want, f"{got} != {want}")


@pytest.mark.mpi(min_size=4)
def test_background_load_runs_beside_collectives_and_stops_together():
    mesh = dist.Mesh(axes=["dp"])
    x = dist.tensor(contribution(mesh.rank, 1000, np.float64), mesh=mesh)
    quiet = op.all_reduce(x, "sum", deterministic=True).numpy().tobytes()
    with BackgroundLoad(mesh, message_bytes=4096) as load:
        start = load.stats()
        loaded = [op.all_reduce(x, "sum", deterministic=True).numpy().tobytes() for _ in range(3)]
        with pytest.raises(LoadError, match="already running"):
            load.start()
        with load.paused():
            assert not load.running
            paused = op.all_reduce(x, "sum", deterministic=True).numpy().tobytes()
    total = load.stats()
    with pytest.raises(LoadError, match="not running"):
        load.stop()
    iterations = mesh.comm.allgather(total.iterations)
    same = all(b == quiet for b in loaded + [paused])
    assert_all(same and len(set(iterations)) == 1 and total.iterations >= 2 and not load.running,
                      f"same bits {same}, iterations {iterations}")
    assert_all(total.bytes == total.iterations * 4096 and total.seconds > 0)
    assert_all(total.since(start) == total and start.iterations == 0)
