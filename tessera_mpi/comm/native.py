"""The compiled timed loop (timed_loop.c): built once per machine with the MPI's own `mpicc`,
cached on disk, loaded with ctypes.

Why C through the MPI's compiler wrapper rather than numba with numba-mpi: numba-mpi 1.3 calls
MPI_COMM_WORLD only (the sweep runs on sub-communicators), has no float32, no MPI_IN_PLACE
and no all-gather, reduce-scatter or all-to-all; importing numba and numba-mpi costs about
1.3 s per rank and compiling the loop 0.8 s more (its ctypes globals cannot be cached),
which at 72 ranks on 2 cores is a minute of start-up. The C file is 70 lines, compiles in
well under a second once per machine, and `mpicc` is wherever an MPI is installed.

The loaded library must call the same libmpi as mpi4py, or handles from one would reach the
other: it is linked by the same soname and the check after loading compares where its
MPI_Allreduce resolved with mpi4py's library's. Whatever fails (no compiler, a build error, a
different library) leaves `library()` None with the reason in `reason()`, and the timed loops
run in Python.

It is built and cached by runtime/native_build.py (its file name carries a digest of the
source, the compiler and the MPI library's version, so a different MPI builds its own).
"""

from __future__ import annotations

import ctypes
import os
import platform
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from mpi4py import MPI

from ..errors import CompiledLoopUnavailable, NativeBuildError
from ..runtime import native_build

MPICC_ENV = "TESSERA_MPICC"
DISABLE_ENV = "TESSERA_COMPILED_LOOP"
"""Set to 0 to run every timed loop in Python."""
SOURCE = Path(__file__).with_name("timed_loop.c")
ABI = 2
"""TESSERA_LOOP_ABI of timed_loop.c that this module calls."""

WINDOWS = {"send": 0, "receive": 1, "exchange": 2}
"""The point-to-point windows timed_loop.c runs, by its enum."""
KINDS = {"all_reduce": 0, "all_gather": 1, "reduce_scatter": 2, "broadcast": 3, "all_to_all": 4,
         "sendrecv": 5, "sendrecv_replace": 6}
"""The collectives timed_loop.c runs, by its enum."""


@dataclass(frozen=True)
class Library:
    """The loaded loop library and the file it came from."""

    dll: ctypes.CDLL
    path: Path

    def loop(self, kind: int, comm: int, dtype: int, op: int, send: int, recv: int, count: int, a: int,
             b: int, warmup: int, iterations: int, stamps: int) -> tuple[int, int]:
        """Run timed_loop.c's loop (addresses as integers); return (MPI error code, failed call)."""
        failed = ctypes.c_long(0)
        rc = self.dll.tessera_timed_loop(kind, comm, dtype, op, send, recv, count, a, b, warmup, iterations,
                                         stamps, ctypes.byref(failed))
        return int(rc), int(failed.value)

    def window(self, mode: int, comm: int, dtype: int, send: int, recvs: ctypes.Array, count: int,
               window: int, peer: int, tag: int) -> tuple[int, float]:
        """Run timed_loop.c's window; return (MPI error code, seconds)."""
        seconds = ctypes.c_double(0.0)
        rc = self.dll.tessera_window(mode, comm, dtype, send, recvs, count, window, peer, tag,
                                     ctypes.byref(seconds))
        return int(rc), float(seconds.value)


_loaded: Library | None = None
_reason: str | None = None


def library() -> Library | None:
    """Return the compiled loop, building it on first use (seconds, once per machine); None
    when it cannot be had here (see `reason()`). Local: no communication."""
    global _loaded, _reason
    if _loaded is None and _reason is None:
        try:
            _loaded = _load(_build())
        except (OSError, subprocess.SubprocessError, CompiledLoopUnavailable) as exc:
            _reason = str(exc)
    return _loaded


def reason() -> str:
    """Why `library()` is None ("" when it is not)."""
    return _reason or ""


def _mpi_library_path() -> str | None:
    """The MPI shared library this process loaded for mpi4py (from the memory map)."""
    try:
        lines = Path("/proc/self/maps").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        name = line.rsplit(" ", 1)[-1]
        # libmpi.so.N (Open MPI, MPICH 4+), libmpich.so.N; not libmpi_mpifh (Fortran) and the like.
        if os.path.basename(name).startswith(("libmpi.so", "libmpich.so")):
            return name
    return None


def _mpicc() -> str:
    given = os.environ.get(MPICC_ENV)
    if given:
        return given
    lib = _mpi_library_path()
    if lib:
        beside = Path(lib).resolve().parent.parent / "bin" / "mpicc"
        if beside.exists():
            return str(beside)
    found = shutil.which("mpicc")
    if found is None:
        raise CompiledLoopUnavailable(f"no mpicc (beside {lib or 'the MPI library'}, on PATH, or in ${MPICC_ENV})")
    return found


def _build() -> Path:
    """Return the cached library, compiling it under a file lock if this machine lacks it."""
    if os.environ.get(DISABLE_ENV, "1") == "0":
        raise CompiledLoopUnavailable(f"disabled by {DISABLE_ENV}=0")
    mpicc = _mpicc()
    try:
        return native_build.build(SOURCE, stem="timed_loop", compiler=mpicc, flag_sets=[["-O2"]],
                                  depends_on=[platform.machine(), MPI.Get_library_version()])
    except NativeBuildError as exc:
        raise CompiledLoopUnavailable(str(exc)) from exc


def _load(path: Path) -> Library:
    dll = ctypes.CDLL(str(path))
    if dll.tessera_loop_abi() != ABI:
        raise CompiledLoopUnavailable(f"{path} has loop ABI {dll.tessera_loop_abi()}, this module calls {ABI}")
    dll.tessera_loop_mpi_allreduce.restype = ctypes.c_void_p
    ours = dll.tessera_loop_mpi_allreduce()
    lib = _mpi_library_path()
    if lib is None:
        raise CompiledLoopUnavailable("cannot tell which MPI library mpi4py loaded (no /proc/self/maps)")
    theirs = ctypes.cast(ctypes.CDLL(lib).MPI_Allreduce, ctypes.c_void_p).value
    if ours != theirs:
        raise CompiledLoopUnavailable(f"{path} calls another MPI library than mpi4py's {lib}")
    p, i, lng = ctypes.c_void_p, ctypes.c_int, ctypes.c_long
    dll.tessera_timed_loop.argtypes = [i, p, p, p, p, p, i, i, i, lng, lng, p, p]
    dll.tessera_timed_loop.restype = i
    dll.tessera_window.argtypes = [i, p, p, p, p, i, i, i, i, p]
    dll.tessera_window.restype = i
    return Library(dll=dll, path=path)
