"""The correctly rounded sum against an exact rational reference, on hard inputs."""

import math

import numpy as np
import pytest

from tessera_mpi.reduction.exact_reference import reference_sum, reference_sums
from tessera_mpi.reduction.exact_sum import FloatFormat, decode, digit_bits, digit_count, encode, exact_sum, exponent_bounds
from tessera_mpi.suite.checks.determinism import adversarial

DTYPES = [np.float32, np.float64]


def same_bits(a, b):
    a, b = np.asarray(a), np.asarray(b)
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


@pytest.mark.parametrize("dtype", DTYPES)
def test_matches_the_exact_reference_on_adversarial_data(dtype):
    values = adversarial(7, dtype, random_columns=400)
    with np.errstate(over="ignore", invalid="ignore"):
        got = exact_sum(np, values)
    want = reference_sums(values)
    mismatch = [i for i in range(len(got)) if got[i:i + 1].tobytes() != want[i:i + 1].tobytes()]
    assert not mismatch, [(values[:, i].tolist(), got[i], want[i]) for i in mismatch[:3]]


@pytest.mark.parametrize("dtype", DTYPES)
def test_random_data_and_permutation_invariance(dtype):
    rng = np.random.default_rng(3)
    values = (rng.normal(size=(72, 3000)) * 10.0 ** rng.integers(-8, 8, size=(72, 3000))).astype(dtype)
    got = exact_sum(np, values)
    assert same_bits(got, reference_sums(values))
    for seed in range(3):
        perm = np.random.default_rng(seed).permutation(72)
        assert same_bits(exact_sum(np, values[perm]), got)


def test_float64_agrees_with_fsum():
    rng = np.random.default_rng(5)
    values = rng.normal(size=(16, 500)) * 10.0 ** rng.integers(-30, 30, size=(16, 500))
    got = exact_sum(np, values)
    assert [float(g) for g in got] == [math.fsum(values[:, i]) for i in range(500)]


def test_overflow_on_the_way_is_not_taken_for_the_answer():
    big = np.finfo(np.float64).max
    values = np.array([[big] * 5, [big] * 5, [-big] * 5], dtype=np.float64)
    assert same_bits(exact_sum(np, values), np.full(5, big))
    assert same_bits(exact_sum(np, values[:2]), np.full(5, np.inf))


def test_float32_is_not_double_rounded():
    # 1 + 2^-24 + 2^-60: the float64 sum would round to 1 + 2^-24 (a float32 tie, then even -> 1);
    # the exact sum is just above the tie, so the float32 answer is 1 + 2^-23.
    values = np.array([[1.0], [2.0 ** -24], [2.0 ** -60]], dtype=np.float32)
    assert exact_sum(np, values)[0] == np.float32(1 + 2.0 ** -23)
    assert reference_sum(values[:, 0], np.float32) == 1 + 2.0 ** -23


def test_digits_over_an_mpi_style_sum_agree_with_exact_sum():
    """What algorithm (a) does: encode per rank, add the stacks, decode once."""
    rng = np.random.default_rng(9)
    values = (rng.normal(size=(9, 700)) * 10.0 ** rng.integers(-200, 200, size=(9, 700)))
    top, low = (int(v) for v in exponent_bounds(np, values, FloatFormat.of(np.float64)))
    bits = digit_bits(9)
    count = digit_count(top - low, bits)
    summed = sum(encode(np, values[r], top, count, bits) for r in range(9))
    assert same_bits(decode(np, summed, top, bits, 9, np.float64), exact_sum(np, values))


def test_limits():
    assert digit_bits(72) == 46 and digit_bits(1) == 52
    with pytest.raises(ValueError):
        digit_bits(10_000)
    with pytest.raises(TypeError, match="float64, float32, float16"):
        FloatFormat.of(np.int32)
