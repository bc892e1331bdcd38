"""The CuPy kernel (reduction/gpu_kernel.py): its CUDA source compiled for the CPU with g++ (the
CUDA intrinsics as plain C++) and checked against the rational reference here; on a GPU, the
same checks through CuPy."""

import ctypes
import shutil
import subprocess

import numpy as np
import pytest

from tessera_mpi.reduction import gpu_kernel
from tessera_mpi.reduction.cpu_kernel import SLACK, TINY_GAP
from tessera_mpi.reduction.exact_reference import reference_sums
from tessera_mpi.reduction.formats import FloatFormat, supported
from tessera_mpi.suite.checks.determinism import adversarial

DTYPES = [np.dtype(d) for d in supported()]
HOST_PRELUDE = r"""
#include <cmath>
#include <cstring>
using std::fabs;
#define __global__
#define __device__
struct Index { unsigned x; };
static Index blockIdx, blockDim, threadIdx;
static long long __double_as_longlong(double d) { long long v; std::memcpy(&v, &d, 8); return v; }
static double __longlong_as_double(long long v) { double d; std::memcpy(&d, &v, 8); return d; }
static float __int_as_float(unsigned int v) { float f; std::memcpy(&f, &v, 4); return f; }
static float __double2float_rn(double d) { return (float)d; }
static void atomicAdd(unsigned long long* p, unsigned long long v) { *p += v; }
"""
HOST_DRIVER = r"""
extern "C" void run(const void* values, long long rows, long long n, void* out, bool* failed, int precision,
                    int quantum, double min_normal, double guard, double factor, double tiny_gap, double slack,
                    unsigned long long* failures) {
    blockDim.x = 1;
    for (long long j = 0; j < n; ++j) {
        blockIdx.x = (unsigned)j;
        threadIdx.x = 0;
        certified_sum((const INPUT_T*)values, rows, n, (COMPUTE_T*)out, failed, precision, quantum, min_normal,
                      guard, factor, tiny_gap, slack, failures);
    }
}
"""


def cupy_or_none():
    try:
        import cupy
        cupy.cuda.runtime.getDeviceCount()
        cupy.RawKernel('extern "C" __global__ void k() {}', "k")(((1,), (1,), ()))
        return cupy
    except Exception:
        return None


@pytest.fixture(scope="module")
def host_kernels(tmp_path_factory):
    if shutil.which("g++") is None:
        pytest.skip("g++ is not installed: the CUDA source cannot be compiled for the host")
    built = {}
    for dtype in DTYPES:
        fmt = FloatFormat.of(dtype)
        input_type, compute, _, _ = gpu_kernel.LOADS[dtype.name]
        code = (HOST_PRELUDE + gpu_kernel.source(fmt).replace('extern "C" ', "")
                + HOST_DRIVER.replace("INPUT_T", input_type).replace("COMPUTE_T", compute))
        folder = tmp_path_factory.mktemp(dtype.name)
        (folder / "k.cpp").write_text(code)
        # No contraction and no fast-math, like --fmad=false on the device.
        subprocess.run(["g++", "-O2", "-ffp-contract=off", "-fno-fast-math", "-shared", "-fPIC",
                        "-o", str(folder / "k.so"), str(folder / "k.cpp")], check=True)
        built[dtype.name] = ctypes.CDLL(str(folder / "k.so"))
    return built


def host_certified_sum(lib, values, fmt):
    rows, n = values.shape
    data = np.ascontiguousarray(values)
    data = data.view(np.uint16) if fmt.dtype.itemsize == 2 else data
    out = np.empty(n, dtype=fmt.compute)
    failed = np.zeros(n, dtype=np.bool_)
    failures = np.zeros(1, dtype=np.uint64)
    p = lambda a: a.ctypes.data_as(ctypes.c_void_p)
    lib.run(p(data), ctypes.c_longlong(rows), ctypes.c_longlong(n), p(out), p(failed), ctypes.c_int(fmt.precision),
            ctypes.c_int(fmt.quantum), ctypes.c_double(2.0 ** fmt.min_normal_exponent),
            ctypes.c_double(2.0 ** (fmt.max_exponent - 2)), ctypes.c_double(2.0 * rows * 2.0 ** -53),
            ctypes.c_double(TINY_GAP), ctypes.c_double(SLACK), p(failures))
    return out, failed, int(failures[0])


def cases(dtype):
    rng = np.random.default_rng(21)
    normal = (rng.normal(size=(8, 3000)) * 2.0 ** rng.integers(-8, 8, size=(8, 3000))).astype(dtype)
    return [normal, adversarial(7, dtype, random_columns=800), adversarial(16, dtype, random_columns=300),
            np.array([[1.0], [2.0 ** -53], [2.0 ** -110], [-(2.0 ** -110)]]).astype(dtype)]


def check(sums, failed, failures, values):
    fmt = FloatFormat.of(values.dtype)
    assert failures == int(failed.sum())
    want = reference_sums(values)
    want = want.astype(np.float32) if fmt.compute == np.float32 else want
    unsigned = f"u{sums.itemsize}"
    wrong = np.flatnonzero(~failed & (sums.view(unsigned) != want.view(unsigned)))
    assert not wrong.size, [(values[:, i].tolist(), sums[i], want[i]) for i in wrong[:3]]


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_cuda_source_compiled_for_the_host_certifies_only_exact_sums(host_kernels, dtype):
    fmt = FloatFormat.of(dtype)
    for values in cases(dtype):
        with np.errstate(all="ignore"):
            check(*host_certified_sum(host_kernels[dtype.name], values, fmt), values)
    normal = cases(dtype)[0]
    assert host_certified_sum(host_kernels[dtype.name], normal, fmt)[1].mean() < 0.05


@pytest.mark.skipif(cupy_or_none() is None, reason="needs a CUDA GPU: CuPy cannot run a kernel here")
@pytest.mark.parametrize("dtype", [np.dtype(np.float32), np.dtype(np.float64), np.dtype(np.float16)], ids=str)
def test_gpu_kernel_certifies_only_exact_sums(dtype):
    cupy = cupy_or_none()
    fmt = FloatFormat.of(dtype)
    for values in cases(dtype):
        sums, failed, failures = gpu_kernel.certified_sum(cupy, cupy.asarray(values), fmt)
        with np.errstate(all="ignore"):
            check(cupy.asnumpy(sums), cupy.asnumpy(failed), failures, values)


@pytest.mark.skipif(cupy_or_none() is None, reason="needs a CUDA GPU: CuPy cannot run a kernel here")
@pytest.mark.parametrize("dtype", [np.dtype(np.float32), np.dtype(np.float64), np.dtype(np.float16)], ids=str)
def test_exact_sum_on_the_device_is_the_reference(dtype):
    from tessera_mpi.reduction.exact_sum import exact_sum
    cupy = cupy_or_none()
    for values in cases(dtype):
        with np.errstate(all="ignore"):
            got = cupy.asnumpy(exact_sum(cupy, cupy.asarray(values)))
        assert got.tobytes() == reference_sums(values).tobytes()
