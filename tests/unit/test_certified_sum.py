"""The certified fast path (reduction/cpu_kernel.py) against the NumPy path and the rational
reference: random and adversarial data in every format, the cases on the certificate's
boundaries, and the IEEE specials of float16 and bfloat16."""

import math

import numpy as np
import pytest

from tessera_mpi.reduction import cpu_kernel
from tessera_mpi.reduction.exact_reference import reference_sums
from tessera_mpi.reduction.exact_sum import exact_sum, exact_sum_numpy
from tessera_mpi.reduction.formats import FloatFormat, bfloat16, supported, widen
from tessera_mpi.suite.checks.determinism import adversarial

needs_kernel = pytest.mark.skipif(not cpu_kernel.available(), reason=f"the compiled kernel is unavailable: {cpu_kernel.reason()}")
BF16 = bfloat16()
DTYPES = [np.dtype(d) for d in supported()]


def same_bits(a, b):
    a, b = np.asarray(a), np.asarray(b)
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def kernel(values):
    """Return (sums as the format, failed) of the kernel alone."""
    fmt = FloatFormat.of(values.dtype)
    out, failed, failures = cpu_kernel.certified_sum(values, fmt)
    assert failures == int(failed.sum())
    return out, failed


def assert_certified_are_exact(values):
    """Every element the kernel certifies is the reference's; the full sum is the reference's."""
    fmt = FloatFormat.of(values.dtype)
    want = reference_sums(values)
    out, failed = kernel(values)
    want_compute = widen(np, want, fmt)
    wrong = np.flatnonzero(~failed & (out.view(f"u{out.itemsize}") != want_compute.view(f"u{out.itemsize}")))
    assert not wrong.size, [(values[:, i].tolist(), out[i], want[i]) for i in wrong[:3]]
    with np.errstate(all="ignore"):
        got = exact_sum(np, values)
    assert same_bits(got, want)
    return failed


@needs_kernel
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_fast_path_agrees_with_the_exact_path_on_random_data(dtype):
    rng = np.random.default_rng(14)
    for rows in (2, 3, 8, 13):
        values = (rng.normal(size=(rows, 2000)) * 2.0 ** rng.integers(-10, 10, size=(rows, 2000))).astype(dtype)
        failed = assert_certified_are_exact(values)
        assert same_bits(exact_sum(np, values), exact_sum_numpy(np, values))
        # The fast path is taken: normal data is certified nearly everywhere.
        assert failed.mean() < 0.05, f"{failed.mean():.1%} of random sums were not certified"


@needs_kernel
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_fast_path_agrees_with_the_exact_path_on_adversarial_data(dtype):
    for rows in (3, 7, 16):
        values = adversarial(rows, dtype, random_columns=1500)
        assert_certified_are_exact(values)


@needs_kernel
def test_many_columns_and_contributions_against_fsum():
    rng = np.random.default_rng(5)
    values = rng.normal(size=(72, 5000)) * 10.0 ** rng.integers(-20, 20, size=(72, 5000))
    got = exact_sum(np, values)
    assert [float(g) for g in got] == [math.fsum(values[:, i]) for i in range(values.shape[1])]


@needs_kernel
def test_float64_ties_are_certified_only_when_known_exactly():
    # 1 + 2^-53 is a tie: the kernel knows it exactly (no second-level error) and rounds to even.
    out, failed = kernel(np.array([[1.0], [2.0 ** -53]]))
    assert not failed[0] and out[0] == 1.0
    # 1 + 2^-53 + 2^-110 is just above the tie: up.
    out, failed = kernel(np.array([[1.0], [2.0 ** -53], [2.0 ** -110]]))
    assert same_bits(exact_sum(np, np.array([[1.0], [2.0 ** -53], [2.0 ** -110]])), np.array([1.0 + 2.0 ** -52]))
    # The same tie reached with second-level errors (+-2^-110) is refused by the certificate
    # (it never certifies a tie), and the exact path rounds it to even.
    values = np.array([[1.0], [2.0 ** -53], [2.0 ** -110], [-(2.0 ** -110)]])
    out, failed = kernel(values)
    assert failed[0]
    assert same_bits(exact_sum(np, values), np.array([1.0]))
    # One quantum either side of that tie is certified or refused, never wrong.
    for delta in (2.0 ** -108, -(2.0 ** -108)):
        assert_certified_are_exact(np.array([[1.0], [2.0 ** -53], [2.0 ** -110], [-(2.0 ** -110)], [delta]]))


@needs_kernel
def test_power_of_two_results_use_the_smaller_gap():
    # Just below 2 the gap below is half the gap above; sums landing beside 2 and 1.
    for values in ([2.0, -(2.0 ** -53)], [2.0, -(2.0 ** -54)], [2.0, -(2.0 ** -54), -(2.0 ** -110)],
                   [1.0, -(2.0 ** -54)], [1.0, -(2.0 ** -55)], [1.0, -(2.0 ** -54), 2.0 ** -120]):
        assert_certified_are_exact(np.array(values)[:, None])
    for values in ([2.0, -(2.0 ** -25)], [2.0, -(2.0 ** -25), -(2.0 ** -60)], [1.0, -(2.0 ** -25), 2.0 ** -70]):
        assert_certified_are_exact(np.array(values, dtype=np.float32)[:, None])


@needs_kernel
def test_float32_ties_and_double_rounding():
    # 1 + 2^-24 is a float32 tie, summed exactly in float64: certified, to even.
    out, failed = kernel(np.array([[1.0], [2.0 ** -24]], dtype=np.float32))
    assert not failed[0] and out[0] == np.float32(1.0)
    # 1 + 2^-24 + 2^-60: the float64 sum rounds to that tie, the exact sum is just above it.
    # The certificate refuses it (a float64 error of 2^-60 against a distance of 0 to the tie)
    # and the exact path rounds up.
    values = np.array([[1.0], [2.0 ** -24], [2.0 ** -60]], dtype=np.float32)
    out, failed = kernel(values)
    assert failed[0]
    assert exact_sum(np, values)[0] == np.float32(1 + 2.0 ** -23)
    # The same with the tie far from any doubt: certified.
    assert_certified_are_exact(np.array([[1.0], [2.0 ** -24 + 2.0 ** -40], [2.0 ** -60]], dtype=np.float32))


@needs_kernel
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_overflow_guard_boundary(dtype):
    fmt = FloatFormat.of(dtype)
    guard = 2.0 ** (fmt.max_exponent - 2)
    below = float(np.nextafter(np.float32(guard), np.float32(0))) if fmt.precision < 53 else float(np.nextafter(guard, 0))
    below = float(np.asarray(below).astype(dtype)) if float(np.asarray(below).astype(dtype)) < guard else guard / 2
    values = np.array([[below / 2], [below / 2]], dtype=dtype)
    out, failed = kernel(values)
    assert not failed[0]
    assert_certified_are_exact(values)
    values = np.array([[guard / 2], [guard / 2]], dtype=dtype)
    out, failed = kernel(values)
    assert failed[0]
    assert_certified_are_exact(values)
    biggest = float(np.finfo(np.float64).max) if dtype == np.float64 else float(
        (np.finfo(dtype) if dtype.kind == "f" else __import__("ml_dtypes").finfo(dtype)).max)
    assert_certified_are_exact(np.array([[biggest], [biggest], [-biggest]], dtype=dtype))


@needs_kernel
def test_float64_near_the_subnormal_range():
    tiny = 2.0 ** -1074
    values = np.array([[2.0 ** -899, 2.0 ** -1000, tiny, 3 * tiny], [2.0 ** -950, -(2.0 ** -1001), tiny, -tiny]])
    assert_certified_are_exact(values)
    # Inexact sums there (second-level errors, gaps below 2^-900) are refused, never wrong.
    rng = np.random.default_rng(7)
    values = np.ldexp(rng.uniform(-1, 1, (6, 3000)), rng.integers(-1074, -880, (6, 3000)))
    failed = assert_certified_are_exact(values)
    assert failed.any()


@needs_kernel
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_specials_and_signed_zeros(dtype):
    fmt = FloatFormat.of(dtype)
    tiny = 2.0 ** fmt.quantum
    columns = [
        [np.nan, 1.0, 0.0], [np.inf, 1.0, 2.0], [np.inf, -np.inf, 0.0], [-np.inf, -np.inf, 5.0],
        [-0.0, -0.0, -0.0], [-0.0, 0.0, -0.0], [1.0, -1.0, -0.0], [tiny, -tiny, -0.0],
        [tiny, tiny, tiny], [tiny, -3 * tiny, 0.0], [2.0 ** (fmt.quantum + fmt.precision - 1), -tiny, 0.0],
    ]
    values = np.array(columns, dtype=np.float64).T.astype(dtype)
    assert_certified_are_exact(values)
    got = exact_sum(np, values)
    assert np.signbit(got[4]) and not np.signbit(got[5]) and not np.signbit(got[6])
    assert np.isnan(got[0]) and np.isnan(got[2]) and got[1] == np.inf and got[3] == -np.inf


def half_precision_formats():
    return [np.dtype(np.float16)] + ([BF16] if BF16 is not None else [])


@pytest.mark.parametrize("dtype", half_precision_formats(), ids=str)
def test_half_formats_overflow_to_infinity_at_exactly_half_an_ulp(dtype):
    fmt = FloatFormat.of(dtype)
    biggest = (2.0 - 2.0 ** (1 - fmt.precision)) * 2.0 ** (fmt.max_exponent - 1)
    half_ulp = 2.0 ** (fmt.max_exponent - 1 - fmt.precision)
    # max + half an ulp is a tie between max (odd) and 2^emax: to even, which overflows.
    step = 2.0 ** (fmt.max_exponent - 1 - fmt.precision - 3)
    cases = {
        (biggest, half_ulp): np.inf,
        (biggest, half_ulp - step, step): np.inf,
        (biggest, half_ulp - step): biggest,
        (-biggest, -half_ulp): -np.inf,
        (biggest, biggest, -biggest): biggest,
    }
    for parts, want in cases.items():
        values = np.array(parts, dtype=np.float64).astype(dtype)[:, None]
        assert np.array(parts, dtype=np.float64).astype(dtype).astype(np.float64).tolist() == list(parts)
        for path in (exact_sum, exact_sum_numpy):
            with np.errstate(all="ignore"):
                got = path(np, values)
            assert got.dtype == dtype and float(got[0]) == want, (path.__name__, parts, got)
        assert float(reference_sums(values)[0]) == want


@pytest.mark.parametrize("dtype", half_precision_formats(), ids=str)
def test_half_formats_are_rounded_once_not_through_float32(dtype):
    fmt = FloatFormat.of(dtype)
    one_ulp = 2.0 ** (1 - fmt.precision)
    # 1 + half an ulp + a quarter of a float32 ulp: a float32 sum would round to the tie first.
    nudge = 2.0 ** max(-25, fmt.quantum)
    values = np.array([1.0, one_ulp / 2, nudge], dtype=np.float64).astype(dtype)[:, None]
    assert float(values[2, 0]) == nudge
    assert float(values.astype(np.float32).sum(axis=0, dtype=np.float32).astype(dtype)[0]) == 1.0
    for path in (exact_sum, exact_sum_numpy):
        assert float(path(np, values)[0]) == 1.0 + one_ulp
    # Subnormal results, and a sum of subnormals that becomes normal.
    tiny = 2.0 ** fmt.quantum
    smallest_normal = 2.0 ** (fmt.quantum + fmt.precision - 1)
    values = np.array([[tiny, smallest_normal - tiny, tiny], [tiny, -tiny, tiny]], dtype=np.float64).T.astype(dtype)
    for path in (exact_sum, exact_sum_numpy):
        assert path(np, values).astype(np.float64).tolist() == [smallest_normal + tiny, tiny]


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_numpy_path_matches_the_reference_in_every_format(dtype):
    values = adversarial(9, dtype, random_columns=300)
    with np.errstate(all="ignore"):
        assert same_bits(exact_sum_numpy(np, values), reference_sums(values))
