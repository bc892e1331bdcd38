"""The global-index fill pattern: exact, unique, and the same however the tensor is cut."""

import numpy as np
import pytest

from tessera_mpi.dist.fill import fill_pattern, pattern_bits


@pytest.mark.parametrize("dtype, bits", [(np.float32, 23), (np.float64, 31), (np.float16, 10),
                                         (np.int32, 31), (np.int8, 7), (np.uint16, 15)])
def test_bits(dtype, bits):
    assert pattern_bits(dtype) == bits


def test_unique_over_the_period_and_exact():
    values = fill_pattern(np, ((0, 1 << 10),), (1 << 10,), np.float16)
    assert len(np.unique(values)) == 1 << 10
    big = fill_pattern(np, ((0, 1 << 20),), (1 << 20,), np.float32)
    assert len(np.unique(big)) == 1 << 20
    assert ((big >= 1) & (big < 2)).all()
    as_int = ((big.astype(np.float64) - 1.0) * 2.0**23)
    assert np.array_equal(as_int, np.round(as_int)), "every value is exactly 1 + h / 2^23"


def test_block_equals_slice_of_whole():
    shape = (13, 7, 5)
    whole = fill_pattern(np, tuple((0, n) for n in shape), shape, np.float32)
    box = ((3, 9), (2, 7), (0, 4))
    block = fill_pattern(np, box, shape, np.float32)
    assert np.array_equal(block, whole[3:9, 2:7, 0:4])
    assert fill_pattern(np, ((4, 4), (0, 7), (0, 5)), shape, np.float32).shape == (0, 7, 5)


def test_transposed_or_shifted_blocks_differ():
    shape = (64, 64)
    whole = fill_pattern(np, ((0, 64), (0, 64)), shape, np.float32)
    assert not np.array_equal(whole[:32, :32], whole[32:, :32])
    assert not np.array_equal(whole[:32, :32], whole[:32, :32].T)


def test_bool_is_refused():
    with pytest.raises(TypeError, match="float or integer"):
        fill_pattern(np, ((0, 3),), (3,), np.bool_)


def _reference(box, shape, dtype):
    """The pattern from its definition, with Python integers: no wrapping, no float shortcut."""
    bits = pattern_bits(dtype)
    strides = [int(np.prod(shape[d + 1:], dtype=np.int64)) for d in range(len(shape))]
    values = []
    for index in np.ndindex(*[stop - start for start, stop in box]):
        flat = sum((start + i) * s for i, (start, _), s in zip(index, box, strides))
        h = (flat * 0x9E3779B1) % (1 << bits)
        values.append(1.0 + h / 2.0 ** bits if np.dtype(dtype).kind == "f" else h)
    return np.array(values, dtype=np.float64 if np.dtype(dtype).kind == "f" else np.int64).astype(dtype).reshape(
        [stop - start for start, stop in box])


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16, np.int32, np.uint16])
@pytest.mark.parametrize("box", [((70000, 70003), (0, 1 << 16)),          # whole rows past 2^32
                                 ((131070, 131072), (65000, 65536)),     # a corner past 2^32
                                 ((0, 2), (1, 9))])
def test_the_uint32_arithmetic_equals_the_definition_past_2_to_the_32(dtype, box):
    shape = (1 << 17, 1 << 16)  # 2^33 elements: flat indices beyond 32 bits
    assert np.array_equal(fill_pattern(np, box, shape, dtype), _reference(box, shape, dtype))
