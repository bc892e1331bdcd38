"""The CuPy kernel (reduction/gpu_kernel.py): its CUDA source compiled for the CPU with g++ (the
CUDA intrinsics as plain C++) and checked against the rational reference here; on a GPU, the
same checks through CuPy. Without a GPU those skip, naming why; under TESSERA_REQUIRE_GPU=1
(scripts/gpu_check.sh) they fail instead."""

import ctypes
import functools
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from tessera_mpi.errors import ConfigError
from tessera_mpi.reduction import gpu_kernel
from tessera_mpi.reduction.cpu_kernel import SLACK, TINY_GAP
from tessera_mpi.reduction.exact_reference import reference_sums
from tessera_mpi.reduction.formats import FloatFormat, supported
from tessera_mpi.runtime.backend import select_backend
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


REQUIRE_GPU_ENV = "TESSERA_REQUIRE_GPU"
"""Set (to 1) by scripts/gpu_check.sh: a GPU test that cannot run there fails, naming why,
instead of skipping, so that a GPU check never passes on tests that did not run."""


@functools.lru_cache(maxsize=1)
def cupy_probe():
    """Return (cupy, "") when CuPy runs a kernel here (the backend's own probe), else (None, why)."""
    try:
        backend = select_backend("cupy")
    except ConfigError as exc:
        return None, str(exc)
    return backend.xp, ""


def gpu_cupy():
    """CuPy for a GPU test: skips it without a GPU, or fails it under TESSERA_REQUIRE_GPU=1."""
    cupy, why = cupy_probe()
    if cupy is None:
        if os.environ.get(REQUIRE_GPU_ENV) == "1":
            pytest.fail(f"{REQUIRE_GPU_ENV}=1 and this GPU test cannot run: {why}")
        pytest.skip(f"needs a CUDA GPU: {why}")
    return cupy


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


@pytest.mark.parametrize("dtype", [np.dtype(np.float32), np.dtype(np.float64), np.dtype(np.float16)], ids=str)
def test_gpu_kernel_certifies_only_exact_sums(dtype):
    cupy = gpu_cupy()
    fmt = FloatFormat.of(dtype)
    for values in cases(dtype):
        sums, failed, failures = gpu_kernel.certified_sum(cupy, cupy.asarray(values), fmt)
        with np.errstate(all="ignore"):
            check(cupy.asnumpy(sums), cupy.asnumpy(failed), failures, values)


@pytest.mark.parametrize("dtype", [np.dtype(np.float32), np.dtype(np.float64), np.dtype(np.float16)], ids=str)
def test_exact_sum_on_the_device_is_the_reference(dtype):
    from tessera_mpi.reduction.exact_sum import exact_sum
    cupy = gpu_cupy()
    for values in cases(dtype):
        with np.errstate(all="ignore"):
            got = cupy.asnumpy(exact_sum(cupy, cupy.asarray(values)))
        assert got.tobytes() == reference_sums(values).tobytes()


def test_the_probe_accepts_a_cupy_that_runs_a_kernel(monkeypatch):
    """The GPU tests' probe is the backend's: a CuPy that computes its kernel is taken. (An
    earlier probe of this file called RawKernel with one argument where CuPy takes grid, block
    and args, so on a GPU it would have skipped every GPU test, and gpu_check.sh passed them.)"""
    import types

    cupy = types.ModuleType("cupy")
    cupy.int32, cupy.arange, cupy.asnumpy = np.int32, np.arange, np.asarray
    cupy.cuda = types.SimpleNamespace(runtime=types.SimpleNamespace(getDeviceCount=lambda: 1))
    cupy.ElementwiseKernel = lambda *args: (lambda x: 3 * x + 1)
    monkeypatch.setitem(sys.modules, "cupy", cupy)
    cupy_probe.cache_clear()
    try:
        assert cupy_probe() == (cupy, "")
    finally:
        cupy_probe.cache_clear()


def test_under_the_gpu_checks_flag_a_gpu_test_that_cannot_run_fails_naming_why():
    if cupy_probe()[0] is not None:
        pytest.skip("a GPU is here: the GPU tests run")
    run = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rs", __file__, "-k", "gpu_kernel_certifies"]
    skipped = subprocess.run(run, capture_output=True, text=True, timeout=120, env=dict(os.environ, **{REQUIRE_GPU_ENV: "0"}))
    assert skipped.returncode == 0 and "3 skipped" in skipped.stdout and "needs a CUDA GPU: TESSERA_BACKEND=cupy but" \
        in skipped.stdout, skipped.stdout
    failed = subprocess.run(run, capture_output=True, text=True, timeout=120, env=dict(os.environ, **{REQUIRE_GPU_ENV: "1"}))
    assert failed.returncode == 1 and "3 failed" in failed.stdout, failed.stdout
    assert "TESSERA_REQUIRE_GPU=1 and this GPU test cannot run: TESSERA_BACKEND=cupy but" in failed.stdout
