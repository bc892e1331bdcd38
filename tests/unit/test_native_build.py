"""Building the C files once per machine (runtime/native_build.py) and the exact sum's kernel
when it cannot be built (reduction/cpu_kernel.py)."""

import os
import stat

import numpy as np
import pytest

from tessera_mpi.errors import NativeBuildError
from tessera_mpi.reduction import cpu_kernel
from tessera_mpi.reduction.exact_sum import exact_sum, exact_sum_numpy
from tessera_mpi.reduction.formats import FloatFormat
from tessera_mpi.runtime import native_build


def fake_compiler(folder, *, refuse):
    """A compiler wrapper that fails when given `refuse` and counts its runs."""
    script = folder / "fakecc"
    script.write_text(f"""#!/bin/sh
echo run >> {folder}/runs
for a in "$@"; do [ "$a" = "{refuse}" ] && {{ echo "unknown flag $a" >&2; exit 1; }}; done
exec cc "$@"
""")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return str(script)


@pytest.fixture
def cache(monkeypatch, tmp_path):
    monkeypatch.setenv(native_build.CACHE_ENV, str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_a_flag_set_that_fails_falls_back_to_the_next_and_the_result_is_cached(cache, tmp_path):
    cc = fake_compiler(tmp_path, refuse="-march=native")
    flags = cpu_kernel.FLAGS
    path = native_build.build(cpu_kernel.SOURCE, stem="certified_sum", compiler=cc, flag_sets=flags)
    assert path.parent == cache and path.exists()
    assert (tmp_path / "runs").read_text().count("run") == 3  # both native sets refused, baseline built
    again = native_build.build(cpu_kernel.SOURCE, stem="certified_sum", compiler=cc, flag_sets=flags)
    assert again == path and (tmp_path / "runs").read_text().count("run") == 5  # native sets retried only


def test_a_compiler_without_the_vector_width_option_builds_for_the_native_cpu(cache, tmp_path):
    cc = fake_compiler(tmp_path, refuse="-mprefer-vector-width=512")
    path = native_build.build(cpu_kernel.SOURCE, stem="certified_sum", compiler=cc, flag_sets=cpu_kernel.FLAGS)
    assert path.exists() and (tmp_path / "runs").read_text().count("run") == 2
    assert "-march=native" in cpu_kernel.FLAGS[1] and "-mprefer-vector-width=512" not in cpu_kernel.FLAGS[1]


def test_a_build_that_always_fails_says_why(cache, tmp_path):
    cc = fake_compiler(tmp_path, refuse="-O3")
    with pytest.raises(NativeBuildError, match="unknown flag -O3"):
        native_build.build(cpu_kernel.SOURCE, stem="certified_sum", compiler=cc, flag_sets=cpu_kernel.FLAGS)
    assert not list(cache.glob("*.so"))
    with pytest.raises(NativeBuildError, match="could not run"):
        native_build.build(cpu_kernel.SOURCE, stem="x", compiler=str(tmp_path / "nothing"), flag_sets=[["-O2"]])


def test_the_cache_key_follows_the_cpu(cache, tmp_path):
    one = native_build.build(cpu_kernel.SOURCE, stem="k", compiler="cc", flag_sets=[["-O1"]], depends_on=["cpu A"])
    two = native_build.build(cpu_kernel.SOURCE, stem="k", compiler="cc", flag_sets=[["-O1"]], depends_on=["cpu B"])
    assert one != two and one.exists() and two.exists()
    assert "flags" in native_build.cpu_identity() or "Features" in native_build.cpu_identity() or \
        not os.path.exists("/proc/cpuinfo")


@pytest.mark.parametrize("how", ["disabled", "no compiler"])
def test_without_the_kernel_the_exact_sum_takes_the_numpy_path_with_the_same_bits(monkeypatch, cache, how):
    rng = np.random.default_rng(3)
    values = rng.normal(size=(8, 1000)) * 2.0 ** rng.integers(-30, 30, size=(8, 1000))
    want = exact_sum(np, values)  # with the kernel, when this machine has one
    monkeypatch.setattr(cpu_kernel, "_dll", None)
    monkeypatch.setattr(cpu_kernel, "_reason", None)
    if how == "disabled":
        monkeypatch.setenv(cpu_kernel.DISABLE_ENV, "0")
    else:
        monkeypatch.setenv("PATH", "/nonexistent")
        monkeypatch.delenv("CC", raising=False)
        monkeypatch.delenv(cpu_kernel.CC_ENV, raising=False)
    assert not cpu_kernel.available()
    assert ("disabled" if how == "disabled" else "no C compiler") in cpu_kernel.reason()
    got = exact_sum(np, values)
    assert got.tobytes() == want.tobytes() == exact_sum_numpy(np, values).tobytes()
    with pytest.raises(NativeBuildError, match="unavailable"):
        cpu_kernel.certified_sum(values, FloatFormat.of(values.dtype))


def test_a_float64_deterministic_sum_loads_neither_ml_dtypes_nor_numba():
    """What each of 72 ranks pays on its first deterministic sum: ml_dtypes (0.7 s) only for a
    bfloat16 tensor, numba never (the kernel is C)."""
    import subprocess
    import sys
    code = """
import sys
from tessera_mpi import dist, op
mesh = dist.Mesh(axes=["dp"], devices=range(1))
y = op.all_reduce(dist.tensor([1.0], mesh=mesh, layout=dist.Replicate()), op="sum", deterministic=True)
assert y.numpy().tolist() == [1.0]
print(sorted(m for m in ("ml_dtypes", "numba") if m in sys.modules))
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "MPI4PY_RC_INITIALIZE": "1"})
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]", done.stdout
