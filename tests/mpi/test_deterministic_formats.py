"""Every deterministic algorithm in every format, at whatever rank count the job has (run at
3, 4 and 8 ranks): bit-identical to the rational reference, under rank permutations."""

import numpy as np
import pytest

from tessera_mpi import dist, op
from tessera_mpi.reduction import deterministic as det
from tessera_mpi.reduction.exact_reference import reference_sums
from tessera_mpi.reduction.formats import supported
from tessera_mpi.suite.checks.determinism import adversarial, contribution
from tessera_mpi.testing import assert_all

ALGORITHMS = tuple(a for a in det.ALGORITHMS if a != "auto")


@pytest.fixture(scope="module")
def world():
    return dist.Mesh(axes=["dp"])


def bits(a):
    return np.ascontiguousarray(a).tobytes()


@pytest.mark.mpi(min_size=2)
@pytest.mark.parametrize("dtype", supported(), ids=str)
def test_every_algorithm_is_the_reference_under_rank_permutation(world, dtype):
    size = world.size
    matrix = adversarial(size, dtype, random_columns=150)
    random = np.stack([contribution(r, 301, dtype) for r in range(size)])
    want = {"adversarial": reference_sums(matrix), "random": reference_sums(random)}
    rng = np.random.default_rng(size)
    wrong = []
    for perm in (np.arange(size), np.arange(size)[::-1], rng.permutation(size)):
        for name, data in (("adversarial", matrix), ("random", random)):
            x = dist.tensor(data[perm[world.rank]], mesh=world)
            for algorithm in ALGORITHMS + ("auto",):
                got = op.all_reduce(x, "sum", deterministic=True, algorithm=algorithm, check=False).numpy()
                if got.dtype != np.dtype(dtype) or bits(got) != bits(want[name]):
                    wrong.append(f"{name} {algorithm} perm {perm.tolist()}")
    assert_all(not wrong, f"{np.dtype(dtype).name} at {size} ranks: {wrong[:4]}")


@pytest.mark.mpi(min_size=2)
@pytest.mark.parametrize("count", [1, 7, 4096, 50001])
def test_auto_choice_is_the_same_bits_as_every_algorithm_across_sizes(world, count):
    data = np.stack([contribution(r, count, np.float32) for r in range(world.size)])
    x = dist.tensor(data[world.rank], mesh=world)
    results = [bits(op.all_reduce(x, "sum", deterministic=True, algorithm=a).numpy()) for a in det.ALGORITHMS]
    assert_all(len(set(results)) == 1, f"n={count}: algorithms disagree")


def test_choice_follows_the_measured_thresholds():
    assert det.choose("auto", 8, 8) == "gather"
    assert det.choose("auto", det.GATHER_UP_TO_BYTES // 8, 8) == "gather"
    assert det.choose("auto", det.GATHER_UP_TO_BYTES // 8 + 1, 8) == "alltoall"
    assert det.choose("auto", 1 << 30, 1) == "gather"
    assert det.choose("digits", 1 << 30, 8) == "digits"


@pytest.mark.mpi(min_size=2)
@pytest.mark.parametrize("algorithm", ALGORITHMS + ("auto",))
def test_reused_scratch_never_leaks_into_results(world, algorithm):
    # The scratch buffers are reused by the next call of the same shape: a result that were a
    # view of one would change under the caller's feet.
    size = world.size
    kept, wrong = [], []
    for step, count in enumerate((50001, 50001, 7, 7, 4096 * size, 4096 * size + size - 1, 1, 50001)):
        data = np.stack([contribution(r + 31 * step, count, np.float32) for r in range(size)])
        want = reference_sums(data)
        x = dist.tensor(data[world.rank], mesh=world)
        fresh = op.all_reduce(x, "sum", deterministic=True, algorithm=algorithm, check=False)
        into = dist.tensor(np.full(count, np.nan, np.float32), mesh=world)
        op.all_reduce(x, "sum", deterministic=True, algorithm=algorithm, out=into, check=False)
        inplace = dist.tensor(data[world.rank].copy(), mesh=world)
        op.all_reduce(inplace, "sum", deterministic=True, algorithm=algorithm, out=inplace, check=False)
        kept += [(step, "new", fresh.local, want), (step, "out=", into.local, want),
                 (step, "in place", inplace.local, want)]
    for step, how, got, want in kept:
        if bits(got) != bits(want):
            wrong.append(f"call {step} ({how}) changed or was wrong")
    assert_all(not wrong, f"{algorithm} at {size} ranks: {wrong[:4]}")
