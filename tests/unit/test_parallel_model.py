"""The model's math: gradients against finite differences, tp shards summing to the whole
block, the batch and model plan, and the reference's bookkeeping."""

import numpy as np
import pytest

from tessera_mpi.parallel.model import (BlockParams, ModelSpec, ModelSpecError, block_backward, block_output,
                                        block_partial, init_block, loss_and_grad, make_batch)
from tessera_mpi.parallel.plan import Grid, Plan, PlanError
from tessera_mpi.parallel.reference import Reference
from tessera_mpi.parallel.verify import rel_err

SPEC = ModelSpec(d_model=6, d_ff=8, blocks=3, seed=7, lr=0.1)


def loss_of(params, inputs, targets):
    x = inputs
    for p in params:
        x = block_output(x, block_partial(p, x, xp=np)[0], b2=p.b2)
    return loss_and_grad(x, targets, samples=len(inputs))[0]


def gradients(params, inputs, targets):
    x, caches = inputs, []
    for p in params:
        partial, cache = block_partial(p, x, xp=np)
        x = block_output(x, partial, b2=p.b2)
        caches.append(cache)
    _, dy = loss_and_grad(x, targets, samples=len(inputs))
    grads = [None] * len(params)
    for b in reversed(range(len(params))):
        dx_part, grads[b] = block_backward(params[b], caches[b], dy=dy, xp=np)
        dy = dy + dx_part
    return grads, dy


def test_gradients_match_central_differences():
    params = [init_block(SPEC, b) for b in range(SPEC.blocks)]
    inputs, targets = make_batch(SPEC, 0, samples=5)
    grads, dx = gradients(params, inputs, targets)
    h = 1e-6
    for b, name in [(0, "w1"), (0, "b1"), (1, "w2"), (2, "b2"), (2, "w1")]:
        array = getattr(params[b], name)
        for index in [(0,) * array.ndim, tuple(s - 1 for s in array.shape)]:
            saved = array[index]
            array[index] = saved + h
            up = loss_of(params, inputs, targets)
            array[index] = saved - h
            down = loss_of(params, inputs, targets)
            array[index] = saved
            numeric = (up - down) / (2 * h)
            assert getattr(grads[b], name)[index] == pytest.approx(numeric, rel=1e-5, abs=1e-10), (b, name, index)
    bumped = inputs.copy()
    bumped[2, 3] += h
    lowered = inputs.copy()
    lowered[2, 3] -= h
    numeric = (loss_of(params, bumped, targets) - loss_of(params, lowered, targets)) / (2 * h)
    assert dx[2, 3] == pytest.approx(numeric, rel=1e-5)


@pytest.mark.parametrize("shards", [1, 2, 4])
def test_tensor_parallel_shards_add_up_to_the_whole_block(shards):
    grid = Grid(tp=shards, pp=1, dp=1, present=("tp",))
    plan = Plan(grid, d_model=6, ff_per_shard=8 // shards, blocks_per_stage=1, micro_batches=1, micro_batch_size=5)
    whole = init_block(plan.model(seed=3, lr=0.1), 0)
    x, _ = make_batch(plan.model(seed=3, lr=0.1), 0, samples=5)
    dy = np.random.default_rng(0).normal(size=(5, 6))
    partial, cache = block_partial(whole, x, xp=np)
    dx_whole, g_whole = block_backward(whole, cache, dy=dy, xp=np)
    parts, dx_parts, shard_grads = [], [], []
    for t in range(shards):
        (p,) = plan.shard([whole], tp=t, stage=0)
        part, c = block_partial(p, x, xp=np)
        dx_part, g = block_backward(p, c, dy=dy, xp=np)
        parts.append(part)
        dx_parts.append(dx_part)
        shard_grads.append(g)
    assert np.allclose(sum(parts), partial) and np.allclose(sum(dx_parts), dx_whole)
    assert np.allclose(np.concatenate([g.w1 for g in shard_grads], axis=1), g_whole.w1)
    assert np.allclose(np.concatenate([g.w2 for g in shard_grads], axis=0), g_whole.w2)
    assert all(np.array_equal(g.b2, g_whole.b2) for g in shard_grads)


def test_plan_cuts_the_batch_and_the_model():
    grid = Grid(tp=2, pp=3, dp=2, present=("tp", "pp", "dp"))
    plan = Plan(grid, d_model=4, ff_per_shard=3, blocks_per_stage=2, micro_batches=3, micro_batch_size=2)
    spec = plan.model(seed=1, lr=0.1)
    assert (spec.d_ff, spec.blocks, plan.samples) == (6, 6, 12)
    rows = [i for r in range(2) for m in range(3) for i in range(12)[plan.micro_batch(r, m)]]
    assert rows == list(range(12))
    assert list(plan.stage_blocks(2)) == [4, 5]
    blocks = [init_block(spec, b) for b in range(spec.blocks)]
    shard = plan.shard(blocks, tp=1, stage=1)
    assert len(shard) == 2 and np.array_equal(shard[0].w1, blocks[2].w1[:, 3:6])
    assert np.array_equal(shard[1].w2, blocks[3].w2[3:6]) and np.array_equal(shard[1].b2, blocks[3].b2)
    moved = plan.shard(blocks, tp=1, stage=1, column_offset=1)
    assert np.array_equal(moved[0].w1, blocks[2].w1[:, [4, 5, 0]])
    with pytest.raises(PlanError, match="micro_batches must be a positive int"):
        Plan(grid, d_model=4, ff_per_shard=3, blocks_per_stage=2, micro_batches=0, micro_batch_size=2)
    with pytest.raises(ModelSpecError, match="lr must be positive"):
        ModelSpec(d_model=2, d_ff=2, blocks=1, seed=0, lr=0)


def test_initial_values_are_float32_numbers_and_blocks_are_independent():
    a, b = init_block(SPEC, 1), init_block(ModelSpec(d_model=6, d_ff=8, blocks=3, seed=7, lr=0.5), 1)
    assert all(np.array_equal(x, y) for x, y in zip(a.arrays(), b.arrays()))
    assert all(np.array_equal(x, x.astype(np.float32)) for x in a.arrays())
    assert not np.array_equal(init_block(SPEC, 0).w1, a.w1)


def test_reference_step_bookkeeping():
    grid = Grid(tp=1, pp=2, dp=2, present=("pp", "dp"))
    plan = Plan(grid, d_model=4, ff_per_shard=5, blocks_per_stage=1, micro_batches=2, micro_batch_size=3)
    ref = Reference(plan, seed=2, lr=0.1)
    first = ref.step(0)
    inputs, targets = make_batch(ref.spec, 0, samples=plan.samples)
    total, _ = gradients(first.params_before, inputs, targets)
    summed = [BlockParams(*(a + b for a, b in zip(g0.arrays(), g1.arrays())))
              for g0, g1 in zip(*first.replica_grads)]
    assert all(np.allclose(s, t) for sp, tp in zip(summed, total) for s, t in zip(sp.arrays(), tp.arrays()))
    assert first.loss == pytest.approx(loss_of(first.params_before, inputs, targets), rel=1e-12)
    assert first.outputs.shape == (2, 2, 2, 3, 4)
    second = ref.step(1)
    assert second.params_before is first.params_after and second.loss < first.loss


def test_rel_err():
    assert rel_err(np.array([1.0, 2.0]), np.array([1.0, 2.5])) == pytest.approx(0.2)
    assert rel_err(np.zeros(3), np.zeros(3)) == 0.0
    assert rel_err(np.ones(3), np.zeros(3)) == float("inf")
    assert rel_err(np.ones(2), np.ones(3)) == float("inf")


def test_phase_clock_charges_nested_time_to_the_inner_phase(monkeypatch):
    from tessera_mpi.parallel import phases

    now = iter([0.0, 1.0, 3.0, 4.5, 10.0, 12.0])
    monkeypatch.setattr(phases.MPI, "Wtime", lambda: next(now))
    syncs = []
    clock = phases.PhaseClock(lambda: syncs.append(1))
    with clock.phase("forward"):
        with clock.phase("tp_comm"):
            pass
    with clock.phase("optimizer"):
        pass
    taken = clock.take()
    assert (taken["forward"], taken["tp_comm"], taken["optimizer"]) == (2.5, 2.0, 2.0)
    assert len(syncs) == 6 and clock.take()["forward"] == 0.0
    with pytest.raises(ValueError, match="unknown phase 'io'"):
        with clock.phase("io"):
            pass
